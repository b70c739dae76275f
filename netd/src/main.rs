//! The `netd` binary: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "netd",
    version,
    about = "Kizuna site appliance daemon: policy -> VRF + WireGuard + nftables"
)]
struct Cli {
    /// Site file (YAML): which site this router is, key and state directories.
    #[arg(long, global = true, default_value = "/etc/netd/site.yaml")]
    config: PathBuf,
    /// Print the default site file and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy: exit 0 valid, 1 invalid, 2 usage or I/O error.
    Check { policy: PathBuf },
    /// Print the JSON Schema of the policy.
    Schema,
    /// Print the changes an apply would make: exit 0 nothing to do, 2 changes pending.
    Plan,
    /// Apply the policy once (observe, diff, apply, verify, roll back on failure).
    Apply,
    /// Show mode, segments, peers and drift.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run as a daemon: reconcile on policy change, on a timer and on SIGHUP; serve the API.
    Run,
    /// Generate missing keys and print only the public keys, as YAML.
    Keys {
        /// Segments to generate keys for (default: the segments of this site in the policy).
        #[arg(long = "segment")]
        segments: Vec<String>,
    },
    /// Enroll this router with the centre registry using a one-time token from
    /// `kizuna site provision`; writes the site file if it is missing.
    Enroll { token: String },
    /// Rotate segment keys: generate new keys beside the ones in use and register them with
    /// the registry; `netd run` switches each when the registry's view lists it. Not enrolled:
    /// print the new public keys for the policy file.
    Rotate {
        /// Segments to rotate.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        segments: Vec<String>,
        /// Rotate every segment of this site.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    netd::cli::init_tracing();
    if cli.print_default_config {
        print!("{}", netd::site::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("netd: no command given; see netd --help");
        return ExitCode::from(2);
    };
    let code = match command {
        Command::Check { policy } => netd::cli::check(&policy),
        Command::Schema => netd::cli::schema(),
        Command::Plan => netd::cli::plan(&cli.config),
        Command::Apply => netd::cli::apply(&cli.config),
        Command::Status { json } => netd::cli::status(&cli.config, json),
        Command::Run => netd::cli::run(&cli.config),
        Command::Keys { segments } => netd::cli::keys(&cli.config, &segments),
        Command::Enroll { token } => netd::cli::enroll(&cli.config, &token),
        Command::Rotate { segments, all } => netd::cli::rotate(&cli.config, &segments, all),
    };
    ExitCode::from(code)
}
