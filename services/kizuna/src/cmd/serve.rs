//! `kizuna serve`: run the centre's store (upload API, tree, IndexDB, change journal).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use kizuna_store::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// YAML configuration file; without it, the embedded defaults (./kizuna-data, 127.0.0.1:8440).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the default configuration, with every key explained, and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

/// Loads `--config FILE`, or the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("reading configuration {}", p.display())),
        None => Ok(Config::default()),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.print_default_config {
        print!("{}", Config::default_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let config = load_config(args.config.as_deref())?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(kizuna_store::serve(config)).context("store")?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ReindexArgs {
    /// The store's YAML configuration (the one `kizuna serve` runs with); without it, the defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// `kizuna reindex`: rebuilds the search rows from the tree, with the store stopped.
pub fn reindex(args: ReindexArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_deref())?;
    let data_dir = config.data_dir.clone();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let done = rt
        .block_on(kizuna_store::reindex(config))
        .with_context(|| format!("re-indexing {} (stop the store first)", data_dir.display()))?;
    println!(
        "rebuilt the search rows of {} records from the tree; search watermark {}",
        done.rebuilt, done.watermark
    );
    Ok(ExitCode::SUCCESS)
}
