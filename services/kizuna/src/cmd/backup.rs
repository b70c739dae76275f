//! `kizuna backup`: replicate the centre to replicas, verify them, promote one. The work is in
//! `kizuna-backup`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use kizuna_backup::Config;
use kizuna_backup::client::ReplicaClient;
use kizuna_backup::follow::{Follower, metrics::Metrics, run_verify};
use kizuna_backup::primary::Primary;
use kizuna_backup::replica::digests::Check;
use kizuna_backup::verify::Options;

#[derive(Subcommand)]
pub enum BackupCommand {
    /// On a replica: receive batches from the primary and apply them durably (`replica:` section).
    Serve(ConfigArg),
    /// On the primary, beside the store: ship the journal and the tree to every replica, watch the
    /// tree for files others write, verify on a schedule (`follow:` section).
    Follow(ConfigArg),
    /// Compare the primary with its replicas by Merkle digests; exit 0 = identical, 1 = differences.
    Verify(VerifyArgs),
    /// Turn a replica's data folder into a centre's (stop `backup serve` first); then run
    /// `kizuna serve` with `data_dir` set to it.
    Promote(PromoteArgs),
    /// Write a new random bearer token to a file (mode 0600), for `token_file`.
    Token {
        #[arg(long)]
        out: PathBuf,
    },
    /// On a replica: make a self-signed TLS certificate and key for `replica.tls_cert_file` and
    /// `replica.tls_key_file`; copy the certificate (not the key) to the primary as the replica's
    /// `ca_file`. Existing files are never replaced.
    Cert {
        /// The certificate (PEM) to write.
        #[arg(long)]
        cert: PathBuf,
        /// The private key (PEM, mode 0600) to write.
        #[arg(long)]
        key: PathBuf,
        /// A DNS name or IP address the followers use in their url (repeat for more).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
    },
}

#[derive(Args)]
pub struct ConfigArg {
    /// The backup's YAML configuration; without it, the defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the default configuration, with every key explained, and exit.
    #[arg(long)]
    print_default_config: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckArg {
    Recorded,
    Stat,
    Content,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// Only this replica (default: all in follow.replicas).
    #[arg(long)]
    replica: Option<String>,
    /// Fix the differences: send the primary's files, remove what only the replica has. Run it
    /// with `backup follow` stopped, or let follow's scheduled verification repair.
    #[arg(long)]
    repair: bool,
    /// How closely replicas check their files against their records.
    #[arg(long, value_enum, default_value = "stat")]
    check: CheckArg,
    /// How long to wait for a replica to apply what was in flight when a difference was seen,
    /// in seconds (default: `follow.verify.settle_s`, 120). With the follower stopped, files
    /// uploaded since are reported after this wait.
    #[arg(long)]
    settle_secs: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PromoteArgs {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The promoted centre's IndexDB (sqlite://FILE or postgres://…); default SQLite in the folder.
    #[arg(long, default_value = "")]
    database_url: String,
}

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("reading configuration {}", p.display())),
        None => Ok(Config::default()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

pub fn run(cmd: BackupCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BackupCommand::Serve(a) | BackupCommand::Follow(a) if a.print_default_config => {
            print!("{}", Config::default_yaml());
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Serve(a) => {
            let config = load(a.config.as_deref())?.replica;
            runtime()?.block_on(async {
                let l = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("listening on {}", config.listen))?;
                kizuna_backup::serve::serve_on(l, &config, super::shutdown::requested())
                    .await
                    .context("backup replica")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Follow(a) => {
            let config = load(a.config.as_deref())?.follow;
            runtime()?.block_on(async {
                let l = tokio::net::TcpListener::bind(config.metrics_listen)
                    .await
                    .with_context(|| format!("listening on {}", config.metrics_listen))?;
                let follower = Follower::open(config).await.context("backup follower")?;
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    super::shutdown::requested().await;
                    let _ = tx.send(true);
                });
                follower.run(Some(l), rx).await.context("backup follower")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Verify(a) => {
            let config = load(Some(&a.config))?.follow;
            let check = match a.check {
                CheckArg::Recorded => Check::Recorded,
                CheckArg::Stat => Check::Stat,
                CheckArg::Content => Check::Content,
            };
            let targets: Vec<_> = config
                .replicas
                .iter()
                .filter(|r| a.replica.as_ref().is_none_or(|n| *n == r.name))
                .cloned()
                .collect();
            if targets.is_empty() {
                bail!("no replica to verify (follow.replicas, --replica)");
            }
            let clean = runtime()?.block_on(async {
                let primary = std::sync::Arc::new(Primary::open(&config).await?);
                let metrics = Metrics::default();
                let mut clean = true;
                for t in &targets {
                    let client = ReplicaClient::new(t, Duration::from_secs(config.request_timeout_s.max(1)))?;
                    let settle = Duration::from_secs(a.settle_secs.unwrap_or(config.verify.settle_s));
                    let opts = Options { check, repair: a.repair, settle, ..Options::default() };
                    let Some(report) = run_verify(&primary, &client, &metrics, opts).await else {
                        bail!("verification of {} failed (see the log)", t.name);
                    };
                    if a.json {
                        println!("{}", serde_json::to_string(&report)?);
                    } else {
                        println!(
                            "{}: {} files, {} differences ({} still in flight after the settle time), {} in flight and since applied, {} repaired, {} removed, {:.2} s (primary at entry {}, replica at {})",
                            report.replica, report.files, report.differences, report.unsettled, report.in_flight, report.repaired_files,
                            report.removed, report.seconds, report.primary_seq, report.replica_seq
                        );
                        for f in &report.findings {
                            println!("  {}{}: primary {} / replica {}", f.path, if f.dir { "/" } else { "" },
                                f.primary.as_deref().unwrap_or("-"), f.replica.as_deref().unwrap_or("-"));
                        }
                    }
                    clean &= report.clean() || (a.repair && report.unrepairable == 0);
                }
                anyhow::Ok(clean)
            })?;
            Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        BackupCommand::Promote(a) => {
            let config = load(a.config.as_deref())?.replica;
            let p = runtime()?
                .block_on(kizuna_backup::promote::promote(&config.data_dir, &a.database_url))
                .context("promote")?;
            println!(
                "promoted {}: journal up to entry {}, {} records indexed in {}\nnow run: kizuna serve --config FILE  (with data_dir: {}{})",
                config.data_dir.display(),
                p.applied_seq,
                p.records,
                without_password(&p.database_url),
                config.data_dir.display(),
                if a.database_url.is_empty() {
                    String::new()
                } else {
                    format!(", database_url: {}", without_password(&a.database_url))
                }
            );
            match &p.linkage {
                Some(l) => println!(
                    "linkage database: {}/linkage.sqlite, the primary's snapshot of {} ({} bytes): common IDs and consent as they were then",
                    config.data_dir.display(),
                    l.taken_at.as_deref().unwrap_or("?"),
                    l.bytes
                ),
                None => println!(
                    "linkage database: none arrived from the primary; `kizuna index link` links the patients anew (new common IDs, no consent recorded)"
                ),
            }
            for n in p.notices() {
                println!("{n}");
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Cert { cert, key, names } => {
            kizuna_backup::tls::write_self_signed(&names, &cert, &key)?;
            println!(
                "wrote a self-signed certificate for {} to {} and its key to {} (mode 0600)",
                names.join(", "),
                cert.display(),
                key.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Token { out } => {
            let token = hex::encode(rand_bytes());
            // The error names the file.
            kizuna_backup::durable::write_new(&out, format!("{token}\n").as_bytes(), 0o600)?;
            println!("wrote a new token to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("/dev/urandom is readable");
    b
}

/// A database URL as it may be shown: a password in it is replaced by `***`
/// (`postgres://kizuna:secret@db/x` → `postgres://kizuna:***@db/x`).
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn passwords_are_not_shown() {
        use super::without_password as w;
        assert_eq!(w("postgres://kizuna:S3cret@db:5432/kizuna"), "postgres://kizuna:***@db:5432/kizuna");
        assert_eq!(w("postgres://kizuna@db/kizuna"), "postgres://kizuna@db/kizuna");
        assert_eq!(w("sqlite:///var/lib/kizuna/index.sqlite"), "sqlite:///var/lib/kizuna/index.sqlite");
        assert_eq!(w("postgres://u:p@ss@db/x"), "postgres://u:***@db/x");
    }
}
