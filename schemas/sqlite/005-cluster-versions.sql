-- updhub schema 5: the cluster shares its versions and its published pointer; each node
-- keeps what it holds. The twin of schemas/postgres/005-cluster-versions.sql.
--
-- `versions` now belongs to the cluster (server_id = meta.cluster_id): numbers are the
-- cluster's, whichever member published. `cluster_published` is the cluster's published
-- (or, on a child cluster, accepted) version. `published` stays per node: the version the
-- node holds in full and serves. A member whose store lacks the cluster's version fetches
-- it from a member that holds it, and serves it only then.

CREATE TABLE cluster_published (
    cluster_id TEXT PRIMARY KEY,
    number     INTEGER NOT NULL CHECK (number > 0),
    root       TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    document   TEXT NOT NULL,
    updated    INTEGER NOT NULL,
    -- the validity the admin chose when publishing (seconds); 0 on a child cluster
    validity   INTEGER NOT NULL DEFAULT 0,
    -- the node that published, re-signed or accepted it last
    set_by     TEXT NOT NULL
);

-- A database of schema 4 has a cluster id (a fresh one gets it after this migration, and
-- has no rows to carry over).
INSERT INTO cluster_published (cluster_id, number, root, expires, document, updated, validity, set_by)
    SELECT (SELECT value FROM meta WHERE key = 'cluster_id'),
           number, root, expires, document, updated, validity, server_id
    FROM published
    WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'cluster_id')
    ORDER BY number DESC, updated DESC
    LIMIT 1;

INSERT INTO versions (server_id, number, root, files, bytes, created)
    SELECT (SELECT value FROM meta WHERE key = 'cluster_id'), number, root, files, bytes, created
    FROM versions
    WHERE server_id <> (SELECT value FROM meta WHERE key = 'cluster_id')
    ON CONFLICT (server_id, number) DO NOTHING;
DELETE FROM versions WHERE server_id <> (SELECT value FROM meta WHERE key = 'cluster_id');
