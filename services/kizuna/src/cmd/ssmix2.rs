//! `kizuna ssmix2 …`: validate and generate SS-MIX2 data.

use std::process::ExitCode;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use ssmix2::validate::{Validator, Violation};
use ssmix2::walk::{TreeStats, validate_file, validate_tree};

#[derive(Subcommand)]
pub enum Ssmix2Command {
    /// Validate storage roots (folders) or single files. Exit 0: clean; 1: violations; 2: usage or I/O
    /// error.
    Validate {
        /// Storage roots (the folder that holds `PID[0:3]/…`) or single files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON lines: one violation per line, then one `{"summary":…}` line.
        #[arg(long)]
        json: bool,
        /// The NHO validator's table folder (default: $KIZUNA_NHO_TABLES, else
        /// ../shared/external/nhoHQ-SSMIX2DataTestingTool/include found from here or the executable).
        #[arg(long, env = "KIZUNA_NHO_TABLES")]
        tables: Option<PathBuf>,
    },
    /// Generate a deterministic synthetic corpus: the same arguments give byte-identical output.
    Gen {
        /// Output folder (must not exist or be empty).
        #[arg(long, short)]
        out: PathBuf,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Hospitals and clinics (every third, from the first, is a hospital).
        #[arg(long, default_value_t = 3)]
        facilities: u32,
        /// Distinct people; each is registered at one to five facilities.
        #[arg(long, default_value_t = 100)]
        patients: u32,
        /// Pharmacies exporting NSIPS dispensing files.
        #[arg(long, default_value_t = 0)]
        pharmacies: u32,
        /// First day of care (YYYY-MM-DD).
        #[arg(long, default_value = "2024-04-01")]
        from: String,
        /// Last day of care (YYYY-MM-DD).
        #[arg(long, default_value = "2024-09-30")]
        to: String,
        /// Known-bad files to add under `bad/`, each listed in `bad-files.csv` with the code it raises.
        #[arg(long, default_value_t = 0)]
        bad: u32,
        /// Skip the final filesystem flush (faster; files still appear atomically).
        #[arg(long)]
        no_sync: bool,
    },
    /// Parse a file name and print its parts (a quick check of a single name).
    Name {
        /// A standardized-storage file name or relative path.
        name: String,
    },
}

pub fn run(cmd: Ssmix2Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Ssmix2Command::Validate { paths, json, tables } => validate(&paths, json, tables.as_deref()),
        Ssmix2Command::Gen { out, seed, facilities, patients, pharmacies, from, to, bad, no_sync } => {
            let date = |s: &str, what: &str| -> anyhow::Result<synth::CivilDate> {
                s.parse().with_context(|| format!("--{what} {s:?} is not a date (YYYY-MM-DD)"))
            };
            let mut cfg =
                synth::GenConfig::new(seed, facilities, patients, date(&from, "from")?, date(&to, "to")?);
            cfg.bad = bad;
            cfg.pharmacies = pharmacies;
            cfg.sync = !no_sync;
            let summary = generate(&cfg, &out)?;
            println!(
                "{} persons, {} registrations, {} files ({} bytes) in {} facilities; flags {:?}; {} bad files; {} NSIPS files",
                summary.persons,
                summary.registrations,
                summary.files,
                summary.bytes,
                summary.facilities.len(),
                summary.by_flag,
                summary.bad_files,
                summary.nsips_files
            );
            println!("manifest: {}", out.join("manifest.json").display());
            Ok(ExitCode::SUCCESS)
        }
        Ssmix2Command::Name { name } => {
            let parsed = if name.contains('/') {
                ssmix2::StoragePath::parse(&name).map(|p| p.name)
            } else {
                name.parse::<ssmix2::FileName>()
            };
            match parsed {
                Ok(n) => {
                    println!("patient    {}", n.patient);
                    println!("care date  {}", n.care_date);
                    println!("data type  {} ({})", n.data_type, n.data_type.meaning());
                    println!("order no   {}", n.order_no);
                    println!("timestamp  {}", n.timestamp);
                    println!("department {}", n.department);
                    println!("flag       {}", n.flag);
                    println!("path       {}", ssmix2::StoragePath::of(n));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("{name}: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// Validates each path, printing violations as they are found; the exit code says whether any were.
fn validate(paths: &[PathBuf], json: bool, tables: Option<&Path>) -> anyhow::Result<ExitCode> {
    let validator = match tables {
        Some(dir) => Validator::from_nho_tables(dir),
        None => Validator::from_default_tables(),
    }
    .context("loading the NHO validation tables")?;
    let started = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    let mut total = TreeStats::default();
    // A closed pipe (e.g. `| head`) ends the output quietly, here and below; the exit code still
    // counts the violations.
    let quiet = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    };
    if !json {
        quiet(writeln!(out, "{:<70} {:<24} {:<12} MESSAGE", "FILE", "CODE", "FIELD"))?;
    }
    for path in paths {
        let mut print = |v: Violation| {
            let line = if json {
                serde_json::to_string(&v).expect("violations serialize")
            } else {
                format!(
                    "{:<70} {:<24} {:<12} {}",
                    v.file.display(),
                    v.code,
                    v.field.as_deref().unwrap_or("-"),
                    v.message
                )
            };
            // A closed pipe (e.g. `| head`) ends the output quietly; the exit code still counts.
            let _ = writeln!(out, "{line}");
        };
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        let stats = if meta.is_dir() {
            validate_tree(path, &validator, &mut print)
        } else {
            validate_file(&validator, None, path, &mut print)
        }
        .with_context(|| format!("validating {}", path.display()))?;
        total.files += stats.files;
        total.bytes += stats.bytes;
        total.violations += stats.violations;
    }
    let secs = started.elapsed().as_secs_f64();
    if json {
        let summary = serde_json::json!({ "summary": { "files": total.files, "bytes": total.bytes,
            "violations": total.violations, "seconds": secs } });
        quiet(writeln!(out, "{summary}"))?;
    } else {
        quiet(writeln!(
            out,
            "{} files, {} bytes, {} violations in {:.2} s ({:.0} files/s)",
            total.files,
            total.bytes,
            total.violations,
            secs,
            total.files as f64 / secs.max(1e-9)
        ))?;
    }
    Ok(if total.violations == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Runs the generator with a progress bar on a terminal (plain log lines otherwise).
pub fn generate(cfg: &synth::GenConfig, out: &Path) -> anyhow::Result<synth::GenSummary> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} generating [{bar:30}] {pos}/{len} registrations, {msg}",
        )
        .expect("valid template"),
    );
    let report = |p: synth::Progress| {
        bar.set_length(p.registrations_total);
        bar.set_position(p.registrations_done);
        bar.set_message(format!("{} files", p.files_written));
        if bar.is_hidden() && p.registrations_done.is_multiple_of(4096) {
            tracing::info!(
                done = p.registrations_done,
                total = p.registrations_total,
                files = p.files_written,
                "generating"
            );
        }
    };
    let summary =
        synth::generate(cfg, out, &report).with_context(|| format!("generating into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}
