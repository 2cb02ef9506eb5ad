-- Sign-in through upstream identity providers (OpenID Connect) and the host's site accounts (PAM).
-- The provider (or site-account domain) an identity signs in through; NULL for Ferry's local accounts.
ALTER TABLE identities ADD COLUMN identity_provider TEXT;

-- Who a provider's subject is here: found again on every later sign-in, whatever the name or e-mail now says.
CREATE TABLE external_subjects (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    identity_id TEXT NOT NULL UNIQUE REFERENCES identities(id) ON DELETE CASCADE,
    PRIMARY KEY (provider, subject)
);

-- Linked identities: every member of a set (its primary too) points at the set's primary.
CREATE TABLE identity_links (
    identity_id TEXT PRIMARY KEY REFERENCES identities(id) ON DELETE CASCADE,
    primary_id  TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    linked_at   INTEGER NOT NULL
);
CREATE INDEX identity_links_primary ON identity_links(primary_id);

-- A sign-in sent to an upstream provider and not back yet, keyed by the hash of its `state`; taken once.
CREATE TABLE upstream_logins (
    state_hash TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    document   TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX upstream_logins_expiry ON upstream_logins(expires_at);
