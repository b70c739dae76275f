//! The agent's configuration file (YAML). Every key is documented in the crate's README.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The agent's settings, read from one YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The folder the EHR writes SS-MIX2 files into (watched recursively).
    pub export_dir: PathBuf,
    /// The agent's own folder: `outbox/`, `quarantine/`, `log/` and `cursor/` live below it.
    pub state_dir: PathBuf,
    /// The store's base URL: on a site, `http://10.20.1.1:8440` (the centre's store on the upload
    /// segment; the store speaks plain HTTP there, the mesh encrypts).
    pub store_url: String,
    /// This site's facility code; uploads go to `/api/v1/facilities/{facility}/batches`.
    pub facility: String,
    /// File holding the site's bearer token; must not be readable by group or others (0600).
    pub token_file: PathBuf,
    /// Extra PEM root certificate for the store (a private centre CA), if any.
    #[serde(default)]
    pub store_ca_file: Option<PathBuf>,
    /// Folder holding the NHO validator's tables (`include/`); absent means `$KIZUNA_NHO_TABLES`, else
    /// `../shared/external/nhoHQ-SSMIX2DataTestingTool/include` found beside the working directory or
    /// the executable.
    #[serde(default)]
    pub nho_tables_dir: Option<PathBuf>,
    /// Most files in one upload batch.
    #[serde(default = "defaults::batch_max_files")]
    pub batch_max_files: usize,
    /// Most content bytes in one upload batch (a single larger file still goes alone).
    #[serde(default = "defaults::batch_max_bytes")]
    pub batch_max_bytes: u64,
    /// Batches uploaded at once (each waits for its own answer); 1 sends one batch at a time.
    #[serde(default = "defaults::upload_concurrency")]
    pub upload_concurrency: usize,
    /// Upload bandwidth limit in bytes per second; absent means unlimited.
    #[serde(default)]
    pub bandwidth_limit_bytes_per_sec: Option<u64>,
    /// Network device to bind upload sockets to (Linux `SO_BINDTODEVICE`), e.g. the upload VRF.
    #[serde(default)]
    pub bind_interface: Option<String>,
    /// Seconds between full rescans of the export folder (catches missed watcher events).
    #[serde(default = "defaults::rescan_interval_secs")]
    pub rescan_interval_secs: u64,
    /// Each rescan removes the folders below `export_dir` that are empty and have not changed for
    /// this many seconds (the EHR's patient, date and type folders the agent emptied); 0 keeps them.
    #[serde(default = "defaults::prune_empty_folders_after_secs")]
    pub prune_empty_folders_after_secs: u64,
    /// A file counts as complete once its size, mtime and inode have not changed for this many
    /// milliseconds after its close-after-write, or, without one, between two looks this far apart
    /// with no process holding it open for writing (README, "What it does" 2.). An exporter that
    /// opens a closed file again to append must do so within this time (or write under a temp name
    /// and rename).
    #[serde(default = "defaults::settle_ms")]
    pub settle_ms: u64,
    /// Seconds between heartbeats to the store.
    #[serde(default = "defaults::heartbeat_interval_secs")]
    pub heartbeat_interval_secs: u64,
    /// First retry delay after a failed upload, in milliseconds (doubles per failure, with jitter).
    #[serde(default = "defaults::retry_base_ms")]
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[serde(default = "defaults::retry_max_ms")]
    pub retry_max_ms: u64,
    /// Seconds one HTTP request may take before it counts as failed.
    #[serde(default = "defaults::request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Use the filesystem watcher (`notify`); when false the agent relies on rescans alone.
    #[serde(default = "defaults::watch")]
    pub watch: bool,
    /// A pharmacy's NSIPS export folder, converted to SS-MIX2 prescriptions and uploaded; absent
    /// means no NSIPS intake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsips: Option<NsipsConfig>,
}

/// The NSIPS intake (`nsips:`): every settled file in `dir` is converted with `kizuna-nsips` for
/// this site's `facility` (the pharmacy's 10-digit institution code) and its SS-MIX2 files go
/// through the outbox like any export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsipsConfig {
    /// The folder the dispensing system writes NSIPS files into (flat; not recursive).
    pub dir: PathBuf,
}

/// Most batches in flight at once: each holds its files in memory at the agent and the store.
pub const MAX_UPLOAD_CONCURRENCY: usize = 16;

mod defaults {
    pub fn batch_max_files() -> usize {
        200
    }
    pub fn batch_max_bytes() -> u64 {
        8 << 20
    }
    pub fn upload_concurrency() -> usize {
        2
    }
    pub fn rescan_interval_secs() -> u64 {
        60
    }
    pub fn prune_empty_folders_after_secs() -> u64 {
        86_400
    }
    pub fn settle_ms() -> u64 {
        2000
    }
    pub fn heartbeat_interval_secs() -> u64 {
        60
    }
    pub fn retry_base_ms() -> u64 {
        500
    }
    pub fn retry_max_ms() -> u64 {
        60_000
    }
    pub fn request_timeout_secs() -> u64 {
        120
    }
    pub fn watch() -> bool {
        true
    }
}

/// The commented default configuration printed by `kizuna-agent --print-default-config`.
pub const DEFAULT_CONFIG: &str = r#"# kizuna-agent configuration (every key is described in services/agent/README.md)
export_dir: /srv/ssmix2/export        # where the EHR writes SS-MIX2 files (watched recursively)
state_dir: /var/lib/kizuna-agent      # outbox/, quarantine/, log/, cursor/, nsips/, agent.lock
store_url: http://10.20.1.1:8440      # the centre's store on the upload segment, over the mesh
facility: "1310000001"                # this site's facility code
token_file: /etc/kizuna/agent.token   # bearer token, mode 0600
# store_ca_file: /etc/kizuna/centre-ca.pem
# nho_tables_dir: /usr/share/kizuna/nho-tables
batch_max_files: 200
batch_max_bytes: 8388608
upload_concurrency: 2                 # batches in flight at once
# bandwidth_limit_bytes_per_sec: 1000000
# bind_interface: vrf-upload
rescan_interval_secs: 60
prune_empty_folders_after_secs: 86400  # emptied folders idle this long go; 0 keeps them
settle_ms: 2000  # unchanged this long after the writer's close (or between two looks) = complete
heartbeat_interval_secs: 60
retry_base_ms: 500
retry_max_ms: 60000
request_timeout_secs: 120
watch: true
# A pharmacy: convert the dispensing system's NSIPS exports to SS-MIX2 and upload them too
# (facility must then be the pharmacy's 10-digit institution code).
# nsips:
#   dir: /srv/kizuna/nsips
"#;

impl Config {
    /// Reads and checks a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, AgentError> {
        let cfg: Config = kizuna_config::yaml::from_str(text)
            .map_err(|message| AgentError::Config { file: origin.to_owned(), message })?;
        cfg.check().map_err(|message| AgentError::Config { file: origin.to_owned(), message })?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if !(self.store_url.starts_with("http://") || self.store_url.starts_with("https://")) {
            return Err(format!("store_url {:?} must start with http:// or https://", self.store_url));
        }
        if self.facility.is_empty()
            || !self.facility.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "facility {:?} must be non-empty letters, digits, '-' or '_'",
                self.facility
            ));
        }
        let positive = [
            ("batch_max_files", self.batch_max_files as u64),
            ("batch_max_bytes", self.batch_max_bytes),
            ("rescan_interval_secs", self.rescan_interval_secs),
            ("heartbeat_interval_secs", self.heartbeat_interval_secs),
            ("retry_base_ms", self.retry_base_ms),
            ("request_timeout_secs", self.request_timeout_secs),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if !(1..=MAX_UPLOAD_CONCURRENCY).contains(&self.upload_concurrency) {
            return Err(format!(
                "upload_concurrency must be between 1 and {MAX_UPLOAD_CONCURRENCY}, not {}",
                self.upload_concurrency
            ));
        }
        if self.bandwidth_limit_bytes_per_sec == Some(0) {
            return Err("bandwidth_limit_bytes_per_sec must be greater than 0 (omit it for no limit)".into());
        }
        if self.retry_max_ms < self.retry_base_ms {
            return Err("retry_max_ms must not be smaller than retry_base_ms".into());
        }
        if self.bind_interface.as_deref() == Some("") {
            return Err("bind_interface is empty (omit it to use the default route)".into());
        }
        if self.nsips.is_some()
            && (self.facility.len() != 10 || !self.facility.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "nsips needs facility to be the pharmacy's 10-digit institution code, not {:?}",
                self.facility
            ));
        }
        self.check_folders()
    }

    /// Refuses folders that overlap: `export_dir`, `state_dir` and `nsips.dir` (if set) must be
    /// three separate folders, none inside another. The agent takes every file below `export_dir`
    /// (and removes it once it waits in the outbox), so a state folder below it would be taken for
    /// exports: its outbox files offered again and deleted as duplicates of themselves.
    ///
    /// The folders are compared as the kernel resolves them, not as written: relative paths from
    /// the working directory, every symbolic link followed (also one to a folder not yet made),
    /// `.` and `..` applied, and a folder not yet created placed below its nearest existing
    /// ancestor. An existing folder reached by another path (a bind mount) is recognised by its
    /// device and inode. [`crate::Agent::new`] checks again, as the folders may have changed.
    pub fn check_folders(&self) -> Result<(), String> {
        let mut keys = vec![("export_dir", &self.export_dir), ("state_dir", &self.state_dir)];
        if let Some(n) = &self.nsips {
            keys.push(("nsips.dir", &n.dir));
        }
        let mut folders = Vec::with_capacity(keys.len());
        for (key, given) in keys {
            if given.as_os_str().is_empty() {
                return Err(format!("{key} is empty"));
            }
            let real =
                resolve(given).map_err(|e| format!("cannot resolve {key} {}: {e}", given.display()))?;
            folders.push(Folder { key, given, real });
        }
        for (i, a) in folders.iter().enumerate() {
            for b in &folders[i + 1..] {
                overlap(a, b)?;
            }
        }
        Ok(())
    }

    pub(crate) fn settle(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }

    pub(crate) fn rescan_interval(&self) -> Duration {
        Duration::from_secs(self.rescan_interval_secs)
    }

    /// How long an emptied folder stays before a rescan removes it; `None`: it stays.
    pub(crate) fn prune_after(&self) -> Option<Duration> {
        (self.prune_empty_folders_after_secs > 0)
            .then(|| Duration::from_secs(self.prune_empty_folders_after_secs))
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.state_dir.join("outbox")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.state_dir.join("quarantine")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }

    pub fn cursor_dir(&self) -> PathBuf {
        self.state_dir.join("cursor")
    }

    /// The NSIPS intake's own folder: `converted.json` (what was converted) and `staging/`.
    pub fn nsips_state_dir(&self) -> PathBuf {
        self.state_dir.join("nsips")
    }
}

/// One of the configured folders, as written and as resolved.
struct Folder<'a> {
    key: &'static str,
    given: &'a Path,
    real: PathBuf,
}

/// Refuses two folders that are one, or one inside the other (either way round).
fn overlap(a: &Folder, b: &Folder) -> Result<(), String> {
    let why = "they must be separate folders, neither inside the other";
    if a.real == b.real || same_dir(&a.real, &b.real) {
        return Err(format!(
            "{} {} and {} {} are the same folder ({}); {why}",
            a.key,
            a.given.display(),
            b.key,
            b.given.display(),
            a.real.display()
        ));
    }
    for (inner, outer) in [(a, b), (b, a)] {
        if lies_inside(&inner.real, &outer.real) {
            return Err(format!(
                "{} {} lies inside {} {} ({} is below {}); {why}",
                inner.key,
                inner.given.display(),
                outer.key,
                outer.given.display(),
                inner.real.display(),
                outer.real.display()
            ));
        }
    }
    Ok(())
}

/// True when both exist and are the same directory (device and inode).
fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// True when resolved `inner` lies below resolved `outer`: by path, or because an existing
/// ancestor of `inner` is `outer` reached by another path (a bind mount).
fn lies_inside(inner: &Path, outer: &Path) -> bool {
    inner != outer
        && (inner.starts_with(outer)
            || (outer.is_dir() && inner.ancestors().skip(1).any(|up| same_dir(up, outer))))
}

/// `path` as the kernel resolves it once its missing folders are made: absolute (a relative path
/// from the working directory), every symbolic link replaced by its target (a dangling one too),
/// `.` dropped and `..` applied to what precedes it. For an existing path this is
/// [`Path::canonicalize`]; below the nearest existing ancestor the rest is appended.
pub(crate) fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;
    /// Linux gives up after 40 links (`ELOOP`).
    const MAX_LINKS: usize = 40;
    let abs = if path.is_absolute() { path.to_owned() } else { std::env::current_dir()?.join(path) };
    let names = |p: &Path| -> Vec<Option<OsString>> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(Some(n.to_owned())),
                Component::ParentDir => Some(None),
                _ => None,
            })
            .collect()
    };
    // `None` stands for `..`.
    let mut todo: VecDeque<Option<OsString>> = names(&abs).into();
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(next) = todo.pop_front() {
        let Some(name) = next else {
            out.pop();
            continue;
        };
        let candidate = out.join(&name);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(std::io::Error::other(format!(
                        "{}: too many levels of symbolic links",
                        candidate.display()
                    )));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for n in names(&target).into_iter().rev() {
                    todo.push_front(n);
                }
            }
            Ok(_) => out = candidate,
            // Not there yet (or below a file, which fails later anyway): it will be made as named.
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
            {
                out = candidate
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_documents_every_key() {
        let cfg = Config::parse(DEFAULT_CONFIG, Path::new("default")).unwrap();
        assert_eq!(cfg.batch_max_files, 200);
        let readme = include_str!("../README.md");
        let yaml: serde_norway::Value = serde_norway::to_value(&cfg).unwrap();
        for key in yaml.as_mapping().unwrap().keys() {
            let key = key.as_str().unwrap();
            assert!(readme.contains(&format!("`{key}`")), "README.md does not document {key}");
            assert!(DEFAULT_CONFIG.contains(key), "default config does not mention {key}");
        }
    }

    #[test]
    fn bad_keys_are_named() {
        let text = DEFAULT_CONFIG.replace("batch_max_files: 200", "batch_max_files: 0");
        let err = Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string();
        assert!(err.contains("agent.yaml") && err.contains("batch_max_files"), "{err}");
        for n in ["0", "17"] {
            let text = DEFAULT_CONFIG.replace("upload_concurrency: 2", &format!("upload_concurrency: {n}"));
            let err = Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string();
            assert!(
                err.contains("agent.yaml") && err.contains("upload_concurrency must be between 1 and 16"),
                "{err}"
            );
        }
        let err = Config::parse("export_dir: /x\nbogus: 1\n", Path::new("a.yaml")).unwrap_err().to_string();
        assert!(err.contains("bogus") || err.contains("missing"), "{err}");
    }

    #[test]
    fn nsips_key_is_checked() {
        let on = DEFAULT_CONFIG.replace("# nsips:\n#   dir:", "nsips:\n  dir:");
        let cfg = Config::parse(&on, Path::new("agent.yaml")).unwrap();
        assert_eq!(cfg.nsips.unwrap().dir, Path::new("/srv/kizuna/nsips"));
        let text = on.replace("facility: \"1310000001\"", "facility: \"pharmacy-1\"");
        let err = Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string();
        assert!(err.contains("nsips") && err.contains("10-digit"), "{err}");
        let text = on.replace("dir: /srv/kizuna/nsips", "dir: /srv/ssmix2/export/nsips");
        let err = Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string();
        assert!(err.contains("nsips.dir /srv/ssmix2/export/nsips lies inside export_dir"), "{err}");
        let text = on.replace("dir: /srv/kizuna/nsips", "dir: /srv/kizuna/nsips\n  bogus: 1");
        assert!(Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string().contains("bogus"));
    }

    /// A config with these folders (and an NSIPS folder when given), parsed.
    fn with_folders(export: &Path, state: &Path, nsips: Option<&Path>) -> Result<Config, String> {
        let mut text = format!(
            "export_dir: {}\nstate_dir: {}\nstore_url: http://10.20.1.1:8440\nfacility: \"1310000001\"\n\
             token_file: /etc/kizuna/agent.token\n",
            export.display(),
            state.display()
        );
        if let Some(n) = nsips {
            text.push_str(&format!("nsips:\n  dir: {}\n", n.display()));
        }
        Config::parse(&text, Path::new("agent.yaml")).map_err(|e| e.to_string())
    }

    /// The reviewer's case with absolute paths (the relative one, from a working directory, is
    /// `tests/cli.rs`): the state folder inside the export folder, written differently, was
    /// accepted and its outbox emptied. Every overlap is refused, either way round, naming both
    /// keys; separate folders (also one whose name extends the other's) pass.
    #[test]
    fn overlapping_folders_are_refused_however_they_are_written() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        std::fs::create_dir(d.join("exp5")).unwrap();
        let cases = [
            // (export_dir, state_dir, what the error says)
            ("exp5/.", "exp5/st", "state_dir"),
            ("exp5", "exp5/./st", "state_dir"),
            ("exp5//", "exp5/st", "state_dir"),
            ("exp5", "missing/../exp5/st", "state_dir"),
            ("exp5", "exp5/", "same folder"),
            ("exp5/sub", "exp5", "export_dir"),
            ("exp5/new/deeper", "exp5/new", "export_dir"),
        ];
        for (export, state, says) in cases {
            let err = with_folders(&d.join(export), &d.join(state), None).unwrap_err();
            assert!(err.contains("agent.yaml") && err.contains(says), "{export} / {state}: {err}");
            assert!(err.contains("export_dir") && err.contains("state_dir"), "{err}");
            if says != "same folder" {
                let inner = if says == "state_dir" { state } else { export };
                assert!(err.contains(&format!("{says} {} lies inside", d.join(inner).display())), "{err}");
            }
        }
        with_folders(&d.join("exp5"), &d.join("exp5st"), None).unwrap();
        with_folders(&d.join("exp5"), &d.join("state"), None).unwrap();
    }

    /// Symbolic links are followed, also to folders not made yet and in either key.
    #[test]
    fn overlaps_through_symbolic_links_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        std::fs::create_dir_all(d.join("exp5")).unwrap();
        std::fs::create_dir_all(d.join("var/state")).unwrap();
        std::os::unix::fs::symlink(d.join("exp5"), d.join("link")).unwrap();
        std::os::unix::fs::symlink("../exp5/not-yet", d.join("var/dangling")).unwrap();
        std::os::unix::fs::symlink("state/inbox", d.join("var/export")).unwrap();
        let cases = [
            ("exp5", "link/st", "state_dir"),
            ("link", "exp5/st", "state_dir"),
            ("link/", "exp5", "same folder"),
            ("exp5", "var/dangling", "state_dir"),
            ("exp5", "var/dangling/st", "state_dir"),
            ("var/export", "var/state", "export_dir"),
            ("var/state/../export", "var/state", "export_dir"),
        ];
        for (export, state, says) in cases {
            let err = with_folders(&d.join(export), &d.join(state), None).unwrap_err();
            assert!(err.contains("export_dir") && err.contains("state_dir") && err.contains(says), "{err}");
        }
        with_folders(&d.join("link"), &d.join("var/state"), None).unwrap();
    }

    #[test]
    fn nsips_folder_must_be_apart_from_both_others() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        std::fs::create_dir_all(d.join("exp")).unwrap();
        std::os::unix::fs::symlink(d.join("st"), d.join("st-link")).unwrap();
        let (exp, st) = (d.join("exp"), d.join("st"));
        for (nsips, other) in [
            ("exp/nsips", "export_dir"),
            ("st-link/nsips", "state_dir"),
            ("st/..", "export_dir"),
            (".", "export_dir"),
            ("exp", "export_dir"),
        ] {
            let err = with_folders(&exp, &st, Some(&d.join(nsips))).unwrap_err();
            assert!(err.contains("nsips.dir") && err.contains(other), "{nsips}: {err}");
        }
        with_folders(&exp, &st, Some(&d.join("nsips"))).unwrap();
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let text = "facility: '0411910637'\nfacility: '0411910638'\n";
        let e = Config::parse(text, Path::new("agent.yaml")).unwrap_err().to_string();
        assert!(
            e.contains("agent.yaml") && e.contains("line 2: duplicate key `facility` (first at line 1)"),
            "{e}"
        );
    }
}
