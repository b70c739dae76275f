//! Sites that may upload: who they are, which facilities they send for, where they may connect from,
//! and the hash of their token. The token itself is shown once, when made, and never stored.

use std::net::IpAddr;

use ipnet::IpNet;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::Db;
use crate::{FacilityId, StoreError};

/// A site as listed by `kizuna site list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Site {
    pub name: String,
    pub facilities: Vec<String>,
    pub allow: Vec<IpNet>,
    pub enabled: bool,
    pub created_at: String,
    pub token_rotated_at: String,
}

/// Why a request was refused. `status` is the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    pub error: &'static str,
    pub message: String,
    /// The site the token named, when it named one (for the audit event).
    pub site: Option<String>,
}

/// A site that passed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthedSite {
    pub name: String,
}

/// Site names name folders nowhere, but they label metrics and logs: keep them plain.
pub fn check_site_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Site {
            site: name.escape_default().to_string(),
            reason: "a site name is 1-64 ASCII letters, digits, '-', '_' or '.'".into(),
        })
    }
}

/// A new random token (`kzn_` and 64 hex digits).
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("kzn_{}", hex::encode(b))
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Loopback only: what a site may connect from when no `--allow` was given.
pub fn default_allow() -> Vec<IpNet> {
    vec!["127.0.0.0/8".parse().expect("literal"), "::1/128".parse().expect("literal")]
}

fn join_cidrs(allow: &[IpNet]) -> String {
    allow.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

fn parse_cidrs(site: &str, s: &str) -> Result<Vec<IpNet>, StoreError> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse().map_err(|_| StoreError::Site {
                site: site.into(),
                reason: format!("stored CIDR {p:?} is invalid"),
            })
        })
        .collect()
}

/// Adds a site and returns its new token (to be shown once).
pub async fn add_site(
    db: &Db,
    name: &str,
    facilities: &[FacilityId],
    allow: &[IpNet],
) -> Result<String, StoreError> {
    check_site_name(name)?;
    if facilities.is_empty() {
        return Err(StoreError::Site { site: name.into(), reason: "give at least one --facility".into() });
    }
    let allow = if allow.is_empty() { default_allow() } else { allow.to_vec() };
    let token = new_token();
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    require_durable_commit(db, &mut tx).await?;
    let exists =
        sqlx::query("SELECT name FROM sites WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
    if exists.is_some() {
        return Err(StoreError::Site {
            site: name.into(),
            reason: "already exists (use rotate-token for a new token)".into(),
        });
    }
    let t = now();
    sqlx::query(
        "INSERT INTO sites (name, token_sha256, enabled, allow_cidrs, created_at, token_rotated_at) VALUES ($1, $2, 1, $3, $4, $5)",
    )
    .bind(name)
    .bind(token_hash(&token))
    .bind(join_cidrs(&allow))
    .bind(&t)
    .bind(&t)
    .execute(&mut *tx)
    .await?;
    for f in facilities {
        let owner = sqlx::query("SELECT site FROM site_facilities WHERE facility_id = $1")
            .bind(f.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = owner {
            let other: String = row.try_get("site")?;
            return Err(StoreError::Site {
                site: name.into(),
                reason: format!("facility {f} already belongs to site {other}"),
            });
        }
        sqlx::query("INSERT INTO site_facilities (facility_id, site) VALUES ($1, $2)")
            .bind(f.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    commit_durably(db, tx).await?;
    Ok(token)
}

/// Replaces a site's token; the old one stops working at once. Returns the new token.
pub async fn rotate_token(db: &Db, name: &str) -> Result<String, StoreError> {
    let token = new_token();
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    require_durable_commit(db, &mut tx).await?;
    let r = sqlx::query("UPDATE sites SET token_sha256 = $1, token_rotated_at = $2 WHERE name = $3")
        .bind(token_hash(&token))
        .bind(now())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::Site { site: name.into(), reason: "no such site".into() });
    }
    commit_durably(db, tx).await?;
    Ok(token)
}

/// Enables or disables a site (a disabled site's uploads get 403).
pub async fn set_enabled(db: &Db, name: &str, enabled: bool) -> Result<(), StoreError> {
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    require_durable_commit(db, &mut tx).await?;
    let r = sqlx::query("UPDATE sites SET enabled = $1 WHERE name = $2")
        .bind(i64::from(enabled))
        .bind(name)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::Site { site: name.into(), reason: "no such site".into() });
    }
    commit_durably(db, tx).await?;
    Ok(())
}

// Site changes are security changes (a revoked token, a disabled site) and, unlike the records,
// not in the change journal, so the relaxed durability the IndexDB runs with (`db.rs`: the
// journal is the records' commit record) would let a power cut undo them after the command
// said done. These two make a site change durable before it returns.

/// PostgreSQL: this transaction's commit waits for its WAL flush (`synchronous_commit` is off
/// for the store's sessions).
async fn require_durable_commit(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
) -> Result<(), StoreError> {
    if db.backend == crate::db::Backend::Postgres {
        sqlx::query("SET LOCAL synchronous_commit = on").execute(&mut **tx).await?;
    }
    Ok(())
}

/// Commits; on SQLite (WAL, `synchronous=NORMAL`, which syncs the WAL only at checkpoints) a
/// checkpoint then syncs the WAL holding the commit and copies it into the database file.
async fn commit_durably(db: &Db, tx: sqlx::Transaction<'static, sqlx::Any>) -> Result<(), StoreError> {
    db.commit(tx).await?;
    if db.backend == crate::db::Backend::Sqlite {
        sqlx::query("PRAGMA wal_checkpoint(FULL)").fetch_all(&db.pool).await?;
    }
    Ok(())
}

/// Every site, by name.
pub async fn list_sites(db: &Db) -> Result<Vec<Site>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, enabled, allow_cidrs, created_at, token_rotated_at FROM sites ORDER BY name",
    )
    .fetch_all(&db.pool)
    .await?;
    // All facilities in one query, not one per site (the admin screen lists every site at every
    // page and check).
    let mut facilities: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for f in sqlx::query("SELECT site, facility_id FROM site_facilities ORDER BY site, facility_id")
        .fetch_all(&db.pool)
        .await?
    {
        facilities.entry(f.try_get("site")?).or_default().push(f.try_get("facility_id")?);
    }
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.try_get("name")?;
        let allow_s: String = r.try_get("allow_cidrs")?;
        out.push(Site {
            allow: parse_cidrs(&name, &allow_s)?,
            facilities: facilities.remove(&name).unwrap_or_default(),
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            created_at: r.try_get("created_at")?,
            token_rotated_at: r.try_get("token_rotated_at")?,
            name,
        });
    }
    Ok(out)
}

/// Checks a request: the token names an enabled site, the peer address is inside the site's
/// allowed networks, and (when given) the facility belongs to the site.
pub async fn authenticate(
    db: &Db,
    token: Option<&str>,
    peer: IpAddr,
    facility: Option<&str>,
) -> Result<Result<AuthedSite, Denied>, StoreError> {
    let deny = |status, error, message: String| Ok(Err(Denied { status, error, message, site: None }));
    let deny_site = |status, error, message: String, site: &str| {
        Ok(Err(Denied { status, error, message, site: Some(site.into()) }))
    };
    let Some(token) = token else {
        return deny(401, "unauthorized", "missing 'Authorization: Bearer <site token>' header".into());
    };
    let row = sqlx::query("SELECT name, enabled, allow_cidrs FROM sites WHERE token_sha256 = $1")
        .bind(token_hash(token))
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return deny(401, "unauthorized", "the token is not valid for any site".into());
    };
    let name: String = row.try_get("name")?;
    if row.try_get::<i64, _>("enabled")? == 0 {
        return deny_site(403, "site_disabled", format!("site {name} is disabled"), &name);
    }
    let allow = parse_cidrs(&name, &row.try_get::<String, _>("allow_cidrs")?)?;
    // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    if !allow.iter().any(|n| n.contains(&peer)) {
        return deny_site(
            403,
            "address_not_allowed",
            format!("site {name} may not upload from {peer}"),
            &name,
        );
    }
    if let Some(f) = facility {
        let owner = sqlx::query("SELECT site FROM site_facilities WHERE facility_id = $1")
            .bind(f)
            .fetch_optional(&db.pool)
            .await?;
        let owned = match owner {
            Some(r) => r.try_get::<String, _>("site")? == name,
            None => false,
        };
        if !owned {
            return deny_site(
                403,
                "facility_not_allowed",
                format!("site {name} may not upload for facility {}", f.escape_default()),
                &name,
            );
        }
    }
    Ok(Ok(AuthedSite { name }))
}
