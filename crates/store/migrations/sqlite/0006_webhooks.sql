-- Webhooks: URLs a person or application registered to be told when their tasks change state, and the
-- deliveries owed to them (retried with back-off until they succeed or run out of attempts).
CREATE TABLE webhooks (
    id      TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    url     TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks(owner);

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    webhook_id   TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    body         TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error   TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(delivered_at, next_attempt);
