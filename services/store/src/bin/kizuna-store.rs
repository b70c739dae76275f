//! `kizuna-store [--config FILE]`: the store alone, as a process (the operator's command is
//! `kizuna serve`; this thin binary lets the store's own tests kill and restart a real process).

use clap::Parser;

/// mimalloc: the upload path allocates many small, short-lived buffers across threads, where glibc
/// malloc took ~13 % of the upload benchmark's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The centre's store alone (the same as `kizuna serve`, for tests that kill a real process).
#[derive(Parser)]
#[command(name = "kizuna-store", version)]
struct Args {
    /// The store's YAML configuration; without it, the defaults (`kizuna serve --print-default-config`).
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    // A mistyped argument (or --help) never starts a store on the defaults.
    let args = Args::parse();
    let config = match &args.config {
        Some(p) => kizuna_store::Config::load(p),
        None => Ok(kizuna_store::Config::default()),
    };
    let run = |c| -> Result<(), kizuna_store::StoreError> {
        let rt = tokio::runtime::Runtime::new()
            .map_err(|e| kizuna_store::StoreError::io(std::path::Path::new("runtime"), e))?;
        rt.block_on(kizuna_store::serve(c))
    };
    match config.and_then(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kizuna-store: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
