//! The journal writer: one thread owns the newest segment, numbers entries, appends their frames
//! and fsyncs. Entries that arrive while an fsync runs (or within the group window) share the next
//! fsync: group commit. A caller's entries are durable when `append` returns.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::record::{Draft, Entry, encode_frame};
use super::segment::{MAGIC, Tail, list_segments, read_frames, segment_name};
use crate::StoreError;
use crate::data_lock::DataDirLock;
use crate::durable::{create_dirs_synced, fsync_dir};

struct Request {
    drafts: Vec<Draft>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Entry>, String>>,
}

/// The open journal. Cheap to share (`Arc` inside); `append` may be called from many tasks at once.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Request>,
    dir: PathBuf,
    last_seq: Arc<AtomicU64>,
}

struct Segment {
    file: File,
    size: u64,
}

struct WriterState {
    dir: PathBuf,
    segment: Segment,
    next_seq: u64,
    segment_bytes: u64,
    last_seq: Arc<AtomicU64>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`. A torn frame at the end of the newest segment (a crash
    /// during an append that was therefore never acknowledged) is cut off. Returns the journal and
    /// the last sequence number in it. Only one writer may append to a journal: the caller holds
    /// the data folder's lock (`_held`; two stores on one folder interleaved their frames and the
    /// next start cut acknowledged entries off as a torn tail).
    pub fn open(
        _held: &DataDirLock,
        dir: &Path,
        segment_bytes: u64,
        window: Duration,
    ) -> Result<(Self, u64), StoreError> {
        create_dirs_synced(dir)?;
        let segments = list_segments(dir)?;
        let (segment, last) = match segments.last() {
            None => (create_segment(dir, 1)?, 0),
            Some((first, path)) => {
                let mut last = first - 1;
                let (end, tail) = read_frames(path, 0, |e| {
                    if e.seq != last + 1 {
                        return Err(StoreError::journal(
                            path,
                            format!("entry {} follows {last}: sequence gap", e.seq),
                        ));
                    }
                    last = e.seq;
                    Ok(true)
                })?;
                let file = OpenOptions::new().write(true).open(path).map_err(|e| StoreError::io(path, e))?;
                let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
                let end = if end == 0 {
                    // The header itself was torn: rewrite it.
                    file.set_len(0).map_err(|e| StoreError::io(path, e))?;
                    (&file).write_all(MAGIC).map_err(|e| StoreError::io(path, e))?;
                    MAGIC.len() as u64
                } else {
                    end
                };
                if len > end {
                    let why = match tail {
                        Tail::Corrupt(w) => w,
                        _ => "incomplete frame".into(),
                    };
                    tracing::warn!(segment = %path.display(), dropped_bytes = len - end, %why,
                        "journal: cutting off a torn tail (an append interrupted by a crash, never acknowledged)");
                    file.set_len(end).map_err(|e| StoreError::io(path, e))?;
                }
                file.sync_all().map_err(|e| StoreError::io(path, e))?;
                (Segment { file, size: end }, last)
            }
        };
        let last_seq = Arc::new(AtomicU64::new(last));
        let mut state = WriterState {
            dir: dir.to_owned(),
            segment,
            next_seq: last + 1,
            segment_bytes: segment_bytes.max(4096),
            last_seq: last_seq.clone(),
        };
        // Append at the end of the newest segment.
        use std::io::Seek;
        state.segment.file.seek(std::io::SeekFrom::End(0)).map_err(|e| StoreError::io(dir, e))?;
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("kizuna-journal".into())
            .spawn(move || state.run(rx, window))
            .map_err(|e| StoreError::io(dir, e))?;
        Ok((Self { tx, dir: dir.to_owned(), last_seq }, last))
    }

    /// Numbers, appends and fsyncs these entries (in order, consecutive numbers); returns them once
    /// they are durable.
    pub async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Entry>, StoreError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let closed = || StoreError::journal(&self.dir, "the journal writer has stopped");
        self.tx.send(Request { drafts, reply }).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?.map_err(|e| StoreError::journal(&self.dir, e))
    }

    /// The highest sequence number written so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<Segment, StoreError> {
    let path = dir.join(segment_name(first_seq));
    let mut file =
        OpenOptions::new().create_new(true).write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
    file.write_all(MAGIC).map_err(|e| StoreError::io(&path, e))?;
    file.sync_all().map_err(|e| StoreError::io(&path, e))?;
    fsync_dir(dir)?;
    Ok(Segment { file, size: MAGIC.len() as u64 })
}

impl WriterState {
    fn run(mut self, rx: mpsc::Receiver<Request>, window: Duration) {
        let mut poisoned: Option<String> = None;
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            if !window.is_zero() {
                let deadline = Instant::now() + window;
                while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                    match rx.recv_timeout(left) {
                        Ok(r) => group.push(r),
                        Err(_) => break,
                    }
                }
            }
            group.extend(rx.try_iter());
            if let Some(why) = &poisoned {
                for r in group {
                    let _ = r.reply.send(Err(why.clone()));
                }
                continue;
            }
            match self.write_group(&group) {
                Ok(entries) => {
                    for (r, e) in group.into_iter().zip(entries) {
                        let _ = r.reply.send(Ok(e));
                    }
                }
                Err(e) => {
                    // The segment's end is unknown now; refuse everything until a restart truncates it.
                    let why = format!("journal write failed, store must restart: {e}");
                    tracing::error!("{why}");
                    for r in group {
                        let _ = r.reply.send(Err(why.clone()));
                    }
                    poisoned = Some(why);
                }
            }
        }
    }

    fn write_group(&mut self, group: &[Request]) -> Result<Vec<Vec<Entry>>, StoreError> {
        let time = jiff::Timestamp::now().to_string();
        let mut buf = Vec::new();
        let mut out = Vec::with_capacity(group.len());
        for r in group {
            let mut entries = Vec::with_capacity(r.drafts.len());
            for d in &r.drafts {
                if self.segment.size + buf.len() as u64 >= self.segment_bytes {
                    self.flush(&mut buf)?;
                    self.segment.file.sync_data().map_err(|e| StoreError::io(&self.dir, e))?;
                    self.segment = create_segment(&self.dir, self.next_seq)?;
                }
                let entry = Entry {
                    seq: self.next_seq,
                    time: time.clone(),
                    facility: d.facility.clone(),
                    site: d.site.clone(),
                    changes: d.changes.clone(),
                };
                self.next_seq += 1;
                encode_frame(&entry, &mut buf);
                entries.push(entry);
            }
            out.push(entries);
        }
        self.flush(&mut buf)?;
        self.segment.file.sync_data().map_err(|e| StoreError::io(&self.dir, e))?;
        self.last_seq.store(self.next_seq - 1, Ordering::Release);
        Ok(out)
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        self.segment.file.write_all(buf).map_err(|e| StoreError::io(&self.dir, e))?;
        self.segment.size += buf.len() as u64;
        buf.clear();
        Ok(())
    }
}
