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

/// A generated SS-MIX2 export shipped by a site's upload agent, as deployed.
pub struct CorpusUpload<'a> {
    /// `kizuna ssmix2 gen` seed and patients (one facility).
    pub seed: u64,
    pub patients: u32,
    /// The centre's store config, for `kizuna site add`.
    pub store_yaml: &'a str,
    /// Where the site may upload from (`kizuna site add --allow`).
    pub allow: &'a str,
    /// The agent's `store_url`.
    pub store_url: &'a str,
    /// More agent config lines (e.g. `bind_interface: kzv-upload\n`).
    pub agent_extra: &'a str,
}

/// What [`upload_generated_corpus`] shipped.
pub struct Uploaded {
    pub facility: String,
    /// `sha256sum` lines of the corpus, sorted by path.
    pub corpus_sums: String,
    pub files: usize,
    /// From the agent's start until every file was in the centre's tree.
    pub took: Duration,
}

/// The upload path as a site runs it: a corpus made on the centre by `kizuna ssmix2 gen` (the
/// site image has no `kizuna`), a site token from `kizuna site add`, the agent's config and
/// `systemctl start kizuna-agent`, the export dropped into /srv/kizuna/export. Asserts that the
/// agent runs under systemd and that the centre's tree then holds the corpus byte for byte.
pub fn upload_generated_corpus(centre: &Vm, site: &Vm, u: &CorpusUpload) -> Uploaded {
    let started = Instant::now();
    let facility = centre
        .run_ok(&format!(
            "set -e; cd /tmp; kizuna ssmix2 gen --out /tmp/corpus --seed {} --facilities 1 --patients {} >/dev/null; \
             ls /tmp/corpus | grep -E '^[0-9]+$'",
            u.seed, u.patients
        ))
        .expect("kizuna ssmix2 gen on the centre")
        .trim()
        .to_string();
    let corpus_sums = centre
        .run_ok(&format!("cd /tmp/corpus/{facility} && find . -type f | LC_ALL=C sort | xargs sha256sum"))
        .unwrap();
    let files = corpus_sums.lines().count();
    assert!(files >= 10, "the generated corpus has only {files} files");
    let tarball = centre.run_ok(&format!("tar -C /tmp/corpus -cz {facility} | base64 -w0")).unwrap();
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
    site.write_file("/etc/kizuna/agent.token", &format!("{token}\n")).unwrap();
    site.write_file(
        "/etc/kizuna/agent.yaml",
        &format!(
            "export_dir: /srv/kizuna/export\nstate_dir: /var/lib/kizuna/agent\nstore_url: {}\n\
             facility: \"{facility}\"\ntoken_file: /etc/kizuna/agent.token\nnho_tables_dir: /usr/share/kizuna/nho-tables\n\
             rescan_interval_secs: 5\nsettle_ms: 500\n{}",
            u.store_url, u.agent_extra
        ),
    )
    .unwrap();
    site.write_file("/tmp/export.tgz.b64", &tarball).unwrap();
    site.run_ok(
        "set -e; chown kizuna:kizuna /etc/kizuna/agent.token; chmod 600 /etc/kizuna/agent.token; \
         systemctl start kizuna-agent; base64 -d /tmp/export.tgz.b64 | tar -C /tmp -xz; \
         chown -R kizuna:kizuna /tmp/[0-9]*; mv /tmp/[0-9]* /srv/kizuna/export/",
    )
    .expect("starting the agent and dropping the export");
    assert_started_by_systemd(site, "kizuna-agent", "kizuna-agent", "kizuna");
    let stored = centre.run_ok_with_timeout(
        &retry(
            &format!("test \"$(find /var/lib/kizuna/store/tree/{facility} -type f 2>/dev/null | wc -l)\" -ge {files}"),
            120,
        ),
        Duration::from_secs(150),
    );
    if let Err(e) = stored {
        let diag = site.run(
            "journalctl -u kizuna-agent --no-pager | tail -30; find /srv/kizuna/export /var/lib/kizuna/agent | head -30",
        );
        panic!("the store did not receive the site's {files} files: {e}\n{diag:?}");
    }
    let took = started.elapsed();
    let tree_sums = centre
        .run_ok(&format!(
            "cd /var/lib/kizuna/store/tree/{facility} && find . -type f | LC_ALL=C sort | xargs sha256sum"
        ))
        .unwrap();
    assert_eq!(tree_sums, corpus_sums, "the store's tree differs from the site's export");
    Uploaded { facility, corpus_sums, files, took }
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
