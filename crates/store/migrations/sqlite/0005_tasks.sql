-- Transfer and delete tasks: one row per task (claimed by a worker with a lease), one row per file or folder the
-- task touches (its progress, checksum and error), and the task's event log.
CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,              -- TRANSFER | DELETE
    owner             TEXT NOT NULL,
    submission_id     TEXT NOT NULL,
    status            TEXT NOT NULL,              -- ACTIVE | INACTIVE | SUCCEEDED | FAILED
    label             TEXT,
    source_collection TEXT NOT NULL,
    dest_collection   TEXT,
    -- The validated submission (sync level, checksums, filter rules, notifications, ...), as JSON.
    options           TEXT NOT NULL,
    request_time      INTEGER NOT NULL,
    completion_time   INTEGER,
    deadline          INTEGER,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    -- A task waiting out a fault back-off is not claimed before this time.
    run_after         INTEGER NOT NULL DEFAULT 0,
    nice_status       TEXT,
    nice_status_details TEXT,
    fatal_error       TEXT,                       -- JSON {code, description} once FAILED
    next_seq          INTEGER NOT NULL DEFAULT 0,
    files             INTEGER NOT NULL DEFAULT 0,
    directories       INTEGER NOT NULL DEFAULT 0,
    symlinks          INTEGER NOT NULL DEFAULT 0,
    files_skipped     INTEGER NOT NULL DEFAULT 0,
    files_transferred INTEGER NOT NULL DEFAULT 0,
    bytes_transferred INTEGER NOT NULL DEFAULT 0,
    bytes_checksummed INTEGER NOT NULL DEFAULT 0,
    faults            INTEGER NOT NULL DEFAULT 0,
    items_failed      INTEGER NOT NULL DEFAULT 0,
    items_skipped_errors INTEGER NOT NULL DEFAULT 0,
    -- Seconds the task spent running (summed over leases): the denominator of its effective rate.
    active_secs       REAL NOT NULL DEFAULT 0,
    UNIQUE (owner, submission_id)
);
CREATE INDEX tasks_owner ON tasks(owner, request_time);
CREATE INDEX tasks_claim ON tasks(status, run_after);

CREATE TABLE task_items (
    task_id           TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    kind              TEXT NOT NULL,              -- path (as submitted) | dir | file
    src               TEXT NOT NULL,
    dst               TEXT,
    recursive         INTEGER NOT NULL DEFAULT 0,
    size              INTEGER,
    mtime             INTEGER,
    state             TEXT NOT NULL,              -- pending | done | skipped | failed
    attempts          INTEGER NOT NULL DEFAULT 0,
    checksum_algorithm TEXT,
    checksum          TEXT,
    external_checksum TEXT,
    -- A large file's completed ranges (JSON), so that a restart re-checks them instead of copying again.
    progress          TEXT,
    error_code        TEXT,
    error             TEXT,
    error_time        INTEGER,
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX task_items_state ON task_items(task_id, state, kind, seq);

CREATE TABLE task_events (
    task_id     TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    code        TEXT NOT NULL,
    is_error    INTEGER NOT NULL,
    description TEXT NOT NULL,
    details     TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
