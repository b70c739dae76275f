//! Issue 10's scenario, on the images a user deploys (`images/build`): a centre, a backup centre
//! (the centre image, outside the mesh), two hospitals (site-a, site-b), a clinic and a pharmacy.
//! The images are checked as booted; the routers enroll from tokens and build the mesh; the
//! centre's store (`kizuna-store.service`) listens only on the centre router's address on the
//! **upload** segment (`listen: 10.20.1.1:8440`, `bind_interface: kzv-upload`); each site's netd
//! hosts its upload agent, which ships its facility's part of one generated corpus (the
//! pharmacy's as NSIPS files it converts) through the mesh with the token of `kizuna site add`:
//! every file arrives in the centre's tree and IndexDB, none quarantined or rejected. The centre's
//! patient linkage (`kizuna-linkage.service`) gives a person seen at both hospitals and the
//! pharmacy one common ID. The sign-on (`kizuna-auth`) and the viewer (`kizuna-viewer`) listen
//! only on the centre's **reference** address: a host on site-a's reference LAN logs in with
//! password and TOTP (OpenID Connect, as a browser would, with curl) and sees that person's own
//! records only, then, after `kizuna consent set`, every facility's in the time series and the
//! calendar; the auditor finds the view in the audit trail, and `kizuna audit verify` passes. A bad
//! file reaches the admin screen and the alert mail; site-a's underlay is cut and the store killed
//! mid-upload without loss; the backup verifies clean, holds the centre's linkage database (common
//! IDs, consent), is promoted and serves the clinician the same records. The
//! reference LAN cannot reach the store; the upload segment (where the agents run) cannot reach the
//! viewer or the sign-on; neither answers on the underlay.

use std::time::{Duration, Instant};

use kizuna_lab::deploy::{
    CorpusUpload, Registration, SITE_AGENT, Staged, Uploaded, assert_started_by_systemd,
    centre_and_site_images, drop_bad_file, drop_held_back, finish_upload, full_corpus_sums, generate_corpus,
    ground_truth, netd_diagnosis, provision, retry, stage_upload, system_state, tree_files, wait_for_tree,
};
use kizuna_lab::screenshot;
use kizuna_lab::smtp::SmtpSink;
use kizuna_lab::{Lab, Vm, VmSpec, lab_available};

const CENTRE_IP: &str = "10.255.0.11";
const SITE_IP: &str = "10.255.0.12";
/// The other sites: a second hospital, a clinic and a pharmacy (name, router number, kind,
/// underlay address). Site-a is router 2, a hospital.
const OTHER_SITES: [(&str, u8, &str, &str); 3] = [
    ("site-b", 3, "hospital", "10.255.0.14"),
    ("clinic", 4, "clinic", "10.255.0.15"),
    ("pharmacy", 5, "pharmacy", "10.255.0.16"),
];
/// The backup centre: the centre image, outside the mesh, reached from the centre over the
/// underlay (in a prefecture: the line between the two data centres).
const BACKUP_IP: &str = "10.255.0.13";
/// The backup centre's router number: a standby centre of the mesh (kind centre: the reference
/// and upload segments' services may run there too).
const BACKUP_NUMBER: u8 = 6;
/// The backup centre's reference address, where its sign-on and viewer serve once it is promoted.
const BACKUP_REFERENCE_ADDR: &str = "10.10.6.1";
const REPLICA_PORT: u16 = 8450;
/// The centre router's address on the upload segment (site 1's first host of 10.20.0.0/16).
const STORE_ADDR: &str = "10.20.1.1";
const STORE_PORT: u16 = 8440;
/// The centre router's address on the reference segment: the viewer and the sign-on listen there.
const REFERENCE_ADDR: &str = "10.10.1.1";
const VIEWER_PORT: u16 = 8460;
const AUTH_PORT: u16 = 7470;
/// The clinician who logs in from the site's reference LAN.
const CLINICIAN: &str = "sato";
const PASSWORD: &str = "correct horse battery staple";
/// The site's upload subnet: the store admits the site's token only from there.
const SITE_UPLOAD_NET: &str = "10.20.2.0/24";
const STORE_YAML: &str = "/etc/kizuna/store.yaml";
/// Centre units enabled in the image, each with the URL its health check answers on.
const CENTRE_SERVICES: &[(&str, &str)] = &[
    ("kizuna-store", "http://127.0.0.1:8440/healthz"),
    ("kizuna-registry", "https://127.0.0.1:9443/v1/health"),
    ("kizuna-audit", "http://127.0.0.1:7460/healthz"),
    ("kizuna-auth", "http://127.0.0.1:7470/healthz"),
    ("kizuna-admin", "http://127.0.0.1:8441/healthz"),
];
/// The test's SMTP server, on the host's foot on the underlay (inside the lab's namespace).
const SMTP_ADDR: &str = "10.255.0.250";
const SMTP_PORT: u16 = 2525;
const ALERT_TO: &str = "ops@kizuna.test";
/// Patients held back from the first drop: the first `CUT_PATIENTS` are exported while site-a's
/// underlay is cut, the rest while the store is killed.
const HELD_BACK: usize = 7;
/// `kizuna ssmix2 gen --seed` and `--patients` of the lab's corpus (four facilities and a
/// pharmacy; site-a's hospital has 12 of the people).
const CORPUS_SEED: u64 = 11;
const CORPUS_PEOPLE: u32 = 16;
const CUT_PATIENTS: usize = 2;
/// The centre's linkage interval in this test (`KIZUNA_LINKAGE_INTERVAL_SECS`; the image's default is 30).
const LINKAGE_SECS: u64 = 5;

/// Centre (site 1), hospital site-a (site 2) and the [`OTHER_SITES`]. The reference LANs are
/// veths to a LAN host (namespace `h-ref`); the upload LANs are dummies (the store and the agent
/// run on the routers).
fn policy() -> String {
    let mut p = format!(
        "mesh: upload-lab\nkeepalive_secs: 5\nsegments:\n\
         \x20 reference:\n    cidr: 10.10.0.0/16\n    port: 51801\n    security: high\n    required: true\n\
         \x20   centre_services:\n      - {{ name: viewer, proto: tcp, port: {VIEWER_PORT} }}\n\
         \x20     - {{ name: auth, proto: tcp, port: {AUTH_PORT} }}\n\
         \x20 upload:\n    cidr: 10.20.0.0/16\n    port: 51802\n    security: high\n    required: true\n\
         \x20   centre_services:\n      - {{ name: store, proto: tcp, port: {STORE_PORT} }}\n\
         sites:\n\
         \x20 - number: 1\n    name: centre\n    kind: centre\n    endpoint: {CENTRE_IP}\n\
         \x20   lan: {{ reference: lref, upload: lupl }}\n\
         \x20 - number: 2\n    name: site-a\n    kind: hospital\n    endpoint: {SITE_IP}\n\
         \x20   lan: {{ reference: lref, upload: lupl }}\n\
         \x20 - number: {BACKUP_NUMBER}\n    name: backup\n    kind: centre\n    endpoint: {BACKUP_IP}\n\
         \x20   lan: {{ reference: lref, upload: lupl }}\n"
    );
    for (name, number, kind, ip) in OTHER_SITES {
        p.push_str(&format!(
            "  - number: {number}\n    name: {name}\n    kind: {kind}\n    endpoint: {ip}\n\
             \x20   lan: {{ reference: lref, upload: lupl }}\n"
        ));
    }
    p
}

/// The router number of site `name`.
fn number_of(name: &str) -> u8 {
    match name {
        "centre" => 1,
        "site-a" => 2,
        "backup" => BACKUP_NUMBER,
        _ => {
            OTHER_SITES.iter().find(|s| s.0 == name).map(|s| s.1).unwrap_or_else(|| panic!("no site {name}"))
        }
    }
}

/// The LANs of router `number`: reference a veth to the LAN host `h-ref` (10.10.N.2, checked
/// alive, then left without the router's address for netd to set), upload a dummy.
fn lan_script(number: u8) -> String {
    format!(
        "set -e\nip link add lupl type dummy\nip link set lupl up\n\
         ip netns add h-ref\nip link add lref type veth peer name eth0 netns h-ref\nip link set lref up\n\
         ip -n h-ref link set lo up\nip -n h-ref addr add 10.10.{number}.2/24 dev eth0\nip -n h-ref link set eth0 up\n\
         ip -n h-ref route add default via 10.10.{number}.1\nip addr add 10.10.{number}.1/24 dev lref\n\
         ping -c 1 -W 5 10.10.{number}.2 >/dev/null\nip addr del 10.10.{number}.1/24 dev lref\n"
    )
}

/// Shell that succeeds when the store answers `/healthz` at `addr`, run in namespace `netns`
/// (empty: the router itself) with curl's extra `args`.
fn store_health(netns: &str, addr: &str, args: &str) -> String {
    let prefix = if netns.is_empty() { String::new() } else { format!("ip netns exec {netns} ") };
    format!("{prefix}curl -sf --max-time 5 {args} http://{addr}:{STORE_PORT}/healthz >/dev/null")
}

/// A `sqlite3` query on the store's IndexDB (read-only), its output trimmed.
fn index_query(centre: &Vm, sql: &str) -> String {
    centre
        .run_ok(&format!("sqlite3 -readonly /var/lib/kizuna/store/index.sqlite \"{sql}\""))
        .unwrap_or_else(|e| panic!("centre: sqlite3 {sql}: {e}"))
        .trim()
        .to_string()
}

/// Where a centre's sign-on and viewer serve clinicians: an address, the device their sockets
/// bind to (`''` = none), and the namespace the clinician's browser runs in on the test's side.
struct Clinicians<'a> {
    addr: &'a str,
    device: &'a str,
    browser_netns: &'a str,
}

impl Clinicians<'_> {
    fn viewer(&self) -> String {
        format!("http://{}:{VIEWER_PORT}", self.addr)
    }

    fn auth(&self) -> String {
        format!("http://{}:{AUTH_PORT}", self.addr)
    }
}

/// The main centre's: on its reference address, in the reference VRF, the browser on the site's
/// reference LAN.
const ON_REFERENCE: Clinicians =
    Clinicians { addr: REFERENCE_ADDR, device: "kzv-reference", browser_netns: "h-ref" };

/// Puts the sign-on and the viewer of `vm` where `at` says (`http_listen`/`http_bind_interface`,
/// `listen`/`bind_interface`), registers the viewer at the provider and a physician of
/// `facility` with a password and TOTP; returns the TOTP secret.
fn clinician_services(vm: &Vm, facility: &str, at: &Clinicians) -> String {
    let (addr, device, viewer, auth) = (at.addr, at.device, at.viewer(), at.auth());
    vm.run_ok(&format!(
        "set -e; sed -i -e 's|^http_listen: .*|http_listen: {addr}:{AUTH_PORT}|' -e 's|^issuer: .*|issuer: {auth}|' \
         -e \"s|^http_bind_interface: .*|http_bind_interface: '{device}'|\" /etc/kizuna/auth.yaml; \
         grep -qx \"http_bind_interface: '{device}'\" /etc/kizuna/auth.yaml; systemctl restart kizuna-auth"
    ))
    .expect("configuring the sign-on");
    let added = vm
        .run_ok(&format!(
            "runuser -u kizuna -- kizuna auth client add -c /etc/kizuna/auth.yaml --id kizuna-viewer \
             --name 'Kizuna viewer' --redirect-uri {viewer}/auth/callback --post-logout-uri {viewer}/ --sector viewer"
        ))
        .expect("kizuna auth client add");
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap_or_else(|| panic!("no client secret in:\n{added}"));
    vm.write_file("/etc/kizuna/viewer-client.secret", &format!("{secret}\n")).unwrap();
    // Hashing the password (argon2id) takes a while in an emulated guest.
    let user = vm
        .run_ok_with_timeout(&format!(
            "echo '{PASSWORD}' | runuser -u kizuna -- kizuna auth user add -c /etc/kizuna/auth.yaml \
             --username {CLINICIAN} --name 'Dr. Sato' --facility {facility} --roles physician --password-stdin --totp"
        ), Duration::from_secs(180))
        .expect("kizuna auth user add");
    let totp = user
        .lines()
        .find_map(|l| l.strip_prefix("totp_secret: "))
        .unwrap_or_else(|| panic!("no TOTP secret in:\n{user}"))
        .to_string();
    vm.run_ok(&format!(
        "set -e; chown kizuna:kizuna /etc/kizuna/viewer-client.secret; chmod 600 /etc/kizuna/viewer-client.secret; \
         sed -e 's|^listen: .*|listen: {addr}:{VIEWER_PORT}|' -e \"s|^bind_interface: .*|bind_interface: '{device}'|\" \
         -e 's|^public_url: .*|public_url: {viewer}|' -e 's|^secure_cookies: .*|secure_cookies: false|' \
         -e 's|^  issuer: .*|  issuer: {auth}|' \
         -e 's|^  client_secret_file: .*|  client_secret_file: /etc/kizuna/viewer-client.secret|' \
         -e 's|^  url: .*|  url: http://127.0.0.1:7460/v1/events|' \
         -e 's|^  spool_dir: .*|  spool_dir: /var/lib/kizuna/viewer/audit-spool|' \
         /etc/kizuna/viewer.yaml.example > /etc/kizuna/viewer.yaml; \
         grep -qx \"bind_interface: '{device}'\" /etc/kizuna/viewer.yaml; systemctl restart kizuna-viewer"
    ))
    .expect("configuring and starting the viewer");
    let socket = if device.is_empty() { format!("{addr}:") } else { format!("{addr}%{device}:") };
    let up = vm.run_ok(&retry(
        &format!(
            "ss -Hltn 'sport = :{VIEWER_PORT}' | grep -q '{socket}' && ss -Hltn 'sport = :{AUTH_PORT}' | grep -q '{socket}'"
        ),
        40,
    ));
    if let Err(e) = up {
        let log = vm
            .run("journalctl -u kizuna-viewer -u kizuna-auth --no-pager | tail -30; ss -Hltn")
            .map(|o| o.stdout);
        panic!("{}: the viewer and the sign-on do not listen on {socket}: {e}\n{log:?}", vm.name());
    }
    assert_started_by_systemd(vm, "kizuna-auth", "kizuna", "kizuna");
    assert_started_by_systemd(vm, "kizuna-viewer", "kizuna", "kizuna");
    totp
}

/// The shell function `c`: curl as the clinician's browser (in namespace `netns`, if any), with a
/// cookie jar that lasts across the steps.
fn browser(netns: &str) -> String {
    let prefix = if netns.is_empty() { String::new() } else { format!("ip netns exec {netns} ") };
    format!("set -ex; J=/tmp/browser.jar\nc() {{ {prefix}curl -sS --max-time 90 -c $J -b $J \"$@\"; }}\n")
}

/// The browser's first part: the viewer's login redirects to the provider, its login form (CSRF
/// token), the password. Prints the CSRF token, for the second part.
fn browser_password(at: &Clinicians) -> String {
    let (viewer, auth) = (at.viewer(), at.auth());
    format!(
        "{}rm -f $J\n\
         to=$(c -o /dev/null -w '%{{redirect_url}}' {viewer}/login)\n\
         case \"$to\" in {auth}/authorize*) ;; *) echo \"the viewer's login sent the browser to: $to\" >&2; exit 1;; esac\n\
         csrf=$(c \"$to\" | sed -n 's/.*name=\"csrf\" value=\"\\([^\"]*\\)\".*/\\1/p' | head -1)\n\
         [ -n \"$csrf\" ] || {{ echo 'no CSRF token on the login form' >&2; exit 1; }}\n\
         c -o /tmp/password.html --data-urlencode csrf=$csrf --data-urlencode username={CLINICIAN} \
           --data-urlencode 'password={PASSWORD}' {auth}/login\n\
         grep -q 'action=\"/login/totp\"' /tmp/password.html || {{ echo 'the password was refused' >&2; exit 1; }}\n\
         echo \"$csrf\"\n",
        browser(at.browser_netns)
    )
}

/// The browser's second part: the TOTP `code` (read from the phone just now), the redirect back
/// to the viewer's callback, then the time series and the calendar (its newest month) of
/// `common_id`, kept in /tmp/timeline.html and /tmp/calendar.html. Prints how many original
/// messages the time series links.
fn browser_totp_and_patient(at: &Clinicians, csrf: &str, code: &str, common_id: &str) -> String {
    let (viewer, auth) = (at.viewer(), at.auth());
    format!(
        "{}back=$(c -o /dev/null -w '%{{redirect_url}}' --data-urlencode csrf={csrf} --data-urlencode code={code} {auth}/login/totp)\n\
         case \"$back\" in {viewer}/auth/callback*) ;; *) echo \"the provider sent the browser to: $back\" >&2; exit 1;; esac\n\
         c -o /dev/null -w '%{{http_code}}' \"$back\" | grep -q 303\n\
         c -o /tmp/timeline.html -w '%{{http_code}}' {viewer}/patients/{common_id} | grep -q 200\n\
         grep -q 'Dr. Sato' /tmp/timeline.html || {{ echo 'the page does not name the clinician' >&2; exit 1; }}\n\
         c -o /tmp/calendar.html -w '%{{http_code}}' {viewer}/patients/{common_id}/calendar | grep -q 200\n\
         grep -q 'class=\"day has-records\"' /tmp/calendar.html || {{ echo 'the calendar shows no day with records' >&2; exit 1; }}\n\
         grep -o '/patients/{common_id}/records/[0-9]*' /tmp/timeline.html | sort -u | wc -l\n",
        browser(at.browser_netns)
    )
}

/// A clinician's whole session at `at`, the browser on `client`, the TOTP code computed on
/// `provider` (as the user's phone would) between the password and the code: the number of
/// original messages `common_id`'s time series links.
fn clinician_session(
    client: &Vm,
    provider: &Vm,
    at: &Clinicians,
    totp_secret: &str,
    common_id: &str,
) -> kizuna_lab::Result<String> {
    let csrf = client.run_ok_with_timeout(&browser_password(at), Duration::from_secs(300))?;
    let code = provider.run_ok(&format!("kizuna auth totp-code {totp_secret}"))?;
    client.run_ok_with_timeout(
        &browser_totp_and_patient(at, csrf.trim(), code.trim(), common_id),
        Duration::from_secs(300),
    )
}

/// The browser again, in the same session (its cookie jar): the time series of `common_id` and
/// its calendar of `month` (`YYYY-MM`), kept in /tmp/timeline.html and /tmp/calendar.html. Prints
/// how many original messages the time series links.
fn browser_patient(at: &Clinicians, common_id: &str, month: &str) -> String {
    let viewer = at.viewer();
    format!(
        "{}c -o /tmp/timeline.html -w '%{{http_code}}' {viewer}/patients/{common_id} | grep -q 200\n\
         c -o /tmp/calendar.html -w '%{{http_code}}' '{viewer}/patients/{common_id}/calendar?month={month}' | grep -q 200\n\
         grep -o '/patients/{common_id}/records/[0-9]*' /tmp/timeline.html | sort -u | wc -l\n",
        browser(at.browser_netns)
    )
}

/// The registrations, at the `uploaded` facilities, of the first person of the ground truth who
/// is registered at each of `must` (site-a's facility first) and whose site-a patient is not
/// among the `held_back` folders (`PID3/PID3/PID`).
fn shared_person(
    truth: &[Registration],
    uploaded: &[String],
    must: [&String; 3],
    held_back: &[String],
) -> Vec<Registration> {
    let mut people: Vec<&str> = truth.iter().map(|r| r.person.as_str()).collect();
    people.sort_unstable();
    people.dedup();
    for person in people {
        let regs: Vec<Registration> =
            truth.iter().filter(|r| r.person == person && uploaded.contains(&r.facility)).cloned().collect();
        let at = |f: &String| regs.iter().find(|r| &r.facility == f);
        if must.iter().all(|f| at(f).is_some())
            && !held_back.iter().any(|h| h.ends_with(&format!("/{}", at(must[0]).unwrap().patient)))
        {
            return regs;
        }
    }
    panic!("no person of the generated corpus is registered at {must:?} in site-a's first drop");
}

#[test]
#[ignore = "QEMU lab: needs root and qemu; run tests/lab/run"]
fn a_site_uploads_through_the_upload_segment_to_a_store_listening_nowhere_else() {
    if !lab_available() {
        return;
    }
    let started = Instant::now();
    let (centre_image, site_image) = centre_and_site_images("KIZUNA_LAB_IMAGES_BUILD_FAILED");
    let built = started.elapsed();
    eprintln!("upload_mesh: images built or found in the cache in {:.1} s", built.as_secs_f64());
    // Where the time goes, for keeping the scenario within CI's budget.
    let phase = |what: &str| eprintln!("upload_mesh: {what} at {:.1} s", started.elapsed().as_secs_f64());
    for (role, image) in [("centre", &centre_image), ("site", &site_image)] {
        let size = std::fs::metadata(&image.initrd).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "upload_mesh: {role} image {} ({:.1} MB), kernel {}",
            image.initrd.display(),
            size as f64 / 1e6,
            image.kernel_release
        );
    }
    // Root's SSH key for the centre, handed over as the systemd credential
    // ssh.authorized_keys.root on the kernel command line, as the Vagrantfile does.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f"])
        .arg(&key)
        .status()
        .expect("running ssh-keygen (Debian package openssh-client)");
    assert!(keygen.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let credential = format!("\"systemd.set_credential=ssh.authorized_keys.root:{}\"", public.join(" "));
    let private = std::fs::read_to_string(&key).unwrap();
    let lab = Lab::start_with(
        "upload_mesh",
        vec![
            (
                VmSpec {
                    memory_mb: 1024,
                    kernel_args: vec![credential],
                    ..VmSpec::new("centre", &format!("{CENTRE_IP}/24"))
                },
                centre_image.clone(),
            ),
            (
                VmSpec { memory_mb: 768, ..VmSpec::new("site-a", &format!("{SITE_IP}/24")) },
                site_image.clone(),
            ),
            (
                VmSpec { memory_mb: 768, ..VmSpec::new("backup", &format!("{BACKUP_IP}/24")) },
                centre_image.clone(),
            ),
        ]
        .into_iter()
        .chain(OTHER_SITES.iter().map(|(name, _, _, ip)| {
            (VmSpec { memory_mb: 640, ..VmSpec::new(name, &format!("{ip}/24")) }, site_image.clone())
        }))
        .collect(),
    )
    .expect("booting the centre, the backup centre and the sites");
    let centre = lab.vm("centre").unwrap();
    let site = lab.vm("site-a").unwrap();
    let backup = lab.vm("backup").unwrap();
    let states = lab.on_each(|vm| (system_state(vm), Instant::now()));
    for (vm, (state, at)) in lab.vms().iter().zip(&states) {
        assert_eq!(
            state,
            "running",
            "{}: systemd's state after boot (console log: {})",
            vm.name(),
            vm.console_log().display()
        );
        eprintln!(
            "upload_mesh: {} reached `running` {:.1} s after QEMU started",
            vm.name(),
            (*at - started).as_secs_f64() - built.as_secs_f64()
        );
    }
    let booted = started.elapsed();
    the_images_as_booted(&lab, centre, site, &private);
    phase("images checked");

    // The mesh from tokens (provisioning/README.md): policy at the registry, one token per router,
    // `netd enroll`, `systemctl start netd`. The centre's router admits its registry from the underlay.
    // The linkage passes every 5 s here instead of 30 (a drop-in, as an admin would shorten it).
    centre
        .run_ok(&format!(
            "set -e; sed -i 's|^public_url: .*|public_url: https://{CENTRE_IP}:9443|' /etc/kizuna/registry.yaml; \
             systemctl restart kizuna-registry; mkdir -p /etc/systemd/system/kizuna-linkage.service.d; \
             printf '[Service]\\nEnvironment=KIZUNA_LINKAGE_INTERVAL_SECS={LINKAGE_SECS}\\n' \
               > /etc/systemd/system/kizuna-linkage.service.d/interval.conf; \
             systemctl daemon-reload; systemctl restart kizuna-linkage"
        ))
        .expect("setting the registry's public URL and the linkage's interval");
    centre.run_ok(&retry("curl -sfk --max-time 5 https://127.0.0.1:9443/v1/health >/dev/null", 30)).unwrap();
    centre.write_file("/etc/kizuna/mesh.yaml", &policy()).unwrap();
    centre
        .run_ok("runuser -u kizuna -- /usr/local/bin/kizuna policy apply /etc/kizuna/mesh.yaml")
        .expect("kizuna policy apply");
    // The backup centre is a router of the mesh too: a standby centre (kind centre).
    let tokens: Vec<(String, String)> =
        lab.vms().iter().map(|vm| (vm.name().to_string(), provision(centre, vm.name()))).collect();
    lab.on_each(|vm| {
        let number = number_of(vm.name());
        let token = &tokens.iter().find(|(n, _)| n == vm.name()).unwrap().1;
        vm.run_ok(&lan_script(number)).unwrap_or_else(|e| panic!("{}: LANs: {e}", vm.name()));
        vm.run_ok_with_timeout(&format!("netd enroll {token}"), Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{}: netd enroll: {e}", vm.name()));
        if vm.name() == "centre" {
            vm.run_ok(
                "set -e; grep -q '^admit_underlay: \\[\\]$' /etc/netd/site.yaml; \
                 sed -i 's/^admit_underlay: .*/admit_underlay: [{ proto: tcp, port: 9443 }, { proto: tcp, port: 22 }]/' \
                 /etc/netd/site.yaml",
            )
            .expect("admitting the registry and SSH on the centre's underlay");
        }
        if vm.name() == "backup" {
            // The primary's backup follower ships to the replica over the underlay.
            vm.run_ok(&format!(
                "set -e; grep -q '^admit_underlay: \\[\\]$' /etc/netd/site.yaml; \
                 sed -i 's/^admit_underlay: .*/admit_underlay: [{{ proto: tcp, port: {REPLICA_PORT} }}]/' /etc/netd/site.yaml"
            ))
            .expect("admitting the replica's API on the backup's underlay");
        }
        if vm.name() != "centre" && vm.name() != "backup" {
            // The site appliance's netd hosts the upload agent (provisioning/README.md).
            vm.run_ok(&format!("printf '{SITE_AGENT}' >> /etc/netd/site.yaml"))
                .unwrap_or_else(|e| panic!("{}: the agent: section of the site file: {e}", vm.name()));
        }
        vm.run_ok("systemctl start netd").unwrap_or_else(|e| panic!("{}: systemctl start netd: {e}", vm.name()));
        assert_started_by_systemd(vm, "netd", "netd", "root");
    });
    lab.on_each(|vm| {
        if vm.name() == "backup" || vm.name() == "centre" {
            return;
        }
        let handshake = vm.run_ok_with_timeout(
            &retry("wg show kzw-upload latest-handshakes 2>/dev/null | awk '$2 > 0 {f=1} END {exit !f}'", 90),
            Duration::from_secs(120),
        );
        if let Err(e) = handshake {
            panic!(
                "{}: no WireGuard handshake with the centre on kzw-upload: {e}\n{}:\n{}\ncentre:\n{}",
                vm.name(),
                vm.name(),
                netd_diagnosis(vm),
                netd_diagnosis(centre)
            );
        }
    });
    let meshed = started.elapsed();
    phase("mesh up");
    // With netd's ruleset loaded on the centre, the sites still reach its registry and SSH.
    site.run_ok(&format!("curl -sfk --max-time 10 https://{CENTRE_IP}:9443/v1/health >/dev/null"))
        .expect("site-a reaches the registry with netd running on the centre");
    let over_ssh = site
        .run_ok(&format!("ssh -o BatchMode=yes -o ConnectTimeout=20 root@{CENTRE_IP} cat /etc/kizuna-image"))
        .expect("ssh from site-a to root@centre with netd running");
    assert_eq!(over_ssh.trim(), "centre");

    // The store on the upload segment only: the image's store.yaml with the documented keys.
    centre
        .run_ok(&format!(
            "set -e; sed -i -e 's|^listen: .*|listen: {STORE_ADDR}:{STORE_PORT}|' \
             -e 's|^bind_interface: .*|bind_interface: kzv-upload|' {STORE_YAML}; \
             grep -qx 'bind_interface: kzv-upload' {STORE_YAML}; systemctl restart kizuna-store"
        ))
        .expect("configuring the store for the upload segment");
    let listening =
        centre.run_ok(&retry(&format!("ss -Hltn 'sport = :{STORE_PORT}' | grep -q {STORE_ADDR}"), 60));
    if let Err(e) = listening {
        let log = centre.run("journalctl -u kizuna-store --no-pager | tail -20").map(|o| o.stdout);
        panic!("centre: the store does not listen on {STORE_ADDR}: {e}\n{log:?}");
    }
    assert_started_by_systemd(centre, "kizuna-store", "kizuna", "kizuna");
    let sockets = centre.run_ok(&format!("ss -Hltn 'sport = :{STORE_PORT}' | awk '{{print $4}}'")).unwrap();
    assert_eq!(
        sockets.split_whitespace().collect::<Vec<_>>(),
        [format!("{STORE_ADDR}%kzv-upload:{STORE_PORT}")],
        "centre: the store's listening sockets"
    );
    // The site's router reaches it through its upload VRF (as its agent will).
    site.run_ok(&retry(&store_health("", STORE_ADDR, "--interface kzv-upload"), 60))
        .unwrap_or_else(|e| panic!("site-a: the store is not reachable over the upload segment: {e}"));

    // The backup centre follows the store's journal from here on (kizuna-backup-follow).
    start_replication(centre, backup);
    phase("store on the upload segment, replication started");

    // A corpus from the generator (`kizuna ssmix2 gen`, on the centre: the site image has no
    // `kizuna`), the site's token from `kizuna site add`, the agent as deployed.
    // One corpus for the four facilities: two hospitals, a clinic (the generator's second
    // facility; its third, another clinic, stays unused) and a pharmacy exporting NSIPS. Many of
    // its people are registered at several of them.
    let agent_url = format!("http://{STORE_ADDR}:{STORE_PORT}");
    let generated = generate_corpus(centre, CORPUS_SEED, 4, 1, CORPUS_PEOPLE, 2);
    let kinds: Vec<&str> = generated.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["hospital", "clinic", "clinic", "hospital", "pharmacy"], "the generated facilities");
    phase("corpus generated");
    let facility_of = |site: &str| match site {
        "site-a" => generated[0].id.clone(),
        "site-b" => generated[3].id.clone(),
        "clinic" => generated[1].id.clone(),
        _ => generated[4].id.clone(),
    };
    let staged_a = stage_upload(
        centre,
        site,
        &CorpusUpload {
            facility: &facility_of("site-a"),
            nsips: false,
            held_back: HELD_BACK,
            stage_bad: true,
            store_yaml: STORE_YAML,
            allow: SITE_UPLOAD_NET,
            store_url: &agent_url,
            // Small batches at 30 kB/s (the store is killed mid-upload), quick heartbeats (the
            // admin screen learns of the quarantine from them), short retries and requests (the
            // underlay cut).
            // No bind_interface: netd binds the agent it hosts to the upload segment.
            agent_extra: "batch_max_files: 10\nheartbeat_interval_secs: 5\nrescan_interval_secs: 5\n\
                          retry_max_ms: 5000\nrequest_timeout_secs: 30\nbandwidth_limit_bytes_per_sec: 30000\n",
        },
    );
    // The other three sites upload their whole exports at the same time.
    let others: Vec<(&Vm, Staged)> = OTHER_SITES
        .iter()
        .map(|(name, number, _, _)| {
            let vm = lab.vm(name).unwrap();
            let facility = facility_of(name);
            let allow = format!("10.20.{number}.0/24");
            let staged = stage_upload(
                centre,
                vm,
                &CorpusUpload {
                    facility: &facility,
                    nsips: *name == "pharmacy",
                    held_back: 0,
                    stage_bad: false,
                    store_yaml: STORE_YAML,
                    allow: &allow,
                    store_url: &agent_url,
                    // The agents' defaults otherwise (heartbeat and rescan every 60 s).
                    agent_extra: "",
                },
            );
            (vm, staged)
        })
        .collect();
    phase("exports staged on four sites");
    let Uploaded { facility, corpus_sums, files, took: uploaded, held_back, bad } =
        finish_upload(centre, site, staged_a);
    let others: Vec<(&Vm, Uploaded)> =
        others.into_iter().map(|(vm, staged)| (vm, finish_upload(centre, vm, staged))).collect();
    phase("four sites uploaded");
    // ... one index row each, from site-a, with the file's digest ...
    let mut corpus_digests: Vec<&str> =
        corpus_sums.lines().filter_map(|l| l.split_whitespace().next()).collect();
    corpus_digests.sort_unstable();
    let indexed = index_query(
        centre,
        &format!(
            "SELECT sha256 FROM records WHERE facility_id = '{facility}' AND site = 'site-a' ORDER BY sha256"
        ),
    );
    assert_eq!(
        indexed.lines().collect::<Vec<_>>(),
        corpus_digests,
        "the IndexDB's rows for facility {facility}"
    );
    for (vm, up) in &others {
        assert_eq!(
            index_query(
                centre,
                &format!(
                    "SELECT count(*) FROM records WHERE facility_id = '{}' AND site = '{}'",
                    up.facility,
                    vm.name()
                )
            ),
            up.files.to_string(),
            "the IndexDB's rows for {} from {}",
            up.facility,
            vm.name()
        );
    }
    let all_files = files + others.iter().map(|(_, up)| up.files).sum::<usize>();
    assert_eq!(index_query(centre, "SELECT count(*) FROM records").parse::<usize>().unwrap(), all_files);
    // ... and nothing refused: no rejection at the store, nothing in the agent's quarantine.
    assert_eq!(index_query(centre, "SELECT count(*) FROM rejections"), "0", "the store rejected files");
    assert_eq!(
        index_query(centre, "SELECT count(*) FROM agent_quarantine"),
        "0",
        "the agent reported quarantined files"
    );
    for vm in std::iter::once(site).chain(others.iter().map(|(vm, _)| *vm)) {
        let quarantined =
            vm.run_ok("find /var/lib/kizuna/agent/quarantine -type f 2>/dev/null | wc -l").unwrap();
        assert_eq!(quarantined.trim(), "0", "{}'s agent quarantined files", vm.name());
    }
    // The uploads (the first drop, /tmp/first on the centre) came through the mesh: the token is valid only from the site's upload subnet
    // (`--allow`), and the corpus crossed site-a's upload tunnel.
    let corpus_bytes: u64 =
        centre.run_ok(&format!("du -sb /tmp/first/{facility} | cut -f1")).unwrap().trim().parse().unwrap();
    let sent: u64 = site
        .run_ok("wg show kzw-upload transfer | awk '{s += $3} END {print s}'")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        sent >= corpus_bytes / 2,
        "site-a sent only {sent} bytes over kzw-upload for a corpus of {corpus_bytes} bytes"
    );

    // The sign-on and the viewer on the reference segment only (their documented keys), the
    // viewer registered as a client, a physician of the site's facility with TOTP.
    let totp_secret = clinician_services(centre, &facility, &ON_REFERENCE);
    // The person of the ground truth seen at both hospitals and the pharmacy (site-a's
    // registration in its first drop): the linkage unit (it passes every LINKAGE_SECS) gives each of
    // their registrations at the four facilities one common ID.
    let uploaded_facilities: Vec<String> =
        std::iter::once(facility.clone()).chain(others.iter().map(|(_, up)| up.facility.clone())).collect();
    let shared = shared_person(
        &ground_truth(centre),
        &uploaded_facilities,
        [&facility_of("site-a"), &facility_of("site-b"), &facility_of("pharmacy")],
        &held_back,
    );
    let patient = shared.iter().find(|r| r.facility == facility).map(|r| r.patient.as_str()).unwrap();
    let of_person = shared
        .iter()
        .map(|r| format!("(facility_id = '{}' AND patient_id = '{}')", r.facility, r.patient))
        .collect::<Vec<_>>()
        .join(" OR ");
    let common_id = wait_for_link(
        centre,
        &format!(
            "SELECT CASE WHEN count(DISTINCT common_id) = 1 AND count(*) = {} THEN min(common_id) END \
             FROM links WHERE {of_person}",
            shared.len()
        ),
    );
    let common_id = common_id.as_str();
    phase("linked");
    let current_here: usize = index_query(
        centre,
        &format!(
            "SELECT count(*) FROM records WHERE facility_id = '{facility}' AND patient_id = '{patient}' \
             AND condition_flag = '1'"
        ),
    )
    .parse()
    .unwrap();
    assert!(current_here > 0, "patient {patient} has no current record");
    let current_everywhere: usize = index_query(
        centre,
        &format!("SELECT count(*) FROM records WHERE condition_flag = '1' AND ({of_person})"),
    )
    .parse()
    .unwrap();
    // A month in which both hospitals and the pharmacy have records of the person (the day of a
    // record: its care date, else its timestamp's, as the viewer's calendar counts it).
    let [a, b, ph] = [facility_of("site-a"), facility_of("site-b"), facility_of("pharmacy")];
    let month = index_query(
        centre,
        &format!(
            "SELECT substr(CASE WHEN order_date GLOB '[0-9]*' THEN order_date ELSE transaction_datetime END, 1, 6) AS m \
             FROM records WHERE condition_flag = '1' AND ({of_person}) GROUP BY m \
             HAVING sum(facility_id = '{a}') > 0 AND sum(facility_id = '{b}') > 0 AND sum(facility_id = '{ph}') > 0 \
             ORDER BY m DESC LIMIT 1"
        ),
    );
    assert_eq!(month.len(), 6, "no month with records of {common_id} at {a}, {b} and {ph}: {shared:?}");
    let month = format!("{}-{}", &month[..4], &month[4..]);

    // The browser on the site's reference LAN: login at the viewer, redirected to the provider,
    // password, TOTP, back to the viewer; then the patient's time series.
    site.run_ok_with_timeout(
        &retry(
            &format!("ip netns exec h-ref curl -sf --max-time 5 http://{REFERENCE_ADDR}:{VIEWER_PORT}/healthz >/dev/null"),
            60,
        ),
        Duration::from_secs(90),
    )
    .unwrap_or_else(|e| panic!("site-a: the reference LAN host does not reach the viewer: {e}"));
    // Without the patient's consent the clinician of site-a's facility sees only its own records.
    let session = clinician_session(site, centre, &ON_REFERENCE, &totp_secret, common_id);
    let shown = session
        .unwrap_or_else(|e| {
            let log = centre
                .run(&format!(
                    "journalctl -u kizuna-viewer --no-pager | tail -15; journalctl -u kizuna-auth --no-pager | tail -8; \
                     curl -sS --max-time 10 --interface kzv-reference -o /dev/null -w 'centre to the provider in the VRF: %{{http_code}}\\n' \
                     http://{REFERENCE_ADDR}:{AUTH_PORT}/.well-known/openid-configuration 2>&1; nft list chain inet kizuna input 2>&1"
                ))
                .map(|o| o.stdout);
            panic!("site-a: the clinician's session on the reference LAN failed: {e}\n{log:?}")
        });
    assert_eq!(
        shown.trim().parse::<usize>().unwrap(),
        current_here,
        "the time series of {common_id} (patient {patient} of {facility}) without consent: links to original messages"
    );
    // The patient consents to share with site-a's facility (`kizuna consent set`): the same
    // session now shows every facility's records, in the time series and in the calendar.
    centre
        .run_ok(&format!(
            "runuser -u kizuna -- kizuna consent set {common_id} --facility {facility} --actor lab-registrar \
             --reason 'signed consent form 1' --index-url 'sqlite:///var/lib/kizuna/store/linkage.sqlite?mode=rwc'"
        ))
        .expect("kizuna consent set");
    let shown = site
        .run_ok_with_timeout(&browser_patient(&ON_REFERENCE, common_id, &month), Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("site-a: the clinician's pages after the consent: {e}"));
    assert_eq!(
        shown.trim().parse::<usize>().unwrap(),
        current_everywhere,
        "the time series of {common_id} with consent: links to original messages of {shared:?}"
    );
    let timeline = site.run_ok("cat /tmp/timeline.html").unwrap();
    for f in &uploaded_facilities {
        assert!(
            timeline.contains(&format!("data-facility=\"{f}\"")),
            "the time series shows no record of {f}"
        );
    }
    let calendar = site.run_ok("cat /tmp/calendar.html").unwrap();
    for f in [&a, &b, &ph] {
        assert!(
            calendar.contains(&format!("data-facility=\"{f}\"")),
            "the calendar of {month} shows no record of {f}"
        );
    }
    // Screenshots of what the clinician saw, for the walkthrough (docs/walkthrough.md).
    for (page, name) in
        [("/tmp/timeline.html", "upload_mesh-time-series"), ("/tmp/calendar.html", "upload_mesh-calendar")]
    {
        let html = site.run_ok(&format!("cat {page}")).unwrap();
        let png =
            screenshot::html_to_png(&html, lab.log_dir(), name).expect("a screenshot of the viewer's page");
        eprintln!("screenshot: {}", png.display());
    }
    // The auditor finds the view of that patient, and the trail verifies.
    centre
        .run_ok_with_timeout(
            &retry(
                &format!(
                    "runuser -u kizuna -- kizuna audit search -c /etc/kizuna/audit.yaml --patient {common_id} --event-type 110110 \
                     | grep -q {common_id}"
                ),
                60,
            ),
            Duration::from_secs(90),
        )
        .unwrap_or_else(|e| panic!("centre: no audit event of the clinician's view of {common_id}: {e}"));
    let verified = centre.run("runuser -u kizuna -- kizuna audit verify -c /etc/kizuna/audit.yaml").unwrap();
    assert!(verified.success(), "kizuna audit verify: {}{}", verified.stdout, verified.stderr);

    // A bad file: the agent quarantines it, its heartbeat tells the centre, the admin screen shows
    // it and the alert mail reaches the test's SMTP server.
    phase("clinician and audit done");
    let smtp = SmtpSink::start(&lab, SMTP_ADDR, SMTP_PORT).expect("the test's SMTP server on the underlay");
    bad_file_reaches_the_admin_screen_and_mail(centre, site, &smtp, &facility, &bad, lab.log_dir());

    phase("bad file mailed");
    // Faults. Site-a's underlay cut: the agent queues the next export, then catches up.
    let cut = underlay_cut_then_catch_up(&lab, centre, site, &facility, &held_back[..CUT_PATIENTS], files);
    // The store killed mid-upload: systemd restarts it, the agent retries, nothing lost or doubled.
    let (killed_at, total) =
        store_killed_mid_upload(centre, site, &facility, &held_back[CUT_PATIENTS..], files + cut);
    let all_sums = full_corpus_sums(centre, &facility);
    assert_eq!(all_sums.lines().count(), total, "the generated corpus's files");
    assert_eq!(
        kizuna_lab::deploy::sums_under(centre, &format!("/var/lib/kizuna/store/tree/{facility}")),
        all_sums,
        "the store's tree after the faults differs from the site's whole export"
    );
    assert_eq!(
        index_query(centre, &format!("SELECT count(*) FROM records WHERE facility_id = '{facility}'")),
        total.to_string(),
        "IndexDB rows of {facility} after the faults (one per file, none lost or doubled)"
    );
    assert_eq!(index_query(centre, "SELECT count(*) FROM rejections"), "0", "the store rejected files");
    let left = site.run_ok("find /var/lib/kizuna/agent/outbox -type f | wc -l").unwrap();
    assert_eq!(left.trim(), "0", "site-a's outbox after the catch-up");
    phase("faults done");
    // The backup centre holds the same (verify) and the linkage with the consent. Then the centre
    // goes away (its underlay cut: the routers keep their last view and their tunnels to each
    // other), the backup is promoted, and the clinician on site-a's reference LAN opens the same
    // patient on the backup, through the mesh.
    backup_verifies_clean(centre, backup, common_id);
    lab.set_underlay_link("centre", false).expect("cutting the centre's underlay");
    promote_backup(centre, backup);
    clinician_view_on_the_promoted_backup(site, backup, &facility, patient, common_id, current_everywhere);
    lab.set_underlay_link("centre", true).expect("restoring the centre's underlay");
    phase("centre away, backup promoted and viewed");

    // Isolation. The reference LAN host reached the viewer (above) but not the store: not at its
    // upload address, not at the centre's reference address, not at the centre's underlay address.
    // The site's router cannot reach the store over the underlay.
    // All of site-a's probes run at once (a dropped one waits out its 5 s), each printing its
    // label and curl's exit status.
    let mut probes: Vec<(String, String)> = Vec::new();
    for (netns, addr, why) in [
        ("h-ref", STORE_ADDR, "the store's upload address from the reference LAN"),
        ("h-ref", REFERENCE_ADDR, "the centre's reference address from the reference LAN"),
        ("h-ref", CENTRE_IP, "the centre's underlay address from the reference LAN"),
        ("", CENTRE_IP, "the centre's underlay address from the site's router"),
    ] {
        probes.push((
            store_health(netns, addr, ""),
            format!("the store answers at {addr}:{STORE_PORT}: {why}"),
        ));
    }
    // The upload segment (the agent's VRF) reaches neither the viewer nor the sign-on, and
    // neither answers on the underlay.
    for port in [VIEWER_PORT, AUTH_PORT] {
        for (args, addr, why) in [
            ("--interface kzv-upload", REFERENCE_ADDR, "from the site's upload segment"),
            ("--interface kzv-upload", STORE_ADDR, "at the store's address from the upload segment"),
            ("", CENTRE_IP, "at the centre's underlay address"),
        ] {
            probes.push((
                format!("curl -s --max-time 5 {args} http://{addr}:{port}/ >/dev/null"),
                format!("port {port} answers {why}"),
            ));
        }
    }
    let mut script = String::from("cd $(mktemp -d)\n");
    for (i, (probe, _)) in probes.iter().enumerate() {
        script.push_str(&format!("( {probe}; echo $? > {i} ) &\n"));
    }
    script
        .push_str(&format!("wait; for i in $(seq 0 {}); do echo \"$i $(cat $i)\"; done\n", probes.len() - 1));
    let results = site.run_ok(&script).expect("site-a: the isolation probes");
    let codes: Vec<&str> = results.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(codes.len(), probes.len(), "site-a: isolation probe results:\n{results}");
    for ((_, what), code) in probes.iter().zip(&codes) {
        assert_ne!(*code, "0", "site-a: {what}");
    }
    // On the centre itself, the underlay address has no store either.
    let out = centre.run(&store_health("", CENTRE_IP, "")).unwrap();
    assert!(!out.success(), "centre: the store answers on its underlay address");

    eprintln!(
        "upload_mesh: the store was killed with {killed_at} of {total} files stored; {files} files ({corpus_bytes} bytes) \
         first stored and indexed {:.1} s after the agent started; booted {:.1} s, mesh up {:.1} s, total {:.1} s (images {:.1} s)",
        uploaded.as_secs_f64(),
        (booted - built).as_secs_f64(),
        (meshed - built).as_secs_f64(),
        started.elapsed().as_secs_f64(),
        built.as_secs_f64()
    );
}

/// What an operator relies on after power-on, before enrollment: every image's name and underlay
/// address from the kernel command line, the modules netd needs loaded at boot (modules-load.d),
/// nftables usable, sshd up with a host key of its own, the NTP client running; the centre's
/// services started by systemd as user kizuna and answering; the viewer and the backup follower
/// waiting for their config; netd waiting for its site file and
/// the agent's own unit disabled on the sites (netd hosts the agent); site-a reaching the
/// centre's store, registry and SSH (root's key from the kernel command line's credential, the
/// host key the centre made at first boot) over the underlay.
fn the_images_as_booted(lab: &Lab, centre: &Vm, site: &Vm, ssh_key: &str) {
    let analyze = lab.on_each(|vm| {
        vm.run_ok("systemd-analyze time | head -1; systemd-analyze blame --no-pager | head -3")
            .unwrap_or_default()
    });
    for (vm, line) in lab.vms().iter().zip(analyze) {
        eprintln!("upload_mesh: {}: {}", vm.name(), line.trim().replace('\n', "; "));
    }
    let facts = lab.on_each(|vm| {
        vm.run_ok(&format!(
            "set -e; hostname; ip -4 -o addr show dev eth0 | grep -c ' {}/24 '; \
             for m in vrf wireguard nf_tables 8021q; do test -d /sys/module/$m && echo $m; done; \
             nft list tables >/dev/null && echo nft-ok; systemctl is-active ssh; systemctl is-active systemd-timesyncd; \
             test -s /etc/ssh/ssh_host_ed25519_key && echo hostkey; cat /etc/kizuna-image",
            vm.underlay_ip()
        ))
        .unwrap_or_else(|e| panic!("{}: {e}", vm.name()))
    });
    for (vm, facts) in lab.vms().iter().zip(&facts) {
        let role = if vm.name() == "centre" || vm.name() == "backup" { "centre" } else { "site" };
        assert_eq!(
            facts.split_whitespace().collect::<Vec<_>>(),
            [
                vm.name(),
                "1",
                "vrf",
                "wireguard",
                "nf_tables",
                "8021q",
                "nft-ok",
                "active",
                "active",
                "hostkey",
                role
            ],
            "{}: hostname, underlay address, modules, nftables, sshd, the NTP client (netd's key switches need it)",
            vm.name()
        );
    }
    let mut host_keys = lab
        .on_each(|vm| vm.run_ok("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2").unwrap());
    host_keys.sort();
    host_keys.dedup();
    assert_eq!(host_keys.len(), lab.vms().len(), "the images must not share SSH host keys");

    for (unit, url) in CENTRE_SERVICES {
        assert_started_by_systemd(centre, unit, "kizuna", "kizuna");
        let body = centre
            .run_ok(&retry(&format!("curl -sfk --max-time 5 {url}"), 30))
            .unwrap_or_else(|e| panic!("centre: {unit} does not answer on {url}: {e}"));
        assert!(!body.trim().is_empty(), "centre: {unit} answered {url} with nothing");
    }
    let waiting = centre
        .run_ok("systemctl show -p ConditionResult --value kizuna-viewer kizuna-backup-follow")
        .unwrap();
    assert_eq!(
        waiting.split_whitespace().collect::<Vec<_>>(),
        ["no", "no"],
        "viewer and backup wait for their config"
    );
    for vm in lab.vms().iter().filter(|vm| vm.name() != "centre" && vm.name() != "backup") {
        let waits = vm.run_ok("systemctl show -p ConditionResult --value netd").unwrap();
        assert_eq!(waits.trim(), "no", "{}: netd waits for its site file", vm.name());
        let agent_unit = vm.run("systemctl is-enabled kizuna-agent").unwrap();
        assert_eq!(
            agent_unit.stdout.trim(),
            "disabled",
            "{}: the site's kizuna-agent.service (netd hosts the agent)",
            vm.name()
        );
    }

    let store = site
        .run_ok(&retry(&format!("curl -sf --max-time 5 http://{CENTRE_IP}:8440/healthz"), 20))
        .expect("site-a reaches the centre's store over the underlay (before netd)");
    assert!(!store.trim().is_empty());
    site.run_ok(&format!("curl -sfk --max-time 5 https://{CENTRE_IP}:9443/v1/health >/dev/null"))
        .expect("site-a reaches the centre's registry over the underlay");
    let centre_hostkey = centre.run_ok("cat /etc/ssh/ssh_host_ed25519_key.pub").unwrap();
    site.write_file("/root/.ssh/id_ed25519", ssh_key).unwrap();
    site.write_file(
        "/root/.ssh/known_hosts",
        &format!("{CENTRE_IP} {}\n", centre_hostkey.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
    )
    .unwrap();
    let over_ssh = site
        .run_ok(&format!(
            "chmod 600 /root/.ssh/id_ed25519; ssh -o BatchMode=yes -o ConnectTimeout=20 root@{CENTRE_IP} cat /etc/kizuna-image"
        ))
        .expect("ssh from site-a to root@centre with the key from the kernel command line's credential");
    assert_eq!(over_ssh.trim(), "centre");
}

/// Turns the backup VM's store folder into a replica (`kizuna-backup-replica`, HTTPS on the
/// underlay address with a certificate from `kizuna backup cert`, and a token from `kizuna backup
/// token`) and starts the centre's follower (`kizuna-backup-follow`) with that replica, trusting
/// only its certificate, as images/README.md tells an operator.
fn start_replication(centre: &Vm, backup: &Vm) {
    let token = backup
        .run_ok(&format!(
            "set -e; echo 'backup centre (images/README.md)' > /etc/kizuna/backup-centre; \
             systemctl stop kizuna-store kizuna-admin kizuna-linkage kizuna-viewer; \
             rm -rf /var/lib/kizuna/store/*; \
             runuser -u kizuna -- kizuna backup token --out /var/lib/kizuna/secrets/dc2.token >/dev/null; \
             chmod 600 /var/lib/kizuna/secrets/dc2.token; \
             runuser -u kizuna -- kizuna backup cert --name {BACKUP_IP} --cert /var/lib/kizuna/secrets/dc2.pem \
                 --key /var/lib/kizuna/secrets/dc2.key >/dev/null; \
             sed -e 's|^  listen: .*|  listen: {BACKUP_IP}:{REPLICA_PORT}|' \
                 -e \"s|^  token_file: ''|  token_file: /var/lib/kizuna/secrets/dc2.token|\" \
                 -e \"s|^  tls_cert_file: ''|  tls_cert_file: /var/lib/kizuna/secrets/dc2.pem|\" \
                 -e \"s|^  tls_key_file: ''|  tls_key_file: /var/lib/kizuna/secrets/dc2.key|\" \
                 /etc/kizuna/backup.yaml.example > /etc/kizuna/backup.yaml; \
             grep -qx '  token_file: /var/lib/kizuna/secrets/dc2.token' /etc/kizuna/backup.yaml; \
             grep -qx '  tls_key_file: /var/lib/kizuna/secrets/dc2.key' /etc/kizuna/backup.yaml; \
             systemctl start kizuna-backup-replica; cat /var/lib/kizuna/secrets/dc2.token"
        ))
        .expect("backup: making the store's folder a replica");
    backup
        .run_ok(&retry(
            &format!(
                "curl -sf --max-time 5 --cacert /var/lib/kizuna/secrets/dc2.pem \
                 https://{BACKUP_IP}:{REPLICA_PORT}/healthz >/dev/null"
            ),
            40,
        ))
        .unwrap_or_else(|e| {
            let log =
                backup.run("journalctl -u kizuna-backup-replica --no-pager | tail -20").map(|o| o.stdout);
            panic!("backup: the replica does not answer on {BACKUP_IP}:{REPLICA_PORT}: {e}\n{log:?}")
        });
    assert_started_by_systemd(backup, "kizuna-backup-replica", "kizuna", "kizuna");
    // The certificate (public) goes to the centre as the replica's ca_file; the key stays.
    let cert = backup.run_ok("cat /var/lib/kizuna/secrets/dc2.pem").expect("backup: reading the certificate");
    centre.write_file("/var/lib/kizuna/secrets/dc2.token", &token).unwrap();
    centre.write_file("/var/lib/kizuna/secrets/dc2.pem", &cert).unwrap();
    centre
        .run_ok(&format!(
            "set -e; chown kizuna:kizuna /var/lib/kizuna/secrets/dc2.token /var/lib/kizuna/secrets/dc2.pem; \
             chmod 600 /var/lib/kizuna/secrets/dc2.token; \
             sed -e \"s|^  replicas: \\[\\]|  replicas: [{{name: dc2, url: 'https://{BACKUP_IP}:{REPLICA_PORT}', token_file: /var/lib/kizuna/secrets/dc2.token, ca_file: /var/lib/kizuna/secrets/dc2.pem}}]|\" \
                 /etc/kizuna/backup.yaml.example > /etc/kizuna/backup.yaml; \
             grep -q 'name: dc2' /etc/kizuna/backup.yaml; systemctl start kizuna-backup-follow"
        ))
        .expect("centre: starting the follower");
    centre
        .run_ok(&retry("curl -sf --max-time 5 http://127.0.0.1:8451/healthz >/dev/null", 40))
        .unwrap_or_else(|e| {
            let log =
                centre.run("journalctl -u kizuna-backup-follow --no-pager | tail -20").map(|o| o.stdout);
            panic!("centre: the backup follower does not run: {e}\n{log:?}")
        });
    assert_started_by_systemd(centre, "kizuna-backup-follow", "kizuna", "kizuna");
}

/// `kizuna backup verify` on the centre passes (once the follower caught up), and the backup
/// holds the centre's linkage database with the patient's consent (the follower's snapshot,
/// `follow.linkage`, every 30 s when it changed).
fn backup_verifies_clean(centre: &Vm, backup: &Vm, common_id: &str) {
    let verify = "runuser -u kizuna -- kizuna backup verify -c /etc/kizuna/backup.yaml --check content > /tmp/verify.out 2>&1";
    if let Err(e) = centre.run_ok_with_timeout(&retry(verify, 90), Duration::from_secs(120)) {
        let out = centre
            .run("cat /tmp/verify.out; journalctl -u kizuna-backup-follow --no-pager | tail -20")
            .map(|o| o.stdout);
        panic!("centre: kizuna backup verify did not pass: {e}\n{out:?}");
    }
    // The replica's copy is read as it lies (immutable: nothing may write it before promotion).
    let consent = format!(
        "sqlite3 'file:/var/lib/kizuna/store/linkage.sqlite?immutable=1' \
         \"SELECT policy FROM consents WHERE common_id = '{common_id}'\" | grep ."
    );
    if let Err(e) = backup.run_ok_with_timeout(&retry(&consent, 60), Duration::from_secs(90)) {
        let log = centre
            .run("journalctl -u kizuna-backup-follow --no-pager | grep -i linkage | tail -10")
            .map(|o| o.stdout);
        panic!(
            "backup: the centre's linkage database with {common_id}'s consent did not arrive: {e}\n{log:?}"
        );
    }
}

/// The backup centre is promoted (`kizuna backup promote`, `kizuna-store` started on the folder)
/// and its IndexDB, rebuilt from the replicated journal, holds row for row the centre's records
/// (both read through the test's command channel: the centre's underlay is cut).
fn promote_backup(centre: &Vm, backup: &Vm) {
    let promoted = backup
        .run_ok_with_timeout(
            "set -e; systemctl stop kizuna-backup-replica; \
             runuser -u kizuna -- kizuna backup promote -c /etc/kizuna/backup.yaml; \
             rm /etc/kizuna/backup-centre; systemctl start kizuna-store",
            Duration::from_secs(180),
        )
        .expect("backup: kizuna backup promote and starting the store on the promoted folder");
    assert!(
        promoted
            .contains("linkage database: /var/lib/kizuna/store/linkage.sqlite, the primary's snapshot of"),
        "backup: kizuna backup promote says nothing of the linkage database:\n{promoted}"
    );
    backup
        .run_ok(&retry("curl -sf --max-time 5 http://127.0.0.1:8440/healthz >/dev/null", 40))
        .unwrap_or_else(|e| {
            let log = backup.run("journalctl -u kizuna-store --no-pager | tail -20").map(|o| o.stdout);
            panic!("backup: the promoted store does not serve: {e}\n{log:?}")
        });
    let rows =
        "SELECT facility_id, version_key, condition_flag, sha256, file_name FROM records ORDER BY 1, 2";
    let primary = index_query(centre, rows);
    let promoted = index_query(backup, rows);
    assert!(!primary.is_empty(), "the centre's IndexDB has no records");
    assert_eq!(promoted, primary, "the promoted backup's IndexDB differs from the centre's records");
}

/// Waits (up to 90 s: `kizuna-linkage` passes every `LINKAGE_SECS`, a pass takes seconds) until `query` on the linkage database
/// of `vm` returns a row; returns it, trimmed.
fn wait_for_link(vm: &Vm, query: &str) -> String {
    let linked = vm.run_ok_with_timeout(
        &retry(&format!("sqlite3 -readonly /var/lib/kizuna/store/linkage.sqlite \"{query}\" | grep ."), 90),
        Duration::from_secs(120),
    );
    linked
        .unwrap_or_else(|e| {
            let log = vm.run("journalctl -u kizuna-linkage --no-pager | tail -20").map(|o| o.stdout);
            panic!("{}: no linkage row for {query}: {e}\n{log:?}", vm.name())
        })
        .trim()
        .to_string()
}

/// The promoted backup's sign-on and viewer on its reference address (it is a standby centre of
/// the mesh), and its linkage, which continues from the centre's: `patient` of `facility` has the
/// centre's `common_id`; the clinician's browser on `site`'s reference LAN reaches the backup
/// through the mesh while the centre is away, and the session shows, under the consent recorded
/// at the centre, `current` records: every facility's, as on the centre.
fn clinician_view_on_the_promoted_backup(
    site: &Vm,
    backup: &Vm,
    facility: &str,
    patient: &str,
    common_id: &str,
    current: usize,
) {
    const ON_BACKUP: Clinicians =
        Clinicians { addr: BACKUP_REFERENCE_ADDR, device: "kzv-reference", browser_netns: "h-ref" };
    backup.run_ok("systemctl start kizuna-linkage").expect("backup: starting the linkage");
    let linked = wait_for_link(
        backup,
        &format!("SELECT common_id FROM links WHERE facility_id = '{facility}' AND patient_id = '{patient}'"),
    );
    assert_eq!(linked, common_id, "the promoted backup's common ID of patient {patient} of {facility}");
    let totp_secret = clinician_services(backup, facility, &ON_BACKUP);
    site.run_ok_with_timeout(
        &retry(
            &format!("ip netns exec h-ref curl -sf --max-time 5 {}/healthz >/dev/null", ON_BACKUP.viewer()),
            60,
        ),
        Duration::from_secs(90),
    )
    .unwrap_or_else(|e| {
        panic!("site-a: the reference LAN host does not reach the promoted backup's viewer through the mesh: {e}\n{}", netd_diagnosis(site))
    });
    let shown = clinician_session(site, backup, &ON_BACKUP, &totp_secret, common_id).unwrap_or_else(|e| {
        let log =
            backup.run("journalctl -u kizuna-viewer -u kizuna-auth --no-pager | tail -20").map(|o| o.stdout);
        panic!("site-a: the clinician's session on the promoted backup failed: {e}\n{log:?}")
    });
    assert_eq!(
        shown.trim().parse::<usize>().unwrap(),
        current,
        "the promoted backup's time series of {common_id} (patient {patient} of {facility}, with the centre's consent): links to original messages"
    );
}

/// Sets the admin screen's alert mail (`mail.*`, checks every 5 s) to the test's SMTP server,
/// drops the staged bad file into site-a's export and asserts that the agent quarantines it, the
/// admin screen's site page names it with its code, and an alert mail for site-a quoting it
/// arrives.
fn bad_file_reaches_the_admin_screen_and_mail(
    centre: &Vm,
    site: &Vm,
    smtp: &SmtpSink,
    facility: &str,
    bad: &[(String, String)],
    shots: &std::path::Path,
) {
    // A content violation: the agent checks folders against the name only in a six-level storage
    // path right below its export folder, and this export has the facility's folder on top.
    let (path, code) = bad
        .iter()
        .find(|(_, code)| code != "path-mismatch")
        .expect("a known-bad file with a content violation from kizuna ssmix2 gen --bad 2");
    let name = path.rsplit('/').next().unwrap();
    centre
        .run_ok(&format!(
            "set -e; f=/etc/kizuna/admin.yaml; sed -i -e 's|^check_interval_secs: .*|check_interval_secs: 5|' \
             -e 's|^  smtp_host: .*|  smtp_host: {SMTP_ADDR}|' -e 's|^  smtp_port: .*|  smtp_port: {SMTP_PORT}|' \
             -e 's|^  to: .*|  to: [{ALERT_TO}]|' $f; grep -qx '  to: \\[{ALERT_TO}\\]' $f; systemctl restart kizuna-admin"
        ))
        .expect("configuring the admin screen's alert mail");
    centre
        .run_ok(&retry("curl -sf --max-time 5 http://127.0.0.1:8441/healthz >/dev/null", 40))
        .unwrap_or_else(|e| panic!("centre: the admin screen does not answer on 127.0.0.1:8441: {e}"));
    assert_started_by_systemd(centre, "kizuna-admin", "kizuna", "kizuna");
    drop_bad_file(site, facility, path);
    site.run_ok_with_timeout(
        &retry(&format!("find /var/lib/kizuna/agent/quarantine -type f -name '{name}' | grep -q ."), 60),
        Duration::from_secs(90),
    )
    .unwrap_or_else(|e| {
        let log = site.run("journalctl -u kizuna-agent --no-pager | tail -20").map(|o| o.stdout);
        panic!("site-a: the agent did not quarantine the bad file {path}: {e}\n{log:?}")
    });
    let page = centre.run_ok_with_timeout(
        &retry(
            &format!(
                "curl -sf --max-time 5 http://127.0.0.1:8441/sites/site-a > /tmp/admin-site.html && \
                 grep -q '{name}' /tmp/admin-site.html && grep -q '{code}' /tmp/admin-site.html"
            ),
            60,
        ),
        Duration::from_secs(90),
    );
    if let Err(e) = page {
        let diag = centre.run("journalctl -u kizuna-admin --no-pager | tail -20").map(|o| o.stdout);
        panic!("centre: the admin screen's page of site-a does not show {name} ({code}): {e}\n{diag:?}");
    }
    let html = centre.run_ok("cat /tmp/admin-site.html").unwrap();
    let png = screenshot::html_to_png(&html, shots, "upload_mesh-admin-site")
        .expect("a screenshot of the admin screen");
    eprintln!("screenshot: {}", png.display());
    let mail = smtp.wait_for(Duration::from_secs(90), |m| m.contains("ALERT site-a") && m.contains(name));
    if mail.is_none() {
        let diag = centre.run("journalctl -u kizuna-admin --no-pager | tail -20").map(|o| o.stdout);
        panic!(
            "no alert mail for site-a naming {name} reached the test's SMTP server (maildir {}; {} mails)\n{diag:?}",
            smtp.maildir().display(),
            smtp.mails().len()
        );
    }
    let mail = mail.unwrap();
    assert!(mail.contains(&format!("To: {ALERT_TO}")), "the alert mail's recipient:\n{mail}");
}

/// Cuts site-a's underlay, exports `patients`, asserts that the agent queues their files in its
/// outbox while none reaches the centre, restores the link after a while and waits until the
/// centre holds them. Returns how many files they were.
fn underlay_cut_then_catch_up(
    lab: &Lab,
    centre: &Vm,
    site: &Vm,
    facility: &str,
    patients: &[String],
    before: usize,
) -> usize {
    lab.set_underlay_link("site-a", false).expect("cutting site-a's underlay");
    let n = drop_held_back(site, facility, patients);
    let queued = site.run_ok_with_timeout(
        &retry(&format!("test \"$(find /var/lib/kizuna/agent/outbox -type f | wc -l)\" -ge {n}"), 60),
        Duration::from_secs(90),
    );
    if let Err(e) = queued {
        let _ = lab.set_underlay_link("site-a", true);
        panic!("site-a: the agent did not queue the {n} files exported during the cut: {e}");
    }
    // A while without the link: the agent keeps failing to upload and keeps everything.
    std::thread::sleep(Duration::from_secs(15));
    let during = tree_files(centre, facility);
    lab.set_underlay_link("site-a", true).expect("restoring site-a's underlay");
    assert_eq!(during, before, "files reached the centre while site-a's underlay was cut");
    wait_for_tree(centre, site, facility, before + n, Duration::from_secs(240));
    n
}

/// Exports `patients` and kills the store (SIGKILL) as soon as the first of their files is in the
/// centre's tree; systemd restarts it and the agent retries. Returns the files stored at the kill
/// and the total expected.
fn store_killed_mid_upload(
    centre: &Vm,
    site: &Vm,
    facility: &str,
    patients: &[String],
    before: usize,
) -> (usize, usize) {
    // The watcher is armed on the centre before the export lands: the agent can upload all of it
    // while the site's copy and a fresh centre command are still on their way (upload_concurrency
    // sends two batches at once), so a watcher started afterwards can find nothing left to kill.
    centre
        .run_ok(&format!(
            "rm -f /tmp/store-kill.out; setsid sh -c '(i=0; \
             while [ \"$(find /var/lib/kizuna/store/tree/{facility} -type f | wc -l)\" -le {before} ]; do \
             sleep 0.05; i=$((i+1)); [ $i -lt 3000 ] || {{ echo timeout; exit; }}; done; \
             systemctl kill -s KILL kizuna-store; find /var/lib/kizuna/store/tree/{facility} -type f | wc -l) \
             > /tmp/store-kill.tmp; mv /tmp/store-kill.tmp /tmp/store-kill.out' </dev/null >/dev/null 2>&1 &"
        ))
        .expect("centre: arming the store-kill watcher");
    let n = drop_held_back(site, facility, patients);
    let total = before + n;
    let at = centre
        .run_ok_with_timeout(&retry("cat /tmp/store-kill.out", 240), Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("centre: the store-kill watcher did not report: {e}"));
    assert_ne!(at.trim(), "timeout", "centre: no file of the last export arrived to kill the store on");
    let at: usize = at.trim().parse().unwrap();
    assert!(
        at < total,
        "the last export ({n} files) was all stored before the store was killed ({at} of {total}): nothing tested"
    );
    centre
        .run_ok(&retry("systemctl is-active --quiet kizuna-store && test \"$(systemctl show -p NRestarts --value kizuna-store)\" -ge 1", 40))
        .unwrap_or_else(|e| panic!("centre: systemd did not restart the killed store: {e}"));
    wait_for_tree(centre, site, facility, total, Duration::from_secs(240));
    (at, total)
}
