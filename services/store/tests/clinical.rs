//! What the search rows keep of real SS-MIX2 samples (the NHO validator's `sampleData`), stored by
//! the real store on SQLite and on PostgreSQL: injection drugs (RXC), prescription usage, the
//! route of every RXA, ADT cancels as cancels; and that rows written before these columns existed
//! are filled by re-deriving the search rows (`kizuna reindex`).

use std::sync::Arc;

use kizuna_store::{Config, FacilityId, Store, ingest, sites};
use kizuna_wire::BatchFile;
use sqlx::Row;

const ROOT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/sampleData/");
const ADT22: &str =
    "999/901/9999013/20111120/ADT-22/9999013_20111120_ADT-22_999999999999999_20111220224447339_01_1";
const OMP02: &str =
    "999/901/9999013/20110701/OMP-02/9999013_20110701_OMP-02_123456789012345_20110701224603984_01_1";
const SAMPLES: &[&str] = &[
    ADT22,
    "999/901/9999013/20110701/OMP-01/9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1",
    "999/901/9999013/20110701/OMP-12/9999013_20110701_OMP-12_123456789012345_20110701113813225_01_1",
];

/// The sample `rel` with `from` replaced by `to`, stored as `path`.
fn variant(rel: &str, path: &str, from: &str, to: &str) -> BatchFile {
    let text = ssmix2::hl7::decode_iso2022jp(&std::fs::read(format!("{ROOT}{rel}")).unwrap()).unwrap();
    assert!(text.contains(from), "{from} not in {rel}");
    BatchFile::new(path.to_owned(), ssmix2::hl7::encode_iso2022jp(&text.replace(from, to)).unwrap())
}

fn files() -> Vec<BatchFile> {
    let mut out: Vec<BatchFile> = SAMPLES
        .iter()
        .map(|r| BatchFile::new(r.to_string(), std::fs::read(format!("{ROOT}{r}")).unwrap()))
        .collect();
    // The injection sample dates two of its orders 2009 (ORC-9): the store refuses that, so
    // only the care date is corrected; the RXE/RXC/TQ1 segments are as sent.
    out.push(variant(OMP02, OMP02, "|20090701012410|", "|20110701012410|"));
    // The admission cancelled: the A01 sample as an A11, sent later (same key, so it supersedes it).
    let later = ADT22.replace("20111220224447339", "20111221090000000");
    out.push(variant(ADT22, &later, "ADT^A01^ADT_A01", "ADT^A11^ADT_A09"));
    out
}

async fn open(config: &Config) -> Arc<Store> {
    Store::open(config.clone()).await.expect("open store")
}

async fn strings(store: &Store, sql: &str) -> Vec<String> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&store.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<Option<String>, _>(0).unwrap().unwrap_or_else(|| "NULL".into()))
        .collect()
}

async fn check(config: Config) {
    let store = open(&config).await;
    let fid = FacilityId::new("0411000017").unwrap();
    sites::add_site(&store.db, "site-a", std::slice::from_ref(&fid), &[]).await.unwrap();
    let r = ingest::ingest_batch(&store, "site-a", &fid, files()).await.unwrap();
    assert!(r.results.iter().all(|x| x.status != kizuna_wire::FileStatus::Rejected), "{r:?}");
    store.search_caught_up().await;

    let current_adt = "SELECT e.event || ' ' || e.trigger_event || ' ' || e.event_time FROM encounters e \
                       JOIN records r ON r.id = e.record_id WHERE r.condition_flag = '1'";
    assert_eq!(strings(&store, current_adt).await, ["admission-cancelled A11 201111201600"]);
    let rxc = "SELECT name || ' ' || dose || ' ' || dose_unit || ' ' || route FROM drugs WHERE source = 'RXC' \
               ORDER BY record_id, item_no";
    let rxc = strings(&store, rxc).await;
    assert_eq!(rxc.len(), 6, "{rxc:?}");
    assert!(rxc[0].contains("Ｔ３号輸液５００ｍＬ 1 HON IV"), "{rxc:?}");
    assert_eq!(rxc[1], "アドナ注（静脈用）50mg 1 AMP IV");
    let usage = "SELECT usage_text || ' ' || daily_dose || ' ' || daily_dose_unit || ' ' || total FROM drugs \
                 WHERE name = 'アレピアチン１０倍散'";
    assert_eq!(strings(&store, usage).await, ["内服・経口・１日２回朝夕食後 100 MG 1400"]);
    let rxa = "SELECT route FROM drugs WHERE source = 'RXA' ORDER BY item_no";
    assert_eq!(strings(&store, rxa).await, ["IV", "IV"]);

    // Rows as the store wrote them before: new columns NULL, the cancel labelled an admission.
    for sql in [
        "UPDATE drugs SET usage_text = NULL, daily_dose = NULL",
        "UPDATE encounters SET event = 'admission'",
        "DELETE FROM drugs WHERE source = 'RXC'",
    ] {
        sqlx::query(sql).execute(&store.db.pool).await.unwrap();
    }
    assert_eq!(strings(&store, usage).await, ["NULL"]);
    // `kizuna reindex`: refused on a folder no store ran in (nothing created there) and while the
    // store runs on the data folder, then run with it stopped.
    let elsewhere = Config { data_dir: config.data_dir.with_file_name("typo"), ..config.clone() };
    let err = kizuna_store::reindex(elsewhere.clone()).await.unwrap_err();
    assert!(err.to_string().contains("no store has run here"), "{err}");
    assert!(!elsewhere.data_dir.exists());
    let err = kizuna_store::reindex(config.clone()).await.unwrap_err();
    assert!(matches!(err, kizuna_store::StoreError::DataDirInUse { .. }), "{err}");
    let records = strings(&store, "SELECT CAST(COUNT(*) AS TEXT) FROM records").await;
    store.checkpoint().await.unwrap();
    drop(store);
    let done = kizuna_store::reindex(config.clone()).await.unwrap();
    assert_eq!(done.rebuilt.to_string(), records[0], "every record re-derived");
    let store = open(&config).await;
    store.search_caught_up().await;
    assert_eq!(strings(&store, usage).await, ["内服・経口・１日２回朝夕食後 100 MG 1400"]);
    assert_eq!(strings(&store, current_adt).await, ["admission-cancelled A11 201111201600"]);
    let all = "SELECT source FROM drugs";
    assert_eq!(strings(&store, all).await.len(), 3 + 6 + 3 + 2, "rebuilt once, not doubled");
}

#[tokio::test]
async fn clinical_detail_is_indexed_and_rebuilt_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(Config { data_dir: dir.path().join("data"), ..Config::default() }).await;
}

#[tokio::test]
async fn clinical_detail_is_indexed_and_rebuilt_on_postgres() {
    let Some(server) = kizuna_db::test_postgres_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = kizuna_db::create_test_database(&server, "kizuna_store_test").await;
    check(Config { data_dir: dir.path().join("data"), database_url: url, ..Config::default() }).await;
}
