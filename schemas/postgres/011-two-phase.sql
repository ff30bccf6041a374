-- updhub schema 11 (PostgreSQL 15): one switch for the whole cluster (issue 9 point 5). The twin of
-- schemas/sqlite/011-two-phase.sql.
--
-- Publishing stages a version first: `cluster_staged` is the cluster's staged version, a
-- signed document beside `cluster_published` (the active one), so every member sees the
-- same pair and any of them may activate it. `staged` is per node: the version the node
-- holds in full beside its active one (fetched and verified, not switched to); a child
-- serves it on to its own children as their staged version. A child's report says what it
-- staged, or why it could not.

CREATE TABLE cluster_staged (
    cluster_id TEXT PRIMARY KEY,
    number     BIGINT NOT NULL CHECK (number > 0),
    root       TEXT NOT NULL,
    expires    BIGINT NOT NULL,
    document   TEXT NOT NULL,
    -- the validity the admin chose when publishing (seconds), carried to the active row
    validity   BIGINT NOT NULL DEFAULT 0,
    staged_at  BIGINT NOT NULL,
    set_by     TEXT NOT NULL
);

CREATE TABLE staged (
    server_id TEXT PRIMARY KEY,
    number    BIGINT NOT NULL CHECK (number > 0),
    root      TEXT NOT NULL,
    document  TEXT NOT NULL,
    updated   BIGINT NOT NULL
);

-- What a child staged (number and root), or why it could not stage `stage_number`; and
-- whether it takes part in the two-phase switch at all (an older child never stages, so it
-- does not hold activation back: it follows the active version as before).
ALTER TABLE children ADD COLUMN staged_number BIGINT;
ALTER TABLE children ADD COLUMN staged_root TEXT;
ALTER TABLE children ADD COLUMN stage_error TEXT;
ALTER TABLE children ADD COLUMN two_phase BIGINT NOT NULL DEFAULT 0;
