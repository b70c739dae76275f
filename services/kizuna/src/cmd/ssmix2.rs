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
    /// Parse a file name and print its parts (a quick check of a single name).
    Name {
        /// A standardized-storage file name or relative path.
        name: String,
    },
}

pub fn run(cmd: Ssmix2Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Ssmix2Command::Validate { paths, json, tables } => validate(&paths, json, tables.as_deref()),
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
    if !json {
        writeln!(out, "{:<70} {:<24} {:<12} MESSAGE", "FILE", "CODE", "FIELD")?;
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
        writeln!(out, "{summary}")?;
    } else {
        writeln!(
            out,
            "{} files, {} bytes, {} violations in {:.2} s ({:.0} files/s)",
            total.files,
            total.bytes,
            total.violations,
            secs,
            total.files as f64 / secs.max(1e-9)
        )?;
    }
    Ok(if total.violations == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
