//! `kizuna nsips …`: NSIPS pharmacy exports into SS-MIX2 storage (see the `kizuna-nsips` crate).

use std::path::PathBuf;
use std::process::ExitCode;

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
    let n = kizuna_nsips::convert_dir(&facility, &in_dir, &out_root)?;
    for (file, r) in &n.replaced {
        // A held-back dispensing is an error below, not a warning.
        if !matches!(r, kizuna_nsips::Warning::HeldBack { .. }) {
            eprintln!("warning: {}: {r}", file.display());
        }
    }
    for (_, h) in &n.held_back {
        eprintln!(
            "error: {} (lines {}-{} held back, the rest converted)",
            h.error,
            h.lines.start(),
            h.lines.end()
        );
    }
    println!(
        "{} NSIPS files, {} dispensings, {} with drugs, {} SS-MIX2 files written under {}{}",
        n.inputs,
        n.dispensings,
        n.messages,
        n.written,
        out_root.display(),
        if n.held_back.is_empty() {
            String::new()
        } else {
            format!("; {} dispensings held back", n.held_back.len())
        }
    );
    // Exit 1: converted what it could, but a dispensing needs fixing and converting again.
    Ok(if n.held_back.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
