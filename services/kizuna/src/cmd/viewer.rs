//! `kizuna viewer …`: the clinicians' viewer (time series, calendar, original messages) behind
//! OpenID Connect login. The work is in `kizuna-viewer`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use kizuna_viewer::{Config, Viewer, audit::Audit};

#[derive(Subcommand)]
pub enum ViewerCommand {
    /// Serve the viewer until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// YAML configuration file; without it, the embedded defaults (127.0.0.1:8460, ./kizuna-data).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

pub fn run(cmd: ViewerCommand) -> anyhow::Result<ExitCode> {
    let ViewerCommand::Serve(args) = cmd;
    if args.print_default_config {
        print!("{}", Config::default_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let config = match &args.config {
        Some(p) => Config::load(p).with_context(|| format!("reading configuration {}", p.display()))?,
        None => Config::default(),
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let audit = Audit::from_config(&config).context("audit")?;
        let listener = kizuna_listen::listen(config.listen, &config.bind_interface)?;
        let viewer = Viewer::open(config, audit).await.context("opening the viewer's databases")?;
        kizuna_viewer::serve_on(listener, viewer, super::shutdown::requested()).await.context("viewer")?;
        Ok(ExitCode::SUCCESS)
    })
}
