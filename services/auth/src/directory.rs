//! Users and registered clients (relying parties): creation, lookup, password and TOTP checks with
//! lockout. The operator CLI and the tests use this directly; the HTTP layer uses it for logins.

use crate::db::{Db, now};
use crate::error::{AuthError, Result};
use crate::password::{hash_password, verify_password};
use crate::role::Role;
use crate::secret_token::{new_token, token_hash};
use crate::totp;
use sqlx::Row;

/// A user as the directory knows them (never the password hash or TOTP secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Internal subject id: never given to relying services (they get pairwise ids).
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// The facility the user works at (facility code as the store knows it).
    pub facility: String,
    #[serde(serialize_with = "ser_roles")]
    pub roles: Vec<Role>,
    pub totp_enrolled: bool,
    /// Unix seconds until which logins are refused (0 = not locked).
    pub locked_until: i64,
    pub disabled: bool,
}

fn ser_roles<S: serde::Serializer>(r: &[Role], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.iter().map(|r| r.as_str()))
}

/// What `add_user` needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub facility: String,
    pub roles: Vec<Role>,
    pub password: String,
}

/// A registered relying party.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// false = public client (no secret; PKCE alone protects the code).
    pub confidential: bool,
    /// Compared exactly (no prefix or wildcard matching).
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Pairwise subject ids are computed per sector: clients of one relying service share it.
    pub sector: String,
}

/// What `add_client` needs.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Empty = the host of the first redirect URI (OpenID Connect Core §8.1).
    pub sector: String,
    /// true = issue a client secret.
    pub confidential: bool,
}

/// A new client's credentials; the secret is shown once and only its hash is kept.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Option<String>,
}

/// Result of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordCheck {
    Ok(User),
    /// Wrong password or unknown user (indistinguishable to the caller's user).
    Refused {
        user_id: Option<String>,
        now_locked: bool,
    },
    /// The account is locked or disabled (or at its limit of attempts): refused whatever the
    /// password (which is still verified, for the timing).
    Locked {
        user_id: String,
    },
}

/// Result of checking a TOTP code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotpCheck {
    Ok,
    Refused { now_locked: bool },
    Locked,
}

/// Lockout policy: this many consecutive failures lock the account for `lock_secs`.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub threshold: i64,
    pub lock_secs: i64,
}

const USER_COLUMNS: &str = "id, username, display_name, facility, roles, totp_secret, locked_until, disabled, password_hash, totp_last_step";

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User> {
    let roles: String = r.try_get("roles")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        facility: r.try_get("facility")?,
        roles: Role::parse_list(&roles)?,
        totp_enrolled: r.try_get::<Option<String>, _>("totp_secret")?.is_some(),
        locked_until: r.try_get("locked_until")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
    })
}

fn check_name(field: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AuthError::invalid(
            field,
            format!("{v:?}: 1-128 characters, no spaces or control characters"),
        ));
    }
    Ok(())
}

/// A user's facility must be a code the patient index accepts (`kizuna_index::FacilityCode`:
/// 1 to 16 ASCII letters or digits): the viewer's disclosure decisions and break glass go through
/// it, and a user it cannot place could log in and browse but not use emergency access.
pub fn check_facility(facility: &str) -> Result<()> {
    kizuna_index::FacilityCode::parse(facility)
        .map(drop)
        .map_err(|e| AuthError::invalid("facility", format!("{e} (the patient index's rule)")))
}

/// Check a redirect URI a client registers: absolute http(s), no fragment (RFC 6749 §3.1.2).
pub fn check_redirect_uri(field: &str, uri: &str) -> Result<url::Url> {
    let u = url::Url::parse(uri).map_err(|e| AuthError::invalid(field, format!("{uri:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(AuthError::invalid(field, format!("{uri:?}: must be an absolute http(s) URL")));
    }
    if u.fragment().is_some() {
        return Err(AuthError::invalid(field, format!("{uri:?}: must not have a fragment")));
    }
    Ok(u)
}

/// The users and clients in the auth database.
#[derive(Clone)]
pub struct Directory {
    pub(crate) db: Db,
}

impl Directory {
    pub fn new(db: Db) -> Self {
        Directory { db }
    }

    /// Open (and migrate) the database at `url` without running a server (the operator CLI).
    pub async fn open(url: &str) -> Result<Self> {
        Ok(Directory { db: Db::open(url).await? })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Create a user. The password is hashed with argon2id; TOTP is enrolled at first login or
    /// with [`Directory::enroll_totp`].
    pub async fn add_user(&self, u: &NewUser) -> Result<User> {
        check_name("username", &u.username)?;
        check_facility(&u.facility)?;
        if u.display_name.trim().is_empty() {
            return Err(AuthError::invalid("display_name", "must not be empty"));
        }
        if u.roles.is_empty() {
            return Err(AuthError::invalid("roles", "at least one role is required"));
        }
        let pw = u.password.clone();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| AuthError::Password(e.to_string()))??;
        let id = format!("u-{}", hex::encode(rand::random::<[u8; 12]>()));
        let res = sqlx::query(
            "INSERT INTO auth_user (id, username, display_name, facility, roles, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&u.username)
        .bind(u.display_name.trim())
        .bind(&u.facility)
        .bind(Role::join(&u.roles))
        .bind(&hash)
        .bind(now())
        .execute(&self.db.pool)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(AuthError::Exists(format!("user {:?}", u.username)));
            }
            r => r?,
        };
        self.user_by_username(&u.username).await?.ok_or_else(|| AuthError::NotFound(u.username.clone()))
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM auth_user WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.db.pool)
        .await?;
        r.as_ref().map(user_from_row).transpose()
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        let r =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM auth_user WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.db.pool)
                .await?;
        r.as_ref().map(user_from_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM auth_user ORDER BY facility, username"
        )))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn require_user(&self, username: &str) -> Result<User> {
        self.user_by_username(username)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username:?}")))
    }

    /// Give the user a new TOTP secret (replacing any) and return it (base32) for their app. Their
    /// open sessions end: whoever logged in with the old factor must prove the new one.
    pub async fn enroll_totp(&self, username: &str) -> Result<String> {
        let u = self.require_user(username).await?;
        let secret = totp::new_secret();
        self.set_totp_secret(&u.id, Some(&secret)).await?;
        self.end_sessions(&u.id).await?;
        Ok(secret)
    }

    /// Forget the user's TOTP secret: they enroll a new one at their next login. Their open
    /// sessions end.
    pub async fn reset_totp(&self, username: &str) -> Result<()> {
        let u = self.require_user(username).await?;
        self.set_totp_secret(&u.id, None).await?;
        self.end_sessions(&u.id).await
    }

    /// End every open session of a user (their credentials changed or they were disabled).
    async fn end_sessions(&self, user_id: &str) -> Result<()> {
        sqlx::query("UPDATE auth_session SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
            .bind(now())
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_totp_secret(&self, user_id: &str, secret: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE auth_user SET totp_secret = $1, totp_last_step = 0 WHERE id = $2")
            .bind(secret)
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Store a secret the user just proved with the code of `step` (that code cannot be reused).
    pub(crate) async fn set_totp_secret_at_step(&self, user_id: &str, secret: &str, step: u64) -> Result<()> {
        sqlx::query("UPDATE auth_user SET totp_secret = $1, totp_last_step = $2 WHERE id = $3")
            .bind(secret)
            .bind(step as i64)
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Set a new password; the user's open sessions end (a password reset after a leak must
    /// also throw out whoever used the old one).
    pub async fn set_password(&self, username: &str, password: &str) -> Result<()> {
        let u = self.require_user(username).await?;
        let pw = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| AuthError::Password(e.to_string()))??;
        sqlx::query("UPDATE auth_user SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(&u.id)
            .execute(&self.db.pool)
            .await?;
        self.end_sessions(&u.id).await
    }

    /// Clear a lockout.
    pub async fn unlock(&self, username: &str) -> Result<()> {
        let u = self.require_user(username).await?;
        sqlx::query("UPDATE auth_user SET failed_attempts = 0, locked_until = 0 WHERE id = $1")
            .bind(&u.id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Disable (true) or re-enable (false) a user; a disabled user cannot log in.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<()> {
        let u = self.require_user(username).await?;
        sqlx::query("UPDATE auth_user SET disabled = $1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(&u.id)
            .execute(&self.db.pool)
            .await?;
        if disabled {
            self.end_sessions(&u.id).await?;
        }
        Ok(())
    }

    /// Check a username and password, applying the lockout policy.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
        policy: Lockout,
    ) -> Result<PasswordCheck> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM auth_user WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.db.pool)
        .await?;
        let (user, hash) = match &row {
            Some(r) => (Some(user_from_row(r)?), Some(r.try_get::<String, _>("password_hash")?)),
            None => (None, None),
        };
        let counted = match &user {
            Some(u) => self.begin_attempt(&u.id, policy).await?,
            None => false,
        };
        // Verified even for a locked or disabled account, so that refusing one takes as long as
        // refusing an unknown user (no username oracle); the result is then ignored.
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&pw, hash.as_deref()))
            .await
            .map_err(|e| AuthError::Password(e.to_string()))?;
        match user {
            Some(u) if !counted => Ok(PasswordCheck::Locked { user_id: u.id }),
            Some(u) if ok => {
                // A right password does not reset the count (TOTP failures share it): it only
                // takes back its own attempt.
                self.undo_attempt(&u.id).await?;
                Ok(PasswordCheck::Ok(u))
            }
            Some(u) => {
                let now_locked = self.record_failure(&u.id, policy).await?;
                Ok(PasswordCheck::Refused { user_id: Some(u.id), now_locked })
            }
            None => Ok(PasswordCheck::Refused { user_id: None, now_locked: false }),
        }
    }

    /// Check a TOTP code for a user who passed the password step, applying lockout and single use.
    pub async fn check_totp(
        &self,
        user_id: &str,
        code: &str,
        skew: u8,
        policy: Lockout,
    ) -> Result<TotpCheck> {
        let r =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM auth_user WHERE id = $1")))
                .bind(user_id)
                .fetch_one(&self.db.pool)
                .await?;
        if !self.begin_attempt(user_id, policy).await? {
            return Ok(TotpCheck::Locked);
        }
        let Some(secret) = r.try_get::<Option<String>, _>("totp_secret")? else {
            self.undo_attempt(user_id).await?;
            return Ok(TotpCheck::Refused { now_locked: false });
        };
        let last: i64 = r.try_get("totp_last_step")?;
        let step = totp::accept(&secret, code, now().max(0) as u64, skew, last.max(0) as u64)?;
        match step {
            Some(step) => {
                // Claim the step atomically: two logins racing with one code cannot both pass.
                let claimed = sqlx::query(
                    "UPDATE auth_user SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
                )
                .bind(step as i64)
                .bind(user_id)
                .execute(&self.db.pool)
                .await?
                .rows_affected();
                if claimed == 1 {
                    // The count is reset when the login completes (`record_success`).
                    return Ok(TotpCheck::Ok);
                }
                let now_locked = self.record_failure(user_id, policy).await?;
                Ok(TotpCheck::Refused { now_locked })
            }
            None => {
                let now_locked = self.record_failure(user_id, policy).await?;
                Ok(TotpCheck::Refused { now_locked })
            }
        }
    }

    /// Count one attempt before it is checked, atomically, so that parallel requests cannot all
    /// read "not locked" and guess on: false (nothing counted) if the account is disabled or
    /// locked, or this attempt would be beyond the threshold (the others are still being checked).
    async fn begin_attempt(&self, user_id: &str, policy: Lockout) -> Result<bool> {
        let n: Option<i64> = sqlx::query(
            "UPDATE auth_user SET failed_attempts = failed_attempts + 1 \
             WHERE id = $1 AND disabled = 0 AND locked_until <= $2 RETURNING failed_attempts",
        )
        .bind(user_id)
        .bind(now())
        .fetch_optional(&self.db.pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
        match n {
            Some(n) if n <= policy.threshold => Ok(true),
            Some(_) => {
                self.undo_attempt(user_id).await?;
                Ok(false)
            }
            None => Ok(false),
        }
    }

    /// Take back an attempt counted by `begin_attempt` that succeeded or was not checked.
    async fn undo_attempt(&self, user_id: &str) -> Result<()> {
        sqlx::query("UPDATE auth_user SET failed_attempts = failed_attempts - 1 WHERE id = $1 AND failed_attempts > 0")
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// A checked attempt failed: it stays counted, and at the threshold the account locks (a new
    /// lock starts a new count). Returns whether it is now locked.
    async fn record_failure(&self, user_id: &str, policy: Lockout) -> Result<bool> {
        let t = now();
        // Both CASEs read the row as it was before this UPDATE (SQL semantics, SQLite and PostgreSQL).
        let locked: i64 = sqlx::query(
            "UPDATE auth_user SET \
             locked_until = CASE WHEN failed_attempts >= $1 THEN $2 ELSE locked_until END, \
             failed_attempts = CASE WHEN failed_attempts >= $1 THEN 0 ELSE failed_attempts END \
             WHERE id = $3 RETURNING locked_until",
        )
        .bind(policy.threshold)
        .bind(t + policy.lock_secs)
        .bind(user_id)
        .fetch_one(&self.db.pool)
        .await?
        .try_get(0)?;
        Ok(locked > t)
    }

    /// A complete login resets the failure count.
    pub(crate) async fn record_success(&self, user_id: &str) -> Result<()> {
        sqlx::query("UPDATE auth_user SET failed_attempts = 0 WHERE id = $1")
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Register a relying party.
    pub async fn add_client(&self, c: &NewClient) -> Result<ClientCredentials> {
        check_name("client_id", &c.client_id)?;
        if c.redirect_uris.is_empty() {
            return Err(AuthError::invalid("redirect_uris", "at least one redirect URI is required"));
        }
        let mut first_host = None;
        for (i, u) in c.redirect_uris.iter().enumerate() {
            let parsed = check_redirect_uri(&format!("redirect_uris[{i}]"), u)?;
            first_host.get_or_insert(parsed.host_str().unwrap_or_default().to_string());
        }
        for (i, u) in c.post_logout_redirect_uris.iter().enumerate() {
            check_redirect_uri(&format!("post_logout_redirect_uris[{i}]"), u)?;
        }
        let sector = if c.sector.trim().is_empty() {
            first_host.unwrap_or_default()
        } else {
            c.sector.trim().to_string()
        };
        check_name("sector", &sector)?;
        let secret = c.confidential.then(new_token);
        let res = sqlx::query(
            "INSERT INTO auth_client (client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, sector, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.client_id)
        .bind(if c.name.trim().is_empty() { &c.client_id } else { &c.name })
        .bind(secret.as_deref().map(token_hash))
        .bind(serde_json::to_string(&c.redirect_uris).unwrap_or_default())
        .bind(serde_json::to_string(&c.post_logout_redirect_uris).unwrap_or_default())
        .bind(&sector)
        .bind(now())
        .execute(&self.db.pool)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(AuthError::Exists(format!("client {:?}", c.client_id)));
            }
            r => r?,
        };
        Ok(ClientCredentials { client_id: c.client_id.clone(), client_secret: secret })
    }

    pub async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        let r = sqlx::query(
            "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, sector FROM auth_client WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.db.pool)
        .await?;
        r.as_ref().map(client_from_row).transpose()
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>> {
        let rows = sqlx::query(
            "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, sector FROM auth_client ORDER BY client_id",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Check a client secret (constant-time over the stored hashes).
    pub async fn check_client_secret(&self, client_id: &str, secret: &str) -> Result<bool> {
        let r = sqlx::query("SELECT secret_hash FROM auth_client WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.db.pool)
            .await?;
        let Some(r) = r else { return Ok(false) };
        let Some(stored): Option<String> = r.try_get(0)? else { return Ok(false) };
        Ok(crate::secret_token::constant_time_eq(stored.as_bytes(), token_hash(secret).as_bytes()))
    }
}

fn client_from_row(r: &sqlx::any::AnyRow) -> Result<Client> {
    let uris = |col: &str| -> Result<Vec<String>> {
        let s: String = r.try_get(col)?;
        serde_json::from_str(&s).map_err(|e| AuthError::invalid(col, e.to_string()))
    };
    Ok(Client {
        client_id: r.try_get("client_id")?,
        name: r.try_get("name")?,
        confidential: r.try_get::<Option<String>, _>("secret_hash")?.is_some(),
        redirect_uris: uris("redirect_uris")?,
        post_logout_redirect_uris: uris("post_logout_redirect_uris")?,
        sector: r.try_get("sector")?,
    })
}
