//! Key rotation end to end: a real registry over TLS on loopback and netd's real rotation,
//! watch and key code, each site with its own key directory. "What a pass uses" is
//! `netd::reconcile::local_keys` on the plan of the stored view: the keys the next reconcile
//! pass sets on the WireGuard devices.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use netd::plan::Mode;
use netd::policy::{PublicKey, SegmentName};
use netd::registry::RegistryError as ClientError;
use netd::registry::enrollment::view_policy;
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

/// The key `who` has in `segment` according to `site`'s stored view.
fn listed(site: &Site, who: &str, segment: &SegmentName) -> PublicKey {
    let (_, p) = site.view();
    p.sites.iter().find(|s| s.name.as_str() == who).unwrap().keys[segment].clone()
}

/// The public keys of the private keys the next reconcile pass sets on the devices.
fn pass_keys(site: &Site) -> BTreeMap<SegmentName, PublicKey> {
    let (_, pol) = view_policy(&site.cfg).unwrap().unwrap();
    let desired = netd::plan::plan(&pol, &site.cfg.site, Mode::Vrf, site.cfg.api_listen).unwrap();
    netd::reconcile::local_keys(&site.cfg.key_dir, &desired)
        .unwrap()
        .into_iter()
        .map(|(s, k)| (s, k.public()))
        .collect()
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
async fn a_rotated_key_is_used_once_the_view_lists_it_and_peers_switch_at_the_same_version() {
    let c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre", "kita-hospital", "minami-hospital"]).await;
    let (kita, reference, upload) = (&s[1], seg("reference"), seg("upload"));
    let (old, old_upload) = (key_in_use(kita, &reference), key_in_use(kita, &upload));
    let before = s[0].view().0;

    // `netd rotate reference`: a new key beside the old one, registered with the registry.
    let e = kita.enrollment();
    let (version, keys) =
        rotate::publish(&kita.cfg, &e, &kita.client(), std::slice::from_ref(&reference)).await.unwrap();
    let new = keys[&reference].clone();
    assert_ne!(new, old);
    assert!(version > before);
    let waiting = netd::keys::pending_path(&kita.cfg.key_dir, &reference);
    assert_eq!(std::fs::metadata(&waiting).unwrap().permissions().mode() & 0o777, 0o600);
    // Before the view lists it, every pass keeps the old key: the peers still know only that one.
    assert_eq!(pass_keys(kita)[&reference], old);
    assert_eq!(key_in_use(kita, &reference), old);
    // Only the public key reaches the registry.
    let row = kizuna_registry::sites::list(&c.db).await.unwrap();
    let row = row.iter().find(|r| r.name == "kita-hospital").unwrap();
    assert_eq!(row.keys["reference"], new.to_string());
    let private = std::fs::read_to_string(&waiting).unwrap();
    assert!(!format!("{row:?}").contains(private.trim()));

    // The same registry version brings the new key to the site itself and to every peer.
    for site in &s {
        catch_up(site, version).await;
        assert_eq!(listed(site, "kita-hospital", &reference), new, "{}", site.cfg.site);
    }
    // The next pass switches: the waiting key is now the key in use, the old one gone.
    let now = pass_keys(kita);
    assert_eq!(now[&reference], new);
    assert_eq!(now[&upload], old_upload, "other segments keep their keys");
    assert!(!waiting.exists());
    assert_eq!(key_in_use(kita, &reference), new);
    // Nothing more is due: the rotation is complete.
    assert_eq!(rotate::scheduled(&kita.cfg, &e, &kita.client(), SystemTime::now()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_cut_short_keeps_the_old_key_and_completes_when_the_registry_answers() {
    let mut c = Centre::start(None).await;
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
    let c = Centre::start(None).await;
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
