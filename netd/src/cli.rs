//! The commands of the `netd` binary, each returning its process exit code. Errors are
//! printed as one clear line on stderr.

use std::path::Path;

use crate::agent_host::{AgentState, AgentStatus};
use crate::api::{self, Status};
use crate::error::Error;
use crate::kernel::Kernel;
use crate::plan::{self, DesiredState};
use crate::policy::{self, Policy};
use crate::reconcile::{self, Context};
use crate::registry::client::chain;
use crate::site::SiteConfig;

/// Logs go to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Each line of the message prefixed, so that every problem of a policy reads `netd: ...`.
fn report(e: &dyn std::fmt::Display) {
    for line in e.to_string().lines() {
        eprintln!("netd: {line}");
    }
}

/// `netd check POLICY`: 0 valid, 1 invalid, 2 I/O error.
pub fn check(path: &Path) -> u8 {
    let bytes = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            report(&format!("{}: {e}", path.display()));
            return 2;
        }
    };
    let parsed = policy::decode(bytes, path).map_err(|i| vec![i]).and_then(|text| policy::parse(&text, path));
    match parsed {
        Ok(p) => {
            println!(
                "{}: valid: mesh {}, {} segments, {} closed groups, {} sites",
                path.display(),
                p.policy().mesh,
                p.policy().segments.len(),
                p.policy().closed_groups.len(),
                p.policy().sites.len()
            );
            0
        }
        Err(issues) => {
            for i in &issues {
                eprintln!("{i}");
            }
            eprintln!("{}: invalid ({} problems)", path.display(), issues.len());
            1
        }
    }
}

/// `netd schema`.
pub fn schema() -> u8 {
    println!("{}", serde_json::to_string_pretty(&policy::document::policy_schema()).expect("json"));
    0
}

/// Everything a kernel-facing command needs.
pub struct Loaded {
    pub config: SiteConfig,
    /// Registry view version the policy came from (enrolled sites).
    pub view_version: Option<u64>,
    pub desired: DesiredState,
    pub ctx: Context,
}

impl Loaded {
    /// Why the hosted agent cannot start with this plan on this machine (its segment is not
    /// the site's, its command is not executable, its user is unknown); None without `agent:`.
    pub fn agent_problem(&self) -> Option<String> {
        let a = self.config.agent.as_ref()?;
        let segments: Vec<_> = self.desired.segments.iter().map(|s| &s.name).collect();
        a.check(&segments, &self.config.site).err()
    }
}

/// Load site file and policy, and plan; a hosted agent that cannot start is an error (`plan`,
/// `apply`). Must run inside the runtime (mode probing).
pub async fn load(config: &Path, kernel: &Kernel) -> Result<Loaded, Error> {
    let l = load_network(config, kernel).await?;
    match l.agent_problem() {
        Some(reason) => Err(Error::SiteConfig { path: config.to_path_buf(), reason }),
        None => Ok(l),
    }
}

/// [`load`] without the agent check: `netd run` keeps reconciling the network while the agent
/// cannot start (and reports why), and `netd status` shows what the daemon reports.
pub async fn load_network(config: &Path, kernel: &Kernel) -> Result<Loaded, Error> {
    let cfg = SiteConfig::load(config)?;
    let (view_version, pol, source) =
        match crate::registry::enrollment::view_policy(&cfg).map_err(|e| Error::Registry(e.to_string()))? {
            Some((version, p)) => (Some(version), p, format!("the registry's view (version {version})")),
            None => (None, policy::load(&cfg.policy)?, cfg.policy.display().to_string()),
        };
    let mode = kernel.resolve_mode(cfg.mode).await;
    let mut desired = plan::plan(&pol, &cfg.site, mode, cfg.api_listen)
        .map_err(|e| Error::UnknownSite { site: e.0, policy: source })?;
    if !desired.firewall.is_empty() {
        desired.firewall.admit_underlay = cfg.admit_underlay.iter().map(|s| (s.proto, s.port)).collect();
    }
    let ctx = Context {
        key_dir: cfg.key_dir.clone(),
        last_good: cfg.last_good_path(),
        pass_lock: cfg.pass_lock_path(),
        inject_fail_after: Context::inject_from_env(),
    };
    Ok(Loaded { config: cfg, view_version, desired, ctx })
}

async fn connect(config: &Path) -> Result<Kernel, Error> {
    let cfg = SiteConfig::load(config)?;
    Kernel::connect(cfg.wireguard).await
}

/// `netd plan`: 0 nothing to do, 2 changes pending, 1 error. Only observes: no key is generated
/// or promoted, no lock taken.
pub fn plan(config: &Path) -> u8 {
    runtime().block_on(async {
        let res = async {
            let k = connect(config).await?;
            let l = load(config, &k).await?;
            let pending = reconcile::pending(&k, &l.ctx, &l.desired).await?;
            Ok::<_, Error>((l.desired.mode, pending))
        }
        .await;
        match res {
            Ok((mode, p)) => {
                if p.changes.is_empty() {
                    println!("mode {mode}: nothing to do");
                } else {
                    println!("mode {mode}: {} changes pending", p.changes.len());
                }
                for c in &p.changes {
                    println!("{c}");
                }
                for n in &p.notes {
                    println!("note: {n}");
                }
                if p.changes.is_empty() { 0 } else { 2 }
            }
            Err(e) => {
                report(&e);
                1
            }
        }
    })
}

/// `netd apply`: 0 applied (or nothing to do), 1 failed (rolled back).
pub fn apply(config: &Path) -> u8 {
    runtime().block_on(async {
        let k = match connect(config).await {
            Ok(k) => k,
            Err(e) => {
                report(&e);
                return 1;
            }
        };
        let l = match load(config, &k).await {
            Ok(l) => l,
            Err(e) => {
                report(&e);
                return 1;
            }
        };
        match reconcile::apply(&k, &l.ctx, &l.desired).await {
            Ok(o) => {
                println!(
                    "mode {}: applied {} kernel changes in {:.3} s",
                    l.desired.mode,
                    o.applied,
                    o.elapsed.as_secs_f64()
                );
                0
            }
            Err(e) => {
                report(&e);
                if let Some(rb) = &e.rollback_error {
                    report(&format!("rollback error: {rb}"));
                }
                1
            }
        }
    })
}

/// Observe and describe: the status `netd status` prints and the API serves.
pub async fn observe_status(k: &Kernel, l: &Loaded, base: Status) -> Result<Status, Error> {
    let pending = reconcile::pending(k, &l.ctx, &l.desired).await?;
    let ifaces = l.desired.wireguard.iter().map(|w| w.iface.clone()).collect();
    let snap = reconcile::observe(k, &ifaces).await?;
    Ok(Status {
        site: l.config.site.to_string(),
        mode: Some(l.desired.mode),
        wireguard_backend: format!("{:?}", k.wireguard).to_lowercase(),
        segments: api::describe(&l.desired, &snap),
        drift: pending.changes.iter().map(|c| c.to_string()).collect(),
        notes: pending.notes,
        policy_error: None,
        view_version: l.view_version,
        ..base
    })
}

/// What `netd status` can still show when the policy cannot be planned here (`problem`: invalid,
/// missing, or a key mismatch): the segments and peers of the last good record as the kernel
/// holds them now (handshakes, rx/tx), without drift.
pub async fn observe_recorded(k: &Kernel, cfg: &SiteConfig, problem: &Error) -> Result<Status, Error> {
    let mut st = Status {
        site: cfg.site.to_string(),
        wireguard_backend: format!("{:?}", k.wireguard).to_lowercase(),
        policy_error: Some(problem.to_string()),
        ..Status::default()
    };
    match crate::state::load(&cfg.last_good_path())? {
        Some(last) => {
            let ifaces = last.desired.wireguard.iter().map(|w| w.iface.clone()).collect();
            let snap = reconcile::observe(k, &ifaces).await?;
            st.mode = Some(last.desired.mode);
            st.segments = api::describe(&last.desired, &snap);
            st.notes.push(format!(
                "segments and peers are those last applied ({}), as the kernel holds them now",
                cfg.last_good_path().display()
            ));
        }
        None => st.notes.push(format!("nothing applied yet (no {})", cfg.last_good_path().display())),
    }
    Ok(st)
}

/// The hosted agent as the running daemon reports it (`GET /status` on `api_listen`): only
/// `netd run` knows its process.
async fn daemon_agent_status(cfg: &SiteConfig, agent: &crate::site::AgentConfig) -> AgentStatus {
    let mut addr = cfg.api_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/status");
    let asked = async {
        // Generous: a loaded appliance (or an emulated one) can take seconds to answer.
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| chain(&e))?;
        let body: serde_json::Value = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| chain(&e))?
            .json()
            .await
            .map_err(|e| chain(&e))?;
        serde_json::from_value::<Option<AgentStatus>>(body["agent"].clone())
            .map_err(|e| format!("its agent status: {e}"))?
            .ok_or_else(|| "it hosts no agent (started before the agent: section was added?)".to_string())
    };
    asked.await.unwrap_or_else(|reason| {
        AgentStatus::new(
            agent,
            AgentState::Unknown { reason: format!("netd run not reachable at {url}: {reason}") },
        )
    })
}

/// `netd status [--json]`: 0 ok, 1 error. When the policy cannot be planned here (invalid,
/// missing, a key mismatch) it still prints what the kernel and the last good record show, with
/// the error, and exits 1.
pub fn status(config: &Path, json: bool) -> u8 {
    runtime().block_on(async {
        let res = async {
            let cfg = SiteConfig::load(config)?;
            let k = Kernel::connect(cfg.wireguard).await?;
            let observed = match load_network(config, &k).await {
                Ok(l) => observe_status(&k, &l, Status::default()).await,
                Err(e) => Err(e),
            };
            let mut st = match observed {
                Ok(st) => st,
                // The problem is reported with what can still be observed (or with why not).
                Err(problem) => {
                    observe_recorded(&k, &cfg, &problem).await.map_err(|e| Error::SiteConfig {
                        path: config.to_path_buf(),
                        reason: format!("{problem}\n(nor could the last good state be observed: {e})"),
                    })?
                }
            };
            if let Some(a) = &cfg.agent {
                st.agent = Some(daemon_agent_status(&cfg, a).await);
            }
            Ok::<_, Error>(st)
        }
        .await;
        match res {
            Ok(st) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&st).expect("json"));
                } else {
                    print!("{}", api::render_text(&st));
                }
                match &st.policy_error {
                    Some(e) => {
                        report(e);
                        1
                    }
                    None => 0,
                }
            }
            Err(e) => {
                report(&e);
                1
            }
        }
    })
}

/// `netd run`.
pub fn run(config: &Path) -> u8 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(crate::daemon::run(config.to_path_buf())) {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            1
        }
    }
}

/// Segments `site` joins in a policy that need not be valid yet (its keys may be missing).
fn joined_segments(policy: &Policy, site: &str) -> Vec<String> {
    let Some(me) = policy.sites.iter().find(|s| s.name.as_str() == site) else { return Vec::new() };
    let mut out: Vec<String> = policy
        .segments
        .iter()
        .filter(|(n, s)| s.required || me.joins.contains(n))
        .map(|(n, _)| n.to_string())
        .collect();
    out.extend(
        policy.closed_groups.iter().filter(|(_, g)| g.members.contains(&me.name)).map(|(n, _)| n.to_string()),
    );
    out
}

/// `netd keys [--segment S]...`: generate missing keys, print only public keys as YAML.
pub fn keys(config: &Path, segments: &[String]) -> u8 {
    let res = (|| {
        let cfg = SiteConfig::load(config)?;
        let segs: Vec<String> = if segments.is_empty() {
            let text = std::fs::read_to_string(&cfg.policy)
                .map_err(|source| Error::Io { path: cfg.policy.clone(), source })?;
            let pol: Policy = serde_norway::from_str(&text).map_err(|e| Error::SiteConfig {
                path: cfg.policy.clone(),
                reason: format!("{e} (or name segments with --segment)"),
            })?;
            joined_segments(&pol, cfg.site.as_str())
        } else {
            segments.to_vec()
        };
        if segs.is_empty() {
            // The usual first step: keys are made before the site is in the policy.
            return Err(Error::SiteConfig {
                path: cfg.policy.clone(),
                reason: format!(
                    "site {:?} is in no segment of this policy (not listed yet?); name the segments to make \
                     keys for: `netd keys --segment reference --segment upload ...`",
                    cfg.site.as_str()
                ),
            });
        }
        let mut out = format!("site: {}\nkeys:\n", cfg.site);
        for s in segs {
            let seg: crate::policy::SegmentName =
                s.parse().map_err(|reason| Error::Key { segment: s.clone(), reason })?;
            let key = crate::keys::load_or_generate(&cfg.key_dir, &seg)?;
            out.push_str(&format!("  {seg}: {}\n", key.public()));
        }
        Ok::<_, Error>(out)
    })();
    match res {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            report(&e);
            1
        }
    }
}

/// `netd enroll TOKEN`: 0 enrolled, 1 refused or failed.
pub fn enroll(config: &Path, token: &str) -> u8 {
    match runtime().block_on(crate::registry::enroll::enroll(config, token)) {
        Ok(e) => {
            println!("enrolled as site {} (segments: {})", e.site, e.segments.join(", "));
            match (e.view_version, e.view_pending) {
                (Some(v), _) => println!("verified view version {v} stored; start `netd run`"),
                (None, Some(why)) => println!("no view yet ({why}); `netd run` will wait for it"),
                (None, None) => {}
            }
            0
        }
        Err(e) => {
            report(&e);
            1
        }
    }
}

/// `netd rotate SEGMENT...|--all`: 0 registered (enrolled) or printed (policy file), 1 failed.
pub fn rotate(config: &Path, segments: &[String], all: bool) -> u8 {
    use crate::policy::SegmentName;
    use crate::registry::{self, enrollment::Enrollment};
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let res = runtime().block_on(async {
        let cfg = SiteConfig::load(config).map_err(|e| text(&e))?;
        let enrollment = Enrollment::load(&cfg.enrollment_path()).map_err(|e| text(&e))?;
        // The segments this site has keys for: its view's, or the policy file's.
        let (listed, source): (Vec<SegmentName>, &str) = match &enrollment {
            Some(e) => (
                registry::rotate::listed_keys(&cfg, e).map_err(|e| text(&e))?.into_keys().collect(),
                "the registry's view",
            ),
            None => {
                let body = std::fs::read_to_string(&cfg.policy)
                    .map_err(|e| format!("{}: {e}", cfg.policy.display()))?;
                let pol: Policy =
                    serde_norway::from_str(&body).map_err(|e| format!("{}: {e}", cfg.policy.display()))?;
                let segs = joined_segments(&pol, cfg.site.as_str()).iter().filter_map(|s| s.parse().ok()).collect();
                (segs, "the policy")
            }
        };
        let mut chosen = Vec::new();
        for s in segments {
            match s.parse::<SegmentName>() {
                Ok(seg) if listed.contains(&seg) => chosen.push(seg),
                _ => {
                    return Err(format!(
                        "site {} has no key in segment {s} in {source} (its segments: {})",
                        cfg.site,
                        listed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        if all {
            chosen = listed.clone();
        }
        if chosen.is_empty() {
            return Err(format!("site {} has no segments in {source}", cfg.site));
        }
        let mut out = format!("site: {}\nkeys:\n", cfg.site);
        match &enrollment {
            Some(e) => {
                let client = registry::client::Client::new(&e.registry_url, &e.pin).map_err(|e| text(&e))?;
                let (version, keys, switch) = registry::rotate::publish(&cfg, e, &client, &chosen).await.map_err(|err| {
                    format!(
                        "{err}; the new keys wait in {} and `netd run` registers them once the registry answers",
                        cfg.key_dir.display()
                    )
                })?;
                for (seg, key) in keys {
                    out.push_str(&format!("  {seg}: {key}\n"));
                }
                let when = match switch {
                    Some(t) => format!("at UNIX time {t} (the registry's switch time)"),
                    None => "once the registry's view lists them".to_string(),
                };
                eprintln!(
                    "netd: registered at registry version {version}; every router switches to the new keys {when}"
                );
            }
            None => {
                for seg in &chosen {
                    let key = crate::keys::begin_rotation(&cfg.key_dir, seg).map_err(|e| text(&e))?;
                    out.push_str(&format!("  {seg}: {}\n", key.public()));
                }
                eprintln!(
                    "netd: put these keys into the policy; netd switches each segment to its new key when the policy lists it"
                );
            }
        }
        Ok::<_, String>(out)
    });
    match res {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            report(&e);
            1
        }
    }
}
