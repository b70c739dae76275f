//! Steps shared by the lab tests that boot Kizuna's deployable images (`images/build`): waiting for
//! systemd, checking a unit's process, provisioning a router at the centre's registry.

use std::time::{Duration, Instant};

use crate::Artefacts;
use crate::vm::Vm;

/// Shell that retries `cmd` once a second for at most `secs` seconds; exit 1 when it never succeeded.
pub fn retry(cmd: &str, secs: u32) -> String {
    format!("i=0; while [ $i -lt {secs} ]; do {cmd} && exit 0; sleep 1; i=$((i+1)); done; exit 1")
}

/// Waits until systemd finished booting; returns its state (`running`, or `degraded` with the
/// failed units and the boot's last warnings appended).
pub fn system_state(vm: &Vm) -> String {
    let out = vm
        .run_with_timeout("systemctl is-system-running --wait", Duration::from_secs(240))
        .expect("systemctl is-system-running");
    let state = out.stdout.trim().to_string();
    if state == "running" {
        return state;
    }
    let failed = vm.run("systemctl --failed --no-legend; journalctl -b -p warning --no-pager | tail -40");
    format!("{state}\n{}", failed.map(|o| o.stdout).unwrap_or_default())
}

/// Asserts that `unit` is active and its main process is a direct child of PID 1 (systemd) named
/// `comm`, running as `user`.
pub fn assert_started_by_systemd(vm: &Vm, unit: &str, comm: &str, user: &str) {
    let script = format!(
        "set -e; systemctl is-active --quiet {unit}; pid=$(systemctl show -p MainPID --value {unit}); \
         echo \"$(cat /proc/$pid/comm) $(ps -o ppid= -p $pid | tr -d ' ') $(ps -o user= -p $pid)\""
    );
    let out = vm.run_ok(&script).unwrap_or_else(|e| panic!("{}: {unit} is not running: {e}", vm.name()));
    assert_eq!(out.trim(), format!("{comm} 1 {user}"), "{}: {unit}'s main process", vm.name());
}

/// `kizuna site provision NAME` on the centre, as the services' user; returns the `kz1.` token.
pub fn provision(centre: &Vm, site: &str) -> String {
    let out = centre
        .run_ok(&format!("runuser -u kizuna -- /usr/local/bin/kizuna site provision {site}"))
        .unwrap_or_else(|e| panic!("kizuna site provision {site}: {e}"));
    out.split_whitespace()
        .find(|w| w.starts_with("kz1."))
        .unwrap_or_else(|| panic!("no kz1. token in the output of kizuna site provision {site}:\n{out}"))
        .to_string()
}

/// netd's state and last log lines, for failure messages.
pub fn netd_diagnosis(vm: &Vm) -> String {
    vm.run("systemctl status --no-pager netd 2>&1 | head -5; wg show 2>&1; netd status 2>&1; journalctl -u netd --no-pager 2>&1 | tail -40")
        .map(|o| o.stdout)
        .unwrap_or_else(|e| e.to_string())
}

/// Where the centre keeps the whole generated corpus, and the site the parts held back.
const CORPUS: &str = "/tmp/corpus";
const LATER: &str = "/tmp/later";
const EXPORT: &str = "/srv/kizuna/export";
/// A pharmacy's NSIPS folder (the agent's `nsips.dir`).
const NSIPS: &str = "/srv/kizuna/nsips";

/// One facility of the generated corpus: its 10-digit ID and kind (`hospital`, `clinic`,
/// `pharmacy`), from the corpus's `ground-truth.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenFacility {
    pub id: String,
    pub kind: String,
}

/// `kizuna ssmix2 gen` on the centre (the site images have no `kizuna`), into /tmp/corpus: one
/// corpus for every site of the lab, so that the same people are registered at several
/// facilities. Returns the facilities in the generator's order (hospitals and clinics, then
/// pharmacies).
pub fn generate_corpus(
    centre: &Vm,
    seed: u64,
    facilities: u32,
    pharmacies: u32,
    patients: u32,
    bad: u32,
) -> Vec<GenFacility> {
    let listed = centre
        .run_ok(&format!(
            "set -e; cd /tmp; rm -rf {CORPUS}; kizuna ssmix2 gen --out {CORPUS} --seed {seed} --facilities {facilities} \
             --pharmacies {pharmacies} --patients {patients} --bad {bad} >/dev/null; \
             tail -n +2 {CORPUS}/ground-truth.csv | cut -d, -f2,3 | sort -u"
        ))
        .expect("kizuna ssmix2 gen on the centre");
    let mut out: Vec<GenFacility> = listed
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(id, kind)| GenFacility { id: id.to_string(), kind: kind.to_string() })
        .collect();
    // Pharmacies after the others, as the generator numbers them.
    out.sort_by_key(|f| (f.kind == "pharmacy", f.id.clone()));
    assert_eq!(out.len() as u32, facilities + pharmacies, "facilities in the generated corpus: {listed}");
    out
}

/// One registration of the generated corpus's ground truth: the true person, and where and under
/// which local ID they are registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub person: String,
    pub facility: String,
    pub patient: String,
}

/// The generated corpus's `ground-truth.csv`.
pub fn ground_truth(centre: &Vm) -> Vec<Registration> {
    centre
        .run_ok(&format!("tail -n +2 {CORPUS}/ground-truth.csv"))
        .expect("reading the corpus's ground truth")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Registration { person: f[0].to_string(), facility: f[1].to_string(), patient: f[3].to_string() }
        })
        .collect()
}

/// A site's part of the generated corpus ([`generate_corpus`]) shipped by its upload agent, as
/// deployed.
pub struct CorpusUpload<'a> {
    /// The facility whose export this site's EHR (or, for a pharmacy, its dispensing system) writes.
    pub facility: &'a str,
    /// The facility is a pharmacy: its export is NSIPS files, dropped into /srv/kizuna/nsips for
    /// the agent to convert (`nsips.dir`).
    pub nsips: bool,
    /// Patients (the last ones, by ID) left out of the first drop and staged on the site for the
    /// test to drop later ([`drop_held_back`]).
    pub held_back: usize,
    /// Stage the corpus's known-bad files (`kizuna ssmix2 gen --bad`, made for the first facility)
    /// on the site ([`drop_bad_file`]).
    pub stage_bad: bool,
    /// The centre's store config, for `kizuna site add`.
    pub store_yaml: &'a str,
    /// Where the site may upload from (`kizuna site add --allow`).
    pub allow: &'a str,
    /// The agent's `store_url`.
    pub store_url: &'a str,
    /// More agent config lines (e.g. `batch_max_files: 10\n`).
    pub agent_extra: &'a str,
}

/// The `agent:` section of a site appliance's /etc/netd/site.yaml (provisioning/README.md):
/// netd hosts the upload agent in the upload segment.
pub const SITE_AGENT: &str = "agent:\n  command: /usr/local/bin/kizuna-agent\n  config: /etc/kizuna/agent.yaml\n  \
                              segment: upload\n  user: kizuna\n";

/// Asserts that the upload agent runs as a child of netd (its unit's main process), as user
/// kizuna, and that `netd status --json` reports it running on `device`.
pub fn assert_hosted_by_netd(site: &Vm, device: &str) {
    let script = retry(
        "pid=$(pgrep -x kizuna-agent | head -1); [ -n \"$pid\" ] && \
         echo \"$(ps -o ppid= -p $pid | tr -d ' ') $(ps -o user= -p $pid) $(systemctl show -p MainPID --value netd)\" > /tmp/hosted",
        30,
    );
    site.run_ok_with_timeout(&script, Duration::from_secs(60)).unwrap_or_else(|e| {
        panic!("{}: no kizuna-agent process: {e}\n{}", site.name(), netd_diagnosis(site))
    });
    let seen = site.run_ok("cat /tmp/hosted").unwrap();
    let f: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(f.len(), 3, "{}: agent's ppid, user, netd's pid: {seen}", site.name());
    assert_eq!(
        (f[0], f[1]),
        (f[2], "kizuna"),
        "{}: the agent's parent and user (parent must be netd)",
        site.name()
    );
    // Asked a few times: under emulation six guests share two cores, and `netd status` may find
    // the daemon too busy to answer within its timeout (it then reports the state `unknown`).
    let mut status = String::new();
    for _ in 0..6 {
        status = site.run_ok_with_timeout("netd status --json", Duration::from_secs(60)).unwrap();
        let compact: String = status.split_whitespace().collect();
        if compact.contains("\"state\":\"running\"") && compact.contains(&format!("\"device\":\"{device}\""))
        {
            return;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    panic!("{}: netd status --json does not report the agent running on {device}:\n{status}", site.name());
}

/// What [`stage_upload`] and [`finish_upload`] shipped, and what was staged on the site for later.
pub struct Uploaded {
    pub facility: String,
    /// `sha256sum` lines of what the first drop must become in the centre's tree (for a pharmacy:
    /// the SS-MIX2 files `kizuna nsips convert` makes of its NSIPS files), sorted by path.
    pub corpus_sums: String,
    /// Files in the first drop (SS-MIX2 files the tree must hold).
    pub files: usize,
    /// From the agent's start until every file was in the centre's tree.
    pub took: Duration,
    /// The held-back patients' folders (`PID3/PID3/PID`, relative to the facility's folder).
    pub held_back: Vec<String>,
    /// The staged known-bad files: path relative to the facility's folder, and the code it raises.
    pub bad: Vec<(String, String)>,
}

/// An upload started by [`stage_upload`], for [`finish_upload`] to wait for.
pub struct Staged {
    uploaded: Uploaded,
    started: Instant,
}

/// The upload path as a site runs it, for one facility of the corpus, up to the export landing on
/// the site (several sites then upload at once; [`finish_upload`] waits): a site token from
/// `kizuna site add`, the agent's config (which netd, hosting the agent per the site file's
/// `agent:` section, [`SITE_AGENT`], waits for), the export dropped into /srv/kizuna/export (all
/// but the held-back patients) or, for a pharmacy, its NSIPS files into /srv/kizuna/nsips.
pub fn stage_upload(centre: &Vm, site: &Vm, u: &CorpusUpload) -> Staged {
    let started = Instant::now();
    let facility = u.facility;
    let (corpus_sums, held_back, bad, payload, drop) = if u.nsips {
        // What the tree must hold: the conversion of the pharmacy's NSIPS files.
        let expected = format!("/tmp/nsips-expected/{facility}");
        centre
            .run_ok(&format!(
                "set -e; rm -rf {expected}; mkdir -p {expected}; \
                 kizuna nsips convert --facility {facility} {CORPUS}/nsips/{facility} {expected} >/dev/null"
            ))
            .expect("kizuna nsips convert on the centre (the expected tree)");
        let payload = format!("corpus/nsips/{facility}");
        let drop =
            format!("install -o kizuna -g kizuna -m 0644 /tmp/stage/corpus/nsips/{facility}/* {NSIPS}/");
        (sums_under(centre, &expected), Vec::new(), Vec::new(), payload, drop)
    } else {
        let patients = centre
            .run_ok(&format!(
                "cd {CORPUS}/{facility} && find . -mindepth 3 -maxdepth 3 -type d | cut -c3- | LC_ALL=C sort"
            ))
            .unwrap();
        let patients: Vec<&str> = patients.lines().collect();
        assert!(patients.len() > u.held_back, "facility {facility} has only {} patients", patients.len());
        let held_back: Vec<String> =
            patients[patients.len() - u.held_back..].iter().map(|p| p.to_string()).collect();
        // The first drop: the facility's export without the held-back patients, in /tmp/first.
        let mut split = format!(
            "set -e; rm -rf /tmp/first/{facility}; mkdir -p /tmp/first; cp -a {CORPUS}/{facility} /tmp/first/\n"
        );
        for p in &held_back {
            split.push_str(&format!("rm -r /tmp/first/{facility}/{p}\n"));
        }
        centre.run_ok(&split).expect("splitting the corpus");
        let bad: Vec<(String, String)> = if u.stage_bad {
            centre
                .run_ok(&format!("tail -n +2 {CORPUS}/bad-files.csv 2>/dev/null | cut -d, -f1,2 || true"))
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once(','))
                .map(|(p, c)| (p.strip_prefix("bad/").unwrap_or(p).to_string(), c.to_string()))
                .collect()
        } else {
            Vec::new()
        };
        let mut payload = format!("first/{facility}");
        if u.stage_bad {
            payload.push_str(" $(cd /tmp && ls -d corpus/bad 2>/dev/null)");
        }
        for p in &held_back {
            payload.push_str(&format!(" corpus/{facility}/{p}"));
        }
        let drop = format!("mv /tmp/stage/first/{facility} {EXPORT}/");
        (sums_under(centre, &format!("/tmp/first/{facility}")), held_back, bad, payload, drop)
    };
    let files = corpus_sums.lines().count();
    assert!(files >= 10, "the first drop of {facility} makes only {files} files");
    let tarball = centre.run_ok(&format!("cd /tmp && tar -cz {payload} | base64 -w0")).unwrap();
    let added = centre
        .run_ok(&format!(
            "runuser -u kizuna -- kizuna site add -c {} {} --facility {facility} --allow {} 2>/dev/null",
            u.store_yaml,
            site.name(),
            u.allow
        ))
        .expect("kizuna site add");
    let token = added
        .split_whitespace()
        .find(|w| w.starts_with("kzn_"))
        .unwrap_or_else(|| panic!("no kzn_ token in the output of kizuna site add:\n{added}"))
        .to_string();
    site.write_file("/var/lib/kizuna/secrets/agent.token", &format!("{token}\n")).unwrap();
    let nsips = if u.nsips { format!("nsips:\n  dir: {NSIPS}\n") } else { String::new() };
    site.write_file(
        "/etc/kizuna/agent.yaml",
        &format!(
            "export_dir: {EXPORT}\nstate_dir: /var/lib/kizuna/agent\nstore_url: {}\n\
             facility: \"{facility}\"\ntoken_file: /var/lib/kizuna/secrets/agent.token\nnho_tables_dir: /usr/share/kizuna/nho-tables\n\
             settle_ms: 500\n{nsips}{}",
            u.store_url, u.agent_extra
        ),
    )
    .unwrap();
    site.write_file("/tmp/export.tgz.b64", &tarball).unwrap();
    // Unpacked in /tmp/stage (the held-back parts move to /tmp/later), owned by the agent's user.
    site.run_ok(&format!(
        "set -e; chown kizuna:kizuna /var/lib/kizuna/secrets/agent.token; chmod 600 /var/lib/kizuna/secrets/agent.token; \
         rm -rf /tmp/stage {LATER}; mkdir -p /tmp/stage; \
         base64 -d /tmp/export.tgz.b64 | tar -C /tmp/stage -xz; chown -R kizuna:kizuna /tmp/stage; \
         {drop}; if [ -d /tmp/stage/corpus ]; then mv /tmp/stage/corpus {LATER}; fi",
    ))
    .expect("starting the agent and dropping the export");
    let uploaded =
        Uploaded { facility: facility.to_string(), corpus_sums, files, took: Duration::ZERO, held_back, bad };
    Staged { uploaded, started }
}

/// The second half of the upload ([`stage_upload`]): asserts that netd hosts the agent, waits for
/// the centre's tree to hold the first drop and compares it byte for byte.
pub fn finish_upload(centre: &Vm, site: &Vm, staged: Staged) -> Uploaded {
    let Staged { mut uploaded, started } = staged;
    assert_hosted_by_netd(site, "kzv-upload");
    let facility = &uploaded.facility;
    wait_for_tree(centre, site, facility, uploaded.files, Duration::from_secs(150));
    uploaded.took = started.elapsed();
    let tree_sums = sums_under(centre, &format!("/var/lib/kizuna/store/tree/{facility}"));
    assert_eq!(
        tree_sums,
        uploaded.corpus_sums,
        "{}: the store's tree of {facility} differs from the site's export",
        site.name()
    );
    uploaded
}

/// `sha256sum` lines of every file under `dir`, sorted by path (`./…`).
pub fn sums_under(vm: &Vm, dir: &str) -> String {
    vm.run_ok(&format!("cd {dir} && find . -type f | LC_ALL=C sort | xargs -r sha256sum"))
        .unwrap_or_else(|e| panic!("{}: sha256sum under {dir}: {e}", vm.name()))
}

/// The whole generated corpus's sums on the centre (first drop and every held-back patient).
pub fn full_corpus_sums(centre: &Vm, facility: &str) -> String {
    sums_under(centre, &format!("{CORPUS}/{facility}"))
}

/// Files in the centre's tree of `facility`.
pub fn tree_files(centre: &Vm, facility: &str) -> usize {
    centre
        .run_ok(&format!("find /var/lib/kizuna/store/tree/{facility} -type f 2>/dev/null | wc -l"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits until the centre's tree of `facility` holds at least `files` files; panics with the
/// agent's log otherwise.
pub fn wait_for_tree(centre: &Vm, site: &Vm, facility: &str, files: usize, timeout: Duration) {
    let secs = timeout.as_secs().saturating_sub(20).max(10) as u32;
    let stored = centre.run_ok_with_timeout(
        &retry(
            &format!("test \"$(find /var/lib/kizuna/store/tree/{facility} -type f 2>/dev/null | wc -l)\" -ge {files}"),
            secs,
        ),
        timeout,
    );
    if let Err(e) = stored {
        let diag = site.run(&format!(
            "journalctl -u kizuna-agent --no-pager | tail -30; find {EXPORT} /var/lib/kizuna/agent | head -30"
        ));
        panic!("the store did not receive the site's {files} files: {e}\n{diag:?}");
    }
}

/// Moves held-back patient folders (as listed in [`Uploaded::held_back`]) into the site's export
/// folder, as the EHR's next export would; returns how many files they hold.
pub fn drop_held_back(site: &Vm, facility: &str, patients: &[String]) -> usize {
    let mut script = String::from("set -e\n");
    for p in patients {
        // Copied into place (the folder may exist: the agent may have left it empty).
        script.push_str(&format!(
            "find {LATER}/{facility}/{p} -type f | wc -l\nrunuser -u kizuna -- mkdir -p {EXPORT}/{facility}/{p}\n\
             cp -a {LATER}/{facility}/{p}/. {EXPORT}/{facility}/{p}/\nrm -r {LATER}/{facility}/{p}\n"
        ));
    }
    let counts =
        site.run_ok(&script).unwrap_or_else(|e| panic!("{}: dropping {patients:?}: {e}", site.name()));
    counts.lines().map(|l| l.trim().parse::<usize>().unwrap()).sum()
}

/// Copies staged known-bad file `path` (relative to the facility's folder) into the site's export.
pub fn drop_bad_file(site: &Vm, facility: &str, path: &str) {
    let parent = path.rsplit_once('/').map_or("", |(d, _)| d);
    site.run_ok(&format!(
        "set -e; runuser -u kizuna -- mkdir -p {EXPORT}/{facility}/{parent}; \
         install -o kizuna -g kizuna -m 0644 {LATER}/bad/{path} {EXPORT}/{facility}/{path}"
    ))
    .unwrap_or_else(|e| panic!("{}: dropping the bad file {path}: {e}", site.name()));
}

/// The centre and site images (built, or found in images/build's cache). Fails first, saying why,
/// when `tests/lab/run` reported through the env var `build_failed` that their binaries did not build.
pub fn centre_and_site_images(build_failed: &str) -> (Artefacts, Artefacts) {
    if let Ok(why) = std::env::var(build_failed) {
        panic!("the images' binaries did not build: {why}");
    }
    let centre = Artefacts::image("centre").expect("building the centre image");
    let site = Artefacts::image("site").expect("building the site image");
    (centre, site)
}
