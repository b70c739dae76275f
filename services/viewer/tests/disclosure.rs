//! The viewer over HTTP on a real store and registry: what each facility sees under the patient's
//! consent, break glass, the original message, and the audit events every search and view leaves
//! in the spool of `kizuna_audit`'s sender.

mod support;

use kizuna_audit::sender::AuditSender;
use kizuna_audit::{AuditEvent, event::EventOutcome};
use kizuna_index::{ConsentPolicy, FacilityCode, Registry};
use kizuna_viewer::access::Role;
use kizuna_viewer::audit::Audit;
use support::*;

/// An outsider's facility code: not in the corpus, no consent.
const OUTSIDER: &str = "0499999999";

fn entries(html: &str) -> usize {
    html.matches("<tr class=\"entry").count()
}

fn entries_of(html: &str, facility: &str) -> usize {
    html.matches(&format!("data-facility=\"{facility}\"")).count()
}

async fn set_consent(c: &Centre, p: &ConsentPolicy) {
    let reg = Registry::open(&c.config.index_database_url).await.unwrap();
    reg.set_consent(&c.patient, p, "clerk-1", "signed consent form").await.unwrap();
}

/// The spooled events, oldest first.
fn spooled(sender: &AuditSender) -> Vec<AuditEvent> {
    sender
        .pending()
        .unwrap()
        .iter()
        .map(|p| AuditEvent::from_json(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn each_facility_sees_what_the_consent_allows_and_searches_and_views_are_audited() {
    let c = centre().await;
    let spool = c.dir.path().join("spool");
    // Nothing listens on port 9: events stay spooled, where the test reads them.
    let sender = AuditSender::new(&spool, "http://127.0.0.1:9/v1/events").unwrap();
    let v = serve(c.config.clone(), Audit::with_sender(sender.clone())).await;
    let [f1, f2, f3] = [&c.facilities[0], &c.facilities[1], &c.facilities[2]];
    let cid = c.patient.as_str();
    let doc1 = v.session(user(f1, "pw-doc1", Role::Physician));
    let doc2 = v.session(user(f2, "pw-doc2", Role::Physician));
    let outsider = v.session(user(OUTSIDER, "pw-out", Role::Physician));

    // No consent on record: each facility sees only its own records; an outsider sees none.
    let (s, page) = v.get(&doc1, &format!("/patients/{cid}")).await;
    assert_eq!(s, 200, "{page}");
    assert!(entries_of(&page, f1) > 0);
    assert_eq!(entries_of(&page, f2) + entries_of(&page, f3), 0, "no consent: nothing from other facilities");
    let (_, page) = v.get(&outsider, &format!("/patients/{cid}")).await;
    assert_eq!(entries(&page), 0);
    assert!(page.contains("id=\"withheld\"") && page.contains("id=\"break-glass\""), "{page}");

    // Consent for facility 1: it sees all three facilities; facility 2 still only its own.
    let listed = ConsentPolicy::Listed([FacilityCode::parse(f1).unwrap()].into());
    set_consent(&c, &listed).await;
    let (_, page) = v.get(&doc1, &format!("/patients/{cid}")).await;
    for f in [f1, f2, f3] {
        assert!(entries_of(&page, f) > 0, "facility {f} missing from the consented view");
    }
    let total = entries(&page);
    assert!(page.contains("(by consent)"), "{page}");
    // Prescriptions show drug, dose and days; labs value, unit, range and flag.
    assert!(page.contains("<tr class=\"drug\">"), "no prescription rows");
    assert!(page.contains("<tr class=\"lab\">"), "no lab rows");
    let (_, page2) = v.get(&doc2, &format!("/patients/{cid}")).await;
    assert!(entries_of(&page2, f2) > 0);
    assert_eq!(entries_of(&page2, f1) + entries_of(&page2, f3), 0);
    let (_, page) = v.get(&outsider, &format!("/patients/{cid}")).await;
    assert_eq!(entries(&page), 0, "a facility without consent sees nothing");

    // Filters: one data type, one facility.
    let (_, page) = v.get(&doc1, &format!("/patients/{cid}?kind=OMP-01&facility={f3}")).await;
    assert!(entries(&page) > 0 && entries(&page) < total);
    assert_eq!(entries(&page), page.matches("kind-OMP-01").count());
    assert_eq!(entries_of(&page, f1) + entries_of(&page, f2), 0);

    // The calendar shows which facility recorded what.
    let (s, cal) = v.get(&doc1, &format!("/patients/{cid}/calendar")).await;
    assert_eq!(s, 200);
    assert!(cal.contains("id=\"calendar\"") && cal.contains("class=\"chip\""), "{cal}");
    let (s, _) = v.get(&doc1, &format!("/patients/{cid}/calendar?month=2024-13")).await;
    assert_eq!(s, 400);

    // Opt-out withdraws it again.
    set_consent(&c, &ConsentPolicy::OptOut).await;
    let (_, page) = v.get(&doc1, &format!("/patients/{cid}")).await;
    assert_eq!(entries_of(&page, f2) + entries_of(&page, f3), 0, "opt-out");

    // Search by local ID at the user's own facility, and by common ID.
    let local = &c.patient_keys.iter().find(|k| &k.facility == f2).unwrap().local_id;
    let (s, _) = v.get(&doc2, &format!("/search?by=local&q={local}")).await;
    assert_eq!(s, 303);
    let (s, _) = v.get(&doc1, &format!("/search?by=local&q={local}")).await;
    // The same local ID is another patient (or nobody) at facility 1, never this one by accident.
    assert!(s == 404 || s == 303);
    let (s, page) = v.get(&doc1, "/search?by=common&q=KZ000000000000").await;
    assert_eq!(s, 404, "{page}");
    assert!(page.contains("id=\"message\""));

    // Audit: every search and view is in the spool, with the user's pairwise ID and the patient.
    let events = spooled(&sender);
    let views: Vec<_> = events.iter().filter(|e| e.event.id.code == "110110").collect();
    assert!(views.len() >= 8, "{} patient views", views.len());
    assert!(views.iter().all(|e| e.patient_id() == Some(cid)));
    assert!(views.iter().any(|e| e.requestor_id() == Some("pw-out")), "the refused view is audited too");
    let queries: Vec<_> = events.iter().filter(|e| e.event.id.code == "110112").collect();
    assert_eq!(queries.len(), 3, "every search is audited");
    assert!(
        queries.iter().any(|e| e.event.outcome == EventOutcome::MinorFailure),
        "a search that found nothing"
    );
    assert!(!views.iter().any(|e| e.is_break_glass()));
}

#[tokio::test]
async fn break_glass_needs_a_reason_and_a_csrf_token_opens_the_record_and_is_flagged() {
    let c = centre().await;
    let spool = c.dir.path().join("spool");
    let sender = AuditSender::new(&spool, "http://127.0.0.1:9/v1/events").unwrap();
    let v = serve(c.config.clone(), Audit::with_sender(sender.clone())).await;
    let cid = c.patient.as_str();
    let er = v.session(user(OUTSIDER, "pw-er", Role::Physician));
    let pharmacist = v.session(user(OUTSIDER, "pw-ph", Role::Pharmacist));
    let path = format!("/patients/{cid}/break-glass");

    let (s, _) = v.post(&er, &path, &[("csrf", "forged"), ("reason", "unconscious")]).await;
    assert_eq!(s, 403, "a forged CSRF token is refused");
    let csrf = v.csrf(&er);
    let (s, _) = v.post(&er, &path, &[("csrf", &csrf), ("reason", "   ")]).await;
    assert_eq!(s, 400, "the reason is mandatory");
    let csrf_ph = v.csrf(&pharmacist);
    let (s, _) = v.post(&pharmacist, &path, &[("csrf", &csrf_ph), ("reason", "x")]).await;
    assert_eq!(s, 403, "pharmacists do not break glass");
    let (_, page) = v.get(&er, &format!("/patients/{cid}")).await;
    assert_eq!(entries(&page), 0);

    let (s, _) = v.post(&er, &path, &[("csrf", &csrf), ("reason", "unconscious in the ER")]).await;
    assert_eq!(s, 303);
    let (_, page) = v.get(&er, &format!("/patients/{cid}")).await;
    assert!(entries(&page) > 0, "break glass opens every facility's records");
    assert!(page.contains("id=\"break-glass-active\"") && page.contains("unconscious in the ER"));
    for f in &c.facilities {
        assert!(entries_of(&page, f) > 0);
    }
    // The grant is personal: a colleague at the same facility still sees nothing.
    let colleague = v.session(user(OUTSIDER, "pw-er2", Role::Nurse));
    let (_, page2) = v.get(&colleague, &format!("/patients/{cid}")).await;
    assert_eq!(entries(&page2), 0);

    // The original message of a shown record opens; another patient's record does not.
    let rec = page.split("/records/").nth(1).unwrap().split('"').next().unwrap();
    let (s, msg) = v.get(&er, &format!("/patients/{cid}/records/{rec}")).await;
    assert_eq!(s, 200, "{msg}");
    assert!(msg.contains("MSH|^~\\&amp;|") && msg.contains("PID|"), "{msg}");
    let other = v.session(user(OUTSIDER, "pw-other", Role::Physician));
    let (s, _) = v.get(&other, &format!("/patients/{cid}/records/{rec}")).await;
    assert_eq!(s, 404, "without access the record does not exist");
    let (s, _) = v.get(&er, &format!("/patients/{}/records/{rec}", c.other)).await;
    assert_eq!(s, 404, "a record is opened only under its own patient");

    let events = spooled(&sender);
    let overrides: Vec<_> = events.iter().filter(|e| e.event.id.code == "110113").collect();
    // The forged CSRF token and the pharmacist's try are audited as refused attempts.
    assert_eq!(overrides.iter().filter(|e| e.event.outcome == EventOutcome::MinorFailure).count(), 2);
    let started: Vec<_> = overrides.iter().filter(|e| e.event.outcome == EventOutcome::Success).collect();
    assert_eq!(started.len(), 1);
    assert!(started[0].is_break_glass());
    assert_eq!(started[0].patient_id(), Some(cid));
    let flagged: Vec<_> =
        events.iter().filter(|e| e.event.id.code == "110110" && e.is_break_glass()).collect();
    assert_eq!(flagged.len(), 2, "the time series and the original message under break glass");
    assert!(flagged.iter().all(|e| e.requestor_id() == Some("pw-er")));
}

/// An override of a well-formed but unknown patient opens nothing and is audited as the failed
/// attempt it was, never as a successful emergency override.
#[tokio::test]
async fn break_glass_on_an_unknown_patient_is_audited_as_a_failure() {
    let c = centre().await;
    let spool = c.dir.path().join("spool");
    let sender = AuditSender::new(&spool, "http://127.0.0.1:9/v1/events").unwrap();
    let v = serve(c.config.clone(), Audit::with_sender(sender.clone())).await;
    let er = v.session(user(OUTSIDER, "pw-er", Role::Physician));
    let csrf = v.csrf(&er);
    let unknown = "KZ123456789015";
    assert!(kizuna_index::CommonId::parse(unknown).is_ok(), "the test needs a well-formed ID");
    let path = format!("/patients/{unknown}/break-glass");
    let (s, page) = v.post(&er, &path, &[("csrf", &csrf), ("reason", "testing an unknown patient")]).await;
    assert_eq!(s, 404, "{page}");

    let events = spooled(&sender);
    let overrides: Vec<_> = events.iter().filter(|e| e.event.id.code == "110113").collect();
    assert_eq!(overrides.len(), 1, "one event for the attempt");
    assert_eq!(overrides[0].patient_id(), Some(unknown));
    assert_eq!(overrides[0].event.outcome, EventOutcome::MinorFailure, "a refused override is not a success");
}

#[tokio::test]
async fn without_a_session_every_page_sends_the_browser_to_login() {
    let c = centre().await;
    let v = serve(c.config.clone(), Audit::log_only()).await;
    for p in ["/", &format!("/patients/{}", c.patient), "/search?q=x"] {
        let (s, _) = v.get("kizuna_viewer=bogus", p).await;
        assert_eq!(s, 303, "{p}");
    }
    let auditor = v.session(user(&c.facilities[0], "pw-aud", Role::Auditor));
    let (s, _) = v.get(&auditor, &format!("/patients/{}", c.patient)).await;
    assert_eq!(s, 403, "auditors use the audit UI, not the viewer");
}

#[tokio::test]
async fn patient_and_login_pages_are_not_cached_or_framed() {
    let c = centre().await;
    let v = serve(c.config.clone(), Audit::log_only()).await;
    let cid = c.patient.as_str();
    let doc = v.session(user(&c.facilities[0], "pw-doc", Role::Physician));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, cookie) in [(format!("/patients/{cid}"), doc.as_str()), ("/login".to_owned(), "")] {
        let r = http.get(format!("{}{path}", v.base)).header("cookie", cookie).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn withdrawn_records_do_not_open() {
    let c = centre().await;
    let v = serve(c.config.clone(), Audit::log_only()).await;
    let cid = c.patient.as_str();
    let doc = v.session(user(&c.facilities[0], "pw-doc", Role::Physician));
    // A record of this patient that the facility withdrew (condition flag 0) is gone from the
    // time series and cannot be opened by its id either.
    let (_, page) = v.get(&doc, &format!("/patients/{cid}")).await;
    let rec: i64 = page.split("/records/").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    let (s, _) = v.get(&doc, &format!("/patients/{cid}/records/{rec}")).await;
    assert_eq!(s, 200);
    sqlx::query("UPDATE records SET condition_flag = '0' WHERE id = $1")
        .bind(rec)
        .execute(&v.viewer.store.pool)
        .await
        .unwrap();
    let (_, page) = v.get(&doc, &format!("/patients/{cid}")).await;
    assert!(!page.contains(&format!("/records/{rec}\"")), "a withdrawn record is not listed");
    let (s, _) = v.get(&doc, &format!("/patients/{cid}/records/{rec}")).await;
    assert_eq!(s, 404, "a withdrawn record does not open");
}

/// Probing IDs through URLs leaves the same trail as probing them through search: an unknown
/// patient on the time series, calendar or original message, a record outside the user's view,
/// and a break glass refused for the role or by the CSRF check are each audited with outcome 4.
#[tokio::test]
async fn probes_of_unknown_patients_hidden_records_and_refused_overrides_are_audited() {
    let c = centre().await;
    let spool = c.dir.path().join("spool");
    let sender = AuditSender::new(&spool, "http://127.0.0.1:9/v1/events").unwrap();
    let v = serve(c.config.clone(), Audit::with_sender(sender.clone())).await;
    let cid = c.patient.as_str();
    let doc = v.session(user(&c.facilities[0], "pw-doc", Role::Physician));
    let outsider = v.session(user(OUTSIDER, "pw-out", Role::Physician));
    let pharmacist = v.session(user(OUTSIDER, "pw-ph", Role::Pharmacist));
    let unknown = kizuna_index::CommonId::random();
    let unknown = unknown.as_str();
    // A record the physician sees, which the outsider may not.
    let (_, page) = v.get(&doc, &format!("/patients/{cid}")).await;
    let rec = page.split("/records/").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let before = spooled(&sender).len();

    for path in [
        format!("/patients/{unknown}"),
        format!("/patients/{unknown}/calendar"),
        format!("/patients/{unknown}/records/{rec}"),
        format!("/patients/{cid}/records/{rec}"),
        format!("/patients/{cid}/records/999999999"),
    ] {
        let (s, _) = v.get(&outsider, &path).await;
        assert_eq!(s, 404, "{path}");
    }
    let (s, _) = v
        .post(&outsider, &format!("/patients/{cid}/break-glass"), &[("csrf", "forged"), ("reason", "probe")])
        .await;
    assert_eq!(s, 403);
    let csrf = v.csrf(&pharmacist);
    let (s, _) = v
        .post(&pharmacist, &format!("/patients/{cid}/break-glass"), &[("csrf", &csrf), ("reason", "x")])
        .await;
    assert_eq!(s, 403);

    let events = spooled(&sender);
    let new = &events[before..];
    assert_eq!(new.len(), 7, "one event per probe: {new:?}");
    assert!(new.iter().all(|e| e.event.outcome == EventOutcome::MinorFailure), "{new:?}");
    let reads: Vec<_> = new.iter().filter(|e| e.event.id.code == "110110").collect();
    assert_eq!(reads.len(), 5);
    assert_eq!(reads.iter().filter(|e| e.patient_id() == Some(unknown)).count(), 3);
    assert_eq!(reads.iter().filter(|e| e.patient_id() == Some(cid)).count(), 2);
    assert!(reads.iter().all(|e| e.requestor_id() == Some("pw-out")));
    let overrides: Vec<_> = new.iter().filter(|e| e.event.id.code == "110113").collect();
    assert_eq!(overrides.len(), 2);
    assert!(overrides.iter().any(|e| e.requestor_id() == Some("pw-ph")));
    assert!(overrides.iter().all(|e| e.patient_id() == Some(cid)));
}
