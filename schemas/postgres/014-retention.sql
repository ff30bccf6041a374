-- updhub schema 14: retention of what grows without bound. The twin of
-- schemas/sqlite/014-retention.sql.
--
-- The audit log (`license_log`) stays append-only, but a row past `licenses.log_retention`
-- may leave it once it is archived: the archive task writes the rows to a file, then in one
-- transaction records the archive here, deletes exactly the rows it covers and logs that
-- it did. The delete trigger refuses any row no archive covers; UPDATE and TRUNCATE stay
-- refused, and the archives themselves are append-only.
CREATE TABLE log_archives (
    server_id TEXT NOT NULL,           -- the ledger (the cluster), as license_log.server_id
    from_seq  BIGINT NOT NULL,
    upto_seq  BIGINT NOT NULL,
    rows      BIGINT NOT NULL,
    file      TEXT NOT NULL,           -- its name in licenses.log_archive_dir of node_id
    blake3    TEXT NOT NULL,           -- of the file's bytes
    at        BIGINT NOT NULL,
    node_id   TEXT NOT NULL,           -- the node that wrote the file (it is on its disk)
    PRIMARY KEY (server_id, upto_seq),
    CHECK (from_seq <= upto_seq AND rows > 0)
);
CREATE FUNCTION log_archives_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'append_only',
        MESSAGE = 'the license log archives are append-only';
END $$;
CREATE TRIGGER log_archives_append_only_u BEFORE UPDATE ON log_archives
    FOR EACH ROW EXECUTE FUNCTION log_archives_append_only();
CREATE TRIGGER log_archives_append_only_d BEFORE DELETE ON log_archives
    FOR EACH ROW EXECUTE FUNCTION log_archives_append_only();
CREATE TRIGGER log_archives_append_only_t BEFORE TRUNCATE ON log_archives
    FOR EACH STATEMENT EXECUTE FUNCTION log_archives_append_only();

CREATE FUNCTION license_log_delete_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM log_archives a
     WHERE a.server_id = OLD.server_id AND a.from_seq <= OLD.seq AND OLD.seq <= a.upto_seq;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'append_only',
            MESSAGE = 'the license log is append-only: a row leaves it only once archived';
    END IF;
    RETURN OLD;
END $$;
DROP TRIGGER license_log_append_only_d ON license_log;
CREATE TRIGGER license_log_append_only_d BEFORE DELETE ON license_log
    FOR EACH ROW EXECUTE FUNCTION license_log_delete_archived();

-- Each recorded run of a task under a lease (`updhub cluster tasks --history`): one row a
-- period at most, which the primary key enforces, written in the transaction that records
-- the run on the lease. Purged with the children's reports (server.report_retention).
CREATE TABLE task_runs (
    cluster_id TEXT NOT NULL,
    task       TEXT NOT NULL,
    due_ms     BIGINT NOT NULL,        -- the period the run was for
    node_id    TEXT NOT NULL,
    instance   TEXT NOT NULL,
    ok         BIGINT NOT NULL,        -- 1 ok, 0 failed
    result     TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,        -- when it ended
    PRIMARY KEY (cluster_id, task, due_ms)
);
