//! Validation throughput beside the raw read of the same bytes, in the same run.
//!
//! `cargo bench -p kizuna --bench validate [-- --files N]` generates (once, cached under
//! `target/bench-data/`) a synthetic corpus of about N files (default 100,000), warms the page cache,
//! then alternates a raw read of every file and a full validation of every file, three rounds each,
//! on the same worker threads, and reports files/s, MB/s and the ratio of the medians.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ssmix2::validate::Validator;
use ssmix2::walk::{TreeStats, read_tree, validate_tree};

/// Files the generator writes per person on average over the default half year (measured: ~33).
const FILES_PER_PERSON: u64 = 33;

fn main() {
    let mut files: u64 = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--files" {
            files = args.next().and_then(|v| v.parse().ok()).expect("--files N");
        }
    }
    let corpus = corpus(files);
    let roots: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name().is_some_and(|n| n.to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    let validator = Validator::from_default_tables().expect("NHO tables (../shared) not found");

    // Warm the cache.
    let warm = run_reads(&roots);
    println!(
        "corpus: {} ({} files, {:.1} MB in {} facility trees)",
        corpus.display(),
        warm.files,
        warm.bytes as f64 / 1e6,
        roots.len()
    );

    let (mut read_s, mut val_s) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        let r = run_reads(&roots);
        read_s.push(t.elapsed().as_secs_f64());
        assert_eq!(r.files, warm.files);
        let t = Instant::now();
        let mut violations = 0u64;
        for root in &roots {
            let s = validate_tree(root, &validator, |_| violations += 1).expect("validate");
            assert_eq!(s.violations, 0, "the generated corpus must validate clean");
        }
        val_s.push(t.elapsed().as_secs_f64());
        assert_eq!(violations, 0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (r, v) = (median(&mut read_s), median(&mut val_s));
    let n = warm.files as f64;
    let mb = warm.bytes as f64 / 1e6;
    println!("threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("raw read : {r:.3} s  {:>9.0} files/s  {:>7.1} MB/s", n / r, mb / r);
    println!("validate : {v:.3} s  {:>9.0} files/s  {:>7.1} MB/s", n / v, mb / v);
    println!("ratio validate/read throughput: {:.2} (target >= 0.50)", r / v);
}

fn run_reads(roots: &[PathBuf]) -> TreeStats {
    let mut total = TreeStats::default();
    for root in roots {
        let s = read_tree(root).expect("read");
        total.files += s.files;
        total.bytes += s.bytes;
    }
    total
}

/// The cached corpus for about `files` files, generated on first use.
fn corpus(files: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join(format!("bench-data/validate-{files}"));
    if dir.join("manifest.json").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let patients = (files / FILES_PER_PERSON).max(1) as u32;
    let mut cfg = synth::GenConfig::new(
        42,
        6,
        patients,
        "2024-04-01".parse().expect("date"),
        "2024-09-30".parse().expect("date"),
    );
    cfg.sync = false;
    let t = Instant::now();
    let s = synth::generate(&cfg, &dir, &|_| {}).expect("generate corpus");
    println!("generated {} files in {:.1} s", s.files, t.elapsed().as_secs_f64());
    dir
}
