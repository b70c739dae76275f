//! A mesh of site routers in network namespaces, for the host tests: one namespace per
//! router, one per LAN host, one underlay bridge joining them. WireGuard runs in userspace
//! (boringtun-cli), each router with its own /run/wireguard through a private mount namespace.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Root tests skip outside CI when not root; under CI=true they fail instead.
pub fn require_root() -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !root {
        assert!(std::env::var("CI").is_err(), "CI=true: namespace tests need root");
        eprintln!("skipping: namespace tests need root");
    }
    root
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// boringtun-cli: `$NETD_BORINGTUN`, or installed once (under a file lock, since test
/// processes run in parallel) with `cargo install --locked` into the target directory.
pub fn boringtun() -> PathBuf {
    if let Some(p) = std::env::var_os("NETD_BORINGTUN") {
        return PathBuf::from(p);
    }
    let root = target_dir().join("netd-tools");
    let bin = root.join("bin/boringtun-cli");
    if !bin.exists() {
        std::fs::create_dir_all(&root).unwrap();
        let status = Command::new("flock")
            .arg(root.join("install.lock"))
            .arg("sh")
            .arg("-c")
            .arg(format!(
                "test -x {bin} || {cargo} install --locked boringtun-cli --version 0.7.1 --root {root}",
                bin = bin.display(),
                root = root.display(),
                cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
            ))
            .env("CARGO_TARGET_DIR", root.join("build"))
            .status()
            .expect("run cargo install");
        assert!(status.success(), "installing boringtun-cli failed");
    }
    bin
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(args: &[&str]) {
    ok(Command::new("ip").args(args));
}

pub fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

pub const SEGMENTS: [(&str, &str, u16); 4] = [
    ("reference", "10.10", 51820),
    ("upload", "10.20", 51821),
    ("conference", "10.30", 51822),
    ("radiology", "10.40", 51830),
];

/// One site router and its LAN hosts.
pub struct Site {
    pub number: u16,
    pub name: String,
    pub router: String,
    pub dir: PathBuf,
    /// Segments this site joins, with the host namespace on each LAN.
    pub lans: Vec<(&'static str, String)>,
}

impl Site {
    pub fn host(&self, segment: &str) -> &str {
        &self.lans.iter().find(|(s, _)| *s == segment).expect("site joins segment").1
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("site.yaml")
    }
}

pub struct Mesh {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub sites: Vec<Site>,
    pub boringtun: PathBuf,
    namespaces: Vec<String>,
    listeners: std::cell::RefCell<Vec<std::process::Child>>,
}

pub fn host_ip(segment: &str, site: u16) -> String {
    let p = SEGMENTS.iter().find(|s| s.0 == segment).unwrap().1;
    format!("{p}.{site}.10")
}

/// The router's LAN address for `segment` at site `site`.
pub fn gateway_ip(segment: &str, site: u16) -> String {
    let p = SEGMENTS.iter().find(|s| s.0 == segment).unwrap().1;
    format!("{p}.{site}.1")
}

impl Mesh {
    /// Build `sites` routers (site 1 is the centre). Sites 2 and 3 form closed group
    /// `radiology`; everyone joins reference, upload and conference.
    /// A mesh of `sites` routers with the plain policy written, or `None` when the test cannot
    /// run here (not root, outside CI: see [`require_root`]).
    pub fn with_policy(tag: &str, sites: u16) -> Option<Mesh> {
        if !require_root() {
            return None;
        }
        let m = Mesh::new(tag, sites);
        m.write_policy("");
        Some(m)
    }

    pub fn new(tag: &str, sites: u16) -> Mesh {
        let boringtun = boringtun();
        let prefix = format!("kz{tag}{}", std::process::id() % 10000);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all("/run/wireguard").unwrap();
        let mut mesh = Mesh {
            prefix: prefix.clone(),
            dir,
            sites: Vec::new(),
            boringtun,
            namespaces: Vec::new(),
            listeners: Default::default(),
        };
        let ul = format!("{prefix}ul");
        mesh.add_ns(&ul);
        ip(&["-n", &ul, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &ul, "link", "set", "br0", "up"]);
        for n in 1..=sites {
            let name = if n == 1 { "centre".to_string() } else { format!("site-{n}") };
            let router = format!("{prefix}r{n}");
            mesh.add_ns(&router);
            // Underlay: 192.0.2.N/24 on the router, all routers on one bridge.
            ip(&[
                "link",
                "add",
                "ul0",
                "netns",
                &router,
                "type",
                "veth",
                "peer",
                "name",
                &format!("s{n}"),
                "netns",
                &ul,
            ]);
            ip(&["-n", &router, "addr", "add", &format!("192.0.2.{n}/24"), "dev", "ul0"]);
            ip(&["-n", &router, "link", "set", "ul0", "up"]);
            ip(&["-n", &ul, "link", "set", &format!("s{n}"), "master", "br0", "up"]);
            let mut lans = Vec::new();
            for (i, (seg, _, _)) in SEGMENTS.iter().enumerate() {
                let joins = *seg != "radiology" || (sites >= 3 && (n == 2 || n == 3));
                if !joins {
                    continue;
                }
                let host = format!("{prefix}h{n}{i}");
                mesh.add_ns(&host);
                let lan = format!("lan{i}");
                ip(&[
                    "link", "add", &lan, "netns", &router, "type", "veth", "peer", "name", "eth0", "netns",
                    &host,
                ]);
                ip(&["-n", &host, "addr", "add", &format!("{}/24", host_ip(seg, n)), "dev", "eth0"]);
                ip(&["-n", &host, "link", "set", "eth0", "up"]);
                // LAN ports are up before netd runs, as on a real router.
                ip(&["-n", &router, "link", "set", &lan, "up"]);
                ip(&["-n", &host, "link", "set", "lo", "up"]);
                let gw = gateway_ip(seg, n);
                // The gateway appears once netd applies; add the route onlink now.
                ip(&["-n", &host, "route", "add", "default", "via", &gw, "dev", "eth0", "onlink"]);
                lans.push((*seg, host));
            }
            let sdir = mesh.dir.path().join(&name);
            std::fs::create_dir_all(sdir.join("run")).unwrap();
            std::fs::write(
                sdir.join("site.yaml"),
                format!(
                    "policy: {}\nsite: {name}\nkey_dir: {}\nstate_dir: {}\napi_listen: 127.0.0.1:9190\nmode: table\nwireguard: userspace\nreconcile_interval_secs: 2\n",
                    mesh.dir.path().join("policy.yaml").display(),
                    sdir.join("keys").display(),
                    sdir.join("state").display()
                ),
            )
            .unwrap();
            mesh.sites.push(Site { number: n, name, router, dir: sdir, lans });
        }
        mesh
    }

    fn add_ns(&mut self, ns: &str) {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        self.namespaces.push(ns.to_string());
    }

    /// A command run in the site's router namespace with its private /run/wireguard.
    pub fn router_cmd(&self, site: &Site, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &site.router, "unshare", "-m", "sh", "-c"])
            .arg("mount --make-rprivate / && mount --bind \"$0\" /run/wireguard && shift && exec \"$@\"")
            .arg(site.dir.join("run"))
            .arg("_")
            .arg(program)
            .args(args)
            .env("WG_USERSPACE_IMPLEMENTATION", &self.boringtun)
            .env("WG_SUDO", "true")
            .env("WG_THREADS", "1")
            .env("WG_LOG_FILE", site.dir.join("boringtun.log"))
            .env("RUST_LOG", "warn");
        c
    }

    pub fn netd(&self, site: &Site, args: &[&str]) -> Command {
        let cfg = site.config();
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        self.router_cmd(site, Path::new(env!("CARGO_BIN_EXE_netd")), &all)
    }

    /// `netd run` for `site` in the background, its output discarded (tests read its API).
    pub fn spawn_daemon(&self, site: &Site) -> std::process::Child {
        self.netd(site, &["run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawning netd run")
    }

    /// Generate keys on every router and write the policy from their public keys.
    pub fn write_policy(&self, extra: &str) {
        let mut sites = String::new();
        for s in &self.sites {
            let segs: Vec<&str> = s.lans.iter().map(|(seg, _)| *seg).collect();
            let mut args = vec!["keys"];
            for seg in &segs {
                args.push("--segment");
                args.push(seg);
            }
            let out = ok(&mut self.netd(s, &args));
            let keys = out.split_once("keys:\n").expect("keys output").1;
            let lan: Vec<String> = s
                .lans
                .iter()
                .map(|(seg, _)| {
                    let i = SEGMENTS.iter().position(|x| x.0 == *seg).unwrap();
                    format!("{seg}: lan{i}")
                })
                .collect();
            sites.push_str(&format!(
                "  - number: {n}\n    name: {name}\n    kind: {kind}\n    endpoint: 192.0.2.{n}\n    keys:\n{keys}    lan: {{ {lan} }}\n    joins: [conference]\n",
                n = s.number,
                name = s.name,
                kind = if s.number == 1 { "centre" } else { "hospital" },
                keys = keys.lines().map(|l| format!("    {l}\n")).collect::<String>(),
                lan = lan.join(", "),
            ));
        }
        let group = if self.sites.len() >= 3 {
            "closed_groups:\n  radiology: { cidr: 10.40.0.0/16, port: 51830, security: high, members: [site-2, site-3] }\n"
        } else {
            ""
        };
        let policy = format!(
            "mesh: test\nkeepalive_secs: 5\nsegments:\n  reference: {{ cidr: 10.10.0.0/16, port: 51820, security: high, required: true, centre_services: [{{ name: viewer, proto: tcp, port: 443 }}] }}\n  upload: {{ cidr: 10.20.0.0/16, port: 51821, security: high, required: true, centre_services: [{{ name: store, proto: tcp, port: 8080 }}] }}\n  conference: {{ cidr: 10.30.0.0/16, port: 51822, security: low }}\n{group}sites:\n{sites}{extra}"
        );
        std::fs::write(self.dir.path().join("policy.yaml"), policy).unwrap();
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.yaml")
    }

    /// `netd apply` on a site: (exit code, stdout + stderr).
    pub fn apply(&self, site: &Site) -> (i32, String) {
        self.apply_env(site, &[])
    }

    pub fn apply_env(&self, site: &Site, env: &[(&str, &str)]) -> (i32, String) {
        let mut c = self.netd(site, &["apply"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run(&mut c);
        (
            out.status.code().unwrap_or(-1),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// Kernel changes an apply reported ("applied N kernel changes").
    pub fn applied_changes(output: &str) -> usize {
        let i = output.find("applied ").unwrap_or_else(|| panic!("no 'applied' in {output}"));
        output[i + 8..].split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Does `from` (a host namespace) get an ICMP echo reply from `to`? Retries briefly, so
    /// that a first WireGuard handshake can complete.
    pub fn pings(&self, from: &str, to: &str, tries: u32) -> bool {
        for _ in 0..tries {
            let out = run(in_ns(from, &["ping", "-c", "1", "-W", "1", "-q", to]).stdout(Stdio::null()));
            if out.status.success() {
                return true;
            }
        }
        false
    }

    /// Start a TCP listener on `port` in `host` (stopped when the mesh is dropped).
    pub fn listen(&self, host: &str, port: u16) {
        let child = in_ns(host, &["nc", "-lk", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.listeners.borrow_mut().push(child);
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Can `from` open a TCP connection to `to:port`?
    pub fn connects(&self, from: &str, to: &str, port: u16, tries: u32) -> bool {
        for _ in 0..tries {
            let out = run(&mut in_ns(from, &["nc", "-z", "-w", "2", to, &port.to_string()]));
            if out.status.success() {
                return true;
            }
        }
        false
    }

    /// The router's netd-owned kernel state, without counters and handshake times.
    pub fn router_state(&self, site: &Site) -> String {
        let mut s = String::new();
        for args in [
            vec!["ip", "-4", "addr", "show"],
            vec!["ip", "-d", "link", "show"],
            vec!["ip", "rule", "show"],
            vec!["ip", "route", "show", "table", "all", "proto", "77"],
        ] {
            let out = ok(&mut in_ns(&site.router, &args));
            // Drop volatile lines; rules of one priority are compared as a set (their
            // order carries no meaning, since their iifs are disjoint).
            let mut lines: Vec<&str> =
                out.lines().filter(|l| !l.contains("valid_lft") && !l.contains("link/")).collect();
            if args[1] == "rule" {
                lines.sort_unstable();
            }
            for line in lines {
                s.push_str(line);
                s.push('\n');
            }
        }
        let nft = run(&mut in_ns(&site.router, &["nft", "list", "table", "inet", "kizuna"]));
        s.push_str(&String::from_utf8_lossy(&nft.stdout));
        let wg = run(&mut self.router_cmd(site, Path::new("wg"), &["show", "all", "dump"]));
        for line in String::from_utf8_lossy(&wg.stdout).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            // Peer lines: iface pubkey psk endpoint allowed-ips handshake rx tx keepalive.
            if f.len() == 9 {
                s.push_str(&format!("{} {} {} {} {}\n", f[0], f[1], f[3], f[4], f[8]));
            } else if f.len() >= 4 {
                s.push_str(&format!("{} {} {}\n", f[0], f[2], f[3]));
            }
        }
        s
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if std::env::var_os("NETD_TEST_KEEP").is_some() {
            eprintln!(
                "NETD_TEST_KEEP: leaving namespaces {}* and {}",
                self.prefix,
                self.dir.path().display()
            );
            std::mem::forget(std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()));
            return;
        }
        for l in self.listeners.borrow_mut().iter_mut() {
            let _ = l.kill();
            let _ = l.wait();
        }
        // Closing the UAPI sockets ends the boringtun processes this mesh started.
        for s in &self.sites {
            if let Ok(rd) = std::fs::read_dir(s.dir.join("run")) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        for ns in &self.namespaces {
            // Any process still in a namespace we created is ours: end it by pid.
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").arg(pid).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
