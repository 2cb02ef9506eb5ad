-- A hub's record of the endpoints that joined it (an endpoint's id is also its client id) and of the
-- collections each one reported last: what routes a collection's requests to the endpoint that holds it, and
-- which tokens an endpoint may introspect.
CREATE TABLE sites (
    id           TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    public_url   TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- How many reports the hub has taken from this endpoint; the endpoint learns it with each answer.
    version      INTEGER NOT NULL DEFAULT 0,
    reported_at  INTEGER,
    created      INTEGER NOT NULL
);

CREATE TABLE site_collections (
    id           TEXT PRIMARY KEY,
    site         TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    kind         TEXT NOT NULL
);
CREATE INDEX site_collections_site ON site_collections(site);
