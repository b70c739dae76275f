//! The NSIPS intake end to end: a synthetic pharmacy's NSIPS exports (`synth`, `pharmacies: 1`) in
//! the agent's `nsips.dir`, the agent, and the real store over HTTP on loopback. The store's tree
//! ends up holding exactly the SS-MIX2 prescriptions `kizuna-nsips` makes of them; a bad dispensing
//! is quarantined alone with its file, line and field, the rest of its export converted; a restart converts nothing again; a touched file is
//! not converted again; a re-sent file with new content is.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::real_store::{read_tree, start_store};
use common::{Running, wait_for};
use kizuna_agent::Config;
use kizuna_store::{FacilityId, sites};

/// What `kizuna-nsips` makes of `files` for `facility`: storage path → bytes.
fn expected(files: &[PathBuf], facility: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for f in files {
        let c = kizuna_nsips::convert_bytes(&std::fs::read(f).unwrap(), f, facility).unwrap();
        for (p, bytes) in c.files {
            out.insert(p.components().join("/"), bytes);
        }
    }
    out
}

/// Every log line of the agent's own log (all days) with this event.
fn events(state: &Path, event: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(state.join("log")).unwrap().flatten() {
        for line in std::fs::read_to_string(e.path()).unwrap().lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["event"] == event
            {
                out.push(v);
            }
        }
    }
    out
}

/// `bytes` with field `field` of the first line whose first field `pick` accepts replaced by
/// `value`; also returns that line's number.
fn with_field(bytes: &[u8], pick: impl Fn(&[u8]) -> bool, field: usize, value: &[u8]) -> (Vec<u8>, usize) {
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let i = lines.iter().position(|l| pick(l.split(|b| *b == b',').next().unwrap())).unwrap();
    let mut fields: Vec<Vec<u8>> = lines[i].split(|b| *b == b',').map(<[u8]>::to_vec).collect();
    fields[field] = value.to_vec();
    lines[i] = fields.join(&b','); // keeps a trailing \r with the last field
    (lines.join(&b'\n'), i + 1)
}

/// Generates a pharmacy's NSIPS exports; returns its facility ID and the files, in name order.
fn pharmacy_exports(dir: &Path, seed: u64, patients: u32) -> (String, Vec<PathBuf>) {
    let gen_root = dir.join("corpus");
    let spec = synth::GenConfig {
        pharmacies: 1,
        sync: false,
        ..synth::GenConfig::new(
            seed,
            1,
            patients,
            synth::CivilDate::new(2024, 1, 1).unwrap(),
            synth::CivilDate::new(2024, 3, 31).unwrap(),
        )
    };
    let summary = synth::generate(&spec, &gen_root, &|_| {}).expect("generate corpus");
    let pharmacy = summary.facilities.iter().find(|f| f.kind == "pharmacy").unwrap().id.clone();
    let mut files: Vec<PathBuf> = std::fs::read_dir(gen_root.join("nsips").join(&pharmacy))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    (pharmacy, files)
}

/// The pharmacy's site at the real store: its token file and agent config (export, state and NSIPS
/// folders below `dir`).
async fn pharmacy_site(store: &kizuna_store::Store, base: &str, dir: &Path, pharmacy: &str) -> Config {
    let token =
        sites::add_site(&store.db, "pharmacy", &[FacilityId::new(pharmacy).unwrap()], &[]).await.unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, &token).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    for d in ["export", "nsips"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let yaml = format!(
        "export_dir: {}\nstate_dir: {}\nstore_url: {base}\nfacility: \"{pharmacy}\"\ntoken_file: {}\n\
         settle_ms: 200\nrescan_interval_secs: 1\nheartbeat_interval_secs: 1\nretry_base_ms: 100\nretry_max_ms: 1000\n\
         nsips:\n  dir: {}\n",
        dir.join("export").display(),
        dir.join("state").display(),
        token_file.display(),
        dir.join("nsips").display()
    );
    Config::parse(&yaml, Path::new("pharmacy.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pharmacy_nsips_exports_reach_the_real_store_as_ssmix2() {
    let dir = tempfile::tempdir().unwrap();
    let (pharmacy, sources) = pharmacy_exports(dir.path(), 23, 30);
    let (store, base, stop_store) = start_store(dir.path()).await;
    let cfg = pharmacy_site(&store, &base, dir.path(), &pharmacy).await;
    let (nsips, state) = (cfg.nsips.clone().unwrap().dir, cfg.state_dir.clone());
    let mut good = Vec::new();
    for src in &sources {
        let dest = nsips.join(src.file_name().unwrap());
        std::fs::copy(src, &dest).unwrap();
        good.push(dest);
    }
    // A patient named with a CP932 IBM extension kanji (髙, as in 髙橋), which SS-MIX2 cannot
    // hold: converted with its JIS X 0208 form and logged, not refused.
    let original = std::fs::read(&good[1]).unwrap();
    let name = if std::str::from_utf8(&original).is_ok() {
        "髙橋　花子".as_bytes().to_vec()
    } else {
        encoding_rs::SHIFT_JIS.encode("髙橋　花子").0.into_owned()
    };
    let (with_ext, ext_line) = with_field(&original, |f| f == b"1", 2, &name);
    std::fs::write(&good[1], with_ext).unwrap();
    assert!(good.len() >= 3, "too few NSIPS files: {}", good.len());
    let mut want = expected(&good, &pharmacy);
    assert!(want.len() > 10, "too few prescriptions: {}", want.len());
    // A bad dispensing: an impossible issue date in the first record 2 (its record 1 is the line
    // before). The export's other dispensings are good[0]'s: the same files, stored once.
    let (bad, bad_line) = with_field(&std::fs::read(&good[0]).unwrap(), |f| f == b"2", 2, b"20240230");
    std::fs::write(nsips.join("bad.csv"), &bad).unwrap();
    let tree_root = store.config.tree_dir().join(&pharmacy);

    // 1. Every good dispensing converted and stored; the bad one quarantined alone (an NSIPS file of
    // the header and its lines) with file, line and field; bad.csv stays, recorded as converted.
    let part = format!("nsips/bad.csv.d{}", bad_line - 1);
    let agent = Running::start(cfg.clone());
    let n = want.len() as u64;
    assert!(
        wait_for(120, || {
            let s = agent.status.get();
            s.files_uploaded == n && s.queue_depth == 0 && s.quarantined == 1
        })
        .await,
        "uploaded {} of {n}: {:?}",
        agent.status.get().files_uploaded,
        agent.status.get()
    );
    assert!(read_tree(&tree_root) == want, "the store's tree differs from the conversion");
    let reason: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cfg.quarantine_dir().join(format!("{part}.reason.json"))).unwrap(),
    )
    .unwrap();
    let v = &reason["violations"][0];
    assert_eq!(v["code"], "nsips-field", "{reason}");
    let field = v["field"].as_str().unwrap();
    assert!(field.starts_with(&format!("line {bad_line} record 2 field 2 ")), "{field}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains(&format!("bad.csv:{bad_line}:")) && message.contains("20240230"), "{message}");
    assert!(nsips.join("bad.csv").is_file(), "the export with a held-back dispensing stays");
    let held = std::fs::read(cfg.quarantine_dir().join(&part)).unwrap();
    let lines: Vec<&[u8]> = bad.split(|b| *b == b'\n').collect();
    assert!(held.starts_with(lines[0]) && held.split(|b| *b == b'\n').nth(2) == Some(lines[bad_line - 1]));
    assert!(good.iter().all(|p| p.is_file()), "converted files stay where the dispensing system put them");
    let (held, replaced): (Vec<_>, Vec<_>) =
        events(&state, "nsips_replaced").into_iter().partition(|e| e["file"] == "nsips/bad.csv");
    assert!(
        held.len() == 1 && held[0]["message"].as_str().unwrap().contains("dispensing held back"),
        "{held:?}"
    );
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    let shown = replaced[0]["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        shown.contains(&format!("line {ext_line}: record 1 field 2 (name (kanji)): '髙'"))
            && shown.contains("written as '高'"),
        "{replaced:?}"
    );
    wait_for(10, || events(&state, "nsips_converted").len() > good.len()).await;
    assert_eq!(events(&state, "nsips_converted").len(), good.len() + 1);
    assert!(
        events(&state, "quarantined").iter().any(|e| e["file"] == part.as_str()),
        "the quarantine is logged (and so counted in the daily log)"
    );
    agent.stop().await;

    // 2. A restart converts nothing again; a touched but unchanged file is not converted either.
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&good[1]).unwrap().set_modified(later).unwrap();
    let agent = Running::start(cfg.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(events(&state, "nsips_converted").len(), good.len() + 1, "converted twice");
    assert!(events(&state, "nsips_reconverted").is_empty());
    assert_eq!(agent.status.get().queue_depth, 0);
    assert_eq!(agent.status.get().files_uploaded, 0, "nothing sent again");

    // 3. A re-sent file with new content (a new header send time) is converted again and its new
    // files are uploaded beside the old ones.
    let resent = &good[2];
    let old = std::fs::read(resent).unwrap();
    let old_files = expected(std::slice::from_ref(resent), &pharmacy);
    let header_end = old.iter().position(|b| *b == b'\n').unwrap();
    let header: Vec<&[u8]> = old[..header_end].split(|b| *b == b',').collect();
    let sent_at = header[1].to_vec();
    let new_sent_at = if sent_at.ends_with(b"00") {
        [&sent_at[..12], b"01"].concat()
    } else {
        [&sent_at[..12], b"00"].concat()
    };
    let (new, _) = with_field(&old, |f| f.starts_with(b"VER"), 1, &new_sent_at);
    // Rewritten in place, as a dispensing system may do: truncated, left empty long enough for the
    // agent to list it (every 50 ms here; a test machine under load paused here at random), written.
    let mut f = std::fs::File::options().write(true).truncate(true).open(resent).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::io::Write::write_all(&mut f, &new).unwrap();
    drop(f);
    // The store keeps the earlier prescriptions as superseded (condition flag 2).
    for (path, bytes) in old_files {
        want.remove(&path);
        want.insert(format!("{}_2", path.strip_suffix("_1").unwrap()), bytes);
    }
    want.extend(expected(std::slice::from_ref(resent), &pharmacy));
    let total = want.len();
    let stored = wait_for(60, || read_tree(&tree_root).len() == total).await;
    if !stored {
        let log: Vec<serde_json::Value> = ["quarantined", "rejected", "outbox_failed", "upload_failed"]
            .iter()
            .flat_map(|e| events(&state, e))
            .collect();
        let tree: Vec<String> = read_tree(&tree_root).into_keys().collect();
        let want: Vec<&String> = want.keys().collect();
        panic!("stored {} of {total}\nlog {log:#?}\ntree {tree:#?}\nwant {want:#?}", tree.len());
    }
    let tree = read_tree(&tree_root);
    let differ: Vec<&String> =
        tree.keys().chain(want.keys()).filter(|k| tree.get(*k) != want.get(*k)).collect();
    assert!(differ.is_empty(), "the store's tree differs after the re-send: {differ:?}");
    // The log line is written after the outbox took the files, so it may trail their upload.
    wait_for(10, || !events(&state, "nsips_reconverted").is_empty()).await;
    let again = events(&state, "nsips_reconverted");
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["file"], format!("nsips/{}", resent.file_name().unwrap().to_str().unwrap()));
    assert_eq!(
        events(&state, "nsips_converted").len(),
        good.len() + 1,
        "the re-sent file taken for a new one"
    );
    agent.stop().await;

    let ledger: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("nsips/converted.json")).unwrap()).unwrap();
    assert_eq!(ledger["converted"].as_object().unwrap().len(), good.len() + 1);
    let _ = stop_store.send(());
}

fn spawn_agent(config: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_kizuna-agent"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("starting kizuna-agent")
}

/// The agent binary SIGKILLed at random points while NSIPS files arrive and convert: afterwards the
/// store holds exactly the conversion of every file (nothing lost, nothing converted differently,
/// so nothing superseded or rejected), and the record, staging folder and outbox are clean. Then
/// the crash window no random kill reliably hits: the record lost after the outbox took the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_nsips_conversion_loses_and_changes_nothing() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let (pharmacy, sources) = pharmacy_exports(dir.path(), 31, 200);
    let (store, base, stop_store) = start_store(dir.path()).await;
    let cfg = pharmacy_site(&store, &base, dir.path(), &pharmacy).await;
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, serde_norway::to_string(&cfg).unwrap()).unwrap();
    let nsips = cfg.nsips.clone().unwrap().dir;
    let want = expected(&sources, &pharmacy);
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}; {} NSIPS files, {} prescriptions", sources.len(), want.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rounds = 12;
    let per_round = sources.len().div_ceil(rounds);
    let mut child = spawn_agent(&config);
    for chunk in sources.chunks(per_round) {
        // Written as the dispensing system would: a hidden temp name, then a rename.
        for src in chunk {
            let name = src.file_name().unwrap().to_str().unwrap();
            let tmp = nsips.join(format!(".{name}.tmp"));
            std::fs::copy(src, &tmp).unwrap();
            std::fs::rename(&tmp, nsips.join(name)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        child = spawn_agent(&config);
    }
    let tree_root = store.config.tree_dir().join(&pharmacy);
    let done = wait_for(90, || read_tree(&tree_root).len() >= want.len()).await;
    let drained = wait_for(20, || {
        std::fs::read_dir(cfg.outbox_dir()).unwrap().count() == 0
            && std::fs::read(cfg.nsips_state_dir().join("converted.json")).is_ok_and(|b| {
                serde_json::from_slice::<serde_json::Value>(&b)
                    .is_ok_and(|v| v["converted"].as_object().is_some_and(|m| m.len() == sources.len()))
            })
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "stored {} of {}", read_tree(&tree_root).len(), want.len());
    assert!(read_tree(&tree_root) == want, "the store's tree differs from one conversion of each file");
    assert!(drained, "outbox not empty or not every file recorded as converted");
    assert_eq!(std::fs::read_dir(cfg.nsips_state_dir().join("staging")).unwrap().count(), 0);
    assert_eq!(kizuna_agent::quarantine::count_files(&cfg.quarantine_dir()).unwrap(), 0, "files quarantined");
    // (The agent's own log lines may be lost to a SIGKILL: what was converted is read from the record.)

    // The record lost (a crash after the outbox took the files, before the record was written) and
    // a staged file left behind: everything is converted again, to the same names and bytes, which
    // the store answers `duplicate`; nothing is superseded, rejected or quarantined.
    std::fs::remove_file(cfg.nsips_state_dir().join("converted.json")).unwrap();
    std::fs::write(cfg.nsips_state_dir().join("staging").join("left-over"), b"x").unwrap();
    let child = spawn_agent(&config);
    let recorded = wait_for(60, || {
        std::fs::read(cfg.nsips_state_dir().join("converted.json")).is_ok_and(|b| {
            serde_json::from_slice::<serde_json::Value>(&b)
                .is_ok_and(|v| v["converted"].as_object().is_some_and(|m| m.len() == sources.len()))
        }) && std::fs::read_dir(cfg.outbox_dir()).unwrap().count() == 0
    })
    .await;
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    assert!(recorded, "not every file converted again");
    assert!(read_tree(&tree_root) == want, "converting again changed the store's tree");
    assert_eq!(std::fs::read_dir(cfg.nsips_state_dir().join("staging")).unwrap().count(), 0);
    assert_eq!(kizuna_agent::quarantine::count_files(&cfg.quarantine_dir()).unwrap(), 0, "files quarantined");
    let _ = stop_store.send(());
}

/// Review finding 1 for NSIPS: a dispensing system that keeps its file open and pauses longer than
/// `settle_ms` while the agent restarts. The restarted agent listed the file with an mtime already
/// that old and converted the first part (a 1-drug prescription stored as current); the rest then
/// became a re-send the store refused. Now a file another process holds open for writing is not
/// read, and the whole file is converted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nsips_file_held_open_for_writing_across_a_restart_is_converted_whole_once() {
    let dir = tempfile::tempdir().unwrap();
    let (pharmacy, sources) = pharmacy_exports(dir.path(), 41, 12);
    let (store, base, stop_store) = start_store(dir.path()).await;
    let cfg = pharmacy_site(&store, &base, dir.path(), &pharmacy).await;
    let (nsips, state) = (cfg.nsips.clone().unwrap().dir, cfg.state_dir.clone());
    // The source with the most lines, cut at a line end near its middle.
    let src = sources.iter().max_by_key(|p| std::fs::read(p).unwrap().len()).unwrap();
    let bytes = std::fs::read(src).unwrap();
    let cut = bytes[..bytes.len() / 2].iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let want = expected(std::slice::from_ref(src), &pharmacy);
    let path = nsips.join(src.file_name().unwrap());

    let agent = Running::start(cfg.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut f = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut f, &bytes[..cut]).unwrap();
    std::io::Write::flush(&mut f).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.stop().await;
    // The writer pauses for 3 s (15 × settle_ms); the agent starts again meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let agent = Running::start(cfg.clone());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(events(&state, "nsips_converted").is_empty(), "a file open for writing was converted");
    assert_eq!(agent.status.get().quarantined, 0, "a file open for writing was quarantined");
    assert!(path.is_file());
    std::io::Write::write_all(&mut f, &bytes[cut..]).unwrap();
    drop(f);
    let tree_root = store.config.tree_dir().join(&pharmacy);
    assert!(wait_for(30, || read_tree(&tree_root).len() >= want.len()).await, "not converted");
    assert!(read_tree(&tree_root) == want, "the store holds other than the whole file's conversion");
    wait_for(5, || !events(&state, "nsips_converted").is_empty()).await;
    assert_eq!(events(&state, "nsips_converted").len(), 1);
    assert!(events(&state, "nsips_reconverted").is_empty(), "converted in parts");
    assert_eq!(agent.status.get().quarantined, 0);
    agent.stop().await;
    let _ = stop_store.send(());
}
