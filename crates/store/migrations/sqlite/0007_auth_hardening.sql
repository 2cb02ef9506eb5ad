-- Authorisation-server hardening (issue 13): grants that stay revoked, the scope registry, and per-client
-- verification, grant types and scopes.

-- A grant is the family of secrets one authorisation produced. Revoking it marks this row; secrets are
-- inserted only for a grant whose row is not revoked, in the same transaction, so a revocation racing a
-- refresh or a code exchange cannot leave live tokens behind.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    identity_id TEXT,
    client_id   TEXT,
    -- The top-level scopes it was made for (space-separated): how a revoked consent finds its grants.
    scopes      TEXT NOT NULL DEFAULT '',
    created     INTEGER NOT NULL DEFAULT 0,
    revoked_at  INTEGER
);
CREATE INDEX grants_identity_client ON grants(identity_id, client_id);
INSERT INTO grants(id, identity_id, client_id, scopes, created, revoked_at)
SELECT grant_id, MIN(identity_id), MIN(client_id), group_concat(scopes, ' '), MIN(issued_at),
       CASE WHEN COUNT(*) = COUNT(revoked_at) THEN MAX(revoked_at) END
FROM secrets WHERE kind IN ('code', 'access', 'refresh') GROUP BY grant_id;

-- Scopes that clients (resource servers) register, with the scopes each depends on.
CREATE TABLE scopes (
    id                   TEXT PRIMARY KEY,
    client_id            TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope_string         TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL,
    advertised           INTEGER NOT NULL,
    allows_refresh_token INTEGER NOT NULL,
    required_domains     TEXT NOT NULL,
    -- JSON list of {scope_id, scope_string, optional, requires_refresh_token}.
    dependent_scopes     TEXT NOT NULL,
    created              INTEGER NOT NULL
);
CREATE INDEX scopes_client ON scopes(client_id);

-- Registered by the administrator (the consent page says whether a client is).
ALTER TABLE clients ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
-- JSON lists; NULL: the defaults of the client's kind, and any scope.
ALTER TABLE clients ADD COLUMN grant_types TEXT;
ALTER TABLE clients ADD COLUMN allowed_scopes TEXT;
-- Clients made before this migration by the administrator: those without an owner or template, and the
-- administrator's own client.
UPDATE clients SET verified = 1
WHERE (owner IS NULL AND template_id IS NULL)
   OR id = (SELECT value FROM meta WHERE key = 'bootstrap.admin_client');
