//! Sites: provisioning (one-time, expiring tokens bound to a site), enrollment (the token is
//! used up, public keys registered, a credential issued), key registration, revocation,
//! listing and authentication. Secrets are stored only as SHA-256 hashes.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use netd::policy::{PublicKey, SegmentName, SiteName};
use netd::registry::token::EnrollToken;
use netd::registry::unix_now;
use netd::registry::view::KeySwitch;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Db, bump};
use crate::error::{RegistryError, Result};
use crate::policies;
use crate::policy_check::site_segments;
use crate::views::EnrolledKeys;

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A site as `kizuna site list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SiteInfo {
    pub name: String,
    pub status: String,
    pub enrolled_unix: Option<u64>,
    pub revoked_unix: Option<u64>,
    pub observed_endpoint: Option<String>,
    pub last_seen_unix: Option<u64>,
    pub keys: BTreeMap<String, String>,
}

fn opt_u64(r: &sqlx::any::AnyRow, c: &str) -> Result<Option<u64>> {
    Ok(r.try_get::<Option<i64>, _>(c)?.map(|v| v as u64))
}

async fn site_in_active_policy(db: &Db, site: &str) -> Result<(netd::policy::Policy, SiteName)> {
    let (_, policy) = policies::active(db).await?.ok_or_else(|| {
        RegistryError::Conflict("no policy yet: run `kizuna policy apply FILE` first".into())
    })?;
    let name: SiteName = site.parse().map_err(RegistryError::BadRequest)?;
    if !policy.sites.iter().any(|s| s.name == name) {
        return Err(RegistryError::NotFound(format!(
            "site {site:?} is not in the active policy; add it there first (`kizuna policy apply`)"
        )));
    }
    Ok((policy, name))
}

/// The token lifetimes `provision` accepts, in seconds: one minute to 30 days (`--ttl-secs`,
/// `token_ttl_secs`). Unbounded, `now + ttl` overflowed or stored a token expired on arrival.
pub const TOKEN_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;

/// Refuse a token lifetime outside [`TOKEN_TTL_SECS`]; `what` names where it came from.
pub fn check_token_ttl(ttl_secs: u64, what: &str) -> std::result::Result<u64, String> {
    if TOKEN_TTL_SECS.contains(&ttl_secs) {
        Ok(ttl_secs)
    } else {
        Err(format!(
            "{what}: token lifetime {ttl_secs} s is outside {}..={} s (one minute to 30 days)",
            TOKEN_TTL_SECS.start(),
            TOKEN_TTL_SECS.end()
        ))
    }
}

/// Issue a token for `site` (replacing its earlier unused tokens), valid for `ttl_secs`
/// (within [`TOKEN_TTL_SECS`]).
pub async fn provision(db: &Db, site: &str, ttl_secs: u64, url: &str, pin: &str) -> Result<EnrollToken> {
    check_token_ttl(ttl_secs, "provision").map_err(RegistryError::BadRequest)?;
    site_in_active_policy(db, site).await?;
    let now = unix_now();
    let expires_unix = now + ttl_secs;
    let secret = new_secret();
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM tokens WHERE site = $1 AND used_unix IS NULL")
        .bind(site)
        .execute(&mut *tx)
        .await?;
    let exists =
        sqlx::query("SELECT status FROM sites WHERE name = $1").bind(site).fetch_optional(&mut *tx).await?;
    if exists.is_none() {
        sqlx::query("INSERT INTO sites (name, status) VALUES ($1, 'provisioned')")
            .bind(site)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO tokens (secret_sha256, site, created_unix, expires_unix) VALUES ($1, $2, $3, $4)",
    )
    .bind(hash(&secret))
    .bind(site)
    .bind(now as i64)
    .bind(expires_unix as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(EnrollToken {
        url: url.to_string(),
        pin: pin.to_string(),
        site: site.to_string(),
        expires_unix,
        secret,
    })
}

/// Check a token without using it up. Errors say plainly why it is refused.
async fn check_token(conn: &mut sqlx::AnyConnection, site: &str, secret: &str, now: u64) -> Result<()> {
    let row = sqlx::query("SELECT site, expires_unix, used_unix FROM tokens WHERE secret_sha256 = $1")
        .bind(hash(secret))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| {
            RegistryError::Unauthorized(format!(
                "unknown enrollment token for site {site:?} (mistyped, or replaced by a newer `kizuna site provision {site}`)"
            ))
        })?;
    let bound: String = row.try_get("site")?;
    if bound != site {
        return Err(RegistryError::Unauthorized(format!(
            "this token is bound to site {bound:?}, not {site:?}"
        )));
    }
    if let Some(used) = opt_u64(&row, "used_unix")? {
        return Err(RegistryError::Gone(format!(
            "the enrollment token for site {site:?} was already used (at UNIX time {used}); tokens work once: run `kizuna site provision {site}` for a new one"
        )));
    }
    let expires = row.try_get::<i64, _>("expires_unix")? as u64;
    if expires <= now {
        return Err(RegistryError::Gone(format!(
            "the enrollment token for site {site:?} expired at UNIX time {expires}; run `kizuna site provision {site}` for a new one"
        )));
    }
    Ok(())
}

/// The segments the token's site must register keys for (token not used up).
pub async fn preview(db: &Db, site: &str, secret: &str) -> Result<Vec<SegmentName>> {
    let mut conn = db.pool.acquire().await?;
    check_token(&mut conn, site, secret, unix_now()).await?;
    drop(conn);
    let (policy, name) = site_in_active_policy(db, site).await?;
    Ok(site_segments(&policy, &name))
}

/// Refuse keys used by another site or segment (every key must be its own keypair).
async fn check_keys_unique(
    conn: &mut sqlx::AnyConnection,
    site: &str,
    keys: &BTreeMap<SegmentName, PublicKey>,
) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (seg, key) in keys {
        if !seen.insert(key) {
            return Err(RegistryError::Conflict(format!(
                "the key for segment {seg} is used for another segment too"
            )));
        }
        let other = sqlx::query("SELECT site, segment FROM site_keys WHERE public_key = $1")
            .bind(key.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(o) = other {
            let (s, g): (String, String) = (o.try_get("site")?, o.try_get("segment")?);
            if s != site || g != seg.as_str() {
                return Err(RegistryError::Conflict(format!(
                    "public key for segment {seg} is already registered for site {s:?} segment {g:?}"
                )));
            }
        }
        // A key another site or segment is still switching away from is taken too.
        let replaced = sqlx::query("SELECT site, segment FROM site_keys WHERE previous_key = $1")
            .bind(key.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(o) = replaced {
            let (s, g): (String, String) = (o.try_get("site")?, o.try_get("segment")?);
            if s != site || g != seg.as_str() {
                return Err(RegistryError::Conflict(format!(
                    "public key for segment {seg} was registered for site {s:?} segment {g:?} before"
                )));
            }
        }
    }
    Ok(())
}

/// Use the token up, store the site's keys, issue its credential. Returns (credential, version).
pub async fn enroll(
    db: &Db,
    site: &str,
    secret: &str,
    keys: &BTreeMap<SegmentName, PublicKey>,
) -> Result<(String, u64)> {
    // The token first (read-only; checked again in the transaction): without one, the caller
    // learns nothing about which sites exist or which segments they join.
    let mut conn = db.pool.acquire().await?;
    check_token(&mut conn, site, secret, unix_now()).await?;
    drop(conn);
    let (policy, name) = site_in_active_policy(db, site).await?;
    let segments = site_segments(&policy, &name);
    let missing: Vec<&str> = segments.iter().filter(|s| !keys.contains_key(*s)).map(|s| s.as_str()).collect();
    let extra: Vec<&str> = keys.keys().filter(|s| !segments.contains(s)).map(|s| s.as_str()).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(RegistryError::BadRequest(format!(
            "site {site:?} needs keys for exactly {:?}; missing {missing:?}, not a member of {extra:?}",
            segments.iter().map(|s| s.as_str()).collect::<Vec<_>>()
        )));
    }
    let now = unix_now();
    let credential = new_secret();
    let mut tx = db.begin_write().await?;
    let version = bump(&mut tx).await?;
    check_token(&mut tx, site, secret, now).await?;
    let used = sqlx::query("UPDATE tokens SET used_unix = $1 WHERE secret_sha256 = $2 AND used_unix IS NULL")
        .bind(now as i64)
        .bind(hash(secret))
        .execute(&mut *tx)
        .await?;
    if used.rows_affected() != 1 {
        return Err(RegistryError::Gone(format!("the enrollment token for site {site:?} was already used")));
    }
    sqlx::query("DELETE FROM site_keys WHERE site = $1").bind(site).execute(&mut *tx).await?;
    check_keys_unique(&mut tx, site, keys).await?;
    for (seg, key) in keys {
        sqlx::query(
            "INSERT INTO site_keys (site, segment, public_key, registered_unix) VALUES ($1, $2, $3, $4)",
        )
        .bind(site)
        .bind(seg.as_str())
        .bind(key.as_str())
        .bind(now as i64)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE sites SET status = 'enrolled', credential_sha256 = $1, enrolled_unix = $2, revoked_unix = NULL WHERE name = $3",
    )
    .bind(hash(&credential))
    .bind(now as i64)
    .bind(site)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((credential, version))
}

/// The enrolled site a bearer credential belongs to.
pub async fn authenticate(db: &Db, credential: &str) -> Result<SiteName> {
    let row = sqlx::query("SELECT name, status, revoked_unix FROM sites WHERE credential_sha256 = $1")
        .bind(hash(credential))
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| {
            RegistryError::Unauthorized("unknown site credential (enroll again with a new token)".into())
        })?;
    let name: String = row.try_get("name")?;
    let status: String = row.try_get("status")?;
    match status.as_str() {
        "enrolled" => name.parse().map_err(RegistryError::BadRequest),
        "revoked" => Err(RegistryError::Forbidden(format!(
            "site {name:?} was revoked (UNIX time {}); it needs a new `kizuna site provision`",
            opt_u64(&row, "revoked_unix")?.unwrap_or(0)
        ))),
        other => Err(RegistryError::Forbidden(format!("site {name:?} is {other}"))),
    }
}

/// The site a credential was issued to, whatever its status (a refusal's audit event names it).
pub async fn credential_site(db: &Db, credential: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT name FROM sites WHERE credential_sha256 = $1")
        .bind(hash(credential))
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get("name")).transpose()?)
}

/// Record where a site's requests come from (its observed underlay endpoint).
pub async fn observe(db: &Db, site: &SiteName, endpoint: &str) -> Result<()> {
    let now = unix_now() as i64;
    sqlx::query(
        "UPDATE sites SET observed_endpoint = $1, last_seen_unix = $2 WHERE name = $3 AND (observed_endpoint IS NULL OR observed_endpoint <> $4 OR last_seen_unix < $5)",
    )
    .bind(endpoint)
    .bind(now)
    .bind(site.as_str())
    .bind(endpoint)
    .bind(now - 60)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// What a key registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The new version, or the current one when nothing changed.
    pub version: u64,
    /// When a key replaced another: the switch time.
    pub switch_unix: Option<u64>,
    /// The segments whose key changed; empty when every key was registered already.
    pub changed: Vec<SegmentName>,
}

/// Register new or rotated keys of an enrolled site. When a key replaced another, routers
/// switch at now + `switch_delay_secs`; until then views name the replaced key as the one in
/// use ([`netd::registry::view::KeySwitch`]). A key registered again changes nothing (no new
/// version); a second rotation before the switch keeps the key actually in use as the previous
/// one and moves the switch time. No keys at all is a bad request.
pub async fn register_keys(
    db: &Db,
    site: &SiteName,
    keys: &BTreeMap<SegmentName, PublicKey>,
    switch_delay_secs: u64,
) -> Result<Registered> {
    if keys.is_empty() {
        return Err(RegistryError::BadRequest(format!("site {site}: no keys to register")));
    }
    let now = unix_now();
    let switch = now + switch_delay_secs;
    let mut switched = false;
    let mut changed = Vec::new();
    let mut tx = db.begin_write().await?;
    let version = bump(&mut tx).await?;
    // Status and policy read under the write lock: a revocation or an apply that removed the
    // site, committed since the credential was checked, leaves no keys behind.
    let status = sqlx::query("SELECT status FROM sites WHERE name = $1")
        .bind(site.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get::<String, _>("status"))
        .transpose()?;
    if status.as_deref() != Some("enrolled") {
        return Err(RegistryError::Forbidden(format!(
            "site {site} is {}; it needs a new `kizuna site provision`",
            status.as_deref().unwrap_or("unknown")
        )));
    }
    let policy = policies::active_in(&mut *tx).await?.map(|(_, p)| p).ok_or_else(|| {
        RegistryError::Conflict("no policy yet: run `kizuna policy apply FILE` first".into())
    })?;
    let segments = site_segments(&policy, site);
    if let Some(bad) = keys.keys().find(|s| !segments.contains(s)) {
        return Err(RegistryError::BadRequest(format!("site {site} is not a member of segment {bad}")));
    }
    check_keys_unique(&mut tx, site.as_str(), keys).await?;
    for (seg, key) in keys {
        let held = sqlx::query(
            "SELECT public_key, previous_key, switch_unix FROM site_keys WHERE site = $1 AND segment = $2",
        )
        .bind(site.as_str())
        .bind(seg.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let previous = match &held {
            None => None,
            Some(r) => {
                let current: String = r.try_get("public_key")?;
                if current == key.as_str() {
                    continue;
                }
                let pending = opt_u64(r, "switch_unix")?.is_some_and(|t| t > now);
                match r.try_get::<Option<String>, _>("previous_key")? {
                    Some(p) if pending => Some(p),
                    _ => Some(current),
                }
            }
        };
        switched |= previous.is_some();
        changed.push(seg.clone());
        sqlx::query("DELETE FROM site_keys WHERE site = $1 AND segment = $2")
            .bind(site.as_str())
            .bind(seg.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO site_keys (site, segment, public_key, registered_unix, previous_key, switch_unix) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(site.as_str())
        .bind(seg.as_str())
        .bind(key.as_str())
        .bind(now as i64)
        .bind(previous.clone())
        .bind(previous.as_ref().map(|_| switch as i64))
        .execute(&mut *tx)
        .await?;
    }
    if changed.is_empty() {
        // Nothing changed: dropping the transaction rolls its bump back.
        drop(tx);
        return Ok(Registered { version: db.generation().await?, switch_unix: None, changed });
    }
    tx.commit().await?;
    Ok(Registered { version, switch_unix: switched.then_some(switch), changed })
}

/// The key switches of enrolled sites (every rotated key and the key it replaced).
pub async fn key_switches(db: &Db) -> Result<Vec<KeySwitch>> {
    let rows = sqlx::query(
        "SELECT k.site, k.segment, k.previous_key, k.switch_unix FROM site_keys k JOIN sites s ON s.name = k.site \
         WHERE s.status = 'enrolled' AND k.previous_key IS NOT NULL AND k.switch_unix IS NOT NULL ORDER BY k.site, k.segment",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (site, seg, previous): (String, String, String) =
                (r.try_get("site")?, r.try_get("segment")?, r.try_get("previous_key")?);
            let bad = |e: String| RegistryError::Conflict(format!("stored key switch of {site}/{seg}: {e}"));
            Ok(KeySwitch {
                segment: seg.parse().map_err(bad)?,
                previous: previous.parse().map_err(bad)?,
                switch_unix: opt_u64(r, "switch_unix")?.unwrap_or(0),
                site,
            })
        })
        .collect()
}

/// Cut a site off: out of every view at the next version, its keys and tokens deleted, its
/// credential refused. Returns the new version.
pub async fn revoke(db: &Db, site: &str) -> Result<u64> {
    let mut tx = db.begin_write().await?;
    let version = bump(&mut tx).await?;
    let done = sqlx::query("UPDATE sites SET status = 'revoked', revoked_unix = $1 WHERE name = $2")
        .bind(unix_now() as i64)
        .bind(site)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(RegistryError::NotFound(format!("the registry knows no site {site:?}")));
    }
    sqlx::query("DELETE FROM site_keys WHERE site = $1").bind(site).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM tokens WHERE site = $1").bind(site).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(version)
}

pub async fn list(db: &Db) -> Result<Vec<SiteInfo>> {
    let rows = sqlx::query(
        "SELECT name, status, enrolled_unix, revoked_unix, observed_endpoint, last_seen_unix FROM sites ORDER BY name",
    )
    .fetch_all(&db.pool)
    .await?;
    let keys = enrolled_keys_all(db).await?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get("name")?;
            let k = keys
                .iter()
                .find(|(s, _)| s.as_str() == name)
                .map(|(_, k)| k.iter().map(|(g, p)| (g.to_string(), p.to_string())).collect())
                .unwrap_or_default();
            Ok(SiteInfo {
                status: r.try_get("status")?,
                enrolled_unix: opt_u64(r, "enrolled_unix")?,
                revoked_unix: opt_u64(r, "revoked_unix")?,
                observed_endpoint: r.try_get("observed_endpoint")?,
                last_seen_unix: opt_u64(r, "last_seen_unix")?,
                keys: k,
                name,
            })
        })
        .collect()
}

async fn enrolled_keys_all(db: &Db) -> Result<EnrolledKeys> {
    let rows = sqlx::query("SELECT site, segment, public_key FROM site_keys").fetch_all(&db.pool).await?;
    let mut out = EnrolledKeys::new();
    for r in rows {
        let (site, seg, key): (String, String, String) =
            (r.try_get("site")?, r.try_get("segment")?, r.try_get("public_key")?);
        let bad = |e: String| RegistryError::Conflict(format!("stored key of {site}/{seg}: {e}"));
        out.entry(site.parse().map_err(bad)?)
            .or_default()
            .insert(seg.parse().map_err(bad)?, key.parse().map_err(bad)?);
    }
    Ok(out)
}

/// Keys of the sites currently enrolled (not revoked or removed).
pub async fn enrolled_keys(db: &Db) -> Result<EnrolledKeys> {
    let enrolled: std::collections::BTreeSet<String> =
        sqlx::query("SELECT name FROM sites WHERE status = 'enrolled'")
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("name"))
            .collect::<std::result::Result<_, _>>()?;
    let mut all = enrolled_keys_all(db).await?;
    all.retain(|s, _| enrolled.contains(s.as_str()));
    Ok(all)
}
