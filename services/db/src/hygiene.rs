//! Which connections the pool may hand out again. sqlx 0.9 (SQLite) keeps counting a transaction
//! whose `COMMIT` failed, or whose `ROLLBACK` failed because SQLite had already rolled back by
//! itself (as it does on `SQLITE_FULL`): a connection in that state fails every later
//! `BEGIN IMMEDIATE` with "attempted to call begin_with at non-zero transaction depth", so it is
//! closed instead (the pool opens a new one when needed).

use sqlx::{AnyConnection, Connection};

/// Whether `conn` may go back to the pool: not while sqlx still counts a transaction on it.
pub(crate) fn reusable(conn: &AnyConnection) -> bool {
    let ok = !conn.is_in_transaction();
    if !ok {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    ok
}

/// [`reusable`] for a connection just released. On SQLite a dropped transaction's `ROLLBACK` is
/// only queued (the count falls when it has run): a connection still counted is pinged first,
/// which runs after it, so the count it then shows is the final one.
pub(crate) async fn reusable_after_release(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    Ok(reusable(conn))
}
