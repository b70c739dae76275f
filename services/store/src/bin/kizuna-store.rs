//! `kizuna-store [--config FILE]`: the store alone, as a process (the operator's command is
//! `kizuna serve`; this thin binary lets the store's own tests kill and restart a real process).

/// mimalloc: the upload path allocates many small, short-lived buffers across threads, where glibc
/// malloc took ~13 % of the upload benchmark's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let config = match args.iter().position(|a| a == "--config").and_then(|i| args.get(i + 1)) {
        Some(p) => kizuna_store::Config::load(std::path::Path::new(p)),
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
