//! Disclosure control against a real SQLite file and a real PostgreSQL database: consent records and
//! their history, the rule applied per holding facility, and break-glass grants.

use kizuna_index::registry::Registry;
use kizuna_index::{Access, CommonId, ConsentPolicy, Demographics, FacilityCode, RecordKey, Sex};

struct Fresh {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh database: SQLite in a tempdir, or a new database on `KIZUNA_TEST_POSTGRES_URL`.
async fn fresh(postgres: bool) -> Option<Fresh> {
    if !postgres {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("index.db").display());
        return Some(Fresh { url, _dir: Some(dir) });
    }
    let url = kizuna_db::fresh_test_postgres("kizuna_consent_test").await?;
    Some(Fresh { url, _dir: None })
}

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = super::fresh(false).await.unwrap();
                super::$name(&db.url).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) = super::fresh(true).await {
                    super::$name(&db.url).await;
                }
            }
        }
    )+};
}

on_both_backends!(
    consent_is_replaced_and_its_history_kept,
    a_user_sees_other_facilities_only_as_consent_allows,
    break_glass_needs_a_reason_opens_access_and_is_kept,
    linking_a_record_into_a_more_permissive_id_keeps_the_stricter_consent,
    a_record_split_off_to_a_new_id_starts_with_no_consent,
    an_auto_linked_record_joins_under_the_stricter_consent,
    every_consent_change_and_consent_read_is_an_audit_event,
    a_move_between_common_ids_is_found_under_both,
);

/// One enrolled patient (no matcher: a new common ID).
async fn patient(reg: &Registry) -> CommonId {
    enrolled(reg, "0411000017", "P1").await
}

/// A patient of `facility` enrolled with a new common ID of their own (no matcher).
async fn enrolled(reg: &Registry, facility: &str, local_id: &str) -> CommonId {
    let d = Demographics {
        family_kanji: "佐藤".into(),
        given_kanji: "花子".into(),
        family_kana: "サトウ".into(),
        given_kana: "ハナコ".into(),
        birth_date: Some("19600102".into()),
        sex: Some(Sex::Female),
        address: "宮城県仙台市青葉区一番町1-1".into(),
        phone: String::new(),
    };
    reg.enroll(&RecordKey::new(facility, local_id).unwrap(), &d).await.unwrap().common_id
}

fn listed(fs: &[&str]) -> ConsentPolicy {
    ConsentPolicy::Listed(fs.iter().map(|f| FacilityCode::parse(f).unwrap()).collect())
}

async fn consent_is_replaced_and_its_history_kept(url: &str) {
    let reg = Registry::open(url).await.unwrap();
    let id = patient(&reg).await;
    assert_eq!(reg.consent(&id).await.unwrap(), None, "no consent until one is recorded");
    reg.set_consent(&id, &ConsentPolicy::All, "clerk-1", "signed form 2026-11-01").await.unwrap();
    let l = listed(&["0411000025", "0411000033"]);
    reg.set_consent(&id, &l, "clerk-2", "patient narrowed consent").await.unwrap();
    let now = reg.consent(&id).await.unwrap().unwrap();
    assert_eq!(now.policy, l);
    assert_eq!(now.recorded_by, "clerk-2");
    reg.set_consent(&id, &ConsentPolicy::OptOut, "clerk-1", "opt-out letter").await.unwrap();
    let h = reg.consent_history(&id).await.unwrap();
    let seen: Vec<_> = h.iter().map(|e| (e.policy.clone(), e.actor.as_str(), e.reason.as_str())).collect();
    assert_eq!(
        seen,
        vec![
            (ConsentPolicy::All, "clerk-1", "signed form 2026-11-01"),
            (l, "clerk-2", "patient narrowed consent"),
            (ConsentPolicy::OptOut, "clerk-1", "opt-out letter"),
        ]
    );
    // No reason, no change; an unknown ID is refused.
    assert!(reg.set_consent(&id, &ConsentPolicy::All, "clerk-1", " ").await.is_err());
    assert_eq!(reg.consent(&id).await.unwrap().unwrap().policy, ConsentPolicy::OptOut);
    let unknown = CommonId::random();
    assert!(reg.set_consent(&unknown, &ConsentPolicy::All, "clerk-1", "x").await.is_err());
}

async fn a_user_sees_other_facilities_only_as_consent_allows(url: &str) {
    let reg = Registry::open(url).await.unwrap();
    let id = patient(&reg).await;
    let d = reg.disclosure(&id, "0411000025", "doc-b").await.unwrap();
    assert_eq!(d.access("0411000017"), Access::Denied, "no consent: nothing from other facilities");
    assert_eq!(d.access("0411000025"), Access::OwnFacility);
    reg.set_consent(&id, &listed(&["0411000025"]), "clerk", "form").await.unwrap();
    let d = reg.disclosure(&id, "0411000025", "doc-b").await.unwrap();
    assert_eq!(d.access("0411000017"), Access::Consent);
    let other = reg.disclosure(&id, "0411000033", "doc-c").await.unwrap();
    assert_eq!(other.access("0411000017"), Access::Denied, "an unlisted facility sees nothing");
    reg.set_consent(&id, &ConsentPolicy::OptOut, "clerk", "opt out").await.unwrap();
    let d = reg.disclosure(&id, "0411000025", "doc-b").await.unwrap();
    assert_eq!(d.access("0411000017"), Access::Denied, "opt-out withdraws the earlier consent");
}

async fn break_glass_needs_a_reason_opens_access_and_is_kept(url: &str) {
    let reg = Registry::open(url).await.unwrap();
    let id = patient(&reg).await;
    reg.set_consent(&id, &ConsentPolicy::OptOut, "clerk", "opt out").await.unwrap();
    assert!(reg.break_glass(&id, "0411000033", "doc-c", "", 30).await.is_err(), "a reason is mandatory");
    assert!(reg.break_glass(&id, "0411000033", "doc-c", "unconscious", 0).await.is_err());
    assert!(reg.break_glass(&id, "04-bad", "doc-c", "unconscious", 30).await.is_err());
    let g = reg.break_glass(&id, "0411000033", "doc-c", "unconscious in ER", 30).await.unwrap();
    assert_eq!(g.reason, "unconscious in ER");
    let d = reg.disclosure(&id, "0411000033", "doc-c").await.unwrap();
    assert_eq!(d.access("0411000017"), Access::BreakGlass);
    assert_eq!(d.break_glass.as_ref().map(|b| b.id), Some(g.id));
    // The grant is personal: a colleague at the same facility is still refused.
    let colleague = reg.disclosure(&id, "0411000033", "nurse-c").await.unwrap();
    assert_eq!(colleague.access("0411000017"), Access::Denied);
    let h = reg.break_glass_history(&id).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].user, "doc-c");
}

async fn linking_a_record_into_a_more_permissive_id_keeps_the_stricter_consent(url: &str) {
    let reg = Registry::open(url).await.unwrap();
    let p = RecordKey::new("0411000017", "P1").unwrap();
    let x = enrolled(&reg, "0411000017", "P1").await;
    let y = enrolled(&reg, "0411000025", "Q1").await;
    reg.set_consent(&x, &ConsentPolicy::OptOut, "clerk-1", "opt-out letter").await.unwrap();
    reg.set_consent(&y, &ConsentPolicy::All, "clerk-2", "signed form").await.unwrap();
    reg.link(&p, &y, "admin-sato", "same person: confirmed by phone").await.unwrap();
    let now = reg.consent(&y).await.unwrap().unwrap();
    assert_eq!(now.policy, ConsentPolicy::OptOut, "P's opt-out goes with P");
    assert_eq!(now.recorded_by, "admin-sato");
    let last = reg.consent_history(&y).await.unwrap().pop().unwrap();
    assert_eq!((last.policy, last.actor.as_str()), (ConsentPolicy::OptOut, "admin-sato"));
    for part in ["manual link", "0411000017/P1", x.as_str(), y.as_str(), "same person: confirmed by phone"] {
        assert!(last.reason.contains(part), "{part:?} not in {:?}", last.reason);
    }
    let d = reg.disclosure(&y, "0411000033", "doc-c").await.unwrap();
    assert_eq!(d.access("0411000017"), Access::Denied, "F1's records stay with F1");
    assert_eq!(d.access("0411000025"), Access::Denied, "the joined ID's other records too");

    // A record with no consent on record shares nothing: joining it to a permissive ID shares
    // nothing either. Joining an equally strict one changes nothing.
    let r = RecordKey::new("0411000041", "R1").unwrap();
    enrolled(&reg, "0411000041", "R1").await;
    let z = enrolled(&reg, "0411000058", "S1").await;
    reg.set_consent(&z, &listed(&["0411000033"]), "clerk-2", "form").await.unwrap();
    reg.link(&r, &z, "admin-sato", "same person").await.unwrap();
    assert_eq!(reg.consent(&z).await.unwrap().unwrap().policy, ConsentPolicy::OptOut);
    let d = reg.disclosure(&z, "0411000033", "doc-c").await.unwrap();
    assert_eq!(d.access("0411000041"), Access::Denied);
    let events = reg.consent_history(&y).await.unwrap().len();
    reg.link(&r, &y, "admin-sato", "moved again").await.unwrap();
    assert_eq!(reg.consent_history(&y).await.unwrap().len(), events, "already as strict: no event");
}

/// A split is how a wrong link is undone (twins, a clerk's mix-up): the old ID's consent was given
/// by, or for, the *other* person, so the split-off record must not carry it. Its new ID starts with
/// no consent on record: nothing leaves the holding facility until a clerk records the patient's own.
async fn a_record_split_off_to_a_new_id_starts_with_no_consent(url: &str) {
    let reg = Registry::open(url).await.unwrap();
    let p = RecordKey::new("0411000025", "Q1").unwrap();
    let x = enrolled(&reg, "0411000017", "P1").await;
    enrolled(&reg, "0411000025", "Q1").await;
    reg.link(&p, &x, "admin-sato", "same person").await.unwrap();
    let l = listed(&["0411000033"]);
    reg.set_consent(&x, &l, "clerk-1", "form").await.unwrap();
    let own = reg.unlink(&p, "admin-sato", "not the same person").await.unwrap();
    assert_eq!(reg.consent(&own).await.unwrap(), None, "the other person's consent is not copied");
    assert!(reg.consent_history(&own).await.unwrap().is_empty());
    assert_eq!(reg.consent(&x).await.unwrap().map(|c| c.policy), Some(l.clone()), "X keeps its own");
    let d = reg.disclosure(&own, "0411000033", "doc-c").await.unwrap();
    assert_eq!(d.access("0411000025"), Access::Denied, "listed on X, but not on the split-off ID");
    assert_eq!(d.access("0411000033"), Access::OwnFacility);
}

/// An auto-link is a move into an ID like any other: the record had no consent (no ID) of its own,
/// so the ID it joins narrows to the stricter of the two (`opt_out`), with a consent event and an
/// audit event by the matcher, exactly as a manual link does. Before, the new record silently took
/// the ID's `all` and was shown to every facility.
async fn an_auto_linked_record_joins_under_the_stricter_consent(url: &str) {
    let (reg, emitter, _spool) = spooling(url).await;
    let sender = emitter.sender().unwrap();
    let b = &kizuna_index::matcher::builtin();
    reg.install_matcher(&b.matcher, &b.report).await.unwrap();
    let x = enrolled(&reg, "0411000017", "P1").await;
    reg.set_consent(&x, &ConsentPolicy::All, "clerk-1", "form signed at F1").await.unwrap();
    let n = spooled(sender).len();
    let again = enrolled(&reg, "0411000025", "Q1").await;
    assert_eq!(again, x, "the same person at a second facility is auto-linked");
    let c = reg.consent(&x).await.unwrap().unwrap();
    assert_eq!(c.policy, ConsentPolicy::OptOut, "no consent was recorded at F2");
    assert_eq!(c.recorded_by, "matcher");
    for part in ["0411000025/Q1", x.as_str(), "all", "stricter"] {
        assert!(c.reason.contains(part), "{part:?} not in {:?}", c.reason);
    }
    assert_eq!(reg.consent_history(&x).await.unwrap().len(), 2);
    let d = reg.disclosure(&x, "0411000033", "doc-c").await.unwrap();
    assert_eq!(d.access("0411000025"), Access::Denied, "F2's records stay with F2");
    let events = spooled(sender);
    let changes: Vec<_> = events[n..].iter().filter_map(|e| consent_detail(e, &x)).collect();
    assert_eq!(changes, ["all -> opt_out"], "the narrowing is audited");
}

/// A registry whose audit events stay in a spool (nothing listens on port 9), where the test
/// reads them; the spool folder lives as long as the returned guard.
async fn spooling(url: &str) -> (Registry, kizuna_audit::emitter::AuditEmitter, tempfile::TempDir) {
    let spool = tempfile::tempdir().unwrap();
    let cfg = kizuna_audit::emitter::SenderConfig {
        url: "http://127.0.0.1:9/v1/events".into(),
        spool_dir: spool.path().into(),
        ..Default::default()
    };
    let emitter = kizuna_audit::emitter::AuditEmitter::from_config_no_delivery(&cfg).unwrap();
    (Registry::open(url).await.unwrap().with_audit(emitter.clone()), emitter, spool)
}

/// The audit events spooled by `sender`, oldest first.
fn spooled(sender: &kizuna_audit::sender::AuditSender) -> Vec<kizuna_audit::AuditEvent> {
    let files = sender.pending().unwrap();
    files.iter().map(|p| kizuna_audit::AuditEvent::from_json(&std::fs::read(p).unwrap()).unwrap()).collect()
}

/// The consent detail of a Patient Record update about `id`, if the event is one.
fn consent_detail(e: &kizuna_audit::AuditEvent, id: &CommonId) -> Option<String> {
    let o = e.objects.iter().find(|o| o.id == id.as_str())?;
    o.details.iter().find(|(k, _)| k == "consent").map(|(_, v)| v.clone())
}

async fn every_consent_change_and_consent_read_is_an_audit_event(url: &str) {
    let (reg, emitter, _spool) = spooling(url).await;
    let sender = emitter.sender().unwrap();
    let x = enrolled(&reg, "0411000017", "P1").await;
    let y = enrolled(&reg, "0411000025", "Q1").await;
    let before = spooled(sender).len();

    // A clerk's change: who, the consent before and after, and why.
    reg.set_consent(&x, &ConsentPolicy::OptOut, "clerk-1", "opt-out letter").await.unwrap();
    reg.set_consent(&y, &ConsentPolicy::All, "clerk-2", "signed form").await.unwrap();
    let events = spooled(sender);
    let changes: Vec<_> = events[before..].iter().filter_map(|e| Some((e, consent_detail(e, &y)?))).collect();
    assert_eq!(changes.len(), 1, "one event for Y's change");
    let (e, detail) = &changes[0];
    assert_eq!(detail, "none on record -> all");
    assert_eq!(e.requestor_id(), Some("clerk-2"));
    assert_eq!(e.patient_id(), Some(y.as_str()));
    assert!(e.objects[0].details.iter().any(|(k, v)| k == "reason" && v == "signed form"));

    // A link that narrows Y's consent is a consent change too, by the admin who linked.
    let n = spooled(sender).len();
    reg.link(&RecordKey::new("0411000017", "P1").unwrap(), &y, "admin-sato", "same person").await.unwrap();
    let events = spooled(sender);
    let narrowed: Vec<_> = events[n..].iter().filter_map(|e| Some((e, consent_detail(e, &y)?))).collect();
    assert_eq!(narrowed.len(), 1, "the narrowing is audited");
    assert_eq!(narrowed[0].1, "all -> opt_out");
    assert_eq!(narrowed[0].0.requestor_id(), Some("admin-sato"));

    // Showing the consent (with its history and break-glass grants) is a read of the patient.
    let n = spooled(sender).len();
    reg.audit_consent_shown(&y, "os:clerk").await;
    let events = spooled(sender);
    assert_eq!(events.len(), n + 1);
    assert_eq!(events[n].patient_id(), Some(y.as_str()));
    assert_eq!(events[n].requestor_id(), Some("os:clerk"));
}

/// A manual link or an unlink moves a record between two common IDs: the audit trail has an
/// event about each, so a search by either ID (the audit log indexes one patient per event) finds
/// the move. Before, the link named only the new ID and the unlink only the old one.
async fn a_move_between_common_ids_is_found_under_both(url: &str) {
    let (reg, emitter, _spool) = spooling(url).await;
    let sender = emitter.sender().unwrap();
    let p = RecordKey::new("0411000017", "P1").unwrap();
    let x = enrolled(&reg, "0411000017", "P1").await;
    let y = enrolled(&reg, "0411000025", "Q1").await;

    let n = spooled(sender).len();
    reg.link(&p, &y, "admin-sato", "same person").await.unwrap();
    let events = spooled(sender);
    let about = |id: &CommonId| events[n..].iter().filter(|e| e.patient_id() == Some(id.as_str())).count();
    assert_eq!((about(&x), about(&y)), (1, 1), "the link is found under the old and the new ID");
    let out = events[n..].iter().find(|e| e.patient_id() == Some(x.as_str())).unwrap();
    assert!(out.objects[0].details.iter().any(|(k, v)| k == "to" && v == y.as_str()));

    let n = events.len();
    let own = reg.unlink(&p, "admin-sato", "not the same person").await.unwrap();
    let events = spooled(sender);
    let about = |id: &CommonId| events[n..].iter().filter(|e| e.patient_id() == Some(id.as_str())).count();
    assert_eq!((about(&y), about(&own)), (1, 1), "the unlink is found under the old and the new ID");
}
