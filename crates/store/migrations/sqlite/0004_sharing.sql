-- Sharing: e-mail invitations (a pending permission waiting for whoever redeems its code) and bookmarks.
CREATE TABLE invitations (
    id            TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    -- The permission the invitation binds; removing it withdraws the invitation.
    rule_id       TEXT NOT NULL REFERENCES acl_rules(id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    -- BLAKE3 of the single-use code; the code itself is only in the e-mail.
    code_hash     TEXT NOT NULL UNIQUE,
    invited_by    TEXT NOT NULL,
    created       INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    redeemed_by   TEXT,
    redeemed_at   INTEGER
);
CREATE INDEX invitations_collection ON invitations(collection_id);

CREATE TABLE bookmarks (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    path          TEXT NOT NULL,
    pinned        INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL
);
CREATE UNIQUE INDEX bookmarks_name ON bookmarks(owner, name);
