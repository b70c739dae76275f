-- The registry's version and the active policy version.
CREATE TABLE registry_state (
    id INTEGER PRIMARY KEY,
    generation BIGINT NOT NULL,
    active_policy BIGINT
);
INSERT INTO registry_state (id, generation, active_policy) VALUES (1, 0, NULL);

-- Every policy ever applied; versions count 1, 2, 3 ... A rollback adds a new version.
CREATE TABLE policies (
    version BIGINT PRIMARY KEY,
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_unix BIGINT NOT NULL,
    source TEXT NOT NULL,
    note TEXT NOT NULL
);

-- Sites known to the registry: provisioned (token issued), enrolled, revoked or removed.
CREATE TABLE sites (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    credential_sha256 TEXT UNIQUE,
    enrolled_unix BIGINT,
    revoked_unix BIGINT,
    observed_endpoint TEXT,
    last_seen_unix BIGINT
);

-- Per-segment WireGuard public keys of enrolled sites.
CREATE TABLE site_keys (
    site TEXT NOT NULL,
    segment TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    registered_unix BIGINT NOT NULL,
    PRIMARY KEY (site, segment)
);

-- One-time enrollment tokens (only the secret's hash).
CREATE TABLE tokens (
    secret_sha256 TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    created_unix BIGINT NOT NULL,
    expires_unix BIGINT NOT NULL,
    used_unix BIGINT
);
CREATE INDEX tokens_site ON tokens (site);
