//! netd-bench: apply a synthetic N-site, four-segment policy from scratch, then a one-site
//! change, then nothing, with netd's reconciler; then load the same peers onto separate
//! WireGuard devices with `wg syncconf` and report the ratios.
//!
//! It changes the kernel of the network namespace it runs in: run it in a fresh one
//! (`ip netns add bench && ip netns exec bench netd-bench`) or in a lab guest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use netd::kernel::Kernel;
use netd::plan::{DesiredState, WireguardSpec};
use netd::policy::{Policy, ValidPolicy};
use netd::reconcile::{self, Context, Phases, Scope};
use netd::site::{ModeChoice, WireguardChoice};
use netd::synthetic;

#[derive(Parser)]
#[command(about = "Benchmark netd's apply against wg syncconf")]
struct Args {
    /// Sites in the policy (the one-site change adds one more).
    #[arg(long, default_value_t = 400)]
    sites: u16,
    /// This router's site number (2 is in all four segments).
    #[arg(long, default_value_t = 2)]
    site: u16,
    #[arg(long, value_enum, default_value = "auto")]
    mode: ModeArg,
    #[arg(long, value_enum, default_value = "auto")]
    wireguard: WgArg,
    /// Scratch directory for keys, state and wg config files (default: a temp dir).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Print the results as one JSON object too.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Auto,
    Vrf,
    Table,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WgArg {
    Auto,
    Kernel,
    Userspace,
}

/// The synthetic policy with this router's keys replaced by the local keys.
fn policy_with_local_keys(sites: u16, me: u16, key_dir: &Path) -> anyhow::Result<Policy> {
    let mut p = synthetic::policy(sites);
    let site = p.sites.iter_mut().find(|s| s.number == me).context("site number not in the policy")?;
    for (seg, key) in site.keys.iter_mut() {
        *key = netd::keys::load_or_generate(key_dir, seg)?.public();
    }
    Ok(p)
}

fn add_site(mut p: Policy, sites: u16) -> Policy {
    let extra = synthetic::policy(sites + 1).sites.pop().expect("one more site");
    p.sites.push(extra);
    p
}

/// LAN interfaces of the synthetic policy (`lan0`..`lan3`), as veth pairs.
fn ensure_lans() -> anyhow::Result<()> {
    for i in 0..4 {
        let name = format!("lan{i}");
        let exists = Command::new("ip").args(["link", "show", &name]).output()?.status.success();
        if !exists {
            let st = Command::new("ip")
                .args(["link", "add", &name, "type", "veth", "peer", "name", &format!("lanp{i}")])
                .status()?;
            if !st.success() {
                bail!("ip link add {name} failed");
            }
        }
    }
    Ok(())
}

/// One timed netd pass: wall time, kernel changes, and the pass's own account of its phases.
struct Step {
    time: Duration,
    changes: usize,
    scope: Scope,
    phases: Phases,
}

async fn timed_apply(
    k: &Kernel,
    ctx: &Context,
    desired: &DesiredState,
    scope: Scope,
) -> anyhow::Result<Step> {
    let start = Instant::now();
    let out = reconcile::apply_scoped(k, ctx, desired, scope).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Step { time: start.elapsed(), changes: out.applied, scope: out.scope, phases: out.phases })
}

/// A `wg syncconf` file holding the same peers as `wg` for device `dev`.
fn wg_conf(wg: &WireguardSpec, private_key: &str) -> String {
    let mut s = format!("[Interface]\nPrivateKey = {private_key}\nListenPort = {}\n", wg.port + 1000);
    for p in &wg.peers {
        let allowed: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
        let _ = write!(
            s,
            "\n[Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = {}\nPersistentKeepalive = {}\n",
            p.public_key,
            p.endpoint,
            allowed.join(","),
            p.keepalive
        );
    }
    s
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Create the baseline devices `wgb0..` (kernel link or userspace implementation).
fn create_wg_devices(n: usize, backend: wireguard_control::Backend, up: bool) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("wgb{i}");
        match backend {
            wireguard_control::Backend::Kernel => {
                let _ = Command::new("ip").args(["link", "del", &name]).output();
                let st = Command::new("ip").args(["link", "add", &name, "type", "wireguard"]).status()?;
                if !st.success() {
                    bail!("ip link add {name} type wireguard failed");
                }
                if up && !Command::new("ip").args(["link", "set", &name, "up"]).status()?.success() {
                    bail!("ip link set {name} up failed");
                }
            }
            _ => {
                let imp =
                    std::env::var("WG_USERSPACE_IMPLEMENTATION").unwrap_or_else(|_| "wireguard-go".into());
                let st = Command::new(&imp).arg(&name).status().with_context(|| format!("start {imp}"))?;
                if !st.success() {
                    bail!("{imp} {name} failed");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        names.push(name);
    }
    Ok(names)
}

/// One baseline: loading from scratch, the one-site change, nothing to do.
struct Baseline {
    /// Device creation, key and port (untimed in `scratch`).
    setup: Duration,
    scratch: anyhow::Result<Duration>,
    one: anyhow::Result<Duration>,
    noop: anyhow::Result<Duration>,
}

/// Fresh devices `wgb0..` with key and port (untimed), then `wg syncconf` of `desired`'s peers,
/// timed: onto devices that are down followed by `ip link set up` (wg-quick's order), or onto
/// devices that are up (`up_first`). Then the change to `grown` and nothing to do.
fn baseline(
    k: &Kernel,
    desired: &DesiredState,
    grown: &DesiredState,
    work: &Path,
    up_first: bool,
) -> anyhow::Result<Baseline> {
    let setup_start = Instant::now();
    let devs = create_wg_devices(desired.wireguard.len(), k.wireguard, up_first)?;
    let mut confs = Vec::new();
    let mut confs_grown = Vec::new();
    for (i, (w, wg)) in desired.wireguard.iter().zip(&grown.wireguard).enumerate() {
        let private = wireguard_control::Key::generate_private();
        let key = private.to_base64();
        // Key and port are set before timing (untimed device setup): boringtun wedges when a
        // running device changes its listen port in the same request that adds peers.
        wireguard_control::DeviceUpdate::new()
            .set_private_key(private)
            .set_listen_port(w.port + 1000)
            .apply(&devs[i].parse().map_err(|_| anyhow::anyhow!("bad name"))?, k.wireguard)?;
        let a = work.join(format!("wgb{i}.conf"));
        let b = work.join(format!("wgb{i}-grown.conf"));
        write_private(&a, &wg_conf(w, &key))?;
        write_private(&b, &wg_conf(wg, &key))?;
        confs.push(a);
        confs_grown.push(b);
    }
    let setup = setup_start.elapsed();
    // Each step may fail (boringtun 0.7 resets the UAPI connection on a second syncconf of a
    // device with peers); failures are reported, not hidden.
    let scratch = syncconf_all(&devs, &confs).and_then(|t| {
        let start = Instant::now();
        if !up_first && k.wireguard == wireguard_control::Backend::Kernel {
            for d in &devs {
                if !Command::new("ip").args(["link", "set", d, "up"]).status()?.success() {
                    bail!("ip link set {d} up failed");
                }
            }
        }
        Ok(t + start.elapsed())
    });
    let one =
        if scratch.is_ok() { syncconf_all(&devs, &confs_grown) } else { Err(anyhow::anyhow!("skipped")) };
    let noop = if one.is_ok() { syncconf_all(&devs, &confs_grown) } else { Err(anyhow::anyhow!("skipped")) };
    for d in &devs {
        match k.wireguard {
            wireguard_control::Backend::Kernel => {
                let _ = Command::new("ip").args(["link", "del", d]).status();
            }
            _ => {
                let _ = netd::kernel::wireguard::delete_device(d, k.wireguard);
            }
        }
    }
    Ok(Baseline { setup, scratch, one, noop })
}

fn syncconf_all(devs: &[String], confs: &[PathBuf]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for (d, c) in devs.iter().zip(confs) {
        // `timeout`: a wedged userspace device must not hang the benchmark.
        let out = Command::new("timeout")
            .arg("60")
            .arg("wg")
            .arg("syncconf")
            .arg(d)
            .arg(c)
            .output()
            .context("run wg")?;
        if !out.status.success() {
            bail!("wg syncconf {d}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(start.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    netd::cli::init_tracing();
    let args = Args::parse();
    let tmp = tempfile::TempDir::new()?;
    let work = args.workdir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let wg_choice = match args.wireguard {
        WgArg::Auto => WireguardChoice::Auto,
        WgArg::Kernel => WireguardChoice::Kernel,
        WgArg::Userspace => WireguardChoice::Userspace,
    };
    let k = Kernel::connect(wg_choice).await?;
    let mode = k
        .resolve_mode(match args.mode {
            ModeArg::Auto => ModeChoice::Auto,
            ModeArg::Vrf => ModeChoice::Vrf,
            ModeArg::Table => ModeChoice::Table,
        })
        .await;
    ensure_lans()?;
    let key_dir = work.join("keys");
    let ctx = Context {
        key_dir: key_dir.clone(),
        last_good: work.join("state/last-good.json"),
        pass_lock: work.join("state").join(netd::pass_lock::LOCK_FILE),
        inject_fail_after: None,
    };
    let _ = std::fs::remove_file(&ctx.last_good);
    let api = "127.0.0.1:9190".parse()?;
    let me = synthetic::site_name(args.site);

    let base = policy_with_local_keys(args.sites, args.site, &key_dir)?;
    let grown = add_site(base.clone(), args.sites);
    let plan_start = Instant::now();
    let base_v = ValidPolicy::new(base).map_err(|e| anyhow::anyhow!("synthetic policy invalid: {e:?}"))?;
    let desired = netd::plan::plan(&base_v, &me, mode, api)?;
    let plan_time = plan_start.elapsed();
    let grown_v = ValidPolicy::new(grown).map_err(|e| anyhow::anyhow!("grown policy invalid: {e:?}"))?;
    let desired_grown = netd::plan::plan(&grown_v, &me, mode, api)?;
    let peers: usize = desired.wireguard.iter().map(|w| w.peers.len()).sum();

    // netd: from scratch; the one-site change as `netd run` makes it on a policy change (delta
    // pass); nothing to do as the periodic reconcile sees it (full pass); and the one-site change
    // again as a full pass (`netd apply`), after going back to the base policy untimed.
    let scratch = timed_apply(&k, &ctx, &desired, Scope::Full).await?;
    let one = timed_apply(&k, &ctx, &desired_grown, Scope::Delta).await?;
    let noop = timed_apply(&k, &ctx, &desired_grown, Scope::Full).await?;
    timed_apply(&k, &ctx, &desired, Scope::Delta).await?;
    let one_full = timed_apply(&k, &ctx, &desired_grown, Scope::Full).await?;
    // Clean up netd's objects before the baseline.
    let empty = DesiredState::empty(desired.site.clone(), mode);
    timed_apply(&k, &ctx, &empty, Scope::Full).await?;

    // Baselines: the same peers on fresh devices with wg syncconf, twice. First in wg-quick's
    // order (devices down while `wg syncconf` loads them, then `ip link set up`, both timed),
    // then onto devices that are up before their peers arrive.
    let down = baseline(&k, &desired, &desired_grown, &work, false)?;
    let up = baseline(&k, &desired, &desired_grown, &work, true)?;
    let backend = format!("{:?}", k.wireguard).to_lowercase();
    let mut r = String::new();
    let _ = writeln!(
        r,
        "netd-bench: {} sites, site {} ({} segments, {peers} peers), mode {mode}, wireguard {backend}",
        args.sites,
        args.site,
        desired.wireguard.len(),
    );
    let _ = writeln!(r, "plan (pure)                   {:>9.1} ms", ms(plan_time));
    let _ = writeln!(
        r,
        "baselines: wg-quick order = wg syncconf onto devices that are down, then ip link set up; \
         devices up = wg syncconf onto devices that are up"
    );
    let _ = writeln!(
        r,
        "                                netd apply                 wg-quick order  ratio    devices up  ratio"
    );
    let rows = [
        ("from scratch", &scratch, &down.scratch, &up.scratch),
        ("one-site change", &one, &down.one, &up.one),
        ("nothing to do", &noop, &down.noop, &up.noop),
        ("one-site change, full pass", &one_full, &down.one, &up.one),
    ];
    let cell = |n: &Step, w: &anyhow::Result<Duration>| match w {
        Ok(w) => format!("{:>9.1} ms {:>6.2}", ms(*w), ms(n.time) / ms(*w)),
        Err(e) => format!("failed: {e}"),
    };
    for (what, n, d, u) in rows {
        let scope = format!("{:?}", n.scope).to_lowercase();
        let _ = writeln!(
            r,
            "{what:<26} {:>9.1} ms ({:>5} changes, {scope:<5})  {}   {}",
            ms(n.time),
            n.changes,
            cell(n, d),
            cell(n, u)
        );
    }
    if let Ok(w) = &down.scratch {
        let _ = writeln!(
            r,
            "from scratch incl. device creation (wg-quick order: {:.1} ms setup + {:.1} ms = {:.1} ms)   ratio {:.2}",
            ms(down.setup),
            ms(*w),
            ms(*w + down.setup),
            ms(scratch.time) / ms(*w + down.setup)
        );
    }
    let _ = writeln!(r, "netd phases (ms):");
    for (what, n, _, _) in rows {
        let parts: Vec<String> =
            n.phases.totals().iter().map(|(p, d)| format!("{p} {:.1}", ms(*d))).collect();
        let _ = writeln!(r, "  {what}: {}", parts.join(", "));
    }
    print!("{r}");
    if args.json {
        let opt = |w: &anyhow::Result<Duration>| w.as_ref().ok().map(|d| ms(*d));
        let ratio = |n: &Step, w: &anyhow::Result<Duration>| opt(w).map(|w| ms(n.time) / w);
        let mut v: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        v.insert("sites".to_string(), serde_json::json!(args.sites));
        v.insert("peers".to_string(), serde_json::json!(peers));
        v.insert("mode".to_string(), serde_json::json!(mode.to_string()));
        v.insert("wireguard".to_string(), serde_json::json!(backend));
        v.insert("netd_scratch_ms".to_string(), serde_json::json!(ms(scratch.time)));
        v.insert("netd_one_site_ms".to_string(), serde_json::json!(ms(one.time)));
        v.insert("netd_one_site_scope".to_string(), serde_json::json!(one.scope));
        v.insert("netd_one_site_full_ms".to_string(), serde_json::json!(ms(one_full.time)));
        v.insert("netd_noop_ms".to_string(), serde_json::json!(ms(noop.time)));
        v.insert("netd_scratch_changes".to_string(), serde_json::json!(scratch.changes));
        v.insert("netd_one_site_changes".to_string(), serde_json::json!(one.changes));
        v.insert("netd_one_site_full_changes".to_string(), serde_json::json!(one_full.changes));
        v.insert("netd_noop_changes".to_string(), serde_json::json!(noop.changes));
        for (name, b) in [("wgquick", &down), ("wgup", &up)] {
            v.insert(format!("{name}_scratch_ms"), serde_json::json!(opt(&b.scratch)));
            v.insert(format!("{name}_one_site_ms"), serde_json::json!(opt(&b.one)));
            v.insert(format!("{name}_noop_ms"), serde_json::json!(opt(&b.noop)));
            v.insert(format!("{name}_device_setup_ms"), serde_json::json!(ms(b.setup)));
            v.insert(format!("ratio_scratch_{name}"), serde_json::json!(ratio(&scratch, &b.scratch)));
            v.insert(format!("ratio_one_site_{name}"), serde_json::json!(ratio(&one, &b.one)));
            v.insert(format!("ratio_one_site_full_{name}"), serde_json::json!(ratio(&one_full, &b.one)));
            v.insert(format!("ratio_noop_{name}"), serde_json::json!(ratio(&noop, &b.noop)));
        }
        println!("{}", serde_json::to_string(&v)?);
    }
    if noop.changes != 0 {
        bail!("a second apply made {} changes", noop.changes);
    }
    if one.changes != one_full.changes {
        bail!(
            "the one-site change made {} changes as a delta pass, {} as a full pass",
            one.changes,
            one_full.changes
        );
    }
    Ok(())
}
