//! `tree_linkage::link_tree` on a small generated tree: too few patients to train a matcher, so each
//! gets their own common ID and the pass says why; a second pass enrolls nothing; a facility folder
//! added later is enrolled alone.

use kizuna_index::Registry;
use kizuna_index::tree_linkage::{MatcherState, facilities, link_tree};

#[tokio::test]
async fn too_few_patients_get_their_own_ids_and_passes_are_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let spec = synth::GenConfig {
        sync: false,
        ..synth::GenConfig::new(
            5,
            2,
            12,
            synth::CivilDate::new(2024, 1, 1).unwrap(),
            synth::CivilDate::new(2024, 1, 31).unwrap(),
        )
    };
    let summary = synth::generate(&spec, &corpus, &|_| {}).unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let (a, b) = (&summary.facilities[0].id, &summary.facilities[1].id);
    std::fs::rename(synth::facility_root(&corpus, a), tree.join(a)).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("linkage.sqlite").display());
    let reg = Registry::open(&url).await.unwrap();

    let first = link_tree(&reg, &tree).await.unwrap();
    assert!(matches!(&first.matcher, MatcherState::Untrained(why) if why.contains("too few")), "{first:?}");
    assert_eq!(first.facilities, 1);
    assert!(first.enrolled > 0);
    assert_eq!((first.new_ids, first.auto_linked), (first.enrolled, 0), "each patient their own ID");
    assert!(reg.matcher().await.unwrap().is_none());

    let second = link_tree(&reg, &tree).await.unwrap();
    assert_eq!((second.enrolled, second.known), (0, first.enrolled));
    assert_eq!(second.matcher, MatcherState::NotNeeded, "no training tried without new patients");

    std::fs::rename(synth::facility_root(&corpus, b), tree.join(b)).unwrap();
    let third = link_tree(&reg, &tree).await.unwrap();
    let b_patients = kizuna_index::source::read_storage_root(&tree.join(b), b).unwrap().len();
    assert_eq!((third.facilities, third.enrolled), (2, b_patients));
    assert_eq!(facilities(&tree).unwrap(), {
        let mut v = vec![a.clone(), b.clone()];
        v.sort();
        v
    });
    let links = reg.all_links().await.unwrap();
    assert_eq!(links.len(), first.enrolled + b_patients);
}
