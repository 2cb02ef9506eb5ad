-- Authentication policies (Globus Auth's /v2/api/policies), owned by the identity that created them.
CREATE TABLE auth_policies (
    id      TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    doc     TEXT NOT NULL,
    created INTEGER NOT NULL
);
