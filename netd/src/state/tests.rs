use super::*;
use crate::plan::{Mode, plan};
use crate::policy::{Policy, ValidPolicy};
use crate::synthetic;

fn record(p: Policy) -> LastGood {
    let v = ValidPolicy::new(p).expect("valid");
    let desired = plan(&v, &synthetic::site_name(2), Mode::Vrf, "127.0.0.1:9190".parse().unwrap()).unwrap();
    LastGood { desired, firewall_readback: Some(serde_json::json!(["listing"])) }
}

/// The synthetic policy grown by one site, the way the benchmark grows it.
fn grown(sites: u16) -> Policy {
    let mut p = synthetic::policy(sites);
    p.sites.push(synthetic::policy(sites + 1).sites.pop().unwrap());
    p
}

/// `p` with one site moved to another endpoint.
fn moved(mut p: Policy) -> Policy {
    p.sites.iter_mut().find(|s| s.number == 30).unwrap().endpoint = "192.0.2.99".parse().unwrap();
    p
}

/// What a process that never saw the files reads from them.
fn read_fresh(path: &Path) -> LastGood {
    read(path).unwrap().expect("a record").record.as_ref().clone()
}

fn journal_lines(path: &Path) -> usize {
    std::fs::read_to_string(journal_path(path)).map_or(0, |t| t.lines().count())
}

#[test]
fn a_peer_change_is_appended_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-good.json");
    let a = record(synthetic::policy(40));
    save(&path, a.clone()).unwrap();
    let loaded = load(&path).unwrap().unwrap();
    let b = record(grown(40));
    assert!(save_after(&path, &loaded, b.clone()).unwrap(), "a one-site change is a patch");
    assert_eq!(journal_lines(&path), 1);
    assert_eq!(*load(&path).unwrap().unwrap(), b);
    assert_eq!(read_fresh(&path), b);
    // A site removed again, and a new firewall readback: patches too.
    let mut c = a.clone();
    c.firewall_readback = Some(serde_json::json!(["other listing"]));
    let loaded = load(&path).unwrap().unwrap();
    assert!(save_after(&path, &loaded, c.clone()).unwrap());
    assert_eq!(read_fresh(&path), c);
    // A change of links is not a patch: the whole record, and no journal.
    let mut d = c.clone();
    d.desired.links.pop();
    let loaded = load(&path).unwrap().unwrap();
    assert!(!save_after(&path, &loaded, d.clone()).unwrap());
    assert!(!journal_path(&path).exists());
    assert_eq!(read_fresh(&path), d);
}

#[test]
fn a_torn_last_line_leaves_the_record_before_it_and_the_next_save_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-good.json");
    let a = record(synthetic::policy(40));
    save(&path, a.clone()).unwrap();
    let b = record(grown(40));
    let loaded = load(&path).unwrap().unwrap();
    assert!(save_after(&path, &loaded, b.clone()).unwrap());
    let c = record(moved(grown(40)));
    let loaded = load(&path).unwrap().unwrap();
    assert!(save_after(&path, &loaded, c.clone()).unwrap());
    // A crash in the middle of the second append.
    let text = std::fs::read(journal_path(&path)).unwrap();
    std::fs::write(journal_path(&path), &text[..text.len() - 20]).unwrap();
    assert_eq!(read_fresh(&path), b);
    assert_eq!(*load(&path).unwrap().unwrap(), b, "the cache notices the journal changed");
    // A flipped byte inside a complete line is caught by its checksum too.
    let mut flipped = text.clone();
    let at = text.len() - 30;
    flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(journal_path(&path), &flipped).unwrap();
    assert_eq!(read_fresh(&path), b);
    // The next save writes the whole record instead of appending after the bad line.
    let loaded = load(&path).unwrap().unwrap();
    assert!(!save_after(&path, &loaded, c.clone()).unwrap());
    assert!(!journal_path(&path).exists());
    assert_eq!(read_fresh(&path), c);
}

#[test]
fn a_journal_left_beside_a_newer_base_is_ignored_and_long_journals_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-good.json");
    let a = record(synthetic::policy(40));
    save(&path, a.clone()).unwrap();
    let b = record(grown(40));
    let loaded = load(&path).unwrap().unwrap();
    assert!(save_after(&path, &loaded, b.clone()).unwrap());
    let stale = std::fs::read(journal_path(&path)).unwrap();
    // A whole save that crashed after the rename, before removing the journal.
    save(&path, a.clone()).unwrap();
    std::fs::write(journal_path(&path), &stale).unwrap();
    assert_eq!(read_fresh(&path), a);
    assert_eq!(*load(&path).unwrap().unwrap(), a);

    save(&path, a.clone()).unwrap();
    let states = [a.clone(), b.clone()];
    for i in 0..MAX_PATCHES + 1 {
        let loaded = load(&path).unwrap().unwrap();
        let appended = save_after(&path, &loaded, states[(i + 1) % 2].clone()).unwrap();
        assert_eq!(appended, i < MAX_PATCHES, "patch {i}");
    }
    assert_eq!(journal_lines(&path), 0);
    assert_eq!(read_fresh(&path), states[(MAX_PATCHES + 1) % 2]);
}

#[test]
fn a_last_line_without_its_newline_is_torn_and_the_next_save_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-good.json");
    let a = record(synthetic::policy(40));
    save(&path, a.clone()).unwrap();
    let b = record(grown(40));
    let loaded = load(&path).unwrap().unwrap();
    assert!(save_after(&path, &loaded, b.clone()).unwrap());
    // A crash after the line's bytes but before its newline: the checksum still holds.
    let text = std::fs::read(journal_path(&path)).unwrap();
    assert_eq!(text.last(), Some(&b'\n'));
    std::fs::write(journal_path(&path), &text[..text.len() - 1]).unwrap();
    assert_eq!(read_fresh(&path), a, "a line without its newline is torn");
    let loaded = load(&path).unwrap().unwrap();
    assert_eq!(*loaded, a);
    // Appending would glue the next line onto it and lose both: the next save is whole.
    let c = record(moved(grown(40)));
    assert!(!save_after(&path, &loaded, c.clone()).unwrap());
    assert!(!journal_path(&path).exists());
    assert_eq!(read_fresh(&path), c);
}

/// Writes the record at `$NETD_TEST_STATE_PATH` as another process would (its own cache):
/// `$NETD_TEST_STATE_WRITE` `patch` appends the grown record to the journal, `whole` saves the
/// moved one whole. Run by `a_record_another_process_wrote_is_read_by_the_next_load`.
#[test]
#[ignore = "a second process of another test"]
fn write_as_another_process() {
    let (Ok(path), Ok(what)) =
        (std::env::var("NETD_TEST_STATE_PATH"), std::env::var("NETD_TEST_STATE_WRITE"))
    else {
        return;
    };
    let path = PathBuf::from(path);
    let loaded = load(&path).unwrap().expect("a record");
    match what.as_str() {
        "patch" => assert!(save_after(&path, &loaded, record(grown(40))).unwrap(), "appended"),
        "whole" => save(&path, record(moved(grown(40)))).unwrap(),
        other => panic!("{other}"),
    }
}

/// `netd run` keeps the record in memory; a pass of `netd apply` (another process, waited for
/// through the pass lock) writes a new one. The daemon's next pass must start from that record,
/// not from its memory: `load` re-reads whenever the base's or the journal's inode, size or
/// modification time changed, and a save after it never appends a patch to a record this process
/// did not read.
#[test]
fn a_record_another_process_wrote_is_read_by_the_next_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-good.json");
    let a = record(synthetic::policy(40));
    save(&path, a.clone()).unwrap();
    let mine = load(&path).unwrap().unwrap();
    assert_eq!(*mine, a);
    let other = |what: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "state::tests::write_as_another_process", "--ignored", "--nocapture"])
            .env("NETD_TEST_STATE_PATH", &path)
            .env("NETD_TEST_STATE_WRITE", what)
            .output()
            .unwrap();
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.contains("1 passed"), "{said}");
    };
    other("patch");
    assert_eq!(*load(&path).unwrap().unwrap(), record(grown(40)), "a journal line of another process");
    other("whole");
    let theirs = record(moved(grown(40)));
    assert_eq!(*load(&path).unwrap().unwrap(), theirs, "a whole record of another process");
    // A save following the record this process read before is written whole, never appended as
    // a patch of a base it did not read.
    let mut d = a.clone();
    d.firewall_readback = Some(serde_json::json!(["mine"]));
    assert!(!save_after(&path, &mine, d.clone()).unwrap(), "a patch against a stale base");
    assert_eq!(read_fresh(&path), d);
}

/// A corrupt record blocks every pass; the message says how to recover, and that does recover.
#[test]
fn a_corrupt_record_says_to_remove_it_and_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-good.json");
    std::fs::write(&path, b"{ not json").unwrap();
    std::fs::write(journal_path(&path), b"").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.contains("remove it and") && e.contains("last-good.journal"), "{e}");
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(journal_path(&path)).unwrap();
    assert!(load(&path).unwrap().is_none());
    save(&path, record(synthetic::policy(3))).unwrap();
    assert!(load(&path).unwrap().is_some());
}
