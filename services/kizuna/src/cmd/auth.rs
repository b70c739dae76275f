//! `kizuna auth`: run the OpenID Connect provider and manage its users and clients. The work is in
//! `kizuna-auth`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kizuna_auth::config::{AuthConfig, DEFAULT_CONFIG};
use kizuna_auth::{Directory, NewClient, NewUser, Role};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Run the provider: discovery, authorize, login forms, token, userinfo, JWKS, logout.
    Serve(ConfigArg),
    /// Print the default configuration with every key explained.
    PrintDefaultConfig,
    /// Create the ID-token signing key and the pairwise-id salt (mode 0600; never overwritten).
    Keygen {
        #[arg(long)]
        signing_key: PathBuf,
        #[arg(long)]
        pairwise_salt: PathBuf,
    },
    /// Users: add, list, change password, TOTP, lockout, disable.
    #[command(subcommand)]
    User(UserCommand),
    /// Relying parties (clients): add, list.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Print the current TOTP code of a base32 secret (demos; a user's phone does this).
    TotpCode { secret: String },
}

#[derive(Args)]
pub struct ConfigArg {
    /// The auth service's YAML configuration.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of this file.
    #[arg(long, conflicts_with = "password_stdin")]
    password_file: Option<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. The password comes from --password-file or --password-stdin (never argv).
    Add {
        #[command(flatten)]
        cfg: ConfigArg,
        #[arg(long)]
        username: String,
        /// Display name (released to services with scope `profile`).
        #[arg(long)]
        name: String,
        /// Facility code, as the store knows it (e.g. F0401): 1 to 16 ASCII letters or digits, the
        /// patient index's rule (`0411-010156` is refused).
        #[arg(long)]
        facility: String,
        /// Comma-separated: physician, nurse, pharmacist, admin, auditor.
        #[arg(long)]
        roles: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Enroll TOTP now and print the secret (otherwise the user enrolls at first login).
        #[arg(long)]
        totp: bool,
    },
    /// List users (JSON lines).
    List(ConfigArg),
    /// Set a new password.
    Passwd {
        #[command(flatten)]
        cfg: ConfigArg,
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Give the user a new TOTP secret and print it.
    TotpEnroll {
        #[command(flatten)]
        cfg: ConfigArg,
        username: String,
    },
    /// Forget the user's TOTP secret: they enroll again at their next login.
    TotpReset {
        #[command(flatten)]
        cfg: ConfigArg,
        username: String,
    },
    /// Clear a lockout.
    Unlock {
        #[command(flatten)]
        cfg: ConfigArg,
        username: String,
    },
    /// Disable a user (ends their sessions).
    Disable {
        #[command(flatten)]
        cfg: ConfigArg,
        username: String,
    },
    /// Re-enable a disabled user.
    Enable {
        #[command(flatten)]
        cfg: ConfigArg,
        username: String,
    },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a relying party; prints its client secret once (unless --public).
    Add {
        #[command(flatten)]
        cfg: ConfigArg,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where the browser may return after logout (repeat for several).
        #[arg(long = "post-logout-uri")]
        post_logout_uris: Vec<String>,
        /// Pairwise-id sector (clients of one service share it); default: host of the first redirect URI.
        #[arg(long, default_value = "")]
        sector: String,
        /// A public client (no secret; PKCE only), e.g. a native app.
        #[arg(long)]
        public: bool,
    },
    /// List clients (JSON lines).
    List(ConfigArg),
}

fn load(path: &Path) -> anyhow::Result<AuthConfig> {
    Ok(AuthConfig::load(path)?)
}

fn read_password(p: &PasswordArgs) -> anyhow::Result<String> {
    let line = if let Some(f) = &p.password_file {
        std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    } else if p.password_stdin {
        let mut l = String::new();
        std::io::stdin().lock().read_line(&mut l).context("reading the password from stdin")?;
        l.trim_end_matches(['\r', '\n']).to_string()
    } else {
        bail!("give the password with --password-file FILE or --password-stdin");
    };
    Ok(line)
}

async fn directory(cfg: &AuthConfig) -> anyhow::Result<Directory> {
    if cfg.database_url.trim().is_empty() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    }
    Ok(Directory::open(&cfg.database_url()).await?)
}

fn print_totp(username: &str, secret: &str) -> anyhow::Result<()> {
    println!("totp_secret: {secret}");
    println!("totp_uri: {}", kizuna_auth::totp::provisioning_uri(secret, "Kizuna", username)?);
    Ok(())
}

pub fn run(cmd: AuthCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cmd {
        AuthCommand::PrintDefaultConfig => print!("{DEFAULT_CONFIG}"),
        AuthCommand::Keygen { signing_key, pairwise_salt } => {
            kizuna_auth::keys::generate_secret_file(&signing_key)?;
            kizuna_auth::keys::generate_secret_file(&pairwise_salt)?;
            println!("wrote {} and {}", signing_key.display(), pairwise_salt.display());
        }
        AuthCommand::TotpCode { secret } => println!("{}", kizuna_auth::totp::code_now(&secret)?),
        AuthCommand::Serve(a) => {
            let cfg = load(&a.config)?;
            rt.block_on(async {
                let server = kizuna_auth::Server::start(cfg).await?;
                println!("auth service (OpenID Connect issuer) at {}", server.issuer());
                super::shutdown::requested().await;
                server.shutdown().await;
                anyhow::Ok(())
            })?;
        }
        AuthCommand::User(u) => rt.block_on(run_user(u))?,
        AuthCommand::Client(c) => rt.block_on(run_client(c))?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { cfg, username, name, facility, roles, password, totp } => {
            let dir = directory(&load(&cfg.config)?).await?;
            let user = dir
                .add_user(&NewUser {
                    username: username.clone(),
                    display_name: name,
                    facility,
                    roles: Role::parse_list(&roles)?,
                    password: read_password(&password)?,
                })
                .await?;
            println!("added user {} ({}) at {}", user.username, Role::join(&user.roles), user.facility);
            if totp {
                print_totp(&username, &dir.enroll_totp(&username).await?)?;
            }
        }
        UserCommand::List(cfg) => {
            for u in directory(&load(&cfg.config)?).await?.list_users().await? {
                println!("{}", serde_json::to_string(&u)?);
            }
        }
        UserCommand::Passwd { cfg, username, password } => {
            directory(&load(&cfg.config)?).await?.set_password(&username, &read_password(&password)?).await?;
            println!("password of {username} changed");
        }
        UserCommand::TotpEnroll { cfg, username } => {
            let secret = directory(&load(&cfg.config)?).await?.enroll_totp(&username).await?;
            print_totp(&username, &secret)?;
        }
        UserCommand::TotpReset { cfg, username } => {
            directory(&load(&cfg.config)?).await?.reset_totp(&username).await?;
            println!("{username} enrolls a new TOTP secret at the next login");
        }
        UserCommand::Unlock { cfg, username } => {
            directory(&load(&cfg.config)?).await?.unlock(&username).await?;
            println!("{username} unlocked");
        }
        UserCommand::Disable { cfg, username } => {
            directory(&load(&cfg.config)?).await?.set_disabled(&username, true).await?;
            println!("{username} disabled");
        }
        UserCommand::Enable { cfg, username } => {
            directory(&load(&cfg.config)?).await?.set_disabled(&username, false).await?;
            println!("{username} enabled");
        }
    }
    Ok(())
}

async fn run_client(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add { cfg, id, name, redirect_uris, post_logout_uris, sector, public } => {
            let creds = directory(&load(&cfg.config)?)
                .await?
                .add_client(&NewClient {
                    client_id: id,
                    name,
                    redirect_uris,
                    post_logout_redirect_uris: post_logout_uris,
                    sector,
                    confidential: !public,
                })
                .await?;
            println!("client_id: {}", creds.client_id);
            if let Some(s) = creds.client_secret {
                println!("client_secret: {s}");
            }
        }
        ClientCommand::List(cfg) => {
            for c in directory(&load(&cfg.config)?).await?.list_clients().await? {
                println!("{}", serde_json::to_string(&c)?);
            }
        }
    }
    Ok(())
}
