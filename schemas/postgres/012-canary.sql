-- updhub schema 12: staged rollout to a test group of children. The twin of
-- schemas/sqlite/012-canary.sql.
--
-- The cluster's rollout of its staged version: the test group (rollout.canary) gets it when
-- the activation rule lets it go (started_at); every child gets it rollout.soak later,
-- unless an admin halted it (halted_at; a resume moves started_at on by the halt), or at
-- once when an admin released it (released_at). One row a cluster: the version being rolled
-- out; the next rollout replaces it.
CREATE TABLE canary (
    cluster_id  TEXT PRIMARY KEY,
    number      BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    halted_at   BIGINT,
    released_at BIGINT,
    set_by      TEXT NOT NULL
);
