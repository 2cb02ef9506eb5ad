-- Resumable uploads (tus) in progress: what each upload is for, and where its temporary file lies, so that the
-- sweep of abandoned uploads finds the file without an access check. No foreign keys: an upload whose
-- collection or gateway is deleted must still be found, so that its temporary file is removed.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    collection   TEXT NOT NULL,
    path         TEXT NOT NULL,
    gateway      TEXT NOT NULL,
    storage_path TEXT NOT NULL,
    length       INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    expires      INTEGER NOT NULL
);
CREATE INDEX uploads_expiry ON uploads(expires);
