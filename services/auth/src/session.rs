//! Browser state: login flows (an authorization request waiting for password and TOTP) and
//! sessions (a user fully logged in). Both are named by random cookie values of which only the
//! SHA-256 is stored; each carries the CSRF token its forms must echo.

use crate::db::{Db, now};
use crate::error::{AuthError, Result};
use crate::secret_token::{new_token, token_hash};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A validated authorization request, kept while the user logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
}

/// Where a login flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for username and password.
    Password,
    /// Password accepted; waiting for the TOTP code.
    Totp,
    /// Password accepted, no TOTP yet: showing a new secret, waiting for its first code.
    Enroll,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Password => "password",
            Stage::Totp => "totp",
            Stage::Enroll => "enroll",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "password" => Stage::Password,
            "totp" => Stage::Totp,
            "enroll" => Stage::Enroll,
            _ => return Err(AuthError::invalid("auth_flow.stage", s)),
        })
    }
}

/// A login in progress.
#[derive(Debug, Clone)]
pub struct Flow {
    pub id_hash: String,
    pub csrf: String,
    pub request: AuthRequest,
    pub stage: Stage,
    pub user_id: Option<String>,
    pub enroll_secret: Option<String>,
}

/// Start a login flow; returns the cookie value and the flow.
pub async fn create_flow(db: &Db, request: &AuthRequest, lifetime_secs: i64) -> Result<(String, Flow)> {
    let id = new_token();
    let flow = Flow {
        id_hash: token_hash(&id),
        csrf: new_token(),
        request: request.clone(),
        stage: Stage::Password,
        user_id: None,
        enroll_secret: None,
    };
    // Expired flows are swept whenever a new one starts.
    sqlx::query("DELETE FROM auth_flow WHERE expires_at < $1").bind(now()).execute(&db.pool).await?;
    sqlx::query(
        "INSERT INTO auth_flow (id_hash, csrf, request, stage, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&flow.id_hash)
    .bind(&flow.csrf)
    .bind(serde_json::to_string(request).unwrap_or_default())
    .bind(Stage::Password.as_str())
    .bind(now() + lifetime_secs)
    .execute(&db.pool)
    .await?;
    Ok((id, flow))
}

/// The unexpired flow a cookie names.
pub async fn flow(db: &Db, cookie: &str) -> Result<Option<Flow>> {
    let r = sqlx::query(
        "SELECT id_hash, csrf, request, stage, user_id, enroll_secret FROM auth_flow WHERE id_hash = $1 AND expires_at >= $2",
    )
    .bind(token_hash(cookie))
    .bind(now())
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let req: String = r.try_get("request")?;
    Ok(Some(Flow {
        id_hash: r.try_get("id_hash")?,
        csrf: r.try_get("csrf")?,
        request: serde_json::from_str(&req)
            .map_err(|e| AuthError::invalid("auth_flow.request", e.to_string()))?,
        stage: Stage::parse(&r.try_get::<String, _>("stage")?)?,
        user_id: r.try_get("user_id")?,
        enroll_secret: r.try_get("enroll_secret")?,
    }))
}

/// Move a flow to its next stage.
pub async fn advance_flow(
    db: &Db,
    f: &Flow,
    stage: Stage,
    user_id: &str,
    enroll_secret: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE auth_flow SET stage = $1, user_id = $2, enroll_secret = $3 WHERE id_hash = $4")
        .bind(stage.as_str())
        .bind(user_id)
        .bind(enroll_secret)
        .bind(&f.id_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn delete_flow(db: &Db, f: &Flow) -> Result<()> {
    sqlx::query("DELETE FROM auth_flow WHERE id_hash = $1").bind(&f.id_hash).execute(&db.pool).await?;
    Ok(())
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub csrf: String,
    pub auth_time: i64,
    pub amr: String,
}

/// Start a session after a complete login; returns the cookie value.
pub async fn create_session(
    db: &Db,
    user_id: &str,
    amr: &str,
    lifetime_secs: i64,
) -> Result<(String, Session)> {
    let id = new_token();
    let s = Session {
        id_hash: token_hash(&id),
        user_id: user_id.to_string(),
        csrf: new_token(),
        auth_time: now(),
        amr: amr.to_string(),
    };
    sqlx::query("INSERT INTO auth_session (id_hash, user_id, csrf, auth_time, amr, expires_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $4)")
        .bind(&s.id_hash)
        .bind(&s.user_id)
        .bind(&s.csrf)
        .bind(s.auth_time)
        .bind(&s.amr)
        .bind(s.auth_time + lifetime_secs)
        .execute(&db.pool)
        .await?;
    Ok((id, s))
}

/// The live session a cookie names (not expired, not idle for more than `idle_secs`, not ended,
/// user not disabled); finding it counts as use (the idle time starts again).
pub async fn session(db: &Db, cookie: &str, idle_secs: i64) -> Result<Option<Session>> {
    let now = now();
    let r = sqlx::query(
        "SELECT s.id_hash, s.user_id, s.csrf, s.auth_time, s.amr FROM auth_session s JOIN auth_user u ON u.id = s.user_id \
         WHERE s.id_hash = $1 AND s.expires_at >= $2 AND s.ended_at IS NULL AND u.disabled = 0 \
         AND COALESCE(s.last_used_at, s.auth_time) >= $3",
    )
    .bind(token_hash(cookie))
    .bind(now)
    .bind(now - idle_secs)
    .fetch_optional(&db.pool)
    .await?;
    if r.is_some() {
        touch(db, &token_hash(cookie)).await?;
    }
    r.map(|r| {
        Ok(Session {
            id_hash: r.try_get("id_hash")?,
            user_id: r.try_get("user_id")?,
            csrf: r.try_get("csrf")?,
            auth_time: r.try_get("auth_time")?,
            amr: r.try_get("amr")?,
        })
    })
    .transpose()
}

/// Marks session `id_hash` as used now (its idle time starts again).
pub async fn touch(db: &Db, id_hash: &str) -> Result<()> {
    sqlx::query("UPDATE auth_session SET last_used_at = $1 WHERE id_hash = $2")
        .bind(now())
        .bind(id_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn end_session(db: &Db, s: &Session) -> Result<()> {
    sqlx::query("UPDATE auth_session SET ended_at = $1 WHERE id_hash = $2")
        .bind(now())
        .bind(&s.id_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}
