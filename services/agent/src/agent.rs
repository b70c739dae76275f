//! The agent: its shared state and the tasks that make it up (intake, upload, reports).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::agent_log::{AgentLog, Level};
use crate::config::Config;
use crate::outbox::Outbox;
use crate::quarantine::{Origin, Quarantine};
use crate::state_lock::StateDirLock;
use crate::store_client::{StoreClient, Token};
use crate::{AgentError, check, intake, report, upload};

/// A point-in-time view of the agent, for netd's status API and `kizuna-agent status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Files waiting in the outbox.
    pub queue_depth: u64,
    /// Files in quarantine.
    pub quarantined: u64,
    /// Files the store acknowledged (stored or duplicate) since start.
    pub files_uploaded: u64,
    /// RFC 3339 time of the last acknowledged batch (persisted across restarts).
    pub last_upload: Option<String>,
    /// True while the outbox or quarantine cannot be written for lack of space.
    pub disk_full: bool,
    /// The last ERROR the agent logged, if any.
    pub last_error: Option<String>,
}

/// State shared by the agent's tasks.
pub(crate) struct Shared {
    pub cfg: Config,
    pub export_dir: PathBuf,
    /// `cfg.state_dir`, canonical. Nothing below it is ever taken as an export (the config refuses
    /// a state folder inside the export folder; this is the second line of defence).
    pub state_dir: PathBuf,
    pub outbox: Outbox,
    pub quarantine: Quarantine,
    pub log: AgentLog,
    pub store: StoreClient,
    pub validator: ssmix2::validate::Validator,
    /// The NSIPS intake's folders, when the config has `nsips`.
    pub nsips: Option<crate::nsips::Nsips>,
    pub wake_uploader: Notify,
    pub files_uploaded: AtomicU64,
    pub disk_full: AtomicBool,
    pub last_upload: Mutex<Option<String>>,
    /// Held while the persisted copy of `last_upload` is written (the status never waits on it).
    pub last_upload_file: Mutex<()>,
    pub last_error: Mutex<Option<String>>,
    /// Outcomes of re-requests not yet reported to the store (sent with the next heartbeat).
    pub rerequests_done: Mutex<Vec<kizuna_wire::RerequestOutcome>>,
    /// The state folder's lock: taken by [`Agent::new`], released when [`Agent::run`] has
    /// stopped every task (or, should `run` not finish, once the last task has let go).
    pub lock: Mutex<Option<StateDirLock>>,
}

impl Shared {
    /// Logs at `level`, remembering the last error for the status.
    pub fn record(&self, level: Level, event: &str, message: &str, fields: serde_json::Value) {
        if level == Level::Error {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_owned());
        }
        self.log.record(level, event, message, fields);
    }

    /// Notes that a write into the state folder failed for lack of space (logged once per episode).
    pub fn note_disk_full(&self, what: &str, err: &std::io::Error) {
        if !self.disk_full.swap(true, Ordering::SeqCst) {
            let msg = format!(
                "no space left to write {what} in {}: {err}; files stay in the export folder and are retried automatically",
                self.cfg.state_dir.display()
            );
            self.record(Level::Error, "disk_full", &msg, json!({"state_dir": self.cfg.state_dir}));
        }
    }

    /// Notes a successful write into the state folder (ends a disk-full episode).
    pub fn note_disk_ok(&self) {
        if self.disk_full.swap(false, Ordering::SeqCst) {
            self.record(
                Level::Info,
                "disk_space_back",
                "space is available again; resuming",
                serde_json::Value::Null,
            );
        }
    }

    pub fn status(&self) -> Status {
        Status {
            queue_depth: self.outbox.len() as u64,
            quarantined: self.quarantine.count(),
            // Acquire: pairs with the upload's Release, so `last_upload` is at least as new.
            files_uploaded: self.files_uploaded.load(Ordering::Acquire),
            last_upload: self.last_upload.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            disk_full: self.disk_full.load(Ordering::Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// A cheap handle to read the running agent's status from elsewhere (netd's API).
#[derive(Clone)]
pub struct StatusHandle(Arc<Shared>);

impl StatusHandle {
    pub fn get(&self) -> Status {
        self.0.status()
    }
}

/// The upload agent. Build it with [`Agent::new`], then drive it with [`Agent::run`]; it owns no
/// process-wide state (no signal handlers, no global logger), so netd can host it.
pub struct Agent {
    shared: Arc<Shared>,
}

impl Agent {
    /// Checks the config, reads the token, locks the state folder (`<state_dir>/agent.lock`; a
    /// second agent on it fails here with [`AgentError::StateDirInUse`]), prepares it and recovers
    /// the outbox left by a previous run (temp files removed, waiting files queued).
    pub fn new(cfg: Config) -> Result<Self, AgentError> {
        // Checked at load too; again here for a config built in code and for folders (or links)
        // changed since.
        cfg.check_folders().map_err(|message| AgentError::Config { file: cfg.state_dir.clone(), message })?;
        let token = Token::read(&cfg.token_file)?;
        let validator = match &cfg.nho_tables_dir {
            Some(dir) => ssmix2::validate::Validator::from_nho_tables(dir),
            None => ssmix2::validate::Validator::from_default_tables(),
        }
        .map_err(|e| AgentError::Config {
            file: cfg.nho_tables_dir.clone().unwrap_or_else(|| "nho_tables_dir".into()),
            message: e.to_string(),
        })?;
        let store = StoreClient::new(&cfg, token)?;
        let export_dir = cfg
            .export_dir
            .canonicalize()
            .map_err(|e| AgentError::folder("export_dir", &cfg.export_dir, e))?;
        if !export_dir.is_dir() {
            return Err(AgentError::Config {
                file: cfg.export_dir.clone(),
                message: "export_dir is not a directory".into(),
            });
        }
        // Before anything below the state folder is written (or a crash's temp file removed):
        // a second agent on it is refused here, leaving the first one's folder as it is.
        let lock = StateDirLock::acquire(&cfg.state_dir)?;
        for dir in [cfg.log_dir(), cfg.cursor_dir()] {
            crate::durable::create_dir_all_synced(&dir).map_err(|e| AgentError::io(&dir, e))?;
            // A crash in the middle of a cursor write leaves its temp file behind.
            crate::durable::remove_temp_files(&dir).map_err(|e| AgentError::io(&dir, e))?;
        }
        let state_dir =
            cfg.state_dir.canonicalize().map_err(|e| AgentError::folder("state_dir", &cfg.state_dir, e))?;
        let (outbox, strays) =
            Outbox::open(&cfg.outbox_dir()).map_err(|e| AgentError::io(&cfg.outbox_dir(), e))?;
        let quarantine =
            Quarantine::open(&cfg.quarantine_dir()).map_err(|e| AgentError::io(&cfg.quarantine_dir(), e))?;
        let nsips = crate::nsips::Nsips::open(&cfg)?;
        let last_upload = report::read_last_upload(&cfg.cursor_dir());
        let shared = Arc::new(Shared {
            log: AgentLog::new(&cfg.log_dir()),
            export_dir,
            state_dir,
            outbox,
            quarantine,
            store,
            validator,
            nsips,
            wake_uploader: Notify::new(),
            files_uploaded: AtomicU64::new(0),
            disk_full: AtomicBool::new(false),
            last_upload: Mutex::new(last_upload),
            last_upload_file: Mutex::new(()),
            last_error: Mutex::new(None),
            rerequests_done: Mutex::new(Vec::new()),
            lock: Mutex::new(Some(lock)),
            cfg,
        });
        for stray in strays {
            let rel = format!("outbox/{}", stray.file_name().unwrap_or_default().to_string_lossy());
            let v = [check::Violation {
                code: "bad-file-name".into(),
                field: None,
                message: "a file in the outbox does not have an SS-MIX2 name".into(),
            }];
            if let Err(e) = shared.quarantine.put(&stray, &rel, Origin::Agent, "", &v) {
                return Err(AgentError::io(&stray, e));
            }
        }
        let n = shared.outbox.len();
        shared.record(
            Level::Info,
            "started",
            &format!("agent {} started; {n} files waiting in the outbox", env!("CARGO_PKG_VERSION")),
            json!({"facility": shared.cfg.facility, "queue_depth": n}),
        );
        Ok(Self { shared })
    }

    pub fn status(&self) -> StatusHandle {
        StatusHandle(self.shared.clone())
    }

    /// Runs until `shutdown` completes. An upload in flight at shutdown is abandoned; its files stay
    /// in the outbox and are sent again next time (the store answers `duplicate` if they had arrived).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = intake::start_watcher(&self.shared)?;
        let tasks = [
            tokio::spawn(intake::run(self.shared.clone(), watcher, stop_rx.clone())),
            tokio::spawn(crate::nsips::run(self.shared.clone(), stop_rx.clone())),
            tokio::spawn(upload::run(self.shared.clone(), stop_rx.clone())),
            tokio::spawn(report::run_heartbeats(self.shared.clone(), stop_rx.clone())),
            tokio::spawn(report::run_daily_logs(self.shared.clone(), stop_rx)),
        ];
        shutdown.await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        self.shared.record(Level::Info, "stopped", "agent stopped", serde_json::Value::Null);
        // Every task has ended: the folder is free for the next agent (a status handle may
        // outlive the agent).
        drop(self.shared.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
        Ok(())
    }
}
