//! `kizuna nsips …`: NSIPS pharmacy exports into SS-MIX2 storage (see the `kizuna-nsips` crate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum NsipsCommand {
    /// Convert every `*.csv` NSIPS export in IN_DIR into SS-MIX2 prescription files (OMP-01) under
    /// the pharmacy's storage root OUT_ROOT, crash-safely, ready for an upload agent.
    Convert {
        /// The pharmacy's 10-digit facility ID (its last seven digits are the export's pharmacy code).
        #[arg(long)]
        facility: String,
        in_dir: PathBuf,
        out_root: PathBuf,
    },
}

pub fn run(c: NsipsCommand) -> anyhow::Result<ExitCode> {
    let NsipsCommand::Convert { facility, in_dir, out_root } = c;
    let n = convert_dir(&facility, &in_dir, &out_root)?;
    println!(
        "{} NSIPS files, {} dispensings, {} with drugs, {} SS-MIX2 files written under {}",
        n.inputs,
        n.dispensings,
        n.messages,
        n.written,
        out_root.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What one conversion did.
pub struct Converted {
    pub inputs: usize,
    pub dispensings: usize,
    /// Dispensings with at least one drug: each became one OMP-01 message.
    pub messages: usize,
    pub written: usize,
}

/// Converts every `*.csv` NSIPS export in `in_dir` into SS-MIX2 files below `out_root`.
pub fn convert_dir(facility: &str, in_dir: &Path, out_root: &Path) -> anyhow::Result<Converted> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(in_dir)
        .with_context(|| format!("reading {}", in_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", in_dir.display()))?;
    inputs.retain(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")));
    inputs.sort();
    // Dispensings without any drug (fees only) yield no prescription message.
    let mut n = Converted { inputs: inputs.len(), dispensings: 0, messages: 0, written: 0 };
    for path in &inputs {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file = kizuna_nsips::parse(&bytes, path)?;
        let files = kizuna_nsips::to_ssmix2(&file, facility)?;
        n.dispensings += file.dispensings.len();
        n.messages += files.len();
        n.written += kizuna_nsips::write_files(out_root, &files)?;
        tracing::debug!(file = %path.display(), dispensings = files.len(), "converted");
    }
    Ok(n)
}
