-- Users: facility, roles, argon2id password hash, TOTP secret, lockout counters.
CREATE TABLE auth_user (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    facility TEXT NOT NULL,
    roles TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Relying parties: exact redirect URIs (JSON arrays), sector for pairwise subjects.
CREATE TABLE auth_client (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    sector TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Pairwise subject ids, one per (user, sector); registered = sent to the audit service.
CREATE TABLE auth_pairwise (
    user_id TEXT NOT NULL REFERENCES auth_user(id) ON DELETE CASCADE,
    sector TEXT NOT NULL,
    subject TEXT NOT NULL UNIQUE,
    registered BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, sector)
);

-- Logins in progress (before a session exists): the authorization request, the CSRF token, the stage.
CREATE TABLE auth_flow (
    id_hash TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    request TEXT NOT NULL,
    stage TEXT NOT NULL,
    user_id TEXT,
    enroll_secret TEXT,
    expires_at BIGINT NOT NULL
);

-- Browser sessions (cookie value stored as its SHA-256).
CREATE TABLE auth_session (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_user(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);

-- Authorization codes (stored as SHA-256), single use; used_at set on the first redemption.
CREATE TABLE auth_code (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- Access tokens (stored as SHA-256), tied to the code they came from so a replay can revoke them.
CREATE TABLE auth_token (
    token_hash TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_token_code ON auth_token(code_hash);
