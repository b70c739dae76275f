//! Hostile and wrong requests: clean refusals, and nothing written anywhere but the data folder's
//! known places (asserted by listing the whole tempdir).

mod common;

use common::{Backend, Harness, all_files, batch_files, corpus, count};
use kizuna_wire::{BatchFile, FileStatus, encode_batch, push_file, start_batch};

both_backends!(
    traversal_and_junk_paths_are_rejected_and_nothing_escapes_the_root,
    oversized_bodies_and_files_are_refused,
    wrong_token_other_facility_and_wrong_address_are_refused,
    malformed_batches_are_refused_whole,
);

/// Everything in the tempdir must be the store's own files: tree files of `allowed` facilities,
/// journal, empty staging, the SQLite files, the data folder's lock.
fn assert_only_store_files(h: &Harness, allowed_tree: &[String]) {
    for f in all_files(h.dir.path()) {
        let ok = f.starts_with("data/journal/")
            || f.starts_with("data/index.sqlite")
            || f == "data/store.lock"
            || allowed_tree.iter().any(|t| f == format!("data/tree/{t}"));
        assert!(ok, "unexpected file {f} in the tempdir");
    }
}

async fn traversal_and_junk_paths_are_rejected_and_nothing_escapes_the_root(backend: &Backend) {
    let c = corpus(21, 1, 3, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let (good_path, good) = files.iter().next().unwrap();
    let name = good_path.rsplit('/').next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let hostile: Vec<String> = vec![
        format!("../../../../tmp/{name}"),
        format!("/tmp/x/y/z/w/{name}"),
        format!("{}/../{name}", good_path.rsplit_once('/').unwrap().0),
        "../../../../../escape".into(),
        format!("../../../../tmp/{}", name.replace("_1", "_1\0")),
        format!("{good_path}\0"),
        format!("{}/..", good_path.rsplit_once('/').unwrap().0),
        good_path.replace('/', "\\"),
        format!("./{good_path}"),
        format!("{good_path}/"),
        "".into(),
        "..".into(),
        format!("999/901/../../{name}"),
    ];
    let batch: Vec<BatchFile> = hostile.iter().map(|p| BatchFile::new(p.clone(), good.clone())).collect();
    let report = h.upload(&token, fac, &batch).await;
    for (r, p) in report.results.iter().zip(&hostile) {
        assert_eq!(r.status, FileStatus::Rejected, "{p:?} must be rejected");
        assert!(r.codes.iter().any(|c| c == "bad-file-name" || c == "path-mismatch"), "{p:?}: {:?}", r.codes);
        assert!(r.reason.is_some());
    }
    assert_eq!(h.store.journal.last_seq(), 0);
    assert_only_store_files(&h, &[]);
    // The good file under its real path is still stored fine afterwards.
    let report = h.upload(&token, fac, &[BatchFile::new(good_path.clone(), good.clone())]).await;
    assert_eq!(report.results[0].status, FileStatus::Stored);
    assert_only_store_files(&h, &[format!("{fac}/{good_path}")]);
    h.stop().await;
}

async fn oversized_bodies_and_files_are_refused(backend: &Backend) {
    let c = corpus(22, 1, 3, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |c| {
        c.limits.max_body_bytes = 256 * 1024;
        c.limits.max_file_bytes = 64 * 1024;
        c.limits.max_batch_files = 1000;
    })
    .await;
    let token = h.add_site("s", &[fac], &[]).await;
    // A body over the limit.
    let big = vec![b'x'; 300 * 1024];
    let (status, v) = h.post_raw(&token, fac, encode_batch(&[BatchFile::new("a".into(), big)])).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"], "too_large");
    // One file over the per-file limit, inside a body under the limit.
    let (p, _) = files.iter().next().unwrap();
    let (status, v) =
        h.post_raw(&token, fac, encode_batch(&[BatchFile::new(p.clone(), vec![b'M'; 100 * 1024])])).await;
    assert_eq!(status, 413, "{v}");
    assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");
    // Too many files in one batch.
    let many: Vec<BatchFile> = (0..1001).map(|i| BatchFile::new(format!("f{i}"), vec![])).collect();
    let (status, _) = h.post_raw(&token, fac, encode_batch(&many)).await;
    assert_eq!(status, 413);
    assert_eq!(h.store.journal.last_seq(), 0);
    assert_only_store_files(&h, &[]);
    // Normal uploads still work.
    let report = h.upload(&token, fac, &batch_files(files)[..5]).await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Stored));
    h.stop().await;
}

async fn wrong_token_other_facility_and_wrong_address_are_refused(backend: &Backend) {
    let c = corpus(23, 2, 4, 0);
    let mut facs = c.facilities.iter();
    let (fa, files_a) = facs.next().unwrap();
    let (fb, _) = facs.next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token_a = h.add_site("site-a", &[fa], &[]).await;
    let token_b = h.add_site("site-b", &[fb], &[]).await;
    // Site C may only connect from a network the test is not on.
    let token_c = h.add_site("site-c", &["9990000001"], &["192.0.2.0/24"]).await;
    let body = encode_batch(&batch_files(files_a)[..3]);

    let (status, v) = h.post_raw("kzn_not-a-real-token", fa, body.clone()).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("unauthorized")), "{v}");
    let r = h
        .client
        .post(format!("{}/api/v1/facilities/{fa}/batches", h.base))
        .header("content-type", kizuna_wire::BATCH_CONTENT_TYPE)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "no token at all");
    let (status, v) = h.post_raw(&token_b, fa, body.clone()).await;
    assert_eq!((status, v["error"].as_str()), (403, Some("facility_not_allowed")), "{v}");
    // A facility that is no facility ID (here a NUL, which PostgreSQL refuses in text) is refused
    // for its form, before any database lookup: it was a 500 on PostgreSQL.
    for bad in ["%00", "a%00b", "ABCDEFGHIJK"] {
        let (status, v) = h.post_raw(&token_b, bad, body.clone()).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("bad_facility")), "{bad}: {v}");
    }
    assert!(v["message"].as_str().unwrap().contains(fa.as_str()));
    let (status, v) = h.post_raw(&token_c, "9990000001", body.clone()).await;
    assert_eq!((status, v["error"].as_str()), (403, Some("address_not_allowed")), "{v}");
    // X-Forwarded-For is not believed.
    let r = h
        .client
        .post(format!("{}/api/v1/facilities/9990000001/batches", h.base))
        .bearer_auth(&token_c)
        .header("content-type", kizuna_wire::BATCH_CONTENT_TYPE)
        .header("x-forwarded-for", "192.0.2.7")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A rotated token stops working at once; a disabled site is refused.
    let new_a = kizuna_store::sites::rotate_token(&h.store.db, "site-a").await.unwrap();
    let (status, _) = h.post_raw(&token_a, fa, body.clone()).await;
    assert_eq!(status, 401);
    kizuna_store::sites::set_enabled(&h.store.db, "site-a", false).await.unwrap();
    let (status, v) = h.post_raw(&new_a, fa, body.clone()).await;
    assert_eq!((status, v["error"].as_str()), (403, Some("site_disabled")));
    // Nothing of it was written.
    assert_eq!(h.store.journal.last_seq(), 0);
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM records").await, 0);
    assert_only_store_files(&h, &[]);
    kizuna_store::sites::set_enabled(&h.store.db, "site-a", true).await.unwrap();
    let report = h.upload(&new_a, fa, &batch_files(files_a)[..3]).await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Stored));
    let (_, metrics) = h.get("/metrics").await;
    assert!(
        metrics.contains("kizuna_upload_refused_requests_total{endpoint=\"batches\",status=\"403\"}"),
        "{metrics}"
    );
    h.stop().await;
}

async fn malformed_batches_are_refused_whole(backend: &Backend) {
    let c = corpus(24, 1, 3, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("s", &[fac], &[]).await;
    let (p, content) = files.iter().next().unwrap();
    // Wrong digest.
    let mut body = start_batch();
    push_file(&mut body, p, &[0u8; 32], content);
    let (status, v) = h.post_raw(&token, fac, body).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("bad_batch")), "{v}");
    // Truncated, and no magic.
    let full = encode_batch(&[BatchFile::new(p.clone(), content.clone())]);
    let (status, _) = h.post_raw(&token, fac, full[..full.len() - 3].to_vec()).await;
    assert_eq!(status, 400);
    let (status, _) = h.post_raw(&token, fac, b"GET / HTTP/1.0".to_vec()).await;
    assert_eq!(status, 400);
    // Wrong content type.
    let r = h
        .client
        .post(format!("{}/api/v1/facilities/{fac}/batches", h.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(full)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(h.store.journal.last_seq(), 0);
    assert_only_store_files(&h, &[]);
    h.stop().await;
}
