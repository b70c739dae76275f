//! The operator's registry commands against a real linkage database, run as the `kizuna` binary:
//! `kizuna index review list|accept|reject`, `unlink`, `link-to` and `history`. Each change is
//! recorded with `--actor (os:USER)` and `--reason` in the link history and as an audit event in
//! the spool; unknown records, IDs and review items are refused with the library's errors. Before,
//! none of these commands existed: review items stayed open forever and a wrong link could only be
//! undone by hand-written SQL. Also `kizuna consent set`'s argument checks.

use std::path::Path;
use std::process::{Command, Output};

use kizuna_index::{CommonId, Demographics, RecordKey, Registry, Sex};

const A: &str = "0411110089";
const B: &str = "0411710508";

fn person(family: (&str, &str), given: (&str, &str), dob: &str, addr: &str, phone: &str) -> Demographics {
    Demographics {
        family_kanji: family.0.into(),
        given_kanji: given.0.into(),
        family_kana: family.1.into(),
        given_kana: given.1.into(),
        birth_date: Some(dob.into()),
        sex: Some(Sex::Male),
        address: addr.into(),
        phone: phone.into(),
    }
}

fn key(f: &str, p: &str) -> RecordKey {
    RecordKey::new(f, p).unwrap()
}

/// A linkage database on the built-in model with: one review item (same name and birth date at
/// two facilities, nothing else recorded), one auto-linked pair, and a pair of twins (健太/健二)
/// that is a review item, not a link. Returns the review items' ids.
async fn registry(url: &str) -> Vec<i64> {
    let reg = Registry::open(url).await.unwrap();
    let b = kizuna_index::matcher::builtin();
    reg.install_matcher(&b.matcher, &b.report).await.unwrap();
    let lone = person(("佐藤", "サトウ"), ("花男", "ハナオ"), "19600102", "", "");
    reg.enroll(&key(A, "1"), &lone).await.unwrap();
    reg.enroll(&key(B, "1"), &lone).await.unwrap();
    let full =
        person(("菅原", "スガワラ"), ("隆", "タカシ"), "19700303", "気仙沼市南町1-1-1", "0226-22-1111");
    reg.enroll(&key(A, "2"), &full).await.unwrap();
    let linked = reg.enroll(&key(B, "2"), &full).await.unwrap();
    assert!(matches!(linked.outcome, kizuna_index::registry::Outcome::AutoLinked { .. }));
    let addr = "仙台市青葉区一番町1-2-3";
    reg.enroll(
        &key(A, "3"),
        &person(("佐藤", "サトウ"), ("健太", "ケンタ"), "20100505", addr, "022-222-3333"),
    )
    .await
    .unwrap();
    let twin = reg
        .enroll(
            &key(B, "3"),
            &person(("佐藤", "サトウ"), ("健二", "ケンジ"), "20100505", addr, "022-222-3333"),
        )
        .await
        .unwrap();
    assert!(
        matches!(twin.outcome, kizuna_index::registry::Outcome::NewId { ref review } if review.len() == 1),
        "twins are a review item, not a link: {twin:?}"
    );
    let ids = reg.open_reviews(50).await.unwrap().iter().map(|i| i.id).collect();
    reg.db().pool.close().await;
    ids
}

fn kizuna(url: &str, spool: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(args)
        .args(["--index-url", url])
        .args(["--audit-url", "http://127.0.0.1:9/v1/events", "--audit-spool-dir"])
        .arg(spool)
        .env_remove("KIZUNA_INDEX_DATABASE_URL")
        .env("USER", "operator")
        .env_remove("SUDO_USER")
        .output()
        .expect("kizuna runs")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn spooled(spool: &Path) -> Vec<kizuna_audit::AuditEvent> {
    let sender = kizuna_audit::sender::AuditSender::new(spool, "http://127.0.0.1:9/v1/events").unwrap();
    sender
        .pending()
        .unwrap()
        .iter()
        .map(|p| kizuna_audit::AuditEvent::from_json(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

async fn find(url: &str, k: &RecordKey) -> Option<CommonId> {
    let reg = Registry::open(url).await.unwrap();
    let id = reg.find(k).await.unwrap();
    reg.db().pool.close().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_list_accept_and_reject_decide_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("linkage.sqlite").display());
    let spool = dir.path().join("spool");
    let items = registry(&url).await;
    assert_eq!(items.len(), 2, "the lone pair and the twins");

    let list = ok(&kizuna(&url, &spool, &["index", "review", "list"]));
    for id in &items {
        assert!(list.contains(&format!("#{id} ")), "{list}");
    }
    assert!(list.contains(&format!("{B}/1")) && list.contains(&format!("{A}/1")), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&kizuna(&url, &spool, &["index", "review", "list", "--json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let reads = spooled(&spool).len();
    assert!(reads >= 2, "listing names patients: a read event per item");

    // Accept the lone pair (the operator checked: same person), reject the twins.
    let (lone, twins) = (items[0], items[1]);
    let out = ok(&kizuna(
        &url,
        &spool,
        &[
            "index",
            "review",
            "accept",
            &lone.to_string(),
            "--actor",
            "admin-sato",
            "--reason",
            "same person: checked the insurance card",
        ],
    ));
    let a1 = find(&url, &key(A, "1")).await.unwrap();
    assert!(out.contains(a1.as_str()), "{out}");
    assert_eq!(find(&url, &key(B, "1")).await, Some(a1.clone()));
    let twin_id = find(&url, &key(B, "3")).await.unwrap();
    ok(&kizuna(
        &url,
        &spool,
        &["index", "review", "reject", &twins.to_string(), "--actor", "admin-sato", "--reason", "twins"],
    ));
    assert_eq!(find(&url, &key(B, "3")).await, Some(twin_id), "a rejected item moves nothing");
    assert_ne!(find(&url, &key(A, "3")).await, find(&url, &key(B, "3")).await);
    assert_eq!(ok(&kizuna(&url, &spool, &["index", "review", "list"])).trim(), "no open review items");

    // Decided items, unknown items and blank actors are refused with a clear error.
    let err = refused(&kizuna(
        &url,
        &spool,
        &["index", "review", "accept", &lone.to_string(), "--actor", "a", "--reason", "r"],
    ));
    assert!(err.contains(&format!("review item {lone} does not exist or was already decided")), "{err}");
    let err = refused(&kizuna(
        &url,
        &spool,
        &["index", "review", "reject", "999", "--actor", "a", "--reason", "r"],
    ));
    assert!(err.contains("review item 999 does not exist"), "{err}");
    let err =
        refused(&kizuna(&url, &spool, &["index", "review", "accept", "1", "--actor", " ", "--reason", "r"]));
    assert!(err.contains("--actor"), "{err}");

    // The link history says who accepted, with the OS user, and why; the accept is audited.
    let history = ok(&kizuna(&url, &spool, &["index", "history", &format!("{B}/1")]));
    assert!(
        history.contains("admin-sato (os:operator): same person: checked the insurance card"),
        "{history}"
    );
    assert!(history.contains("review"), "{history}");
    let events = spooled(&spool);
    assert!(
        events.iter().any(|e| e.patient_id() == Some(a1.as_str())
            && e.requestor_id() == Some("admin-sato (os:operator)")
            && e.objects[0].details.iter().any(|(k, v)| k == "link" && v.contains("review-accepted"))),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_and_link_to_move_a_record_and_refuse_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("linkage.sqlite").display());
    let spool = dir.path().join("spool");
    registry(&url).await;
    let shared = find(&url, &key(A, "2")).await.unwrap();
    assert_eq!(find(&url, &key(B, "2")).await, Some(shared.clone()));
    let reg = Registry::open(&url).await.unwrap();
    reg.set_consent(&shared, &kizuna_index::ConsentPolicy::All, "clerk", "form").await.unwrap();
    reg.db().pool.close().await;

    // A wrong link split: B/2 gets a new ID of its own, with no consent copied.
    let out = ok(&kizuna(
        &url,
        &spool,
        &["index", "unlink", &format!("{B}/2"), "--actor", "admin-sato", "--reason", "not the same person"],
    ));
    let own = find(&url, &key(B, "2")).await.unwrap();
    assert_ne!(own, shared);
    assert!(out.contains(own.as_str()) && out.contains(shared.as_str()), "{out}");
    assert_eq!(find(&url, &key(A, "2")).await, Some(shared.clone()), "the other record stays");
    let reg = Registry::open(&url).await.unwrap();
    assert_eq!(reg.consent(&own).await.unwrap(), None, "the split-off record has no consent");
    reg.db().pool.close().await;
    let events = spooled(&spool);
    assert!(
        events
            .iter()
            .any(|e| e.patient_id() == Some(own.as_str())
                && e.requestor_id() == Some("admin-sato (os:operator)")),
        "the split is audited: {events:?}"
    );

    // And linked back by hand: the shared ID narrows to the stricter consent.
    let out = ok(&kizuna(
        &url,
        &spool,
        &[
            "index",
            "link-to",
            &format!("{B}/2"),
            shared.as_str(),
            "--actor",
            "admin-sato",
            "--reason",
            "same person after all",
        ],
    ));
    assert!(out.contains("consent now: opt_out"), "{out}");
    assert_eq!(find(&url, &key(B, "2")).await, Some(shared.clone()));
    let history = ok(&kizuna(&url, &spool, &["index", "history", shared.as_str()]));
    for part in ["split", "manual", "same person after all", "not the same person"] {
        assert!(history.contains(part), "{part:?} not in {history}");
    }

    // Unknown records, IDs and malformed arguments: clear errors, nothing changed.
    let err = refused(&kizuna(
        &url,
        &spool,
        &["index", "unlink", &format!("{B}/404"), "--actor", "a", "--reason", "r"],
    ));
    assert!(err.contains(&format!("patient ({B}, 404) is not enrolled")), "{err}");
    let err =
        refused(&kizuna(&url, &spool, &["index", "unlink", "0411710508-2", "--actor", "a", "--reason", "r"]));
    assert!(err.contains("FACILITY/PATIENT_ID"), "{err}");
    let unknown = CommonId::random();
    let err = refused(&kizuna(
        &url,
        &spool,
        &["index", "link-to", &format!("{A}/2"), unknown.as_str(), "--actor", "a", "--reason", "r"],
    ));
    assert!(err.contains(&format!("common health ID {unknown} does not exist")), "{err}");
    let err = refused(&kizuna(&url, &spool, &["index", "history", unknown.as_str()]));
    assert!(err.contains("does not exist"), "{err}");
    let err = refused(&kizuna(&url, &spool, &["index", "history", &format!("{A}/404")]));
    assert!(err.contains("is not enrolled"), "{err}");
    let err = refused(&kizuna(
        &url,
        &spool,
        &["index", "unlink", &format!("{A}/2"), "--actor", "a", "--reason", "  "],
    ));
    assert!(err.contains("--reason"), "{err}");
    assert_eq!(find(&url, &key(A, "2")).await, Some(shared));
}

/// `kizuna consent set` refuses a facility code that cannot exist and a blank `--actor`, naming
/// the argument. Before, `--facility 123` was recorded ("listed: 123") and `--actor " "` passed as
/// "  (os:NAME)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_set_refuses_a_malformed_facility_and_a_blank_actor() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("linkage.sqlite").display());
    let spool = dir.path().join("spool");
    registry(&url).await;
    let id = find(&url, &key(A, "2")).await.unwrap();
    let set = |extra: &[&str]| {
        let mut args = vec!["consent", "set", id.as_str()];
        args.extend_from_slice(extra);
        kizuna(&url, &spool, &args)
    };
    let err = refused(&set(&["--facility", "123", "--actor", "a", "--reason", "r"]));
    assert!(err.contains("--facility \"123\"") && err.contains("10-digit"), "{err}");
    let err = refused(&set(&["--facility", B, "--facility", "04117105O8", "--actor", "a", "--reason", "r"]));
    assert!(err.contains("--facility \"04117105O8\""), "{err}");
    for blank in ["", " ", "\u{3000}"] {
        let err = refused(&set(&["--all", "--actor", blank, "--reason", "r"]));
        assert!(err.contains("--actor is blank"), "{err}");
    }
    let reg = Registry::open(&url).await.unwrap();
    assert_eq!(reg.consent(&id).await.unwrap(), None, "nothing was recorded");
    reg.db().pool.close().await;
    ok(&set(&["--facility", B, "--actor", "clerk-1", "--reason", "form"]));
}
