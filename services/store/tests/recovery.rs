//! Restart after a crash: committed journal entries that never reached the tree or the index are
//! finished, a torn journal tail is cut off, staged files that were never committed are removed,
//! and replaying entries that are already applied changes nothing.

mod common;

use std::io::Write;

use common::{Backend, Harness, all_files, assert_index_matches_tree, batch_files, corpus, count, sha};
use kizuna_store::journal::{Change, Draft, Journal, list_segments};
use kizuna_wire::FileStatus;
use ssmix2::{ConditionFlag, StoragePath};

both_backends!(
    restart_finishes_committed_entries_and_cleans_up,
    batched_index_writes_equal_a_replay_entry_by_entry,
    search_rows_catch_up_after_a_crash_mid_way,
);

async fn restart_finishes_committed_entries_and_cleans_up(backend: &Backend) {
    let c = corpus(31, 1, 5, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let report = h.upload(&token, fac, &batch_files(files)).await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Stored));
    let stored = files.len() as u64;
    let (dir, config) = h.stop().await;

    // A crash after the journal commit of an update, before any of it reached the tree or index:
    // the entry and its staged file exist, nothing else does.
    let (v1_path, bytes) = files
        .iter()
        .find(|(p, _)| p.contains("/OMP-01/") && p.ends_with("_1"))
        .map(|(p, b)| (StoragePath::parse(p).unwrap(), b.clone()))
        .unwrap();
    let ts = v1_path.name.timestamp.to_string();
    let v2_name = v1_path.name.to_string().replace(&ts, &format!("{}235959999", &ts[..8]));
    let v2 = StoragePath::parse(&format!("{}/{v2_name}", v1_path.dir().display())).unwrap();
    let v1_as_2 = StoragePath::of(v1_path.name.with_flag(ConditionFlag::Superseded));
    let stage = "abc123-1.stage";
    std::fs::write(config.staging_dir().join(stage), &bytes).unwrap();
    {
        // Writing the journal takes the data folder's lock, as the store does (released at the
        // end of this block, before the restart).
        let lock = kizuna_store::DataDirLock::acquire(&config.data_dir).unwrap();
        let (j, last) =
            Journal::open(&lock, &config.journal_dir(), 1 << 20, std::time::Duration::ZERO).unwrap();
        assert_eq!(last, stored);
        j.append(vec![Draft {
            facility: fac.clone(),
            site: "s".into(),
            changes: vec![
                Change::Rename {
                    from: v1_path.to_string(),
                    to: v1_as_2.to_string(),
                    sha256: sha(&bytes),
                    size: bytes.len() as u64,
                },
                Change::Write {
                    path: v2.to_string(),
                    sha256: sha(&bytes),
                    size: bytes.len() as u64,
                    stage: stage.into(),
                },
            ],
        }])
        .await
        .unwrap();
    }
    // A torn frame after it (a crash in the middle of the next append) and a staged file that never
    // reached the journal.
    let (_, seg) = list_segments(&config.journal_dir()).unwrap().pop().unwrap();
    let len_before_tear = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&[0, 0, 1, 0, 9, 9]).unwrap();
    std::fs::write(config.staging_dir().join("dead-beef.stage"), b"never committed").unwrap();

    // First restart: recovery finishes the entry and cleans up.
    let h = Harness::start_with(dir, config).await;
    check(&h, fac, &v1_as_2, &v2, &bytes, stored + 1, &seg, len_before_tear).await;
    let (dir, config) = h.stop().await;

    // Replaying everything again (watermark forced back to 0) must change nothing.
    let db = kizuna_store::Db::open(&config.effective_database_url()).await.unwrap();
    sqlx::query("UPDATE store_state SET value = 0 WHERE key = 'applied_seq'")
        .execute(&db.pool)
        .await
        .unwrap();
    db.pool.close().await;
    let h = Harness::start_with(dir, config).await;
    check(&h, fac, &v1_as_2, &v2, &bytes, stored + 1, &seg, len_before_tear).await;
    h.stop().await;
}

#[allow(clippy::too_many_arguments)]
async fn check(
    h: &Harness,
    fac: &str,
    v1_as_2: &StoragePath,
    v2: &StoragePath,
    bytes: &[u8],
    entries: u64,
    seg: &std::path::Path,
    len_before_tear: u64,
) {
    let root = h.tree().join(fac);
    assert_eq!(std::fs::read(root.join(v2.relative())).unwrap(), bytes, "the committed write is in place");
    assert!(root.join(v1_as_2.relative()).exists(), "the committed rename is done");
    assert!(all_files(&h.config.staging_dir()).is_empty(), "staging is clean");
    assert_eq!(std::fs::metadata(seg).unwrap().len(), len_before_tear, "the torn tail is cut off");
    assert_eq!(h.store.journal.last_seq(), entries);
    assert_eq!(h.store.applied_watermark(), entries);
    assert_eq!(
        count(&h.store, "SELECT COUNT(*) FROM records").await,
        entries as i64,
        "no row doubled by replay"
    );
    assert_index_matches_tree(h, fac).await;
    assert_eq!(kizuna_store::journal::read_applied(&h.config.journal_dir()), entries);
    // The file recovery indexed counts as stored for its site, once however often it replays.
    let (stored, bytes): (i64, i64) = {
        use sqlx::Row;
        let r = sqlx::query(
            "SELECT CAST(COALESCE(SUM(stored), 0) AS BIGINT), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) \
             FROM site_daily WHERE site = 's'",
        )
        .fetch_one(&h.store.db.pool)
        .await
        .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(stored, entries as i64, "site_daily.stored counts every indexed file once");
    let tree_bytes: i64 =
        all_files(&root).iter().map(|f| std::fs::metadata(root.join(f)).unwrap().len() as i64).sum();
    assert_eq!(bytes, tree_bytes, "site_daily.bytes counts every indexed file once");
}

/// Every index table as text rows (search rows keyed by their record's file name, not its id).
async fn dump_index(store: &kizuna_store::Store) -> Vec<Vec<String>> {
    dump_index_on(&store.db.pool).await
}

async fn dump_index_on(pool: &sqlx::AnyPool) -> Vec<Vec<String>> {
    use sqlx::Row;
    let t = |c: &str| format!("CAST({c} AS TEXT)");
    let record_cols = "volume_label, facility_id, patient_id, order_date, data_kind, order_no, processing_type, \
        enter_org_cd, transaction_datetime, out_rel_directory, file_name, update_datetime, version_key, condition_flag, \
        sha256, size, received_at, site, message_type, journal_seq";
    let mut queries = vec![(
        "records",
        format!(
            "SELECT {} FROM records ORDER BY facility_id, file_name",
            record_cols.split(',').map(|c| t(c.trim())).collect::<Vec<_>>().join(", ")
        ),
    )];
    for (table, cols) in [
        (
            "drugs",
            "item_no, source, code, name, coding_system, dose, dose_unit, days, route, given_at, order_date",
        ),
        (
            "labs",
            "item_no, code, name, coding_system, value_type, value, value_num, units, reference_range, abnormal_flags, result_status, observed_at",
        ),
        ("diagnoses", "item_no, source, code, name, coding_system, icd10, onset_date, status"),
        ("encounters", "event, trigger_event, event_time, patient_class, ward"),
    ] {
        let cols: Vec<String> = cols.split(',').map(|c| t(&format!("x.{}", c.trim()))).collect();
        queries.push((
            table,
            format!(
                "SELECT r.facility_id, r.file_name, x.patient_id, {} FROM {table} x JOIN records r ON r.id = x.record_id \
                 ORDER BY r.facility_id, r.file_name, 4, 5, 6",
                cols.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for (table, q) in queries {
        for row in sqlx::query(sqlx::AssertSqlSafe(q)).fetch_all(pool).await.unwrap() {
            let mut v = vec![table.to_string()];
            for i in 0..row.len() {
                v.push(row.try_get::<Option<String>, _>(i).unwrap().unwrap_or_else(|| "NULL".into()));
            }
            out.push(v);
        }
    }
    out
}

/// The ingest path writes the index in multi-row statements; replaying the same journal entry by
/// entry into an emptied index (as recovery does) gives exactly the same tables.
async fn batched_index_writes_equal_a_replay_entry_by_entry(backend: &Backend) {
    let c = corpus(17, 2, 20, 0);
    let h = Harness::start(backend, |_| {}).await;
    let ids: Vec<&str> = c.facilities.keys().map(|s| s.as_str()).collect();
    let token = h.add_site("s", &ids, &[]).await;
    for (fac, files) in &c.facilities {
        for chunk in batch_files(files).chunks(150) {
            let report = h.upload(&token, fac, chunk).await;
            assert!(report.results.iter().all(|r| r.status == FileStatus::Stored));
        }
    }
    h.store.search_caught_up().await;
    let batched = dump_index(&h.store).await;
    for table in ["drugs", "labs", "diagnoses", "encounters"] {
        assert!(batched.iter().any(|r| r[0] == table), "the corpus has {table} rows");
    }
    let (dir, config) = h.stop().await;
    let db = kizuna_store::Db::open(&config.effective_database_url()).await.unwrap();
    for q in [
        "DELETE FROM drugs",
        "DELETE FROM labs",
        "DELETE FROM diagnoses",
        "DELETE FROM encounters",
        "DELETE FROM records",
        "UPDATE store_state SET value = 0 WHERE key = 'applied_seq'",
        "UPDATE store_state SET value = 0 WHERE key = 'search_seq'",
    ] {
        sqlx::query(q).execute(&db.pool).await.unwrap();
    }
    db.pool.close().await;
    let h = Harness::start_with(dir, config).await;
    let replayed = dump_index(&h.store).await;
    assert_eq!(batched.len(), replayed.len());
    for (a, b) in batched.iter().zip(&replayed) {
        assert_eq!(a, b);
    }
    h.stop().await;
}

/// Every column of each search table but its id.
const SEARCH_COLUMNS: [(&str, &str); 4] = [
    (
        "drugs",
        "record_id, facility_id, patient_id, order_date, item_no, source, code, name, coding_system, dose, \
         dose_unit, days, route, given_at",
    ),
    (
        "labs",
        "record_id, facility_id, patient_id, order_date, item_no, code, name, coding_system, value_type, value, \
         value_num, units, reference_range, abnormal_flags, result_status, observed_at",
    ),
    (
        "diagnoses",
        "record_id, facility_id, patient_id, item_no, source, code, name, coding_system, icd10, onset_date, status",
    ),
    (
        "encounters",
        "record_id, facility_id, patient_id, event, trigger_event, event_time, patient_class, ward",
    ),
];

/// The search rows are written behind the answers by their own writer, with their own watermark.
/// A crash can leave them anywhere: some transactions above the watermark committed (batches
/// finish out of order, so a later one can commit before the watermark can pass an earlier gap),
/// others not. The next start rebuilds every record above the watermark from its file, and the
/// result is exactly what uploads without a crash gave, with nothing lost and nothing doubled;
/// so is a rebuild from nothing.
async fn search_rows_catch_up_after_a_crash_mid_way(backend: &Backend) {
    let c = corpus(23, 2, 16, 0);
    let h = Harness::start(backend, |_| {}).await;
    let ids: Vec<&str> = c.facilities.keys().map(|s| s.as_str()).collect();
    let token = h.add_site("s", &ids, &[]).await;
    for (fac, files) in &c.facilities {
        for chunk in batch_files(files).chunks(60) {
            let report = h.upload(&token, fac, chunk).await;
            assert!(report.results.iter().all(|r| r.status == FileStatus::Stored));
        }
    }
    let total = h.store.journal.last_seq();
    h.store.search_caught_up().await;
    assert_eq!(h.store.search_watermark(), total);
    assert_eq!(kizuna_store::search::search_seq(&h.store.db).await.unwrap(), total, "persisted");
    let reference = dump_index(&h.store).await;
    for table in ["drugs", "labs", "diagnoses", "encounters"] {
        assert!(reference.iter().any(|r| r[0] == table), "the corpus has {table} rows");
    }
    let (third, two_thirds) = (total / 3, 2 * total / 3);
    let mut h = Some(h);
    for (what, crash) in [
        (
            // The writer died mid-way: the watermark at a third, the rows of the second third
            // never written, those of the last third written by a later transaction.
            "a crash mid-way",
            vec![
                format!("UPDATE store_state SET value = {third} WHERE key = 'search_seq'"),
                format!(
                    "DELETE FROM {{t}} WHERE record_id IN (SELECT id FROM records \
                     WHERE journal_seq > {third} AND journal_seq <= {two_thirds})"
                ),
            ],
        ),
        (
            // A crash in the first catch-up chunk: rows of half its records already re-inserted.
            "a crash during catch-up",
            vec![
                format!("UPDATE store_state SET value = {third} WHERE key = 'search_seq'"),
                format!(
                    "INSERT INTO {{t}} ({{cols}}) SELECT {{cols}} FROM {{t}} WHERE record_id IN (SELECT id FROM records \
                     WHERE journal_seq > {third} AND journal_seq <= {} )",
                    third + 20
                ),
            ],
        ),
        (
            "no search rows at all",
            vec![
                "UPDATE store_state SET value = 0 WHERE key = 'search_seq'".into(),
                "DELETE FROM {t}".into(),
            ],
        ),
    ] {
        let (dir, config) = h.take().unwrap().stop().await;
        let db = kizuna_store::Db::open(&config.effective_database_url()).await.unwrap();
        for q in &crash {
            for (t, cols) in SEARCH_COLUMNS {
                let q = q.replace("{t}", t).replace("{cols}", cols);
                sqlx::query(sqlx::AssertSqlSafe(q)).execute(&db.pool).await.unwrap();
            }
        }
        assert_ne!(dump_index_on(&db.pool).await, reference, "{what}: the crash changed the search rows");
        db.pool.close().await;
        let restarted = Harness::start_with(dir, config).await;
        assert_eq!(restarted.store.search_watermark(), total, "{what}: caught up before serving");
        assert_eq!(dump_index(&restarted.store).await, reference, "{what}: rebuilt rows differ");
        h = Some(restarted);
    }
    h.unwrap().stop().await;
}
