-- updhub schema 3 (PostgreSQL 15): one clock per transaction. The PostgreSQL twin of
-- schemas/sqlite/003-clock.sql.
--
-- Every rule below judges "now" by the time the caller took, never by the database's own
-- clock, so the code and the triggers never disagree about what time it is (on a shared
-- database the nodes' clocks differ, and the code's clock is the one the node acts on).
--
-- On SQLite that time is a one-row table, clock(id = 1, now), which each write transaction
-- updates. On a shared PostgreSQL that single row would serialize every node's writes, so
-- here the time is a transaction-local setting instead: each write transaction starts with
--     SELECT set_config('updhub.now', $1, true)      -- $1: unix seconds, as text
-- and updhub_now() reads it. A rule that needs the time and finds it unset refuses the
-- write (constraint 'clock').
--
-- The clock is a view here: `(SELECT now FROM clock)` reads the transaction's time on both
-- engines, so statements that need it are written once. Nothing writes to it.
--
-- This file runs as one simple-query batch (no psql meta-commands).

-- The transaction's time, in unix seconds, as set by set_config('updhub.now', ..., true).
-- Unset (NULL), or empty (what a transaction-local setting reverts to once its transaction
-- ends), or not a whole number: refused.
CREATE FUNCTION updhub_now() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    v TEXT := current_setting('updhub.now', true);
BEGIN
    IF v IS NULL OR v = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'clock',
            MESSAGE = 'clock: the transaction''s time was not set (run SELECT set_config(''updhub.now'', <unix seconds>, true) at the start of each write transaction)';
    END IF;
    IF v !~ '^-?[0-9]{1,18}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'clock',
            MESSAGE = format('clock: the transaction''s time %L is not a number of unix seconds', v);
    END IF;
    RETURN v::bigint;
END $$;

CREATE VIEW clock AS SELECT 1::bigint AS id, updhub_now() AS now;

-- SQLite's schema 3 drops and re-creates the three in-force triggers to read the clock;
-- here the triggers stay and their functions are replaced (same names, same rules, same
-- refusals), reading updhub_now() where schema 2 read now().
CREATE OR REPLACE FUNCTION stations_source_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t BIGINT := updhub_now();
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

CREATE OR REPLACE FUNCTION stations_move_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t BIGINT := updhub_now();
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

CREATE OR REPLACE FUNCTION grants_source_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t BIGINT := updhub_now();
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
