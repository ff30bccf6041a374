-- updhub schema 2 (PostgreSQL 15): license keys, received grants, stations, outgoing
-- grants, audit log. The PostgreSQL twin of schemas/sqlite/002-licenses.sql: the same
-- tables, columns, names and rules, so the same DML ($1, $2 placeholders) runs on both.
--
-- Conservation is enforced by the database, not by the code that calls it: every source
-- (a key, or a grant this server received) keeps counters of the stations using it and of
-- the licenses it donated, maintained by triggers, and a CHECK constraint holds them within
-- its count. A request that would break it fails inside its own transaction.
--
-- Each SQLite trigger is a PL/pgSQL function plus a CREATE TRIGGER of the same name.
-- SQLite's RAISE(ABORT, 'NAME: message') becomes an exception with ERRCODE check_violation
-- and CONSTRAINT 'NAME' (the code classifies refusals by the constraint name only) and the
-- same message text.
--
-- Concurrency: SQLite has one writer at a time; PostgreSQL does not. The counters are safe
-- as they are (UPDATE ... SET used = used + 1 locks the source row and, under READ
-- COMMITTED, re-reads its latest version; the conservation CHECK then judges the committed
-- total). The in-force checks lock the source row they read (FOR NO KEY UPDATE, the same
-- lock the counter update takes next), so a source revoked or shortened by a concurrent
-- transaction is judged on its committed state, as it would be on SQLite.
--
-- This file runs as one simple-query batch (no psql meta-commands).

-- Where licenses come from: a key added by an admin, or a grant received from a donor.
CREATE TABLE license_sources (
    server_id    TEXT NOT NULL,
    source_id    TEXT NOT NULL,      -- a key id, or the grant id of a received grant
    kind         TEXT NOT NULL CHECK (kind IN ('key', 'grant')),
    holder       TEXT NOT NULL,      -- the key's holder, or the donor's id for a grant
    count        BIGINT NOT NULL CHECK (count >= 0),
    used         BIGINT NOT NULL DEFAULT 0,   -- stations holding a license from it
    donated      BIGINT NOT NULL DEFAULT 0,   -- licenses in its grants that still count
    not_before   BIGINT NOT NULL,
    not_after    BIGINT NOT NULL,    -- the key's or grant's own end
    usable_until BIGINT NOT NULL,    -- when this server stops counting it (grant: end - skew margin)
    status       TEXT NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'revoked', 'returning', 'returned', 'expired')),
    revision     BIGINT NOT NULL DEFAULT 1,
    document     TEXT NOT NULL,      -- the signed key file or grant token
    added        BIGINT NOT NULL,
    PRIMARY KEY (server_id, source_id),
    CONSTRAINT conservation CHECK (used >= 0 AND donated >= 0 AND used + donated <= count)
);

-- Stations registered with this server, each holding one station license from a source.
CREATE TABLE stations (
    server_id   TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    registered  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (server_id, station_id),
    FOREIGN KEY (server_id, source_id) REFERENCES license_sources (server_id, source_id)
);
CREATE INDEX stations_by_source ON stations (server_id, source_id);
CREATE INDEX stations_by_last_seen ON stations (server_id, last_seen);

-- Grants this server donated. 'revoking' still counts until the receiver acknowledges or
-- the grant ends; the donor sets 'expired' only once the end plus the skew margin passed.
CREATE TABLE grants (
    server_id  TEXT NOT NULL,       -- the donor
    grant_id   TEXT NOT NULL,
    source_id  TEXT NOT NULL,       -- the key or received grant it is carved from
    receiver   TEXT NOT NULL,
    count      BIGINT NOT NULL CHECK (count > 0),
    not_after  BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'revoking', 'revoked', 'returned', 'expired')),
    revision   BIGINT NOT NULL,
    request_id TEXT NOT NULL,       -- idempotency: a retried request finds its grant
    token      TEXT NOT NULL,       -- the signed token the receiver verifies
    created    BIGINT NOT NULL,
    updated    BIGINT NOT NULL,
    PRIMARY KEY (server_id, grant_id),
    UNIQUE (server_id, request_id),
    FOREIGN KEY (server_id, source_id) REFERENCES license_sources (server_id, source_id)
);
CREATE INDEX grants_by_source ON grants (server_id, source_id, status);
CREATE INDEX grants_by_receiver ON grants (server_id, receiver);

-- The append-only audit trail. Inserts never give seq.
CREATE TABLE license_log (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id TEXT NOT NULL,
    at        BIGINT NOT NULL,
    event     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL
);
CREATE FUNCTION license_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'append_only',
        MESSAGE = 'the license log is append-only';
END $$;
CREATE TRIGGER license_log_append_only_u BEFORE UPDATE ON license_log
    FOR EACH ROW EXECUTE FUNCTION license_log_append_only();
CREATE TRIGGER license_log_append_only_d BEFORE DELETE ON license_log
    FOR EACH ROW EXECUTE FUNCTION license_log_append_only();
-- PostgreSQL only: TRUNCATE skips row triggers, so it is refused on its own.
CREATE TRIGGER license_log_append_only_t BEFORE TRUNCATE ON license_log
    FOR EACH STATEMENT EXECUTE FUNCTION license_log_append_only();

-- A station or grant may only take from a source that is in force now (and, for a grant,
-- lasts at least as long as the grant). "Now" here is the database's clock, as SQLite's
-- unixepoch() was in its schema 2; schema 3 replaces it with the transaction's time.
CREATE FUNCTION stations_source_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t BIGINT := floor(extract(epoch FROM now()))::bigint;
BEGIN
    PERFORM 1 FROM license_sources s
     WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
       AND s.status = 'active' AND s.not_before <= t AND s.usable_until > t
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'conservation',
            MESSAGE = 'conservation: the license source is not in force';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER stations_source_in_force BEFORE INSERT ON stations
    FOR EACH ROW EXECUTE FUNCTION stations_source_in_force();

CREATE FUNCTION stations_move_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t BIGINT := floor(extract(epoch FROM now()))::bigint;
BEGIN
    PERFORM 1 FROM license_sources s
     WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
       AND s.status = 'active' AND s.not_before <= t AND s.usable_until > t
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'conservation',
            MESSAGE = 'conservation: the license source is not in force';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER stations_move_in_force BEFORE UPDATE OF source_id ON stations
    FOR EACH ROW WHEN (NEW.source_id <> OLD.source_id)
    EXECUTE FUNCTION stations_move_in_force();

CREATE FUNCTION grants_source_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t BIGINT := floor(extract(epoch FROM now()))::bigint;
BEGIN
    PERFORM 1 FROM license_sources s
     WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
       AND s.status = 'active' AND s.not_before <= t
       AND s.usable_until >= NEW.not_after
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'conservation',
            MESSAGE = 'conservation: the grant outlives its source or the source is not in force';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER grants_source_in_force BEFORE INSERT ON grants
    FOR EACH ROW EXECUTE FUNCTION grants_source_in_force();

-- A grant keeps its count and source, never outlives its source, never counts again once
-- ended.
CREATE FUNCTION grants_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.count <> OLD.count OR NEW.source_id <> OLD.source_id OR NEW.receiver <> OLD.receiver
       OR (OLD.status NOT IN ('active', 'revoking') AND NEW.status IN ('active', 'revoking')) THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'conservation',
            MESSAGE = 'conservation: a grant keeps its count, never outlives its source and never comes back once ended';
    END IF;
    IF NEW.not_after > OLD.not_after THEN
        PERFORM 1 FROM license_sources s
         WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
           AND s.status = 'active' AND s.usable_until >= NEW.not_after
           FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'conservation',
                MESSAGE = 'conservation: a grant keeps its count, never outlives its source and never comes back once ended';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER grants_immutable BEFORE UPDATE ON grants
    FOR EACH ROW EXECUTE FUNCTION grants_immutable();

-- The counters.
CREATE FUNCTION stations_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE license_sources SET used = used + 1
     WHERE server_id = NEW.server_id AND source_id = NEW.source_id;
    RETURN NULL;
END $$;
CREATE TRIGGER stations_count_insert AFTER INSERT ON stations
    FOR EACH ROW EXECUTE FUNCTION stations_count_insert();

CREATE FUNCTION stations_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE license_sources SET used = used - 1
     WHERE server_id = OLD.server_id AND source_id = OLD.source_id;
    RETURN NULL;
END $$;
CREATE TRIGGER stations_count_delete AFTER DELETE ON stations
    FOR EACH ROW EXECUTE FUNCTION stations_count_delete();

-- PostgreSQL only: TRUNCATE skips row triggers; with every station gone, no source has
-- any in use.
CREATE FUNCTION stations_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE license_sources SET used = 0 WHERE used <> 0;
    RETURN NULL;
END $$;
CREATE TRIGGER stations_count_truncate AFTER TRUNCATE ON stations
    FOR EACH STATEMENT EXECUTE FUNCTION stations_count_truncate();

CREATE FUNCTION stations_count_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE license_sources SET used = used - 1
     WHERE server_id = OLD.server_id AND source_id = OLD.source_id;
    UPDATE license_sources SET used = used + 1
     WHERE server_id = NEW.server_id AND source_id = NEW.source_id;
    RETURN NULL;
END $$;
CREATE TRIGGER stations_count_move AFTER UPDATE OF source_id ON stations
    FOR EACH ROW WHEN (NEW.source_id <> OLD.source_id)
    EXECUTE FUNCTION stations_count_move();

CREATE FUNCTION grants_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE license_sources SET donated = donated + NEW.count
     WHERE server_id = NEW.server_id AND source_id = NEW.source_id;
    RETURN NULL;
END $$;
CREATE TRIGGER grants_count_insert AFTER INSERT ON grants
    FOR EACH ROW WHEN (NEW.status IN ('active', 'revoking'))
    EXECUTE FUNCTION grants_count_insert();

CREATE FUNCTION grants_count_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE license_sources SET donated = donated - OLD.count
     WHERE server_id = OLD.server_id AND source_id = OLD.source_id;
    RETURN NULL;
END $$;
CREATE TRIGGER grants_count_end AFTER UPDATE OF status ON grants
    FOR EACH ROW WHEN (OLD.status IN ('active', 'revoking') AND NEW.status NOT IN ('active', 'revoking'))
    EXECUTE FUNCTION grants_count_end();

CREATE FUNCTION grants_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'grants_no_delete',
        MESSAGE = 'grants are never deleted; they end';
END $$;
CREATE TRIGGER grants_no_delete BEFORE DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION grants_no_delete();
-- PostgreSQL only: TRUNCATE skips row triggers, so it is refused on its own.
CREATE TRIGGER grants_no_delete_t BEFORE TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION grants_no_delete();
