//! `kizuna nsips …`: NSIPS pharmacy exports into SS-MIX2 storage (see the `kizuna-nsips` crate).

use std::path::PathBuf;
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
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&in_dir)
        .with_context(|| format!("reading {}", in_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", in_dir.display()))?;
    inputs.retain(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")));
    inputs.sort();
    // Dispensings without any drug (fees only) yield no prescription message.
    let (mut dispensings, mut messages, mut written) = (0, 0, 0);
    for path in &inputs {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file = kizuna_nsips::parse(&bytes, path)?;
        let files = kizuna_nsips::to_ssmix2(&file, &facility)?;
        dispensings += file.dispensings.len();
        messages += files.len();
        written += kizuna_nsips::write_files(&out_root, &files)?;
        tracing::debug!(file = %path.display(), dispensings = files.len(), "converted");
    }
    println!(
        "{} NSIPS files, {dispensings} dispensings, {messages} with drugs, {written} SS-MIX2 files written under {}",
        inputs.len(),
        out_root.display()
    );
    Ok(ExitCode::SUCCESS)
}
