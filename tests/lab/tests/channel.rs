//! The command channel as tests rely on it: exact exit codes, output of any size and bytes intact,
//! stdout and stderr apart, files written whole, and a hung command killed without losing the guest.

use std::time::{Duration, Instant};

use kizuna_lab::{Artefacts, Lab, VmSpec, lab_available};
use sha2::{Digest, Sha256};

#[test]
#[ignore = "QEMU lab: needs root and qemu; run tests/lab/run"]
fn command_channel_returns_exact_output_and_exit_codes() {
    if !lab_available() {
        return;
    }
    let artefacts = Artefacts::build("channel", &[]).expect("building the guest image");
    let lab = Lab::start("channel", &artefacts, vec![VmSpec::new("c1", "10.255.0.11/24")]).expect("booting");
    let vm = lab.vm("c1").unwrap();

    let out = vm.run("echo out; echo err >&2; exit 7").unwrap();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.code), ("out\n", "err\n", 7));

    // Text with every printable byte, quotes and newlines survives a write and a read.
    let text: String =
        (0..3000).map(|i| char::from(b' ' + (i % 95) as u8)).collect::<String>() + "\n'\"$(x)`\n";
    vm.write_file("/tmp/dir/text", &text).unwrap();
    assert_eq!(vm.run_ok("cat /tmp/dir/text").unwrap(), text);

    // 300 kB of random bytes, sent back as 600 kB of hex, match the guest's own digest of them.
    let digest =
        vm.run_ok("head -c 300000 /dev/urandom > /tmp/blob && sha256sum /tmp/blob | cut -d' ' -f1").unwrap();
    let hex = vm.run_ok("od -An -v -tx1 /tmp/blob | tr -d ' \\n'").unwrap();
    let bytes = hex::decode(hex.trim()).expect("hex from od");
    assert_eq!(bytes.len(), 300_000);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), digest.trim());

    // A command that hangs is killed by the guest (137) and the channel goes on working.
    let started = Instant::now();
    let hung = vm.run_with_timeout("sleep 600", Duration::from_secs(2)).unwrap();
    assert_eq!(hung.code, 137);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(vm.run_ok("echo alive").unwrap(), "alive\n");

    // Background programs that redirect their output do not hold the reply back.
    let started = Instant::now();
    vm.run_ok("setsid sleep 600 </dev/null >/dev/null 2>&1 &").unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
}
