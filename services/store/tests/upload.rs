//! The store over real HTTP: storing, duplicates, conflicts, rejections with codes, the
//! condition-flag semantics on disk and in the index, and the index agreeing with the tree.

mod common;

use std::collections::BTreeMap;

use common::{Backend, Harness, assert_index_matches_tree, batch_files, corpus, count, index_rows, sha};
use kizuna_wire::{BatchFile, FileStatus};
use ssmix2::{ConditionFlag, FileName, StoragePath};

both_backends!(
    corpus_is_stored_and_index_agrees_with_tree,
    resending_gives_duplicates_and_writes_nothing,
    different_content_under_a_stored_name_is_a_conflict,
    update_renames_current_to_superseded,
    delete_marks_every_version_deleted,
    invalid_files_are_rejected_with_their_codes,
    a_nul_or_a_huge_code_in_a_search_field_neither_blocks_uploads_nor_the_restart,
    a_search_row_the_database_refuses_leaves_out_only_that_files_rows,
    a_failed_records_write_degrades_the_store_and_a_restart_finishes_the_entries,
);

/// The first current (`_1`) file of a data type that has only one version, from a corpus facility.
fn a_current_file(files: &BTreeMap<String, Vec<u8>>, data_type: &str) -> (StoragePath, Vec<u8>) {
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for p in files.keys() {
        let sp = StoragePath::parse(p).unwrap();
        *by_key.entry(common_key(&sp.name)).or_default() += 1;
    }
    files
        .iter()
        .map(|(p, c)| (StoragePath::parse(p).unwrap(), c))
        .find(|(sp, _)| {
            sp.name.flag == ConditionFlag::Current
                && sp.name.data_type.code() == data_type
                && by_key[&common_key(&sp.name)] == 1
        })
        .map(|(sp, c)| (sp, c.clone()))
        .expect("corpus has such a file")
}

fn common_key(n: &FileName) -> String {
    let k = n.key();
    format!("{}_{}_{}_{}", k.patient, k.care_date, k.data_type, k.order_no)
}

/// The same name with a later timestamp and the given flag.
fn later_version(sp: &StoragePath, minutes: u32, flag: ConditionFlag) -> StoragePath {
    let s = sp.name.to_string();
    let parts: Vec<&str> = s.split('_').collect();
    // Move the timestamp's hour forward within the same day (keeps it a real time).
    let ts = parts[4];
    let hour: u32 = ts[8..10].parse().unwrap();
    let new_ts = format!("{}{:02}{}", &ts[..8], (hour + minutes / 60 + 1).min(23), &ts[10..]);
    let name =
        format!("{}_{}_{}_{}_{}_{}_{}", parts[0], parts[1], parts[2], parts[3], new_ts, parts[5], flag);
    StoragePath::of(name.parse().unwrap())
}

async fn corpus_is_stored_and_index_agrees_with_tree(backend: &Backend) {
    let c = corpus(11, 2, 12, 0);
    let h = Harness::start(backend, |_| {}).await;
    let ids: Vec<&str> = c.facilities.keys().map(|s| s.as_str()).collect();
    let token = h.add_site("site-a", &ids, &[]).await;
    let mut total = 0;
    for (fac, files) in &c.facilities {
        let all = batch_files(files);
        for chunk in all.chunks(97) {
            let report = h.upload(&token, fac, chunk).await;
            assert_eq!(report.results.len(), chunk.len());
            for (r, f) in report.results.iter().zip(chunk) {
                assert_eq!(r.path, f.path);
                assert_eq!(r.status, FileStatus::Stored, "{}: {:?} {:?}", r.path, r.codes, r.reason);
            }
        }
        total += files.len();
        // The stored tree is exactly the corpus, byte for byte.
        let stored = common::read_tree(&h.tree().join(fac));
        assert_eq!(stored.len(), files.len());
        assert!(stored == *files, "tree of {fac} differs from the corpus");
        assert_index_matches_tree(&h, fac).await;
    }
    assert!(total > 100, "corpus too small to mean anything: {total}");
    // One journal entry per stored file, all applied.
    assert_eq!(h.store.journal.last_seq(), total as u64);
    assert_eq!(h.store.applied_watermark(), total as u64);
    // The search tables hold exactly the rows extracted from each file, each row tied to its
    // file's record (same facility and patient), once their writer (behind the answers) has
    // caught up.
    h.store.search_caught_up().await;
    assert_eq!(h.store.search_watermark(), total as u64);
    let mut want_per_file = BTreeMap::new();
    for (fac, files) in &c.facilities {
        want_per_file.extend(common::extracted_counts(fac, files));
    }
    assert_eq!(common::search_counts(&h.store).await, want_per_file);
    let (mut want, mut numbers) = ([0i64; 4], 0i64);
    for files in c.facilities.values() {
        for (rel, bytes) in files {
            let name: FileName = rel.rsplit('/').next().unwrap().parse().unwrap();
            let text = ssmix2::hl7::decode_iso2022jp(bytes).unwrap();
            let x = kizuna_store::extract::extract(&ssmix2::hl7::MessageView::parse(&text).unwrap(), &name);
            numbers += x.labs.iter().filter(|l| l.value_num.is_some()).count() as i64;
            for (w, n) in
                want.iter_mut().zip([x.drugs.len(), x.labs.len(), x.diagnoses.len(), x.encounters.len()])
            {
                *w += n as i64;
            }
        }
    }
    assert!(want[0] > 0 && want[1] > 0 && want[3] > 0, "corpus without drugs, labs or encounters: {want:?}");
    for (table, want) in ["drugs", "labs", "diagnoses", "encounters"].into_iter().zip(want) {
        assert_eq!(count(&h.store, &format!("SELECT COUNT(*) FROM {table}")).await, want, "{table}");
        let tied = format!(
            "SELECT COUNT(*) FROM {table} t JOIN records r ON r.id = t.record_id \
             AND r.facility_id = t.facility_id AND r.patient_id = t.patient_id"
        );
        assert_eq!(count(&h.store, &tied).await, want, "{table} rows tied to their records");
    }
    assert!(numbers > 0, "corpus without numeric results");
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM labs WHERE value_num IS NOT NULL").await, numbers);
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM records").await, total as i64);
    // Nothing left in staging.
    assert!(common::all_files(&h.config.staging_dir()).is_empty());
    // Counters and metrics saw it.
    assert_eq!(
        count(&h.store, "SELECT CAST(SUM(stored) AS BIGINT) FROM site_daily WHERE site = 'site-a'").await,
        total as i64
    );
    let (status, metrics) = h.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!("kizuna_upload_files_total{{site=\"site-a\",status=\"stored\"}} {total}")),
        "{metrics}"
    );
    let (status, health) = h.get("/healthz").await;
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("\"status\":\"ok\""));
    h.stop().await;
}

async fn resending_gives_duplicates_and_writes_nothing(backend: &Backend) {
    let c = corpus(12, 1, 4, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let batch = batch_files(files);
    h.upload(&token, fac, &batch).await;
    let seq = h.store.journal.last_seq();
    let report = h.upload(&token, fac, &batch).await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Duplicate), "{report:?}");
    assert_eq!(h.store.journal.last_seq(), seq, "a duplicate must not be journaled");
    assert_eq!(common::read_tree(&h.tree().join(fac)), *files);
    // The same file twice in one batch: stored once, then duplicate.
    let (sp, bytes) = a_current_file(files, "OMP-01");
    let newer = later_version(&sp, 60, ConditionFlag::Current);
    let f = BatchFile::new(newer.to_string(), bytes);
    let report = h.upload(&token, fac, &[f.clone(), f]).await;
    assert_eq!(report.results[0].status, FileStatus::Stored);
    assert_eq!(report.results[1].status, FileStatus::Duplicate);
    assert_index_matches_tree(&h, fac).await;
    h.stop().await;
}

async fn different_content_under_a_stored_name_is_a_conflict(backend: &Backend) {
    let c = corpus(13, 1, 4, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let (sp, bytes) = a_current_file(files, "OMP-01");
    h.upload(&token, fac, &[BatchFile::new(sp.to_string(), bytes.clone())]).await;
    // Same name, other (still valid) content: MSH-10, the message control ID, changed.
    let text = ssmix2::hl7::decode_iso2022jp(&bytes).unwrap();
    let (msh, rest) = text.split_once('\r').unwrap();
    let mut parts: Vec<&str> = msh.split('|').collect();
    parts[9] = "OTHERID";
    let other = ssmix2::hl7::encode_iso2022jp(&format!("{}\r{rest}", parts.join("|"))).unwrap();
    assert_ne!(sha(&other), sha(&bytes));
    let report = h.upload(&token, fac, &[BatchFile::new(sp.to_string(), other)]).await;
    let r = &report.results[0];
    assert_eq!(r.status, FileStatus::Rejected);
    assert_eq!(r.codes, vec!["content-conflict".to_string()]);
    assert!(r.reason.as_deref().unwrap().contains("different content"), "{r:?}");
    // The stored file is untouched.
    assert_eq!(std::fs::read(h.tree().join(fac).join(sp.relative())).unwrap(), bytes);
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM rejections WHERE codes = 'content-conflict'").await, 1);
    h.stop().await;
}

async fn update_renames_current_to_superseded(backend: &Backend) {
    let c = corpus(14, 1, 4, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    // This case also covers the per-file fsync mode (the others run the default, syncfs).
    let h = Harness::start(backend, |c| c.commit.sync = kizuna_store::config::SyncMode::Fsync).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let (v1, bytes) = a_current_file(files, "OMP-01");
    let v2 = later_version(&v1, 60, ConditionFlag::Current);
    let report = h
        .upload(
            &token,
            fac,
            &[BatchFile::new(v1.to_string(), bytes.clone()), BatchFile::new(v2.to_string(), bytes.clone())],
        )
        .await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Stored), "{report:?}");
    let root = h.tree().join(fac);
    let v1_as_2 = StoragePath::of(v1.name.with_flag(ConditionFlag::Superseded));
    assert!(!root.join(v1.relative()).exists(), "old _1 must be gone");
    assert!(root.join(v1_as_2.relative()).exists(), "old version must now be _2");
    assert!(root.join(v2.relative()).exists(), "new version is _1");
    let rows = index_rows(&h.store, fac).await;
    assert_eq!(rows[&v1_as_2.to_string()].1, "2");
    assert_eq!(rows[&v2.to_string()].1, "1");
    assert!(!rows.contains_key(&v1.to_string()));
    // A late arrival older than the current version is stored as _2 directly.
    let v0 = StoragePath::of(
        format!("{}", v1.name)
            .replace(
                &v1.name.timestamp.to_string(),
                &format!("{}000000000", &v1.name.timestamp.to_string()[..8]),
            )
            .parse()
            .unwrap(),
    );
    let report = h.upload(&token, fac, &[BatchFile::new(v0.to_string(), bytes.clone())]).await;
    assert_eq!(report.results[0].status, FileStatus::Stored);
    assert!(root.join(StoragePath::of(v0.name.with_flag(ConditionFlag::Superseded)).relative()).exists());
    assert_index_matches_tree(&h, fac).await;
    h.stop().await;
}

async fn delete_marks_every_version_deleted(backend: &Backend) {
    let c = corpus(15, 1, 4, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let (v1, bytes) = a_current_file(files, "OMP-01");
    let v2 = later_version(&v1, 60, ConditionFlag::Current);
    let del = later_version(&v1, 180, ConditionFlag::Deleted);
    h.upload(
        &token,
        fac,
        &[BatchFile::new(v1.to_string(), bytes.clone()), BatchFile::new(v2.to_string(), bytes.clone())],
    )
    .await;
    let report = h.upload(&token, fac, &[BatchFile::new(del.to_string(), bytes.clone())]).await;
    assert_eq!(report.results[0].status, FileStatus::Stored, "{report:?}");
    let root = h.tree().join(fac);
    let dir = root.join(v1.dir());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(v1.name.order_no.as_str()))
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with("_0")), "every version deleted: {names:?}");
    let rows = index_rows(&h.store, fac).await;
    for n in &names {
        assert_eq!(rows[&format!("{}/{n}", v1.dir().display())].1, "0");
    }
    assert_eq!(
        count(&h.store, "SELECT COUNT(*) FROM records WHERE processing_type = 'DEL'").await,
        1,
        "the delete message is recorded as DEL"
    );
    // The journal holds the renames and the write as one entry.
    let entries = kizuna_store::journal::JournalReader::new(&h.config.journal_dir(), 1).poll(100).unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last.changes.len(), 3, "{last:?}");
    assert_index_matches_tree(&h, fac).await;
    h.stop().await;
}

async fn invalid_files_are_rejected_with_their_codes(backend: &Backend) {
    let c = corpus(16, 1, 6, 13);
    let (fac, _) = c.facilities.iter().next().unwrap();
    let csv = std::fs::read_to_string(c.dir.path().join("bad-files.csv")).unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let mut expected = Vec::new();
    let mut batch = Vec::new();
    for line in csv.lines().skip(1) {
        let mut parts = line.splitn(3, ',');
        let (path, code) = (parts.next().unwrap(), parts.next().unwrap());
        // Two current versions of one key are not an error at the store: the later one supersedes.
        if code == "flag-history" {
            continue;
        }
        let bytes = std::fs::read(c.dir.path().join(path)).unwrap();
        batch.push(BatchFile::new(path.strip_prefix("bad/").unwrap().to_owned(), bytes));
        expected.push(code.to_owned());
    }
    assert!(expected.len() >= 10, "{csv}");
    let report = h.upload(&token, fac, &batch).await;
    for (r, code) in report.results.iter().zip(&expected) {
        assert_eq!(r.status, FileStatus::Rejected, "{}: expected {code}", r.path);
        assert!(r.codes.contains(code), "{}: expected {code}, got {:?}", r.path, r.codes);
        assert!(!r.reason.as_deref().unwrap_or("").is_empty());
    }
    // Nothing written, everything recorded for the admin screen.
    assert!(common::all_files(&h.tree()).is_empty());
    assert_eq!(h.store.journal.last_seq(), 0);
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM rejections").await, expected.len() as i64);
    let by_code =
        count(&h.store, "SELECT CAST(SUM(files) AS BIGINT) FROM site_reject_codes WHERE site = 's'").await;
    assert!(by_code >= expected.len() as i64);
    let (_, metrics) = h.get("/metrics").await;
    assert!(
        metrics.contains("kizuna_upload_rejects_total{site=\"s\",code=\"not-iso-2022-jp\"}"),
        "{metrics}"
    );
    h.stop().await;
}

/// `\X00\` (an HL7 hex escape for NUL) in a drug name and a 4,000-character drug code: both pass
/// the checks, and PostgreSQL refuses a NUL in text and a B-tree key over ~2.7 KB. The search rows
/// must still be written (the upload answered `stored` before them) and a restart must work.
async fn a_nul_or_a_huge_code_in_a_search_field_neither_blocks_uploads_nor_the_restart(backend: &Backend) {
    let c = corpus(17, 1, 4, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let (sp, bytes) = a_current_file(files, "OMP-01");
    let huge: String = (0..4000).map(|i| char::from(b'A' + (i * 7 % 26) as u8)).collect();
    let mut changed = 0;
    let odd = edit_drugs(&bytes, |i, drug| {
        drug[1].push_str("\\X00\\");
        if i == 0 {
            drug[0] = huge.clone();
        }
        changed += 1;
    });
    let report = h.upload(&token, fac, &[BatchFile::new(sp.to_string(), odd)]).await;
    assert_eq!(report.results[0].status, FileStatus::Stored, "{report:?}");
    // The search rows follow the answer; the writer must get them in, not retry for ever.
    tokio::time::timeout(std::time::Duration::from_secs(30), h.store.search_caught_up())
        .await
        .expect("the search rows of a stored file are written");
    assert_eq!(
        count(&h.store, "SELECT COUNT(*) FROM drugs WHERE name LIKE '%\\0%' ESCAPE '!'").await,
        changed as i64,
        "the NUL is kept visibly as \\0"
    );
    // Uploads go on.
    let (other, other_bytes) = a_current_file(files, "ADT-00");
    let report = h.upload(&token, fac, &[BatchFile::new(other.to_string(), other_bytes)]).await;
    assert_eq!(report.results[0].status, FileStatus::Stored, "{report:?}");
    // A restart rebuilds search rows above the watermark; force it to rebuild this one.
    let h = restart_rebuilding_search_rows(h).await;
    assert_index_matches_tree(&h, fac).await;
    h.stop().await;
}

/// `bytes` with each RXE-2 (drug code ^ name ^ …) edited by `edit(index, components)`; the
/// result is still a valid file. Panics if the file has no RXE-2 with a name.
fn edit_drugs(bytes: &[u8], mut edit: impl FnMut(usize, &mut Vec<String>)) -> Vec<u8> {
    let text = ssmix2::hl7::decode_iso2022jp(bytes).unwrap();
    let mut n = 0;
    let segments: Vec<String> = text
        .split('\r')
        .map(|seg| {
            let mut fields: Vec<String> = seg.split('|').map(str::to_owned).collect();
            if fields[0] == "RXE" && fields.len() > 2 {
                let mut parts: Vec<String> = fields[2].split('^').map(str::to_owned).collect();
                if parts.len() >= 2 {
                    edit(n, &mut parts);
                    n += 1;
                    fields[2] = parts.join("^");
                }
            }
            fields.join("|")
        })
        .collect();
    assert!(n > 0, "the file has an RXE segment with a drug name");
    ssmix2::hl7::encode_iso2022jp(&segments.join("\r")).unwrap()
}

/// A value the database refuses in one file's search rows (here a trigger, as a constraint or a
/// size limit would) must not stop the search writer: that file's rows are left out and logged,
/// every other file's rows are written, at once and when rebuilt after a restart.
async fn a_search_row_the_database_refuses_leaves_out_only_that_files_rows(backend: &Backend) {
    let c = corpus(18, 1, 4, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let refuse = match backend {
        Backend::Sqlite => vec![
            "CREATE TRIGGER refuse_test BEFORE INSERT ON drugs WHEN NEW.name LIKE '%REFUSE-ME%' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                .to_owned(),
        ],
        Backend::Postgres(_) => vec![
            "CREATE FUNCTION refuse_test() RETURNS trigger AS $$ BEGIN \
             IF NEW.name LIKE '%REFUSE-ME%' THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql"
                .to_owned(),
            "CREATE TRIGGER refuse_test BEFORE INSERT ON drugs FOR EACH ROW EXECUTE FUNCTION refuse_test()".to_owned(),
        ],
    };
    for sql in &refuse {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&h.store.db.pool).await.unwrap();
    }
    let token = h.add_site("s", &[fac], &[]).await;
    let (sp, bytes) = a_current_file(files, "OMP-01");
    let refused = edit_drugs(&bytes, |_, drug| drug[1].push_str("REFUSE-ME"));
    let mut batch = batch_files(files);
    batch.retain(|f| f.path != sp.to_string());
    batch.push(BatchFile::new(sp.to_string(), refused));
    let report = h.upload(&token, fac, &batch).await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Stored), "{report:?}");
    let drugs_expected = async |h: &Harness| {
        tokio::time::timeout(std::time::Duration::from_secs(30), h.store.search_caught_up())
            .await
            .expect("the search writer gets past a refused row");
        let drugs = count(&h.store, "SELECT COUNT(*) FROM drugs").await;
        let of_refused = count(
            &h.store,
            &format!(
                "SELECT COUNT(*) FROM drugs d JOIN records r ON r.id = d.record_id WHERE r.file_name = '{}'",
                sp.name
            ),
        )
        .await;
        assert_eq!(of_refused, 0, "the refused file has no drug rows");
        assert!(drugs > 0, "every other file's drug rows are written");
        drugs
    };
    let drugs = drugs_expected(&h).await;
    // Rebuilt at start (everything above a reset watermark): the same rows, nothing doubled.
    let h = restart_rebuilding_search_rows(h).await;
    assert_eq!(drugs_expected(&h).await, drugs);
    assert_index_matches_tree(&h, fac).await;
    h.stop().await;
}

/// The index refusing a batch's records (a trigger here; a database gone for longer than the
/// writer's retries alike): the batch fails, its entries stay in the journal and the tree, and
/// the store says it is degraded and takes no more uploads (its applied watermark could not pass
/// them, so the backup would stall behind a healthy-looking store). A restart finishes them.
async fn a_failed_records_write_degrades_the_store_and_a_restart_finishes_the_entries(backend: &Backend) {
    let c = corpus(19, 1, 3, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let (create, drop) = match backend {
        Backend::Sqlite => (
            vec![
                "CREATE TRIGGER refuse_records BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            ],
            vec!["DROP TRIGGER refuse_records"],
        ),
        Backend::Postgres(_) => (
            vec![
                "CREATE FUNCTION refuse_records() RETURNS trigger AS $$ BEGIN \
                 RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_records BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION refuse_records()",
            ],
            vec!["DROP TRIGGER refuse_records ON records"],
        ),
    };
    for sql in create {
        sqlx::query(sql).execute(&h.store.db.pool).await.unwrap();
    }
    let token = h.add_site("s", &[fac], &[]).await;
    let batch = batch_files(files);
    let (status, answer) = h.post_raw(&token, fac, kizuna_wire::encode_batch(&batch)).await;
    assert_eq!(status, 500, "{answer}");
    let (health, body) = h.get("/healthz").await;
    assert_eq!(health, 503, "{body}");
    assert!(body.contains("restart"), "{body}");
    let (status, answer) = h.post_raw(&token, fac, kizuna_wire::encode_batch(&batch)).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "store_degraded", "{answer}");
    for sql in drop {
        sqlx::query(sql).execute(&h.store.db.pool).await.unwrap();
    }
    let (dir, config) = h.stop().await;
    let h = Harness::start_with(dir, config).await;
    assert_eq!(h.get("/healthz").await.0, 200);
    assert_eq!(common::read_tree(&h.tree().join(fac)), *files);
    assert_index_matches_tree(&h, fac).await;
    let report = h.upload(&token, fac, &batch).await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Duplicate), "{report:?}");
    h.stop().await;
}

/// Restarts the store with its search watermark reset, so that the start rebuilds every record's
/// search rows from the tree.
async fn restart_rebuilding_search_rows(h: Harness) -> Harness {
    sqlx::query("UPDATE store_state SET value = 0 WHERE key = 'search_seq'")
        .execute(&h.store.db.pool)
        .await
        .unwrap();
    let (dir, config) = h.stop().await;
    Harness::start_with(dir, config).await
}
