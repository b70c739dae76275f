//! Key rotation end to end: a real registry over TLS on loopback and netd's real rotation,
//! watch and key code, each site with its own key directory. "What a pass uses" is
//! `netd::reconcile::local_keys` on the plan of the stored view as it holds at the pass's time:
//! the keys that pass sets on the WireGuard devices. A rotated key takes effect on every router
//! at the registry's switch time, not before.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use kizuna_registry::sites;
use netd::plan::Mode;
use netd::policy::{PublicKey, SegmentName};
use netd::registry::RegistryError as ClientError;
use netd::registry::enrollment::{next_key_switch, unix_now_f64, view_policy_at};
use netd::registry::rotate;
use netd::registry::watch::Polled;

mod support;
use support::*;

fn seg(s: &str) -> SegmentName {
    s.parse().unwrap()
}

fn key_in_use(site: &Site, segment: &SegmentName) -> PublicKey {
    netd::keys::load_or_generate(&site.cfg.key_dir, segment).unwrap().public()
}

/// The key `who` has in `segment` according to `site`'s stored view, as it holds now.
fn listed(site: &Site, who: &str, segment: &SegmentName) -> PublicKey {
    let (_, p) = site.view();
    p.sites.iter().find(|s| s.name.as_str() == who).unwrap().keys[segment].clone()
}

/// The key `who` has in `segment` in `site`'s stored view at UNIX time `t`: what a pass at `t` uses.
fn listed_at(site: &Site, who: &str, segment: &SegmentName, t: f64) -> PublicKey {
    let (_, p) = view_policy_at(&site.cfg, t).unwrap().unwrap();
    p.policy().sites.iter().find(|s| s.name.as_str() == who).unwrap().keys[segment].clone()
}

/// The public keys of the private keys a reconcile pass at UNIX time `t` sets on the devices
/// (it moves a waiting key in place once the view lists it at `t`).
fn pass_keys_at(site: &Site, t: f64) -> BTreeMap<SegmentName, PublicKey> {
    let (_, pol) = view_policy_at(&site.cfg, t).unwrap().unwrap();
    let desired = netd::plan::plan(&pol, &site.cfg.site, Mode::Vrf, site.cfg.api_listen).unwrap();
    netd::reconcile::local_keys(&site.cfg.key_dir, &desired)
        .unwrap()
        .into_iter()
        .map(|(s, k)| (s, k.public()))
        .collect()
}

/// The public keys of the private keys the next reconcile pass sets on the devices.
fn pass_keys(site: &Site) -> BTreeMap<SegmentName, PublicKey> {
    pass_keys_at(site, unix_now_f64())
}

/// Poll until the stored view is at `version` or later.
async fn catch_up(site: &Site, version: u64) {
    for _ in 0..20 {
        if site.view().0 >= version {
            return;
        }
        site.poll(Duration::from_secs(5)).await.unwrap();
    }
    panic!("{} did not reach version {version}", site.cfg.site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_router_switches_to_a_rotated_key_at_the_registry_switch_time_and_not_before() {
    let c = Centre::start_configured(None, |cfg| cfg.rotation_switch_delay_secs = 600).await;
    let s = enroll_all(&c, &["centre", "kita-hospital", "minami-hospital"]).await;
    let (kita, reference, upload) = (&s[1], seg("reference"), seg("upload"));
    let (old, old_upload) = (key_in_use(kita, &reference), key_in_use(kita, &upload));
    let before = s[0].view().0;

    // `netd rotate reference`: a new key beside the old one, registered with the registry,
    // which answers with the switch time: the registry's policy, 600 s from now here.
    let e = kita.enrollment();
    let registered = unix_now_f64();
    let (version, keys, switch) =
        rotate::publish(&kita.cfg, &e, &kita.client(), std::slice::from_ref(&reference)).await.unwrap();
    let switch = switch.expect("a rotated key has a switch time");
    assert!(
        (switch as f64 - registered - 600.0).abs() <= 2.0,
        "switch at {switch}, registered at {registered:.0}"
    );
    let new = keys[&reference].clone();
    assert_ne!(new, old);
    assert!(version > before);
    let waiting = netd::keys::pending_path(&kita.cfg.key_dir, &reference);
    assert_eq!(std::fs::metadata(&waiting).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(pass_keys(kita)[&reference], old);
    // Only the public key reaches the registry.
    let row = kizuna_registry::sites::list(&c.db).await.unwrap();
    let row = row.iter().find(|r| r.name == "kita-hospital").unwrap();
    assert_eq!(row.keys["reference"], new.to_string());
    let private = std::fs::read_to_string(&waiting).unwrap();
    assert!(!format!("{row:?}").contains(private.trim()));

    // One registry version brings the new key, the key it replaces and the switch time, signed,
    // to the site itself and to every peer; each daemon's next scheduled pass is the switch time.
    for site in &s {
        catch_up(site, version).await;
        let p = site.payload();
        let sw: Vec<_> = p.key_switches.iter().filter(|k| k.site == "kita-hospital").collect();
        assert_eq!(sw.len(), 1, "{}: {:?}", site.cfg.site, p.key_switches);
        assert_eq!((&sw[0].segment, &sw[0].previous, sw[0].switch_unix), (&reference, &old, switch));
        assert_eq!(
            next_key_switch(&site.cfg, unix_now_f64()).unwrap(),
            Some(switch),
            "{}: a pass is scheduled at the switch time",
            site.cfg.site
        );
        assert_eq!(next_key_switch(&site.cfg, switch as f64).unwrap(), None);
    }
    // No router switches before the switch time: every pass up to it uses the old key, the
    // rotating site its old private key and every peer its old public key.
    for t in [unix_now_f64(), switch as f64 - 1.0, switch as f64 - 0.001] {
        assert_eq!(pass_keys_at(kita, t)[&reference], old, "kita's pass at {t}");
        assert_eq!(key_in_use(kita, &reference), old);
        assert!(waiting.exists(), "the new key still waits");
        for site in &s {
            assert_eq!(listed_at(site, "kita-hospital", &reference, t), old, "{} at {t}", site.cfg.site);
        }
    }
    // At the switch time all of them switch: the peers to the new public key, and kita's pass
    // moves the waiting key in place (the old private key is gone with it).
    for site in &s {
        assert_eq!(listed_at(site, "kita-hospital", &reference, switch as f64), new, "{}", site.cfg.site);
    }
    let at = pass_keys_at(kita, switch as f64);
    assert_eq!(at[&reference], new);
    assert_eq!(at[&upload], old_upload, "other segments keep their keys");
    assert!(!waiting.exists());
    assert_eq!(key_in_use(kita, &reference), new);
    // Nothing more is due: the rotation is complete.
    assert_eq!(rotate::scheduled(&kita.cfg, &e, &kita.client(), SystemTime::now()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_learns_of_a_rotation_after_its_switch_time_switches_at_once() {
    let c = Centre::start_configured(None, |cfg| cfg.rotation_switch_delay_secs = 1).await;
    let s = enroll_all(&c, &["centre", "kita-hospital", "minami-hospital"]).await;
    let (kita, minami, upload) = (&s[1], &s[2], seg("upload"));
    let old = key_in_use(kita, &upload);
    let (version, keys, switch) =
        rotate::publish(&kita.cfg, &kita.enrollment(), &kita.client(), std::slice::from_ref(&upload))
            .await
            .unwrap();
    let (new, switch) = (keys[&upload].clone(), switch.unwrap());
    // minami was away (no poll) until after the switch time.
    while unix_now_f64() < switch as f64 + 0.2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed(minami, "kita-hospital", &upload), old, "minami's stored view predates the rotation");
    catch_up(minami, version).await;
    // Its very next pass uses the new key, and no later pass is scheduled for this switch.
    assert_eq!(listed(minami, "kita-hospital", &upload), new);
    assert_eq!(next_key_switch(&minami.cfg, unix_now_f64()).unwrap(), None);
    // So does kita's own pass, when it too hears only now.
    catch_up(kita, version).await;
    assert_eq!(pass_keys(kita)[&upload], new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_rotation_before_the_switch_keeps_the_key_in_use_as_the_one_replaced() {
    second_rotation_before_the_switch(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_rotation_before_the_switch_postgres() {
    let Some(url) = postgres_database().await else { return };
    second_rotation_before_the_switch(Some(url)).await;
}

async fn second_rotation_before_the_switch(database_url: Option<String>) {
    let c = Centre::start(database_url).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    let (kita, upload) = (&s[1], seg("upload"));
    let name: netd::policy::SiteName = "kita-hospital".parse().unwrap();
    let in_use = key_in_use(kita, &upload);
    let switch_of = |sw: &[netd::registry::view::KeySwitch]| {
        sw.iter().find(|k| k.site == "kita-hospital" && k.segment == upload).cloned()
    };
    let first = PublicKey::from_bytes(&[21; 32]);
    let t1 = sites::register_keys(&c.db, &name, &BTreeMap::from([(upload.clone(), first.clone())]), 600)
        .await
        .unwrap()
        .switch_unix;
    let t1 = t1.expect("a replaced key gets a switch time");
    let sw = switch_of(&sites::key_switches(&c.db).await.unwrap()).unwrap();
    assert_eq!((sw.previous, sw.switch_unix), (in_use.clone(), t1));
    // The same key again (a retried `netd rotate`): nothing moves.
    let again = sites::register_keys(&c.db, &name, &BTreeMap::from([(upload.clone(), first.clone())]), 900)
        .await
        .unwrap();
    assert_eq!((again.switch_unix, again.changed.len()), (None, 0));
    assert_eq!(switch_of(&sites::key_switches(&c.db).await.unwrap()).unwrap().switch_unix, t1);
    // Another key before the switch: routers still use the key in use, so that stays the one
    // replaced; the switch time moves.
    let second = PublicKey::from_bytes(&[22; 32]);
    let t2 = sites::register_keys(&c.db, &name, &BTreeMap::from([(upload.clone(), second)]), 900)
        .await
        .unwrap()
        .switch_unix;
    let sw = switch_of(&sites::key_switches(&c.db).await.unwrap()).unwrap();
    assert_eq!((sw.previous, Some(sw.switch_unix)), (in_use.clone(), t2));
    assert!(t2.unwrap() > t1);
    // The replaced key stays reserved while routers may still use it.
    let err = sites::register_keys(
        &c.db,
        &"centre".parse().unwrap(),
        &BTreeMap::from([(upload.clone(), in_use)]),
        600,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("before"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_cut_short_keeps_the_old_key_and_completes_when_the_registry_answers() {
    // Switch delay 0: this test is about the publishing, so keys switch as soon as listed.
    let mut c = Centre::start_configured(None, |cfg| cfg.rotation_switch_delay_secs = 0).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    let (kita, upload) = (&s[1], seg("upload"));
    let e = kita.enrollment();
    let old = key_in_use(kita, &upload);

    // A crash after the new key was written, before the registry heard of it.
    let waiting = netd::keys::begin_rotation(&kita.cfg.key_dir, &upload).unwrap().public();
    assert_eq!(pass_keys(kita)[&upload], old);
    // `netd rotate` while the registry is down fails and keeps both: the old key in use, the
    // same new key waiting (not a third one).
    c.stop();
    let err =
        rotate::publish(&kita.cfg, &e, &kita.client(), std::slice::from_ref(&upload)).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert_eq!(netd::keys::pending(&kita.cfg.key_dir, &upload).unwrap().unwrap().public(), waiting);
    assert_eq!(pass_keys(kita)[&upload], old);

    // The registry returns: the watch's schedule step publishes the waiting key, even with the
    // schedule off, because the view does not list it yet.
    c.restart().await;
    let listed_now = rotate::listed_keys(&kita.cfg, &e).unwrap();
    assert_eq!(rotate::due(&kita.cfg, &listed_now, 0, SystemTime::now()).unwrap(), vec![upload.clone()]);
    let version = rotate::scheduled(&kita.cfg, &e, &kita.client(), SystemTime::now()).await.unwrap().unwrap();
    catch_up(kita, version).await;
    catch_up(&s[0], version).await;
    assert_eq!(listed(&s[0], "kita-hospital", &upload), waiting);
    // The view lists it: nothing is due, and the pass switches to it.
    assert_eq!(rotate::scheduled(&kita.cfg, &e, &kita.client(), SystemTime::now()).await.unwrap(), None);
    assert_eq!(pass_keys(kita)[&upload], waiting);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_rotates_keys_older_than_key_rotation_days_and_only_those() {
    let c = Centre::start_configured(None, |cfg| cfg.rotation_switch_delay_secs = 0).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    let (kita, conference) = (&s[1], seg("conference"));
    let e = kita.enrollment();
    assert_eq!(kita.cfg.key_rotation_days, 90, "the default schedule");
    let now = SystemTime::now();
    let listed_now = rotate::listed_keys(&kita.cfg, &e).unwrap();
    assert_eq!(rotate::due(&kita.cfg, &listed_now, 90, now).unwrap(), Vec::<SegmentName>::new());
    assert_eq!(rotate::scheduled(&kita.cfg, &e, &kita.client(), now).await.unwrap(), None);

    // The conference key was generated 91 days ago.
    let old = key_in_use(kita, &conference);
    let f = std::fs::File::options().write(true).open(kita.cfg.key_dir.join("conference.key")).unwrap();
    f.set_modified(now - Duration::from_secs(91 * 86_400)).unwrap();
    assert_eq!(rotate::due(&kita.cfg, &listed_now, 90, now).unwrap(), vec![conference.clone()]);
    assert_eq!(rotate::due(&kita.cfg, &listed_now, 92, now).unwrap(), Vec::<SegmentName>::new());
    assert_eq!(rotate::due(&kita.cfg, &listed_now, 0, now).unwrap(), Vec::<SegmentName>::new(), "0 is off");

    let version = rotate::scheduled(&kita.cfg, &e, &kita.client(), now).await.unwrap().expect("rotated");
    while kita.poll(Duration::from_secs(5)).await.unwrap() != Polled::Nothing {}
    assert!(kita.view().0 >= version);
    let keys = pass_keys(kita);
    assert_ne!(keys[&conference], old);
    // The new key is young: nothing is due again.
    let listed_now = rotate::listed_keys(&kita.cfg, &e).unwrap();
    assert_eq!(
        rotate::due(&kita.cfg, &listed_now, 90, SystemTime::now()).unwrap(),
        Vec::<SegmentName>::new()
    );
    for (segment, key) in &listed_now {
        if segment != &conference {
            assert_eq!(&keys[segment], key, "{segment} keeps its key");
        }
    }
}
