-- What is kept of a deleted invitation (its permission withdrawn, its collection deleted, or its rule merged into
-- one the redeemer already held), so that the invitation page can tell such a code from one that never existed.
-- A trigger, so that every deletion counts, cascades included.
CREATE TABLE removed_invitations (
    code_hash     TEXT PRIMARY KEY,
    id            TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    invited_by    TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    redeemed_at   INTEGER
);

CREATE TRIGGER invitations_removed AFTER DELETE ON invitations
BEGIN
    INSERT OR REPLACE INTO removed_invitations(code_hash, id, collection_id, invited_by, expires_at, redeemed_at)
    VALUES (old.code_hash, old.id, old.collection_id, old.invited_by, old.expires_at, old.redeemed_at);
END;
