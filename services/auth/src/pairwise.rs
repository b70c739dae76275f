//! Pairwise subject identifiers (OpenID Connect Core §8.1): each relying service (sector) knows a
//! user by a different id, derived as SHA-256(sector ‖ 0 ‖ user id ‖ 0 ‖ secret salt), so two
//! services cannot correlate their users by id. Each (user, sector) pair is recorded so it can be
//! registered with the audit service, which alone resolves pairwise ids for auditors.

use crate::db::Db;
use crate::error::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::Digest;
use sqlx::Row;

/// Compute the pairwise subject of `user_id` at `sector`.
pub fn pairwise_subject(salt: &[u8; 32], sector: &str, user_id: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(sector.as_bytes());
    h.update([0]);
    h.update(user_id.as_bytes());
    h.update([0]);
    h.update(salt);
    B64.encode(h.finalize())
}

/// One pairwise id not yet registered with the audit service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unregistered {
    pub subject: String,
    pub sector: String,
    pub user_id: String,
    pub display_name: String,
}

/// Record that `subject` was issued for (user, sector); returns whether it is new.
pub async fn record(db: &Db, user_id: &str, sector: &str, subject: &str) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO auth_pairwise (user_id, sector, subject) VALUES ($1, $2, $3) ON CONFLICT (user_id, sector) DO NOTHING",
    )
    .bind(user_id)
    .bind(sector)
    .bind(subject)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Pairwise ids the audit service has not acknowledged yet.
pub async fn unregistered(db: &Db) -> Result<Vec<Unregistered>> {
    let rows = sqlx::query(
        "SELECT p.subject, p.sector, p.user_id, u.display_name FROM auth_pairwise p JOIN auth_user u ON u.id = p.user_id \
         WHERE p.registered = 0 ORDER BY p.subject",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Unregistered {
                subject: r.try_get("subject")?,
                sector: r.try_get("sector")?,
                user_id: r.try_get("user_id")?,
                display_name: r.try_get("display_name")?,
            })
        })
        .collect()
}

/// What the audit service said to a pairwise id's registration (the `registered` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Registered (1).
    Registered = 1,
    /// Refused for good: the audit service holds the id for another subject (2).
    Refused = 2,
}

/// Records the audit service's answer for the pairwise id `subject`.
pub async fn mark(db: &Db, subject: &str, answer: Registration) -> Result<()> {
    sqlx::query("UPDATE auth_pairwise SET registered = $1 WHERE subject = $2")
        .bind(answer as i64)
        .bind(subject)
        .execute(&db.pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_differ_per_sector_and_salt_but_are_stable() {
        let salt = [1u8; 32];
        let a = pairwise_subject(&salt, "viewer", "u-1");
        assert_eq!(a, pairwise_subject(&salt, "viewer", "u-1"));
        assert_ne!(a, pairwise_subject(&salt, "audit", "u-1"));
        assert_ne!(a, pairwise_subject(&salt, "viewer", "u-2"));
        assert_ne!(a, pairwise_subject(&[2u8; 32], "viewer", "u-1"));
        assert!(!a.contains("u-1"));
    }
}
