//! Enrollment and views end to end: a real registry (TLS on loopback, SQLite or PostgreSQL)
//! and netd's real client code (`netd::registry`), each site in its own temporary state.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use kizuna_registry::{policies, sites};
use netd::registry::RegistryError as ClientError;
use netd::registry::client::Client;
use netd::registry::enrollment::view_policy;
use netd::registry::view::SignedView;
use netd::registry::watch::{self, Polled};

mod support;
use support::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

async fn enrolls_over_pinned_tls(database_url: Option<String>) {
    let c = Centre::start(database_url).await;
    let centre = Site::new("centre");
    let e = centre.enroll(&c.token("centre", 3600).await).await.unwrap();
    assert_eq!(e.segments, ["conference", "reference", "upload"]);
    assert!(e.view_version.is_some(), "the centre gets its view at once: {e:?}");
    let kita = Site::new("kita-hospital");
    let e = kita.enroll(&c.token("kita-hospital", 3600).await).await.unwrap();
    assert_eq!(e.segments, ["conference", "radiology", "reference", "upload"]);
    // Private keys and the credential stay on the appliance, mode 0600.
    for seg in ["conference", "radiology", "reference", "upload"] {
        assert_eq!(mode(&kita.cfg.key_dir.join(format!("{seg}.key"))), 0o600);
    }
    assert_eq!(mode(&kita.cfg.enrollment_path()), 0o600);
    // The view holds this site's own public keys and the centre as its peer.
    let (_, view) = kita.view();
    let me = view.sites.iter().find(|s| s.name.as_str() == "kita-hospital").unwrap();
    let local = netd::keys::load_or_generate(&kita.cfg.key_dir, &"reference".parse().unwrap()).unwrap();
    assert_eq!(me.keys[&"reference".parse().unwrap()], local.public());
    assert_eq!(kita.peers(), ["centre"]);
    // The radiology group has one enrolled member: not in the view yet.
    assert!(view.closed_groups.is_empty());
    // The registry lists the site as enrolled, its keys, and where it came from.
    let list = sites::list(&c.db).await.unwrap();
    let row = list.iter().find(|s| s.name == "kita-hospital").unwrap();
    assert_eq!(row.status, "enrolled");
    assert_eq!(row.observed_endpoint.as_deref(), Some("127.0.0.1"));
    assert_eq!(row.keys.len(), 4);
    assert_eq!(row.keys["reference"], local.public().to_string());
    // No private key or credential in the registry's database.
    let priv_b64 = local.wireguard_key().to_base64();
    let dump = format!("{list:?}");
    assert!(!dump.contains(&priv_b64) && !dump.contains(&kita.enrollment().credential));
    // The centre's view now has kita.
    centre.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(centre.peers(), ["kita-hospital"]);
}

/// Noting where a router was seen comes after its enrolment is committed and its token used up:
/// when that note cannot be written, the router must still get its credential (it answered 500
/// before, and the site had to be provisioned again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_whose_seen_address_cannot_be_noted_still_gets_its_credential() {
    let c = Centre::start(None).await;
    sqlx::query(
        "CREATE TRIGGER refuse_observe BEFORE UPDATE OF observed_endpoint ON sites \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(&c.db.pool)
    .await
    .unwrap();
    let kita = Site::new("kita-hospital");
    let e = kita.enroll(&c.token("kita-hospital", 3600).await).await.unwrap();
    assert_eq!(e.segments, ["conference", "radiology", "reference", "upload"]);
    assert!(!kita.enrollment().credential.is_empty());
    let list = sites::list(&c.db).await.unwrap();
    let row = list.iter().find(|s| s.name == "kita-hospital").unwrap();
    assert_eq!((row.status.as_str(), row.observed_endpoint.as_deref()), ("enrolled", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_over_pinned_tls_registers_keys_and_stores_a_verified_view() {
    enrolls_over_pinned_tls(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_over_pinned_tls_postgres() {
    let Some(url) = postgres_database().await else { return };
    enrolls_over_pinned_tls(Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_and_expired_tokens_are_refused_with_a_clear_message() {
    let c = Centre::start(None).await;
    let token = c.token("kita-hospital", 3600).await;
    Site::new("kita-hospital").enroll(&token).await.unwrap();
    // The same token on a second appliance.
    let err = Site::new("kita-hospital").enroll(&token).await.unwrap_err().to_string();
    assert!(err.contains("already used") && err.contains("kizuna site provision kita-hospital"), "{err}");
    // An expired token: netd refuses it before calling, and so does the registry (the
    // expiry inside the token is not trusted).
    let expired = c.token("minami-hospital", 60).await;
    sqlx::query("UPDATE tokens SET expires_unix = expires_unix - 120 WHERE site = 'minami-hospital'")
        .execute(&c.db.pool)
        .await
        .unwrap();
    let mut expired = expired;
    expired.expires_unix -= 120;
    let err = Site::new("minami-hospital").enroll(&expired).await.unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");
    let mut forged = expired.clone();
    forged.expires_unix += 3600;
    let err = Site::new("minami-hospital").enroll(&forged).await.unwrap_err().to_string();
    assert!(err.contains("410") && err.contains("expired at UNIX time"), "{err}");
    // A token for another site, and a newer provision replaces an unused token.
    let t1 = c.token("higashi-clinic", 3600).await;
    let _t2 = c.token("higashi-clinic", 3600).await;
    let err = Site::new("higashi-clinic").enroll(&t1).await.unwrap_err().to_string();
    assert!(err.contains("unknown enrollment token"), "{err}");
    let err = Site::new("minami-hospital").enroll(&_t2).await.unwrap_err().to_string();
    assert!(err.contains("the token enrolls site \"higashi-clinic\""), "{err}");
    // Nothing of the refused attempts got in.
    let list = sites::list(&c.db).await.unwrap();
    assert!(list.iter().filter(|s| s.status == "enrolled").all(|s| s.name == "kita-hospital"));
    // A site not in the policy cannot be provisioned.
    let err = sites::provision(&c.db, "nowhere", 60, "https://x", "p").await.unwrap_err().to_string();
    assert!(err.contains("not in the active policy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused_and_enrolls_nothing() {
    let c = Centre::start(None).await;
    let mut token = c.token("kita-hospital", 3600).await;
    let good = token.pin.clone();
    token.pin = netd::registry::tls::spki_pin(b"some other key");
    let site = Site::new("kita-hospital");
    let err = site.enroll(&token).await.unwrap_err().to_string();
    assert!(err.contains("but the enrollment pins") && err.contains(&good), "{err}");
    assert!(!site.cfg.enrollment_path().exists());
    // The token was not used up: with the right pin it works.
    token.pin = good;
    site.enroll(&token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_and_replayed_views_are_refused() {
    let c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    let kita = &s[1];
    let e = kita.enrollment();
    let client = kita.client();
    let old = client.view(&e.credential, None, None, Duration::ZERO).await.unwrap().unwrap();
    let (v_old, _) = kita.view();
    // A change: minami enrolls. kita takes the newer view.
    let minami = Site::new("minami-hospital");
    minami.enroll(&c.token("minami-hospital", 3600).await).await.unwrap();
    assert!(matches!(kita.poll(Duration::from_secs(5)).await.unwrap(), Polled::Stored { .. }));
    let (v_new, _) = kita.view();
    assert!(v_new > v_old);
    // Replay of the genuine older view: refused, the newer one stays.
    let err = watch::accept(&kita.cfg, &e, &client, old.clone()).await.unwrap_err().to_string();
    assert!(err.contains("older than the held version"), "{err}");
    assert_eq!(kita.view().0, v_new);
    // A genuine current view with one payload byte flipped.
    let current = client.view(&e.credential, None, None, Duration::ZERO).await.unwrap().unwrap();
    let mut bytes = base64_decode(&current.payload);
    let i = bytes.len() / 3;
    bytes[i] ^= 0x20;
    let tampered = SignedView { payload: base64_encode(&bytes), signature: current.signature.clone() };
    let err = watch::accept(&kita.cfg, &e, &client, tampered).await.unwrap_err().to_string();
    assert!(err.contains("signature does not verify"), "{err}");
    // Unsigned.
    let unsigned = SignedView { payload: current.payload.clone(), signature: String::new() };
    assert!(watch::accept(&kita.cfg, &e, &client, unsigned).await.is_err());
    // Signed by another centre (a second real registry with its own key).
    let other = Centre::start(None).await;
    let o = enroll_all(&other, &["centre", "kita-hospital"]).await;
    let oe = o[1].enrollment();
    let foreign = o[1].client().view(&oe.credential, None, None, Duration::ZERO).await.unwrap().unwrap();
    let err = watch::accept(&kita.cfg, &e, &client, foreign).await.unwrap_err().to_string();
    assert!(err.contains("signature does not verify"), "{err}");
    // Another site's genuine view.
    let me = minami.enrollment();
    let minamis = minami.client().view(&me.credential, None, None, Duration::ZERO).await.unwrap().unwrap();
    let err = watch::accept(&kita.cfg, &e, &client, minamis).await.unwrap_err().to_string();
    assert!(err.contains("view is for site \"minami-hospital\""), "{err}");
    assert_eq!(kita.view().0, v_new, "nothing refused replaced the held view");
    // The stored view tampered on disk: netd will not load a policy from it.
    let path = kita.cfg.view_path();
    let mut stored: SignedView = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    stored.payload = old.payload.clone();
    std::fs::write(&path, serde_json::to_vec(&stored).unwrap()).unwrap();
    let err = view_policy(&kita.cfg).unwrap_err().to_string();
    assert!(err.contains("stored view refused"), "{err}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_delivers_a_policy_change_within_seconds() {
    let c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre", "kita-hospital", "minami-hospital", "higashi-clinic"]).await;
    let (v0, p0) = s[3].view();
    assert_eq!(p0.keepalive_secs, 25);
    // Every site waits on its long-poll; the admin applies a new policy (database, as
    // `kizuna policy apply` does).
    let waits: Vec<_> = s
        .iter()
        .map(|site| {
            let (cfg, e) = (site.cfg.clone(), site.enrollment());
            tokio::spawn(async move {
                let client = Client::new(&e.registry_url, &e.pin).unwrap();
                let r = watch::poll_once(&cfg, &e, &client, Duration::from_secs(25)).await;
                (r, Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = policy_text(|p| p.keepalive_secs = 15);
    let start = Instant::now();
    let applied =
        policies::apply(&c.db, &text, Path::new("policy.yaml"), "keepalive 15", false).await.unwrap();
    assert_eq!(applied.diff, ["~ keepalive_secs: 25 -> 15"]);
    let mut worst = Duration::ZERO;
    for w in waits {
        let (r, at) = w.await.unwrap();
        assert!(matches!(r.unwrap(), Polled::Stored { .. }));
        worst = worst.max(at - start);
    }
    eprintln!("policy change reached all 4 sites in {worst:?}");
    assert!(worst < Duration::from_secs(3), "took {worst:?}");
    let (v1, p1) = s[3].view();
    assert!(v1 > v0);
    assert_eq!(p1.keepalive_secs, 15);
    // Nothing new: the poll waits and answers "nothing".
    let t = Instant::now();
    assert_eq!(s[0].poll(Duration::from_secs(1)).await.unwrap(), Polled::Nothing);
    assert!(t.elapsed() >= Duration::from_millis(900));
    // A new closed group: kita lacks a key for it, its netd registers one, and the group
    // appears in the views of both members.
    let text = policy_text(|p| {
        p.keepalive_secs = 15;
        let spec = p.closed_groups.values().next().unwrap().clone();
        let mut g = spec.clone();
        g.cidr = netd::policy::document::Cidr("10.50.0.0/16".parse().unwrap());
        g.port = 51840;
        g.members = vec!["kita-hospital".parse().unwrap(), "higashi-clinic".parse().unwrap()];
        p.closed_groups.insert("dental".parse().unwrap(), g);
        for site in &mut p.sites {
            if ["kita-hospital", "higashi-clinic"].contains(&site.name.as_str()) {
                site.lan.insert("dental".parse().unwrap(), "eth9".parse().unwrap());
            }
        }
    });
    policies::apply(&c.db, &text, Path::new("policy.yaml"), "dental group", false).await.unwrap();
    for _ in 0..4 {
        for site in &s {
            site.poll(Duration::from_secs(1)).await.unwrap();
        }
    }
    for i in [1, 3] {
        let (_, p) = s[i].view();
        let g = &p.closed_groups[&"dental".parse().unwrap()];
        assert_eq!(g.members.len(), 2, "{:?}", g.members);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_removes_the_site_from_every_other_view() {
    let c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre", "kita-hospital", "minami-hospital", "higashi-clinic"]).await;
    for site in &s {
        assert_eq!(site.peers().len(), 3, "{}", site.cfg.site);
    }
    let higashi_keys =
        sites::list(&c.db).await.unwrap().into_iter().find(|x| x.name == "higashi-clinic").unwrap().keys;
    sites::revoke(&c.db, "higashi-clinic").await.unwrap();
    for site in &s[..3] {
        assert!(matches!(site.poll(Duration::from_secs(5)).await.unwrap(), Polled::Stored { .. }));
        let (_, p) = site.view();
        assert!(p.sites.iter().all(|x| x.name.as_str() != "higashi-clinic"), "{}", site.cfg.site);
        let keys: Vec<String> = p.sites.iter().flat_map(|x| x.keys.values().map(|k| k.to_string())).collect();
        assert!(higashi_keys.values().all(|k| !keys.contains(k)));
    }
    // The revoked site itself is refused.
    let err = s[3].poll(Duration::ZERO).await.unwrap_err().to_string();
    assert!(err.contains("403") && err.contains("revoked"), "{err}");
    // Its keys are released.
    let row = sites::list(&c.db).await.unwrap().into_iter().find(|x| x.name == "higashi-clinic").unwrap();
    assert_eq!(row.status, "revoked");
    assert!(row.keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_registry_down_sites_keep_their_view_and_catch_up_later() {
    let mut c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    let (v0, p0) = s[1].view();
    c.stop();
    let err = s[1].poll(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    // netd loads the same verified policy as before (what `netd run` reconciles to).
    let (v, p) = s[1].view();
    assert_eq!((v, &p), (v0, &p0));
    // A change while the registry process is down, then it returns on the same address.
    policies::apply(&c.db, &policy_text(|p| p.keepalive_secs = 10), Path::new("p.yaml"), "", false)
        .await
        .unwrap();
    c.restart().await;
    assert!(matches!(s[1].poll(Duration::from_secs(5)).await.unwrap(), Polled::Stored { .. }));
    let (v1, p1) = s[1].view();
    assert!(v1 > v0);
    assert_eq!(p1.keepalive_secs, 10);
    drop(c.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_apply_checks_shows_the_diff_and_rollback_returns_to_a_version() {
    let c = Centre::start(None).await;
    // netd's checker with file:line:column.
    let bad = policy_text(|_| {}).replace("port: 51822", "port: 51820");
    let err = policies::apply(&c.db, &bad, Path::new("new.yaml"), "", false).await.unwrap_err().to_string();
    assert!(err.contains("new.yaml:") && err.contains("duplicate port 51820"), "{err}");
    // Keys belong to enrollment.
    let with_keys = std::fs::read_to_string(FIXTURE).unwrap();
    let err =
        policies::apply(&c.db, &with_keys, Path::new("k.yaml"), "", false).await.unwrap_err().to_string();
    assert!(err.contains("keys come from enrollment"), "{err}");
    // A dry run shows the diff and changes nothing.
    let v2 = policy_text(|p| p.keepalive_secs = 20);
    let dry = policies::apply(&c.db, &v2, Path::new("v2.yaml"), "", true).await.unwrap();
    assert_eq!((dry.version, dry.diff.clone()), (None, vec!["~ keepalive_secs: 25 -> 20".to_string()]));
    assert_eq!(policies::active(&c.db).await.unwrap().unwrap().0, 1);
    let a = policies::apply(&c.db, &v2, Path::new("v2.yaml"), "", false).await.unwrap();
    assert_eq!(a.version, Some(2));
    // Unchanged: nothing activated.
    assert_eq!(policies::apply(&c.db, &v2, Path::new("v2.yaml"), "", false).await.unwrap().version, None);
    let r = policies::rollback(&c.db, 1).await.unwrap();
    assert_eq!((r.version, r.diff), (Some(3), vec!["~ keepalive_secs: 20 -> 25".to_string()]));
    let list = policies::list(&c.db).await.unwrap();
    assert_eq!(
        list.iter().map(|v| (v.version, v.active)).collect::<Vec<_>>(),
        [(1, false), (2, false), (3, true)]
    );
    assert!(policies::rollback(&c.db, 9).await.unwrap_err().to_string().contains("no policy version 9"));
    // A site removed from the policy is released.
    let s = enroll_all(&c, &["centre", "kita-hospital", "higashi-clinic"]).await;
    let without = policy_text(|p| p.sites.retain(|x| x.name.as_str() != "higashi-clinic"));
    let a = policies::apply(&c.db, &without, Path::new("v4.yaml"), "", false).await.unwrap();
    assert_eq!(a.released, ["higashi-clinic"]);
    s[1].poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(s[1].peers(), ["centre"]);
    let err = s[2].poll(Duration::ZERO).await.unwrap_err().to_string();
    assert!(err.contains("unknown site credential"), "{err}");
    // Rolling back puts the site in the policy again, not its enrollment: it is named as one
    // that needs a new token, until it has enrolled again.
    let r = policies::rollback(&c.db, 3).await.unwrap();
    assert_eq!((r.released.clone(), r.reenroll.clone()), (vec![], vec!["higashi-clinic".to_string()]));
    let err = s[2].poll(Duration::ZERO).await.unwrap_err().to_string();
    assert!(err.contains("unknown site credential"), "{err}");
    let again = Site::new("higashi-clinic");
    again.enroll(&c.token("higashi-clinic", 3600).await).await.unwrap();
    let dry = policies::apply(&c.db, &without, Path::new("v4.yaml"), "", true).await.unwrap();
    assert_eq!((dry.released, dry.reenroll), (vec!["higashi-clinic".to_string()], vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_key_changes_and_refusals_are_audited() {
    let adir = tempfile::tempdir().unwrap();
    let acfg = kizuna_audit::server::local_config(&adir.path().join("audit"), "127.0.0.1:0", None).unwrap();
    let audit = kizuna_audit::server::start(&acfg).await.unwrap();
    let base = format!("http://{}", audit.http_addr);
    let sender =
        kizuna_audit::emitter::SenderConfig::new(&format!("{base}/v1/events"), adir.path().join("spool"));
    let c = Centre::start_with(None, sender).await;

    let token = c.token("kita-hospital", 3600).await;
    let kita = Site::new("kita-hospital");
    kita.enroll(&token).await.unwrap();
    let ev = kizuna_audit::server::events_when(&base, "user=site:kita-hospital&event_type=110129", 1)
        .await
        .unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["source_id"], "registry@centre");
    assert_eq!(ev[0]["outcome"], 0);

    // The used token, twice from the same address: one Node Authentication failure, not two.
    for _ in 0..2 {
        Site::new("kita-hospital").enroll(&token).await.unwrap_err();
    }
    let refused = kizuna_audit::server::events_when(&base, "event_type=110126", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused_again = kizuna_audit::server::events_when(&base, "event_type=110126", 1).await.unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused_again.len(), 1, "a repeated refusal is rate-limited: {refused_again:?}");
    assert_eq!(refused[0]["user_id"], "site:kita-hospital");
    assert_eq!(refused[0]["outcome"], 4);

    // A rotated key registered over the site API.
    let seg: netd::policy::SegmentName = "reference".parse().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let new_key = netd::keys::load_or_generate(fresh.path(), &seg).unwrap().public();
    let req = netd::registry::protocol::KeysRequest { keys: [(seg, new_key)].into_iter().collect() };
    kita.client().register_keys(&kita.enrollment().credential, &req).await.unwrap();
    let ev = kizuna_audit::server::events_when(&base, "user=site:kita-hospital&event_type=110129", 2)
        .await
        .unwrap();
    assert_eq!(ev.len(), 2, "{ev:?}");

    // A stolen-looking credential is refused and reported without a site name.
    let bogus = kita.client().register_keys("not-a-credential", &req).await.unwrap_err().to_string();
    assert!(bogus.contains("unknown site credential"), "{bogus}");
    let ev = kizuna_audit::server::events_when(&base, "user=unknown&event_type=110126", 1).await.unwrap();
    assert_eq!(ev[0]["outcome"], 4);
    audit.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_site_s_number_goes_to_a_new_site_only_as_the_policy_allows() {
    let c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre", "kita-hospital", "minami-hospital", "higashi-clinic"]).await;
    let higashi_keys: Vec<String> = sites::list(&c.db)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.name == "higashi-clinic")
        .unwrap()
        .keys
        .into_values()
        .collect();
    let nishi_at_4 = |days: u32| {
        policy_text(|p| {
            p.number_reuse_after_days = days;
            p.sites.iter_mut().find(|x| x.number == 4).unwrap().name = "nishi-pharmacy".parse().unwrap();
        })
    };
    // Giving number 4 to another site in the same step frees it only now: refused, and nothing changes.
    let before = policies::list(&c.db).await.unwrap().len();
    let err = policies::apply(&c.db, &nishi_at_4(30), Path::new("p.yaml"), "", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("p.yaml: sites.nishi-pharmacy.number: 4 was higashi-clinic's until"), "{err}");
    assert!(err.contains("number_reuse_after_days: 30"), "{err}");
    assert_eq!(policies::list(&c.db).await.unwrap().len(), before, "a refused policy is not stored");
    // A policy that allows it at once: higashi is released, nishi takes its number and addresses.
    let a = policies::apply(&c.db, &nishi_at_4(0), Path::new("p.yaml"), "", false).await.unwrap();
    assert_eq!(a.released, ["higashi-clinic"]);
    let err = s[3].poll(Duration::ZERO).await.unwrap_err().to_string();
    assert!(err.contains("401") || err.contains("403"), "the removed site is refused: {err}");
    let nishi = Site::new("nishi-pharmacy");
    nishi.enroll(&c.token("nishi-pharmacy", 3600).await).await.unwrap();
    for site in &s[..3] {
        while site.poll(Duration::ZERO).await.unwrap() != Polled::Nothing {}
        let (_, p) = site.view();
        let four = p.sites.iter().find(|x| x.number == 4).expect("number 4 in the view");
        assert_eq!(four.name.as_str(), "nishi-pharmacy", "{}", site.cfg.site);
        assert!(four.keys.values().all(|k| !higashi_keys.contains(&k.to_string())), "old keys gone");
        assert!(p.sites.iter().all(|x| x.name.as_str() != "higashi-clinic"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_racing_for_one_free_number_cannot_both_win() {
    let c = Centre::start(None).await;
    // Each policy alone gives a free number to a new site; one after the other, the second takes
    // the first one's number at once, which number_reuse_after_days forbids. Five rounds, as the
    // race does not always happen.
    for round in 0..5u8 {
        let number = 40 + u16::from(round);
        let with_site = |name: String, last_octet: u8| {
            policy_text(|p| {
                let mut s = p.sites.last().unwrap().clone();
                s.name = name.parse().unwrap();
                s.number = number;
                s.endpoint = std::net::IpAddr::from([192, 0, 2, last_octet]);
                p.sites.push(s);
            })
        };
        let a = with_site(format!("nishi-pharmacy-{round}"), 200);
        let b = with_site(format!("kawa-clinic-{round}"), 201);
        let before = policies::list(&c.db).await.unwrap().len();
        let (ra, rb) = tokio::join!(
            policies::apply(&c.db, &a, Path::new("a.yaml"), "", false),
            policies::apply(&c.db, &b, Path::new("b.yaml"), "", false)
        );
        let (won, lost) = match (ra, rb) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l.to_string()),
            (ra, rb) => panic!(
                "round {round}: exactly one apply may win: {:?} / {:?}",
                ra.map(|a| a.version),
                rb.map(|a| a.version)
            ),
        };
        assert!(won.version.is_some());
        assert!(
            lost.contains(&format!(".number: {number} was")) && lost.contains("number_reuse_after_days"),
            "{lost}"
        );
        assert_eq!(policies::list(&c.db).await.unwrap().len(), before + 1, "only the winner is stored");
    }
}
