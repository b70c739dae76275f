//! Steps shared by the lab tests that boot Kizuna's deployable images (`images/build`): waiting for
//! systemd, checking a unit's process, provisioning a router at the centre's registry.

use std::time::Duration;

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
