//! `kizuna`: the operator's one binary. Each subcommand lives in `cmd/<name>.rs` and only parses
//! arguments and calls a library; the work is done in the service crates.

mod cmd;
mod logging;
mod report;

use clap::{Parser, Subcommand};

/// mimalloc: the upload path allocates many small, short-lived buffers across threads, where glibc
/// malloc took ~13 % of the upload benchmark's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kizuna", version, about = "Kizuna regional health-information network: centre and tools")]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    /// `KIZUNA_LOG_JSON=1` (or `true`, `yes`, `on`) does the same; empty means unset.
    #[arg(long, global = true, env = "KIZUNA_LOG_JSON", value_parser = boolish_or_empty)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// `BoolishValueParser`, with an empty value (`KIZUNA_LOG_JSON=` in a unit file or a shell) as
/// false instead of an error that stopped every command.
fn boolish_or_empty(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        other => Err(format!("{other:?} is not a yes/no value (1, true, yes, on / 0, false, no, off)")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo: a centre on embedded defaults, a synthetic corpus and one upload agent per
    /// facility, with progress and final counts.
    Demo(cmd::demo::DemoArgs),
    /// SS-MIX2 tools: validate files and trees, generate synthetic corpora.
    #[command(subcommand)]
    Ssmix2(cmd::ssmix2::Ssmix2Command),
    /// Run the centre's store: upload API, SS-MIX2 tree, IndexDB, change journal.
    Serve(cmd::serve::ServeArgs),
    /// Rebuild the IndexDB's search rows (drugs, labs, diagnoses, encounters) from the SS-MIX2 tree,
    /// after an upgrade whose extractor derives more; the store must be stopped.
    Reindex(cmd::serve::ReindexArgs),
    /// Sites that may upload: add, list, rotate tokens, enable/disable.
    #[command(subcommand)]
    Site(cmd::site::SiteCommand),
    /// Upload monitoring: the admin screen (per-site health, rejects, re-requests, receiver
    /// settings) and alert mail.
    #[command(subcommand)]
    Admin(cmd::admin::AdminCommand),
    /// Audit trail: run the service, verify the tamper-evident log, search it.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Single sign-on: run the OpenID Connect provider, manage users and clients.
    #[command(subcommand)]
    Auth(cmd::auth::AuthCommand),
    /// Backup: replicate the centre to replicas, verify them, promote one.
    #[command(subcommand)]
    Backup(cmd::backup::BackupCommand),
    /// NSIPS pharmacy exports: convert to SS-MIX2 prescription files.
    #[command(subcommand)]
    Nsips(cmd::nsips::NsipsCommand),
    /// The patient index on a running centre: link newly stored patients to common health IDs.
    #[command(subcommand)]
    Index(cmd::index::IndexCommand),
    /// Patient consent to share records with other facilities (disclosure control).
    #[command(subcommand)]
    Consent(cmd::consent::ConsentCommand),
    /// The clinicians' viewer: time series, calendar and original messages behind OIDC login.
    #[command(subcommand)]
    Viewer(cmd::viewer::ViewerCommand),
    /// The mesh registry: serve signed per-site views, list enrolled sites, show its keys.
    #[command(subcommand)]
    Registry(cmd::registry::RegistryCommand),
    /// The mesh policy held by the registry: apply (check, diff, activate), rollback, list, show.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCommand),
}

/// Nothing `kizuna` creates (the SS-MIX2 tree, the databases with password hashes and TOTP
/// secrets, journals, spools) may be readable by others: the umask gets at least 027, as the
/// systemd units set it, also when run from a shell with 022. A stricter umask is kept.
fn restrict_umask() {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(0o077));
    umask(old | Mode::from_bits_truncate(0o027));
}

fn main() -> std::process::ExitCode {
    restrict_umask();
    let cli = Cli::parse();
    logging::init(cli.log_json);
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Ssmix2(c) => cmd::ssmix2::run(c),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Reindex(a) => cmd::serve::reindex(a),
        Command::Site(c) => cmd::site::run(c),
        Command::Admin(c) => cmd::admin::run(c),
        Command::Audit(c) => cmd::audit::run(c),
        Command::Auth(c) => cmd::auth::run(c),
        Command::Backup(c) => cmd::backup::run(c),
        Command::Nsips(c) => cmd::nsips::run(c),
        Command::Index(c) => cmd::index::run(c),
        Command::Consent(c) => cmd::consent::run(c),
        Command::Viewer(c) => cmd::viewer::run(c),
        Command::Registry(c) => cmd::registry::run(c),
        Command::Policy(c) => cmd::policy::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kizuna: {}", report::error_line(&e));
            std::process::ExitCode::from(2)
        }
    }
}
