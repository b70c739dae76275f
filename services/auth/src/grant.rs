//! Authorization codes and access tokens. A code is single use, bound to its client, redirect URI
//! and PKCE challenge; redeeming it twice revokes every token issued from it (RFC 6749 §4.1.2,
//! RFC 9700 §4.5). Only SHA-256 hashes of codes and tokens are stored.

use crate::db::{Db, now};
use crate::error::Result;
use crate::pkce;
use crate::secret_token::{new_token, token_hash};
use sqlx::Row;

/// What a code remembers from the authorization request and the login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub auth_time: i64,
    pub amr: String,
    /// The provider session the code was issued in (its cookie's hash): tokens end with it.
    pub session_hash: String,
}

/// Why a code was not exchanged (all are `invalid_grant` to the client; the reason is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemError {
    Unknown,
    Expired,
    /// The code was redeemed before: tokens issued from it have now been revoked.
    Replayed {
        revoked_tokens: u64,
    },
    WrongClient,
    WrongRedirectUri,
    PkceMismatch,
    /// The session the code was issued in has ended since.
    SessionEnded,
}

impl RedeemError {
    pub fn description(&self) -> String {
        match self {
            RedeemError::Unknown => "unknown authorization code".into(),
            RedeemError::Expired => "authorization code expired".into(),
            RedeemError::Replayed { .. } => {
                "authorization code was already used; tokens issued from it are revoked".into()
            }
            RedeemError::WrongClient => "authorization code was issued to another client".into(),
            RedeemError::WrongRedirectUri => "redirect_uri does not match the authorization request".into(),
            RedeemError::PkceMismatch => "code_verifier does not match the code_challenge".into(),
            RedeemError::SessionEnded => "the login session has ended".into(),
        }
    }
}

/// A successful exchange.
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub grant: CodeGrant,
    pub access_token: String,
    pub expires_in: i64,
}

/// Store a new code for `g`; returns the code.
pub async fn issue_code(db: &Db, g: &CodeGrant, lifetime_secs: i64) -> Result<String> {
    let code = new_token();
    sqlx::query(
        "INSERT INTO auth_code (code_hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, expires_at, session_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(token_hash(&code))
    .bind(&g.client_id)
    .bind(&g.user_id)
    .bind(&g.redirect_uri)
    .bind(&g.scope)
    .bind(g.nonce.as_deref())
    .bind(&g.code_challenge)
    .bind(g.auth_time)
    .bind(&g.amr)
    .bind(now() + lifetime_secs)
    .bind(&g.session_hash)
    .execute(&db.pool)
    .await?;
    Ok(code)
}

/// Exchange `code` for an access token, checking client, redirect URI and PKCE verifier. The
/// token lives as long as the session the code was issued in, so that a relying party can keep
/// re-checking its user at userinfo; it dies with that session (`lookup_token`).
pub async fn redeem(
    db: &Db,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    code_verifier: &str,
) -> Result<std::result::Result<Redeemed, RedeemError>> {
    let hash = token_hash(code);
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "SELECT client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, expires_at, used_at, session_hash \
         FROM auth_code WHERE code_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = row else { return Ok(Err(RedeemError::Unknown)) };
    let g = CodeGrant {
        client_id: r.try_get("client_id")?,
        user_id: r.try_get("user_id")?,
        redirect_uri: r.try_get("redirect_uri")?,
        scope: r.try_get("scope")?,
        nonce: r.try_get("nonce")?,
        code_challenge: r.try_get("code_challenge")?,
        auth_time: r.try_get("auth_time")?,
        amr: r.try_get("amr")?,
        session_hash: r.try_get::<Option<String>, _>("session_hash")?.unwrap_or_default(),
    };
    let t = now();
    if r.try_get::<Option<i64>, _>("used_at")?.is_some() {
        let revoked = sqlx::query("UPDATE auth_token SET revoked = 1 WHERE code_hash = $1 AND revoked = 0")
            .bind(&hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        return Ok(Err(RedeemError::Replayed { revoked_tokens: revoked }));
    }
    if r.try_get::<i64, _>("expires_at")? < t {
        return Ok(Err(RedeemError::Expired));
    }
    if g.client_id != client_id {
        return Ok(Err(RedeemError::WrongClient));
    }
    if g.redirect_uri != redirect_uri {
        return Ok(Err(RedeemError::WrongRedirectUri));
    }
    if !pkce::verify(code_verifier, &g.code_challenge) {
        return Ok(Err(RedeemError::PkceMismatch));
    }
    let session_expires: Option<i64> = sqlx::query_scalar(
        "SELECT expires_at FROM auth_session WHERE id_hash = $1 AND ended_at IS NULL AND expires_at >= $2",
    )
    .bind(&g.session_hash)
    .bind(t)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(expires_at) = session_expires else { return Ok(Err(RedeemError::SessionEnded)) };
    // Claim the code; a concurrent redemption that got here first makes this a replay.
    let claimed = sqlx::query("UPDATE auth_code SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL")
        .bind(t)
        .bind(&hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if claimed != 1 {
        return Ok(Err(RedeemError::Replayed { revoked_tokens: 0 }));
    }
    let access_token = new_token();
    sqlx::query(
        "INSERT INTO auth_token (token_hash, code_hash, client_id, user_id, scope, expires_at, session_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash(&access_token))
    .bind(&hash)
    .bind(&g.client_id)
    .bind(&g.user_id)
    .bind(&g.scope)
    .bind(expires_at)
    .bind(&g.session_hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(Redeemed { grant: g, access_token, expires_in: expires_at - t }))
}

/// A valid (unexpired, unrevoked) access token's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
}

/// A token is valid only while the provider session it was issued from lives.
pub async fn lookup_token(db: &Db, access_token: &str, idle_secs: i64) -> Result<Option<TokenInfo>> {
    let now = now();
    let r = sqlx::query(
        "SELECT t.client_id, t.user_id, t.scope, t.session_hash FROM auth_token t JOIN auth_session s ON s.id_hash = t.session_hash \
         WHERE t.token_hash = $1 AND t.revoked = 0 AND t.expires_at >= $2 AND s.ended_at IS NULL AND s.expires_at >= $2 \
         AND COALESCE(s.last_used_at, s.auth_time) >= $3",
    )
    .bind(token_hash(access_token))
    .bind(now)
    .bind(now - idle_secs)
    .fetch_optional(&db.pool)
    .await?;
    // A relying party re-checking its user is use of the session: it stays alive while in use.
    if let Some(r) = &r {
        crate::session::touch(db, &r.try_get::<String, _>("session_hash")?).await?;
    }
    r.map(|r| {
        Ok(TokenInfo {
            client_id: r.try_get("client_id")?,
            user_id: r.try_get("user_id")?,
            scope: r.try_get("scope")?,
        })
    })
    .transpose()
}
