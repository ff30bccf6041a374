-- updhub schema 1: repository versions, the published pointer, child reports.
-- Every row that belongs to one server carries that server's id (server_id), so that
-- the nodes of a cluster can later share one database.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The last completed mirror run: its manifest is what `publish` publishes next.
CREATE TABLE mirrored (
    server_id TEXT PRIMARY KEY,
    root      TEXT NOT NULL,
    zone      TEXT NOT NULL,
    files     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    at        INTEGER NOT NULL
);

-- Every repository version this server has held. Numbers only grow.
CREATE TABLE versions (
    server_id TEXT NOT NULL,
    number    INTEGER NOT NULL CHECK (number > 0),
    root      TEXT NOT NULL,
    files     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    created   INTEGER NOT NULL,
    PRIMARY KEY (server_id, number)
);

-- The current version: on a parent the one it signed, on a child the signed document it
-- accepted from its parent (and serves on to its own children unchanged).
CREATE TABLE published (
    server_id TEXT PRIMARY KEY,
    number    INTEGER NOT NULL,
    root      TEXT NOT NULL,
    expires   INTEGER NOT NULL,
    document  TEXT NOT NULL,
    updated   INTEGER NOT NULL,
    -- the validity the parent's admin chose when publishing (seconds): a running parent
    -- re-signs for the same span; 0 on a child, which never signs
    validity  INTEGER NOT NULL DEFAULT 0
);

-- A child's view of its parent: the last attempt and its outcome.
CREATE TABLE sync_state (
    server_id  TEXT PRIMARY KEY,
    parent     TEXT NOT NULL,
    last_try   INTEGER NOT NULL,
    last_ok    INTEGER,
    last_error TEXT
);

-- A parent's view of its children: each child's last report.
CREATE TABLE children (
    server_id     TEXT NOT NULL,
    child_id      TEXT NOT NULL,
    root          TEXT,
    number        INTEGER,
    hub_version   TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    chain         TEXT NOT NULL,
    reported_at   INTEGER NOT NULL,
    PRIMARY KEY (server_id, child_id)
);
