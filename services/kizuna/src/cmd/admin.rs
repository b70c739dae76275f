//! `kizuna admin`: the upload-monitoring admin screen and alert mail (`kizuna-monitor`). With
//! `oidc.issuer` set the screen is for admins of the centre's single sign-on only; without it,
//! loopback only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use kizuna_monitor::{Config, Monitor};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Serve the admin screen (loopback by default; admins log in by single sign-on when
    /// oidc.issuer is set) and check the alert rules every `check_interval_secs` (60).
    Serve(AdminArgs),
    /// Check the alert rules once now, send the mail that is due, and print what happened. Exits
    /// 1 when alert mail was not delivered (relay down, a recipient refused) or the store is
    /// down, 2 when the check itself failed.
    Check(AdminArgs),
}

#[derive(Args)]
pub struct AdminArgs {
    /// YAML configuration file; without it, the defaults (127.0.0.1:8441, the store's defaults).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the default configuration, with every key explained, and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

fn load(args: &AdminArgs) -> anyhow::Result<Config> {
    match &args.config {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::default()),
    }
}

pub fn run(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let (args, serve) = match &cmd {
        AdminCommand::Serve(a) => (a, true),
        AdminCommand::Check(a) => (a, false),
    };
    if args.print_default_config {
        print!("{}", Config::default_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let config = load(args)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let degraded = rt.block_on(async move {
        let m = Monitor::open(config).await?;
        if serve {
            if m.cfg.login_required() {
                println!(
                    "admin screen: {}/  (admins log in at {}; redirect URI {})",
                    m.cfg.base_url(),
                    m.cfg.oidc.issuer,
                    m.cfg.redirect_uri()
                );
            } else {
                println!(
                    "admin screen: http://{}/  (no login: oidc.issuer is empty, loopback only)",
                    m.cfg.listen
                );
            }
            kizuna_monitor::serve(m, super::shutdown::requested()).await?;
            Ok::<_, anyhow::Error>(false)
        } else {
            let r = m.check_now().await?;
            if r.busy {
                println!("another check is running (the admin screen's or another `kizuna admin check`); nothing done");
            }
            for (site, rule) in &r.opened {
                println!("opened  {site} {rule}");
            }
            for (site, rule) in &r.closed {
                println!("closed  {site} {rule}");
            }
            println!("{} mails sent", r.mails_sent);
            let problems = r.problems();
            for p in &problems {
                eprintln!("{p}");
            }
            Ok(!problems.is_empty())
        }
    })?;
    Ok(if degraded { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
