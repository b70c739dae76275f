//! Each replica's cursor on the primary: what it acknowledged, kept in
//! `<state_dir>/cursors/<replica>` (`journal_seq foreign_id`), replaced atomically and fsynced.
//! The replica's own answer is authoritative; the cursor says where to resume and how far behind
//! the replica is while it cannot be reached.

use std::path::{Path, PathBuf};

use crate::BackupError;
use crate::batch::Ack;
use crate::durable::replace_file;

pub struct Cursor {
    path: PathBuf,
    pub ack: Ack,
}

impl Cursor {
    /// Loads the cursor of `replica` (zero when none yet); a damaged file is an error naming it.
    pub fn load(state_dir: &Path, replica: &str) -> Result<Self, BackupError> {
        if !crate::config::valid_replica_name(replica) {
            // Checked at load already; the name becomes a file name here.
            return Err(BackupError::Config(format!(
                "follow.replicas: name {replica:?} is not a valid replica name"
            )));
        }
        let dir = state_dir.join("cursors");
        std::fs::create_dir_all(&dir).map_err(|e| BackupError::io(&dir, e))?;
        let path = dir.join(replica);
        let ack = match std::fs::read_to_string(&path) {
            Ok(s) => {
                let mut it = s.split_whitespace().map(str::parse::<u64>);
                match (it.next(), it.next()) {
                    (Some(Ok(a)), Some(Ok(f))) => Ack { applied_seq: a, foreign_applied: f },
                    _ => {
                        return Err(BackupError::Config(format!(
                            "{}: not a cursor ('SEQ FOREIGN')",
                            path.display()
                        )));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ack::default(),
            Err(e) => return Err(BackupError::io(&path, e)),
        };
        Ok(Self { path, ack })
    }

    /// Moves the cursor and persists it.
    pub fn store(&mut self, ack: Ack) -> Result<(), BackupError> {
        if ack != self.ack {
            replace_file(&self.path, format!("{} {}\n", ack.applied_seq, ack.foreign_applied).as_bytes())?;
            self.ack = ack;
        }
        Ok(())
    }
}
