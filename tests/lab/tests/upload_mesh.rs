//! Issue 10's first slice, on the images a user deploys (`images/build`): a centre and one hospital
//! site enroll from tokens and build the mesh; the centre's store (`kizuna-store.service`) listens
//! only on the centre router's address on the **upload** segment (`listen: 10.20.1.1:8440`,
//! `bind_interface: kzv-upload`); the site's upload agent (`kizuna-agent.service`, bound to its
//! upload VRF) ships a generated SS-MIX2 export through the mesh with the token of `kizuna site
//! add`, and every file arrives in the centre's tree and IndexDB, none quarantined or rejected.
//! The centre's patient linkage (`kizuna-linkage.service`) gives the uploaded patients common IDs.
//! The sign-on (`kizuna-auth`) and the viewer (`kizuna-viewer`) listen only on the centre's
//! **reference** address: a host on the site's reference LAN logs in with password and TOTP
//! (OpenID Connect, as a browser would, with curl) and sees a patient's time series with every
//! current record of the site's facility; the auditor finds that view in the audit trail, and
//! `kizuna audit verify` passes. That host cannot reach the store; the site's upload segment (where
//! its agent runs) cannot reach the viewer or the sign-on; neither answers on the underlay.

use std::time::{Duration, Instant};

use kizuna_lab::deploy::{
    CorpusUpload, Uploaded, assert_started_by_systemd, centre_and_site_images, netd_diagnosis, provision,
    retry, system_state, upload_generated_corpus,
};
use kizuna_lab::{Lab, Vm, VmSpec, lab_available};

const CENTRE_IP: &str = "10.255.0.11";
const SITE_IP: &str = "10.255.0.12";
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

/// Centre (site 1) and hospital site-a (site 2). The reference LANs are veths to a LAN host
/// (namespace `h-ref`); the upload LANs are dummies (the store and the agent run on the routers).
fn policy() -> String {
    format!(
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
         \x20   lan: {{ reference: lref, upload: lupl }}\n"
    )
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

/// Puts the sign-on and the viewer on the centre's reference address (`http_bind_interface`,
/// `bind_interface`: the reference VRF), registers the viewer at the provider and a physician of
/// `facility` with a password and TOTP; returns the TOTP secret.
fn reference_services(centre: &Vm, facility: &str) -> String {
    let viewer = format!("http://{REFERENCE_ADDR}:{VIEWER_PORT}");
    centre
        .run_ok(&format!(
            "set -e; sed -i -e 's|^http_listen: .*|http_listen: {REFERENCE_ADDR}:{AUTH_PORT}|' \
             -e 's|^http_bind_interface: .*|http_bind_interface: kzv-reference|' /etc/kizuna/auth.yaml; \
             grep -qx 'http_bind_interface: kzv-reference' /etc/kizuna/auth.yaml; systemctl restart kizuna-auth"
        ))
        .expect("configuring the sign-on for the reference segment");
    let added = centre
        .run_ok(&format!(
            "runuser -u kizuna -- kizuna auth client add -c /etc/kizuna/auth.yaml --id kizuna-viewer \
             --name 'Kizuna viewer' --redirect-uri {viewer}/auth/callback --sector viewer"
        ))
        .expect("kizuna auth client add");
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap_or_else(|| panic!("no client secret in:\n{added}"));
    centre.write_file("/etc/kizuna/viewer-client.secret", &format!("{secret}\n")).unwrap();
    let user = centre
        .run_ok(&format!(
            "echo '{PASSWORD}' | runuser -u kizuna -- kizuna auth user add -c /etc/kizuna/auth.yaml \
             --username {CLINICIAN} --name 'Dr. Sato' --facility {facility} --roles physician --password-stdin --totp"
        ))
        .expect("kizuna auth user add");
    let totp = user
        .lines()
        .find_map(|l| l.strip_prefix("totp_secret: "))
        .unwrap_or_else(|| panic!("no TOTP secret in:\n{user}"))
        .to_string();
    centre
        .run_ok(&format!(
            "set -e; chown kizuna:kizuna /etc/kizuna/viewer-client.secret; chmod 600 /etc/kizuna/viewer-client.secret; \
             sed -e 's|^listen: .*|listen: {REFERENCE_ADDR}:{VIEWER_PORT}|' -e \"s|^bind_interface: .*|bind_interface: kzv-reference|\" \
             -e 's|^public_url: .*|public_url: {viewer}|' -e 's|^secure_cookies: .*|secure_cookies: false|' \
             -e 's|^  issuer: .*|  issuer: http://{REFERENCE_ADDR}:{AUTH_PORT}|' \
             -e 's|^  client_secret_file: .*|  client_secret_file: /etc/kizuna/viewer-client.secret|' \
             -e 's|^  url: .*|  url: http://127.0.0.1:7460/v1/events|' \
             -e 's|^  spool_dir: .*|  spool_dir: /var/lib/kizuna/viewer/audit-spool|' \
             /etc/kizuna/viewer.yaml.example > /etc/kizuna/viewer.yaml; \
             grep -qx 'bind_interface: kzv-reference' /etc/kizuna/viewer.yaml; systemctl start kizuna-viewer"
        ))
        .expect("configuring and starting the viewer on the reference segment");
    let up = centre.run_ok(&retry(
        &format!(
            "ss -Hltn 'sport = :{VIEWER_PORT}' | grep -q '{REFERENCE_ADDR}%kzv-reference' && \
             ss -Hltn 'sport = :{AUTH_PORT}' | grep -q '{REFERENCE_ADDR}%kzv-reference'"
        ),
        60,
    ));
    if let Err(e) = up {
        let log = centre
            .run("journalctl -u kizuna-viewer -u kizuna-auth --no-pager | tail -30; ss -Hltn")
            .map(|o| o.stdout);
        panic!("centre: the viewer and the sign-on do not listen on the reference segment: {e}\n{log:?}");
    }
    assert_started_by_systemd(centre, "kizuna-auth", "kizuna", "kizuna");
    assert_started_by_systemd(centre, "kizuna-viewer", "kizuna", "kizuna");
    totp
}

/// Shell for the reference LAN host (`h-ref` on the site's router), acting as the clinician's
/// browser with curl and a cookie jar: the viewer's login redirects to the provider, the login form
/// (CSRF token), password, TOTP `code`, the redirect back to the viewer's callback, then the time
/// series of `common_id`. Prints how many original messages the time series links.
fn browser_session(common_id: &str, code: &str) -> String {
    let viewer = format!("http://{REFERENCE_ADDR}:{VIEWER_PORT}");
    let auth = format!("http://{REFERENCE_ADDR}:{AUTH_PORT}");
    format!(
        "set -e; J=/tmp/browser.jar; rm -f $J\n\
         c() {{ ip netns exec h-ref curl -sS --max-time 30 -c $J -b $J \"$@\"; }}\n\
         to=$(c -o /dev/null -w '%{{redirect_url}}' {viewer}/login)\n\
         case \"$to\" in {auth}/authorize*) ;; *) echo \"the viewer's login sent the browser to: $to\" >&2; exit 1;; esac\n\
         csrf=$(c \"$to\" | sed -n 's/.*name=\"csrf\" value=\"\\([^\"]*\\)\".*/\\1/p' | head -1)\n\
         [ -n \"$csrf\" ] || {{ echo 'no CSRF token on the login form' >&2; exit 1; }}\n\
         c -o /tmp/password.html --data-urlencode csrf=$csrf --data-urlencode username={CLINICIAN} \
           --data-urlencode 'password={PASSWORD}' {auth}/login\n\
         grep -q 'action=\"/login/totp\"' /tmp/password.html || {{ echo 'the password was refused' >&2; exit 1; }}\n\
         back=$(c -o /dev/null -w '%{{redirect_url}}' --data-urlencode csrf=$csrf --data-urlencode code={code} {auth}/login/totp)\n\
         case \"$back\" in {viewer}/auth/callback*) ;; *) echo \"the provider sent the browser to: $back\" >&2; exit 1;; esac\n\
         c -o /dev/null -w '%{{http_code}}' \"$back\" | grep -q 303\n\
         c -o /tmp/timeline.html -w '%{{http_code}}' {viewer}/patients/{common_id} | grep -q 200\n\
         grep -q 'Dr. Sato' /tmp/timeline.html || {{ echo 'the page does not name the clinician' >&2; exit 1; }}\n\
         grep -o '/patients/{common_id}/records/[0-9]*' /tmp/timeline.html | sort -u | wc -l\n"
    )
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
    let lab = Lab::start_with(
        "upload_mesh",
        vec![
            (VmSpec { memory_mb: 1024, ..VmSpec::new("centre", &format!("{CENTRE_IP}/24")) }, centre_image),
            (VmSpec { memory_mb: 768, ..VmSpec::new("site-a", &format!("{SITE_IP}/24")) }, site_image),
        ],
    )
    .expect("booting the centre and the site");
    let centre = lab.vm("centre").unwrap();
    let site = lab.vm("site-a").unwrap();
    let states = lab.on_each(system_state);
    for (vm, state) in lab.vms().iter().zip(&states) {
        assert_eq!(state, "running", "{}: systemd's state after boot", vm.name());
    }
    let booted = started.elapsed();

    // The mesh from tokens (provisioning/README.md): policy at the registry, one token per router,
    // `netd enroll`, `systemctl start netd`. The centre's router admits its registry from the underlay.
    centre
        .run_ok(&format!(
            "set -e; sed -i 's|^public_url: .*|public_url: https://{CENTRE_IP}:9443|' /etc/kizuna/registry.yaml; \
             systemctl restart kizuna-registry"
        ))
        .expect("setting the registry's public URL");
    centre.run_ok(&retry("curl -sfk --max-time 5 https://127.0.0.1:9443/v1/health >/dev/null", 30)).unwrap();
    centre.write_file("/etc/kizuna/mesh.yaml", &policy()).unwrap();
    centre
        .run_ok("runuser -u kizuna -- /usr/local/bin/kizuna policy apply /etc/kizuna/mesh.yaml")
        .expect("kizuna policy apply");
    let tokens = [provision(centre, "centre"), provision(centre, "site-a")];
    lab.on_each(|vm| {
        let (number, token) = if vm.name() == "centre" { (1, &tokens[0]) } else { (2, &tokens[1]) };
        vm.run_ok(&lan_script(number)).unwrap_or_else(|e| panic!("{}: LANs: {e}", vm.name()));
        vm.run_ok_with_timeout(&format!("netd enroll {token}"), Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{}: netd enroll: {e}", vm.name()));
        if vm.name() == "centre" {
            vm.run_ok(
                "set -e; grep -q '^admit_underlay: \\[\\]$' /etc/netd/site.yaml; \
                 sed -i 's/^admit_underlay: .*/admit_underlay: [{ proto: tcp, port: 9443 }]/' /etc/netd/site.yaml",
            )
            .expect("admitting the registry on the centre's underlay");
        }
        vm.run_ok("systemctl start netd").unwrap_or_else(|e| panic!("{}: systemctl start netd: {e}", vm.name()));
        assert_started_by_systemd(vm, "netd", "netd", "root");
    });
    let handshake = site.run_ok_with_timeout(
        &retry("wg show kzw-upload latest-handshakes 2>/dev/null | awk '$2 > 0 {f=1} END {exit !f}'", 90),
        Duration::from_secs(120),
    );
    if let Err(e) = handshake {
        panic!(
            "site-a: no WireGuard handshake with the centre on kzw-upload: {e}\nsite-a:\n{}\ncentre:\n{}",
            netd_diagnosis(site),
            netd_diagnosis(centre)
        );
    }
    let meshed = started.elapsed();

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

    // A corpus from the generator (`kizuna ssmix2 gen`, on the centre: the site image has no
    // `kizuna`), the site's token from `kizuna site add`, the agent as deployed.
    let agent_url = format!("http://{STORE_ADDR}:{STORE_PORT}");
    let Uploaded { facility, corpus_sums, files, took: uploaded } = upload_generated_corpus(
        centre,
        site,
        &CorpusUpload {
            seed: 11,
            patients: 3,
            store_yaml: STORE_YAML,
            allow: SITE_UPLOAD_NET,
            store_url: &agent_url,
            agent_extra: "bind_interface: kzv-upload\n",
        },
    );
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
    assert_eq!(index_query(centre, "SELECT count(*) FROM records").parse::<usize>().unwrap(), files);
    // ... and nothing refused: no rejection at the store, nothing in the agent's quarantine.
    assert_eq!(index_query(centre, "SELECT count(*) FROM rejections"), "0", "the store rejected files");
    assert_eq!(
        index_query(centre, "SELECT count(*) FROM agent_quarantine"),
        "0",
        "the agent reported quarantined files"
    );
    let quarantined =
        site.run_ok("find /var/lib/kizuna/agent/quarantine -type f 2>/dev/null | wc -l").unwrap();
    assert_eq!(quarantined.trim(), "0", "site-a's agent quarantined files");
    // The uploads came through the mesh: the token is valid only from the site's upload subnet
    // (`--allow`), and the corpus crossed site-a's upload tunnel.
    let corpus_bytes: u64 =
        centre.run_ok(&format!("du -sb /tmp/corpus/{facility} | cut -f1")).unwrap().trim().parse().unwrap();
    let sent: u64 =
        site.run_ok("wg show kzw-upload transfer | awk '{print $3}'").unwrap().trim().parse().unwrap();
    assert!(
        sent >= corpus_bytes / 2,
        "site-a sent only {sent} bytes over kzw-upload for a corpus of {corpus_bytes} bytes"
    );

    // The sign-on and the viewer on the reference segment only (their documented keys), the
    // viewer registered as a client, a physician of the site's facility with TOTP.
    let totp_secret = reference_services(centre, &facility);
    // The linkage unit gives the uploaded patients common IDs (it passes every 30 s).
    let linked = centre.run_ok_with_timeout(
        &retry(
            &format!(
                "sqlite3 -readonly /var/lib/kizuna/store/linkage.sqlite \
                 \"SELECT common_id, patient_id FROM links WHERE facility_id = '{facility}' ORDER BY patient_id LIMIT 1\" | grep ."
            ),
            90,
        ),
        Duration::from_secs(120),
    );
    let linked = linked.unwrap_or_else(|e| {
        let log = centre.run("journalctl -u kizuna-linkage --no-pager | tail -20").map(|o| o.stdout);
        panic!("centre: the linkage did not enroll facility {facility}'s patients: {e}\n{log:?}")
    });
    let (common_id, patient) = linked.trim().split_once('|').expect("common_id|patient_id");
    let current: usize = index_query(
        centre,
        &format!(
            "SELECT count(*) FROM records WHERE facility_id = '{facility}' AND patient_id = '{patient}' \
             AND condition_flag = '1'"
        ),
    )
    .parse()
    .unwrap();
    assert!(current > 0, "patient {patient} has no current record");

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
    let code = centre.run_ok(&format!("kizuna auth totp-code {totp_secret}")).unwrap().trim().to_string();
    let shown = site
        .run_ok_with_timeout(&browser_session(common_id, &code), Duration::from_secs(90))
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
        current,
        "the time series of {common_id} (patient {patient} of {facility}): links to original messages"
    );
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

    // Isolation. The reference LAN host reached the viewer (above) but not the store: not at its
    // upload address, not at the centre's reference address, not at the centre's underlay address.
    // The site's router cannot reach the store over the underlay.
    for (netns, addr, why) in [
        ("h-ref", STORE_ADDR, "the store's upload address from the reference LAN"),
        ("h-ref", REFERENCE_ADDR, "the centre's reference address from the reference LAN"),
        ("h-ref", CENTRE_IP, "the centre's underlay address from the reference LAN"),
        ("", CENTRE_IP, "the centre's underlay address from the site's router"),
    ] {
        let out = site.run(&store_health(netns, addr, "")).unwrap();
        assert!(!out.success(), "site-a: the store answers at {addr}:{STORE_PORT}: {why}");
    }
    // On the centre itself, the underlay address has no store either.
    let out = centre.run(&store_health("", CENTRE_IP, "")).unwrap();
    assert!(!out.success(), "centre: the store answers on its underlay address");
    // The upload segment (the agent's VRF) reaches neither the viewer nor the sign-on, and
    // neither answers on the underlay.
    for port in [VIEWER_PORT, AUTH_PORT] {
        for (args, addr, why) in [
            ("--interface kzv-upload", REFERENCE_ADDR, "from the site's upload segment"),
            ("--interface kzv-upload", STORE_ADDR, "at the store's address from the upload segment"),
            ("", CENTRE_IP, "at the centre's underlay address"),
        ] {
            let out =
                site.run(&format!("curl -s --max-time 5 {args} http://{addr}:{port}/ >/dev/null")).unwrap();
            assert!(!out.success(), "site-a: port {port} answers {why}");
        }
    }

    eprintln!(
        "upload_mesh: {files} files ({corpus_bytes} bytes) stored and indexed {:.1} s after the agent started; \
         booted {:.1} s, mesh up {:.1} s, total {:.1} s (images {:.1} s)",
        uploaded.as_secs_f64(),
        (booted - built).as_secs_f64(),
        (meshed - built).as_secs_f64(),
        started.elapsed().as_secs_f64(),
        built.as_secs_f64()
    );
}
