-- The endpoint's configuration (GCS manager API objects), ACL rules of guest collections, and the audit log.
-- Each object keeps its document as JSON text beside the columns that queries and constraints need.

CREATE TABLE storage_gateways (
    id      TEXT PRIMARY KEY,
    doc     TEXT NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE collections (
    id                   TEXT PRIMARY KEY,
    collection_type      TEXT NOT NULL CHECK (collection_type IN ('mapped', 'guest')),
    -- A gateway with collections cannot be deleted.
    storage_gateway_id   TEXT NOT NULL REFERENCES storage_gateways(id) ON DELETE RESTRICT,
    -- Deleting a mapped collection deletes its guest collections.
    mapped_collection_id TEXT REFERENCES collections(id) ON DELETE CASCADE,
    identity_id          TEXT,
    doc                  TEXT NOT NULL,
    created              INTEGER NOT NULL
);
CREATE INDEX collections_gateway ON collections(storage_gateway_id);
CREATE INDEX collections_mapped ON collections(mapped_collection_id);

CREATE TABLE roles (
    id            TEXT PRIMARY KEY,
    collection_id TEXT REFERENCES collections(id) ON DELETE CASCADE,
    principal     TEXT NOT NULL,
    role          TEXT NOT NULL,
    created       INTEGER NOT NULL
);
CREATE UNIQUE INDEX roles_unique ON roles(COALESCE(collection_id, ''), principal, role);

CREATE TABLE sharing_policies (
    id            TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    doc           TEXT NOT NULL,
    created       INTEGER NOT NULL
);

CREATE TABLE user_credentials (
    id                 TEXT PRIMARY KEY,
    identity_id        TEXT NOT NULL,
    storage_gateway_id TEXT NOT NULL REFERENCES storage_gateways(id) ON DELETE CASCADE,
    doc                TEXT NOT NULL,
    created            INTEGER NOT NULL
);
CREATE INDEX user_credentials_identity ON user_credentials(identity_id);

CREATE TABLE acl_rules (
    id             TEXT PRIMARY KEY,
    collection_id  TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    principal_type TEXT NOT NULL,
    principal      TEXT NOT NULL,
    path           TEXT NOT NULL,
    permissions    TEXT NOT NULL CHECK (permissions IN ('r', 'rw')),
    expires_at     INTEGER,
    doc            TEXT NOT NULL,
    created        INTEGER NOT NULL
);
CREATE UNIQUE INDEX acl_rules_unique ON acl_rules(collection_id, principal_type, principal, path);

CREATE TABLE audit (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    time          INTEGER NOT NULL,
    identity_id   TEXT,
    action        TEXT NOT NULL,
    collection_id TEXT,
    path          TEXT,
    allowed       INTEGER NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_time ON audit(time);
CREATE INDEX audit_identity ON audit(identity_id, time);
CREATE INDEX audit_collection ON audit(collection_id, time);
