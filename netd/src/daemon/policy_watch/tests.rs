use std::io::Read;

use tokio::sync::mpsc;
use tokio::time::timeout;

use super::*;

/// What the daemon's loop does with the channel: the next change, settled. `None`: none within `t`.
async fn next_pass(rx: &mut UnboundedReceiver<()>, t: Duration) -> Option<()> {
    timeout(t, rx.recv()).await.ok()??;
    settle(rx).await;
    Some(())
}

/// Reading the policy (as every pass, `netd status`, `netd plan` and `cat` do) triggers no pass;
/// a real change triggers exactly one, however many events it makes.
#[tokio::test]
async fn reading_the_policy_triggers_no_pass_and_a_write_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "mesh: test\n").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _w = watch(&policy, tx).unwrap();
    for _ in 0..5 {
        let mut s = String::new();
        std::fs::File::open(&policy).unwrap().read_to_string(&mut s).unwrap();
        let _ = std::fs::metadata(&policy).unwrap();
    }
    assert_eq!(next_pass(&mut rx, Duration::from_millis(700)).await, None, "a read triggered a pass");

    // A write in place (modify, close-write) followed at once by an editor's replace (create, rename).
    std::fs::write(&policy, "mesh: test2\n").unwrap();
    let tmp = dir.path().join(".policy.yaml.swp");
    std::fs::write(&tmp, "mesh: test3\n").unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    assert_eq!(next_pass(&mut rx, Duration::from_secs(5)).await, Some(()), "a write triggered no pass");
    assert_eq!(next_pass(&mut rx, Duration::from_millis(700)).await, None, "one change gave two passes");

    // Reading it after the change (the pass itself) still triggers nothing.
    let _ = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(
        next_pass(&mut rx, Duration::from_millis(700)).await,
        None,
        "the pass's read triggered a pass"
    );

    // Removed: a pass (it reports the missing policy).
    std::fs::remove_file(&policy).unwrap();
    assert_eq!(next_pass(&mut rx, Duration::from_secs(5)).await, Some(()), "a removal triggered no pass");
}

#[test]
fn only_kinds_that_can_change_the_content_count() {
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};
    for k in [
        EventKind::Create(CreateKind::File),
        EventKind::Modify(ModifyKind::Data(DataChange::Any)),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        EventKind::Remove(RemoveKind::File),
        EventKind::Access(AccessKind::Close(AccessMode::Write)),
    ] {
        assert!(changes_content(&k), "{k:?}");
    }
    for k in [
        EventKind::Access(AccessKind::Open(AccessMode::Any)),
        EventKind::Access(AccessKind::Read),
        EventKind::Access(AccessKind::Close(AccessMode::Read)),
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
    ] {
        assert!(!changes_content(&k), "{k:?}");
    }
}

#[test]
fn a_missing_policy_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let e = watch(&dir.path().join("nodir/policy.yaml"), tx).unwrap_err().to_string();
    assert!(e.contains("nodir") && e.contains("policy's directory does not exist"), "{e}");
}
