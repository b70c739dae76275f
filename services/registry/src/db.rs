//! The registry database: SQLite (default) or PostgreSQL through sqlx's `Any` driver, one set of
//! queries, one migrations folder per backend with the same schema (as the store and audit do).
//!
//! `registry_state.generation` is the registry's version: every change (policy, enrollment,
//! keys, revocation) increments it in the same transaction, as that transaction's first
//! statement, so writers serialise on it and the version only ever grows.

use sqlx::Row;

use crate::error::Result;

pub use kizuna_db::Backend;

kizuna_db::service_db! {
    /// An open, migrated registry database; opening and write transactions are `kizuna_db`'s.
    error: crate::error::RegistryError,
    // WAL: the server reads while `kizuna` commands write. FULL: an acknowledged
    // enrollment survives a power cut.
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
    postgres: "",
}

impl Db {
    /// The current version.
    pub async fn generation(&self) -> Result<u64> {
        let row =
            sqlx::query("SELECT generation FROM registry_state WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>("generation")? as u64)
    }
}

/// Increment the version inside `tx` and return the new value. Call it first in a write
/// transaction: it takes the write lock before anything is read.
pub async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<u64> {
    sqlx::query("UPDATE registry_state SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT generation FROM registry_state WHERE id = 1").fetch_one(&mut **tx).await?;
    Ok(row.try_get::<i64, _>("generation")? as u64)
}
