//! The single writer: a task that owns the [`AuditLog`], batches concurrent submissions into one
//! transaction (group commit), and writes checkpoints every N events or T seconds.

use crate::checkpoint::Checkpoint;
use crate::error::{AuditError, Result};
use crate::event::AuditEvent;
use crate::log::{Appended, AuditLog};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// When to write a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// After this many new events.
    pub every_events: u64,
    /// Or after this long, if anything new was appended.
    pub interval: Duration,
}

enum Job {
    Append(Vec<AuditEvent>, oneshot::Sender<std::result::Result<Vec<Appended>, String>>),
    Checkpoint(oneshot::Sender<std::result::Result<Checkpoint, String>>),
}

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<Job>,
}

/// Events per transaction at most.
const MAX_BATCH: usize = 5000;

impl Appender {
    /// Start the writer task. It ends (after a final checkpoint) when every handle is dropped.
    pub fn spawn(
        mut log: AuditLog,
        policy: CheckpointPolicy,
    ) -> (Appender, tokio::task::JoinHandle<AuditLog>) {
        let (tx, mut rx) = mpsc::channel::<Job>(1024);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(policy.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    job = rx.recv() => {
                        let Some(job) = job else { break };
                        let mut jobs = vec![job];
                        let mut n = 0;
                        while n < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(j) => {
                                    if let Job::Append(e, _) = &j { n += e.len(); }
                                    jobs.push(j);
                                }
                                Err(_) => break,
                            }
                        }
                        run_jobs(&mut log, jobs).await;
                        if log.size() - log.last_checkpoint_size() >= policy.every_events
                            && let Err(e) = log.checkpoint().await
                        {
                            tracing::error!(error = %e, "checkpoint failed");
                        }
                    }
                    _ = tick.tick() => {
                        if log.size() > log.last_checkpoint_size()
                            && let Err(e) = log.checkpoint().await
                        {
                            tracing::error!(error = %e, "checkpoint failed");
                        }
                    }
                }
            }
            if log.size() > log.last_checkpoint_size()
                && let Err(e) = log.checkpoint().await
            {
                tracing::error!(error = %e, "final checkpoint failed");
            }
            log
        });
        (Appender { tx }, task)
    }

    /// Append events; answers once they are committed to the database and the disk mirror.
    pub async fn submit(&self, events: Vec<AuditEvent>) -> Result<Vec<Appended>> {
        for e in &events {
            e.validate()?;
        }
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Append(events, tx))
            .await
            .map_err(|_| AuditError::Send("audit writer stopped".into()))?;
        rx.await.map_err(|_| AuditError::Send("audit writer stopped".into()))?.map_err(AuditError::Send)
    }

    /// Write a checkpoint now.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Checkpoint(tx))
            .await
            .map_err(|_| AuditError::Send("audit writer stopped".into()))?;
        rx.await.map_err(|_| AuditError::Send("audit writer stopped".into()))?.map_err(AuditError::Send)
    }
}

async fn run_jobs(log: &mut AuditLog, jobs: Vec<Job>) {
    let mut all = Vec::new();
    let mut waiters = Vec::new();
    for j in jobs {
        match j {
            Job::Append(events, reply) => {
                waiters.push((events.len(), reply));
                all.extend(events);
            }
            Job::Checkpoint(reply) => {
                let _ = reply.send(log.checkpoint().await.map_err(|e| e.to_string()));
            }
        }
    }
    if all.is_empty() {
        return;
    }
    match log.append(&all).await {
        Ok(results) => {
            let mut it = results.into_iter();
            for (n, reply) in waiters {
                let _ = reply.send(Ok(it.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "append failed");
            for (_, reply) in waiters {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }
}
