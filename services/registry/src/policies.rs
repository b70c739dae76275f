//! Versioned policy: apply (check, diff, activate), roll back, list, show. A rollback is a new
//! version with an old body, so versions (and the registry's version) only grow. Sites that
//! leave the policy are released: their keys, credential and tokens are deleted, and a later
//! version (a rollback too) that names them again lists them in [`Applied::reenroll`].

use std::path::Path;

use netd::policy::Policy;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Db, bump};
use crate::error::{RegistryError, Result};
use crate::number_reuse;
use crate::policy_check;
use crate::policy_diff;

/// What an apply did (or would do, for a dry run).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new policy version; `None` for a dry run or when nothing changed.
    pub version: Option<u64>,
    /// The version that was active before.
    pub previous: Option<u64>,
    pub diff: Vec<String>,
    /// Sites released because they left the policy (for a dry run: that would be released).
    pub released: Vec<String>,
    /// Sites in the new policy whose enrollment an earlier apply released (status `removed`):
    /// they stay cut off until they get a new token and enroll again (a rollback does not
    /// restore an enrollment, see README.md).
    pub reenroll: Vec<String>,
}

/// One stored version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyVersion {
    pub version: u64,
    pub sha256: String,
    pub created_unix: u64,
    pub source: String,
    pub note: String,
    pub active: bool,
}

/// The active policy: `(version, policy)`.
pub async fn active(db: &Db) -> Result<Option<(u64, Policy)>> {
    active_in(&db.pool).await
}

/// [`active`] through any executor (a pool, or a transaction's connection).
pub(crate) async fn active_in<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
) -> Result<Option<(u64, Policy)>> {
    let row = sqlx::query(
        "SELECT p.version, p.body FROM registry_state s JOIN policies p ON p.version = s.active_policy WHERE s.id = 1",
    )
    .fetch_optional(ex)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let version: i64 = row.try_get("version")?;
    let body: String = row.try_get("body")?;
    let policy = serde_norway::from_str(&body)
        .map_err(|e| RegistryError::Policy(vec![format!("stored policy version {version}: {e}")]))?;
    Ok(Some((version as u64, policy)))
}

/// Every stored version, oldest first.
async fn history<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
) -> Result<Vec<number_reuse::Stored>> {
    let rows = sqlx::query("SELECT version, body, created_unix FROM policies ORDER BY version")
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|r| {
            let version: i64 = r.try_get("version")?;
            let policy = serde_norway::from_str(&r.try_get::<String, _>("body")?)
                .map_err(|e| RegistryError::Policy(vec![format!("stored policy version {version}: {e}")]))?;
            Ok(number_reuse::Stored { created_unix: r.try_get("created_unix")?, policy })
        })
        .collect()
}

/// The body of version `n`.
pub async fn body(db: &Db, n: u64) -> Result<String> {
    let row = sqlx::query("SELECT body FROM policies WHERE version = $1")
        .bind(n as i64)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("there is no policy version {n}")))?;
    Ok(row.try_get("body")?)
}

pub async fn list(db: &Db) -> Result<Vec<PolicyVersion>> {
    let active = sqlx::query("SELECT active_policy FROM registry_state WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .try_get::<Option<i64>, _>("active_policy")?;
    let rows =
        sqlx::query("SELECT version, sha256, created_unix, source, note FROM policies ORDER BY version")
            .fetch_all(&db.pool)
            .await?;
    rows.iter()
        .map(|r| {
            let version: i64 = r.try_get("version")?;
            Ok(PolicyVersion {
                version: version as u64,
                sha256: r.try_get("sha256")?,
                created_unix: r.try_get::<i64, _>("created_unix")? as u64,
                source: r.try_get("source")?,
                note: r.try_get("note")?,
                active: Some(version) == active,
            })
        })
        .collect()
}

/// Check `text` (labelled `file` in messages), show what changes, and activate it unless
/// `dry_run`. An unchanged policy activates nothing.
pub async fn apply(db: &Db, text: &str, file: &Path, note: &str, dry_run: bool) -> Result<Applied> {
    let new = policy_check::check(text, file).map_err(RegistryError::Policy)?;
    let now = netd::registry::unix_now() as i64;
    if dry_run {
        let reused = number_reuse::check(&history(&db.pool).await?, &new, now, file);
        if !reused.is_empty() {
            return Err(RegistryError::Policy(reused));
        }
        let current = active(db).await?;
        let diff = policy_diff::diff(current.as_ref().map(|(_, p)| p), &new);
        let (released, reenroll) = if diff.is_empty() && current.is_some() {
            (Vec::new(), Vec::new())
        } else {
            let leaving = with_status(&db.pool, &new, false, false).await?;
            (leaving, with_status(&db.pool, &new, true, true).await?)
        };
        return Ok(Applied { version: None, previous: current.map(|(v, _)| v), diff, released, reenroll });
    }
    // The history check, the diff and the activation happen in one write transaction, and `bump`
    // (an update of the registry's one state row) comes first: a concurrent apply waits for this
    // one to commit (SQLite's write lock, PostgreSQL's row lock), then checks against what it stored.
    let mut tx = db.begin_write().await?;
    bump(&mut tx).await?;
    let reused = number_reuse::check(&history(&mut *tx).await?, &new, now, file);
    if !reused.is_empty() {
        return Err(RegistryError::Policy(reused));
    }
    let current = active_in(&mut *tx).await?;
    let diff = policy_diff::diff(current.as_ref().map(|(_, p)| p), &new);
    let previous = current.as_ref().map(|(v, _)| *v);
    if diff.is_empty() && current.is_some() {
        // Nothing changes: the transaction (and its bump) is rolled back when dropped.
        return Ok(Applied { version: None, previous, diff, released: Vec::new(), reenroll: Vec::new() });
    }
    let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS next FROM policies")
        .fetch_one(&mut *tx)
        .await?
        .try_get("next")?;
    sqlx::query("INSERT INTO policies (version, body, sha256, created_unix, source, note) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(next)
        .bind(text)
        .bind(hex::encode(Sha256::digest(text.as_bytes())))
        .bind(now)
        .bind(file.display().to_string())
        .bind(note)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE registry_state SET active_policy = $1 WHERE id = 1")
        .bind(next)
        .execute(&mut *tx)
        .await?;
    // Release sites that left the policy, and keys of segments a site no longer joins.
    let rows = sqlx::query("SELECT name FROM sites WHERE status <> 'removed'").fetch_all(&mut *tx).await?;
    let mut released = Vec::new();
    for r in rows {
        let name: String = r.try_get("name")?;
        let Some(site) = new.sites.iter().find(|s| s.name.as_str() == name) else {
            sqlx::query("UPDATE sites SET status = 'removed', credential_sha256 = NULL WHERE name = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM site_keys WHERE site = $1").bind(&name).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM tokens WHERE site = $1").bind(&name).execute(&mut *tx).await?;
            released.push(name);
            continue;
        };
        let segs = policy_check::site_segments(&new, &site.name);
        let keyed = sqlx::query("SELECT segment FROM site_keys WHERE site = $1")
            .bind(&name)
            .fetch_all(&mut *tx)
            .await?;
        for k in keyed {
            let seg: String = k.try_get("segment")?;
            if !segs.iter().any(|s| s.as_str() == seg) {
                sqlx::query("DELETE FROM site_keys WHERE site = $1 AND segment = $2")
                    .bind(&name)
                    .bind(&seg)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    let reenroll = with_status(&mut *tx, &new, true, true).await?;
    tx.commit().await?;
    Ok(Applied { version: Some(next as u64), previous, diff, released, reenroll })
}

/// Names of the registry's sites that are `removed` (or, with `removed` false, any other
/// status) and are (`in_policy`) or are not in `policy`.
async fn with_status<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
    policy: &Policy,
    removed: bool,
    in_policy: bool,
) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT name, status FROM sites ORDER BY name").fetch_all(ex).await?;
    let mut out = Vec::new();
    for r in rows {
        let (name, status): (String, String) = (r.try_get("name")?, r.try_get("status")?);
        let listed = policy.sites.iter().any(|s| s.name.as_str() == name);
        if (status == "removed") == removed && listed == in_policy {
            out.push(name);
        }
    }
    Ok(out)
}

/// Return to version `n`: its body becomes a new version. Sites released since are not
/// enrolled again: they are listed in [`Applied::reenroll`].
pub async fn rollback(db: &Db, n: u64) -> Result<Applied> {
    let text = body(db, n).await?;
    apply(db, &text, Path::new(&format!("policy version {n}")), &format!("rollback to version {n}"), false)
        .await
}
