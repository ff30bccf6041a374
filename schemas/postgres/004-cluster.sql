-- updhub schema 4 (PostgreSQL 15): the cluster. The twin of schemas/sqlite/004-cluster.sql.
-- Nodes that share one database form one cluster. meta.cluster_id names the cluster's
-- license ledger: the id of the node that made the database; every member reads and
-- writes the ledger's rows under it, so a key added on any node is every node's, and a
-- station registered on one is served by all.
--
-- This file runs as one simple-query batch (no psql meta-commands).

-- Who wrote each audit log row, and who added each key.
ALTER TABLE license_log ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
ALTER TABLE license_sources ADD COLUMN added_by TEXT NOT NULL DEFAULT '';

-- The cluster's membership: each node records itself while it serves.
CREATE TABLE members (
    node_id         TEXT PRIMARY KEY,
    instance        TEXT NOT NULL,     -- random per running process: two live ones on one id is a conflict
    updhub_version  TEXT NOT NULL,
    schema_version  BIGINT NOT NULL,
    server_name     TEXT NOT NULL,
    key_fp          TEXT NOT NULL,     -- the publisher key, as a fingerprint
    ca_fp           TEXT NOT NULL,     -- the cluster CA certificate, as a fingerprint
    active_root     TEXT,
    settings        TEXT NOT NULL,     -- the [same] settings, as JSON (no secrets)
    settings_digest TEXT NOT NULL,
    listen          TEXT NOT NULL,
    started         BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL
);

-- The node a ledger transaction runs on, beside its time (the transaction-local setting
-- updhub.node): the log and `added_by` read it.
CREATE OR REPLACE VIEW clock AS
    SELECT 1::bigint AS id, updhub_now() AS now,
           coalesce(current_setting('updhub.node', true), '') AS node;

-- The [same] settings the cluster shares: `updhub config set KEY VALUE` on any node writes
-- a row with the next revision; every node polls the highest revision and applies what
-- changed over its updhub.toml, without a restart.
CREATE TABLE settings (
    key      TEXT PRIMARY KEY,
    value    TEXT NOT NULL,        -- a TOML value, as written to updhub.toml
    revision BIGINT NOT NULL,
    set_by   TEXT NOT NULL,
    set_at   BIGINT NOT NULL
);
