-- Ferry's first schema: identities, clients, OAuth2 state, groups.
-- Ids are TEXT UUIDs and times are INTEGER unix seconds, so that the PostgreSQL copy stays near-identical.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE identities (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    email         TEXT,
    organization  TEXT,
    kind          TEXT NOT NULL CHECK (kind IN ('person', 'client')),
    password_hash TEXT,
    created       INTEGER NOT NULL
);

CREATE TABLE clients (
    id            TEXT PRIMARY KEY REFERENCES identities(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('confidential', 'native')),
    secret_hash   TEXT,
    redirect_uris TEXT NOT NULL,
    owner         TEXT,
    -- The client this one was registered from (the Globus CLI's per-install clients come from a template).
    template_id   TEXT,
    created       INTEGER NOT NULL
);

-- One row per issued secret (auth code, access token, refresh token, browser session), stored as a keyed hash.
-- A grant is the family of secrets that one authorisation produced; revoking it revokes them all.
CREATE TABLE secrets (
    hash            TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('code', 'access', 'refresh', 'session')),
    grant_id        TEXT NOT NULL,
    client_id       TEXT,
    identity_id     TEXT NOT NULL,
    resource_server TEXT,
    scopes          TEXT NOT NULL,
    extra           TEXT NOT NULL DEFAULT '{}',
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX secrets_grant ON secrets(grant_id);
CREATE INDEX secrets_identity ON secrets(identity_id);
CREATE INDEX secrets_expiry ON secrets(expires_at);

CREATE TABLE consents (
    id          TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    parent_id   TEXT REFERENCES consents(id) ON DELETE CASCADE,
    created     INTEGER NOT NULL,
    last_used   INTEGER NOT NULL
);
CREATE UNIQUE INDEX consents_unique ON consents(identity_id, client_id, scope, COALESCE(parent_id, ''));

CREATE TABLE groups (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL,
    parent_id          TEXT REFERENCES groups(id) ON DELETE SET NULL,
    visibility         TEXT NOT NULL,
    members_visibility TEXT NOT NULL,
    created            INTEGER NOT NULL
);

CREATE TABLE memberships (
    group_id    TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('member', 'manager', 'admin')),
    status      TEXT NOT NULL,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (group_id, identity_id)
);
CREATE INDEX memberships_identity ON memberships(identity_id);
