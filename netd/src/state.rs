//! The last good state on disk: what netd last applied (and the kernel acknowledged), kept for
//! rollback, ownership and as the base of a delta pass.
//!
//! Two files: `last-good.json`, the whole record as compact JSON with a generation number,
//! written crash-safe (temp file, fsync, rename, fsync dir); and `last-good.journal`, patches
//! appended to it by passes that changed only peers, device keys, the firewall or forwarding
//! (one line each: CRC-32 of the JSON, the JSON, fsync'ed). Serialising 1,236 peers cost a
//! one-site change more than the rest of the pass; a patch holds only what changed. A patch
//! names the generation it applies to, so a journal left beside a newer base (a crash between
//! writing the base and removing the journal) is ignored; a torn last line (a crash during the
//! append) fails its checksum, or lacks its newline, and is ignored with everything after it
//! (appending after a line without its newline would merge the two), which leaves the record
//! of the pass before: the same as a crash before saving, repaired by the next full pass. The
//! next save after such a journal, or once the journal is long, writes the whole record again
//! (a new generation) and removes the journal.
//!
//! A long-running process (`netd run`) keeps the record it last read or wrote in memory and
//! re-reads the files only when the inode, size or modification time of either changed.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::{DesiredState, Firewall, PeerSpec, pair_peers};
use crate::policy::PublicKey;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastGood {
    pub desired: DesiredState,
    /// Table `kizuna` as nft listed it right after the apply (canonical form).
    pub firewall_readback: Option<serde_json::Value>,
}

/// Patches appended before the next save writes the whole record again.
const MAX_PATCHES: usize = 64;

/// The base file as stored.
#[derive(Serialize)]
struct StoredRef<'a> {
    generation: u64,
    #[serde(flatten)]
    record: &'a LastGood,
}

#[derive(Deserialize)]
struct Stored {
    /// 0 in files written before the journal existed: no patch names it.
    #[serde(default)]
    generation: u64,
    #[serde(flatten)]
    record: LastGood,
}

/// One journal line: what changed from the record before it.
#[derive(Debug, Serialize, Deserialize)]
struct Patch {
    generation: u64,
    devices: Vec<DevicePatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    firewall: Option<FirewallPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forwarding: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DevicePatch {
    iface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    set: Vec<PeerSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    remove: Vec<PublicKey>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FirewallPatch {
    applied: Firewall,
    readback: Option<serde_json::Value>,
}

/// The patch that turns `old` into `new`, or None when they differ in more than peers, device
/// keys, the firewall and forwarding (or `new`'s peers are not in public-key order, the order
/// a patch restores).
fn patch(generation: u64, old: &LastGood, new: &LastGood) -> Option<Patch> {
    let (o, n) = (&old.desired, &new.desired);
    if o.site != n.site
        || o.mode != n.mode
        || o.segments != n.segments
        || o.links != n.links
        || o.addresses != n.addresses
        || o.routes != n.routes
        || o.rules != n.rules
        || o.wireguard.len() != n.wireguard.len()
    {
        return None;
    }
    let mut devices = Vec::new();
    for (ow, nw) in o.wireguard.iter().zip(&n.wireguard) {
        if ow.iface != nw.iface || ow.segment != nw.segment || ow.port != nw.port {
            return None;
        }
        if !nw.peers.is_sorted_by(|a, b| a.public_key < b.public_key) {
            return None;
        }
        let (mut set, mut remove) = (Vec::new(), Vec::new());
        pair_peers(&ow.peers, &nw.peers, |o, n| match (o, n) {
            (Some(o), None) => remove.push(o.public_key.clone()),
            (o, Some(n)) if o != Some(n) => set.push(n.clone()),
            _ => {}
        });
        let public_key = (ow.public_key != nw.public_key).then(|| nw.public_key.clone());
        if !set.is_empty() || !remove.is_empty() || public_key.is_some() {
            devices.push(DevicePatch { iface: nw.iface.clone(), public_key, set, remove });
        }
    }
    let firewall = (o.firewall != n.firewall || old.firewall_readback != new.firewall_readback)
        .then(|| FirewallPatch { applied: n.firewall.clone(), readback: new.firewall_readback.clone() });
    let forwarding = (o.forwarding != n.forwarding).then_some(n.forwarding);
    Some(Patch { generation, devices, firewall, forwarding })
}

/// Apply `p` to `record`; false when it does not fit (a device the record does not have).
fn apply_patch(record: &mut LastGood, p: Patch) -> bool {
    for d in p.devices {
        let Some(w) = record.desired.wireguard.iter_mut().find(|w| w.iface == d.iface) else { return false };
        if let Some(k) = d.public_key {
            w.public_key = k;
        }
        let gone: std::collections::HashSet<&PublicKey> =
            d.remove.iter().chain(d.set.iter().map(|s| &s.public_key)).collect();
        w.peers.retain(|q| !gone.contains(&q.public_key));
        w.peers.extend(d.set);
        w.peers.sort_by(|a, b| a.public_key.cmp(&b.public_key));
    }
    if let Some(f) = p.firewall {
        record.desired.firewall = f.applied;
        record.firewall_readback = f.readback;
    }
    if let Some(f) = p.forwarding {
        record.desired.forwarding = f;
    }
    true
}

/// What identifies one version of a file: inode, size, modification time.
type Stamp = (u64, u64, Option<SystemTime>);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (meta.ino(), meta.len(), meta.modified().ok())
}

/// The record as last read or written, and what it was read from.
struct Cached {
    path: PathBuf,
    base: Stamp,
    /// The journal's stamp (None: no journal file).
    journal: Option<Stamp>,
    generation: u64,
    /// Valid patches in the journal; None when the journal holds a line that is not one (the
    /// next save then writes the whole record).
    patches: Option<usize>,
    record: Arc<LastGood>,
}

/// One entry per file (tests use many).
static CACHE: Mutex<Vec<Cached>> = Mutex::new(Vec::new());

fn cache() -> std::sync::MutexGuard<'static, Vec<Cached>> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The journal beside `path` (`last-good.json` → `last-good.journal`).
pub fn journal_path(path: &Path) -> PathBuf {
    path.with_extension("journal")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

fn meta_of(path: &Path) -> Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}

fn line_of(p: &Patch) -> Result<Vec<u8>> {
    let json =
        serde_json::to_vec(p).map_err(|e| Error::State { path: PathBuf::new(), reason: e.to_string() })?;
    let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// A journal line's patch, or None when the line is torn or corrupt.
fn parse_line(line: &str) -> Option<Patch> {
    let (crc, json) = line.split_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(json.as_bytes()) {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// Read the base and the journal's patches for its generation.
fn read(path: &Path) -> Result<Option<Cached>> {
    let Some(meta) = meta_of(path)? else { return Ok(None) };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: path.to_path_buf(), source }),
    };
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| Error::State {
        path: path.to_path_buf(),
        reason: format!(
            "{e}; the record is unreadable: remove it and {} to recover (the next pass observes the \
             kernel and records its state again; objects only the lost record named, such as a VLAN \
             a dropped segment used, are then left alone)",
            journal_path(path).display()
        ),
    })?;
    let mut record = stored.record;
    let jpath = journal_path(path);
    let jmeta = meta_of(&jpath)?;
    let mut patches = Some(0);
    if jmeta.is_some() {
        let f = match std::fs::File::open(&jpath) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(Error::Io { path: jpath.clone(), source }),
        };
        let mut text = Vec::new();
        if let Some(mut f) = f
            && f.read_to_end(&mut text).is_err()
        {
            // Unreadable past some point: the lines read so far count, and the next save writes
            // the record whole.
            patches = None;
        }
        for line in text.split_inclusive(|&b| b == b'\n') {
            // A last line without its newline is torn even when its checksum holds: the next
            // append would be glued onto it.
            let Some(line) = line.strip_suffix(b"\n").and_then(|l| std::str::from_utf8(l).ok()) else {
                tracing::warn!(journal = %jpath.display(), "ignoring a torn or corrupt journal line and what follows");
                patches = None;
                break;
            };
            match parse_line(line) {
                // A patch of an older base: a save crashed before removing the journal.
                Some(p) if p.generation != stored.generation || stored.generation == 0 => {
                    patches = None;
                }
                Some(p) => {
                    if !apply_patch(&mut record, p) {
                        patches = None;
                        break;
                    }
                    patches = patches.map(|n| n + 1);
                }
                None => {
                    tracing::warn!(journal = %jpath.display(), "ignoring a torn or corrupt journal line and what follows");
                    patches = None;
                    break;
                }
            }
        }
    }
    Ok(Some(Cached {
        path: path.to_path_buf(),
        base: stamp(&meta),
        journal: jmeta.as_ref().map(stamp),
        generation: stored.generation,
        patches,
        record: Arc::new(record),
    }))
}

/// Is `c` what is on disk now?
fn current(c: &Cached) -> Result<bool> {
    let base = meta_of(&c.path)?.map(|m| stamp(&m));
    let journal = meta_of(&journal_path(&c.path))?.map(|m| stamp(&m));
    Ok(base == Some(c.base) && journal == c.journal)
}

fn cached<'a>(all: &'a mut [Cached], path: &Path) -> Option<&'a mut Cached> {
    all.iter_mut().find(|c| c.path == path)
}

fn remember(all: &mut Vec<Cached>, fresh: Cached) {
    all.retain(|c| c.path != fresh.path);
    all.push(fresh);
}

pub fn load(path: &Path) -> Result<Option<Arc<LastGood>>> {
    let mut all = cache();
    if let Some(c) = cached(&mut all, path)
        && current(c)?
    {
        return Ok(Some(c.record.clone()));
    }
    let Some(fresh) = read(path)? else { return Ok(None) };
    let out = fresh.record.clone();
    remember(&mut all, fresh);
    Ok(Some(out))
}

/// A generation number no earlier base used: nanoseconds since the epoch, past `previous`.
fn next_generation(previous: u64) -> u64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    now.max(previous + 1)
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Write the whole record (a new generation) and remove the journal.
pub fn save(path: &Path, state: LastGood) -> Result<()> {
    save_whole(&mut cache(), path, state)
}

fn save_whole(all: &mut Vec<Cached>, path: &Path, state: LastGood) -> Result<()> {
    let previous = cached(all, path).map_or(0, |c| c.generation);
    let generation = next_generation(previous);
    let bytes = serde_json::to_vec(&StoredRef { generation, record: &state })
        .map_err(|e| Error::State { path: path.to_path_buf(), reason: e.to_string() })?;
    crate::durable::write_file(path, &bytes, 0o644).map_err(|(p, source)| Error::Io { path: p, source })?;
    let jpath = journal_path(path);
    match std::fs::remove_file(&jpath) {
        Ok(()) => sync_dir(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::Io { path: jpath, source }),
    }
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let fresh = Cached {
        path: path.to_path_buf(),
        base: stamp(&meta),
        journal: None,
        generation,
        patches: Some(0),
        record: Arc::new(state),
    };
    remember(all, fresh);
    Ok(())
}

/// Record `state`, which follows `previous` (the record this process loaded): one patch appended
/// to the journal when that is all that changed and the files are still those `previous` came
/// from, else the whole record ([`save`]). Returns whether it appended.
pub fn save_after(path: &Path, previous: &Arc<LastGood>, state: LastGood) -> Result<bool> {
    let mut all = cache();
    let c = match cached(&mut all, path) {
        Some(c)
            if Arc::ptr_eq(&c.record, previous)
                && c.generation != 0
                && c.patches.is_some_and(|n| n < MAX_PATCHES)
                && current(c)? =>
        {
            c
        }
        _ => return save_whole(&mut all, path, state).map(|()| false),
    };
    let Some(p) = patch(c.generation, previous, &state) else {
        return save_whole(&mut all, path, state).map(|()| false);
    };
    if p.devices.is_empty() && p.firewall.is_none() && p.forwarding.is_none() {
        // The same record (a full pass that repaired drift): nothing to write.
        return Ok(false);
    }
    let line = line_of(&p)?;
    let jpath = journal_path(path);
    let existed = c.journal.is_some();
    let mut f =
        std::fs::OpenOptions::new().append(true).create(true).mode(0o644).open(&jpath).map_err(io(&jpath))?;
    f.write_all(&line).map_err(io(&jpath))?;
    f.sync_all().map_err(io(&jpath))?;
    if !existed {
        sync_dir(path)?;
    }
    let jmeta = f.metadata().map_err(io(&jpath))?;
    c.journal = Some(stamp(&jmeta));
    c.patches = c.patches.map(|n| n + 1);
    c.record = Arc::new(state);
    Ok(true)
}

#[cfg(test)]
mod tests;
