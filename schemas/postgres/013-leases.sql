-- updhub schema 13: tasks that run on exactly one node of a cluster. The twin of
-- schemas/sqlite/013-leases.sql.
--
-- One row a cluster and task: the lease (which running process holds it, until when) and
-- the task's period bookkeeping. A node runs the task when it holds the lease and
-- next_run_ms has come; the transaction that records the run's result moves next_run_ms
-- to the period's next boundary, only while the same process still holds the lease, so no
-- second node runs the same period. A holder that dies keeps the lease until expires_ms;
-- then any member takes it. Times are unix milliseconds (periods can be shorter than a
-- second in tests).
CREATE TABLE leases (
    cluster_id      TEXT NOT NULL,
    task            TEXT NOT NULL,
    holder_node     TEXT,              -- NULL: released, free for any member
    holder_instance TEXT,              -- the holder's process (members.instance): one id, one process
    expires_ms      BIGINT NOT NULL,
    period_ms       BIGINT NOT NULL,       -- the schedule last set by the holder, for display
    next_run_ms     BIGINT NOT NULL,
    last_run_ms     BIGINT,
    last_node       TEXT,              -- who ran it last
    last_ok         BIGINT,                -- 1 ok, 0 failed (NULL: never ran)
    last_result     TEXT,
    runs            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (cluster_id, task)
);
