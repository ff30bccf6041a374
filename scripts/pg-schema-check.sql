-- Checks that the PostgreSQL schema (schemas/postgres/001..003) enforces every license rule.
--
--   psql "$UPDHUB_TEST_PG_URL" -v ON_ERROR_STOP=1 -f scripts/pg-schema-check.sql
--
-- against a database migrated to schema 3. It exits non-zero (psql: 3) as soon as a rule does
-- not hold: a write that should be refused is accepted, is refused by another rule than the
-- expected one (judged by the constraint name, as the code judges it), or a counter is off.
-- It writes its rows under a server_id of its own (check-<random>), so it can run again on
-- the same database; the rows stay (grants and the log are never deleted, by design).
-- The transaction's time is always given by set_config('updhub.now', ..., true); the
-- sources' dates are chosen so that the wall clock would give other answers.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = notice;

-- This run's server_id, for every statement below (plain SQL, DO blocks and EXECUTE alike).
SELECT set_config('check.sid', 'check-' || md5(clock_timestamp()::text || random()::text), false) \gset

CREATE FUNCTION pg_temp.sid() RETURNS text LANGUAGE sql AS $$ SELECT current_setting('check.sid') $$;

-- Run stmt (with %1$L standing for this run's server_id); it must be refused with the
-- constraint name `want`. The refusal is rolled back (a subtransaction), the check goes on.
CREATE FUNCTION pg_temp.refused(want text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sql text := format(stmt, pg_temp.sid());
    got text;
    msg text;
    state text;
BEGIN
    BEGIN
        EXECUTE sql;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS got = CONSTRAINT_NAME, msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
        IF got IS DISTINCT FROM want THEN
            RAISE EXCEPTION 'FAIL: refused by constraint % (sqlstate %, %), expected %: %',
                coalesce(got, '(none)'), state, msg, want, sql;
        END IF;
        RAISE NOTICE 'ok  refused by %: %', got, msg;
        RETURN;
    END;
    RAISE EXCEPTION 'FAIL: accepted, expected a refusal by %: %', want, sql;
END $$;

-- SELECT query (with %1$L for the server_id) must give `want`.
CREATE FUNCTION pg_temp.expect(what text, want bigint, query text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    got bigint;
BEGIN
    EXECUTE format(query, pg_temp.sid()) INTO got;
    IF got IS DISTINCT FROM want THEN
        RAISE EXCEPTION 'FAIL: % is %, expected %', what, coalesce(got::text, 'NULL'), want;
    END IF;
    RAISE NOTICE 'ok  % = %', what, got;
END $$;

-- The sources: k1 (2 licenses), k2 (not in force before 6000, though it is by the wall
-- clock), k3 (10 licenses, for grants and moves). Inserting a source needs no clock.
INSERT INTO license_sources (server_id, source_id, kind, holder, count, not_before, not_after, usable_until, document, added)
VALUES (pg_temp.sid(), 'k1', 'key', 'h', 2, 1000, 100000, 100000, 'doc', 1000),
       (pg_temp.sid(), 'k2', 'key', 'h', 5, 6000, 4000000000, 4000000000, 'doc', 1000),
       (pg_temp.sid(), 'k3', 'key', 'h', 10, 1000, 100000, 100000, 'doc', 1000);

\echo '-- clock: a write whose transaction never set updhub.now is refused'
DO $$ BEGIN
    PERFORM pg_temp.refused('clock',
        $q$INSERT INTO stations VALUES (%1$L, 'c0', 'x', 'k1', 1, 1)$q$);
END $$;

\echo '-- conservation: two stations fit a key of 2, the third does not'
BEGIN;
SELECT set_config('updhub.now', '5000', true) \gset
INSERT INTO stations VALUES (pg_temp.sid(), 's1', 'x', 'k1', 5000, 5000);
INSERT INTO stations VALUES (pg_temp.sid(), 's2', 'x', 'k1', 5000, 5000);
DO $$ BEGIN
    PERFORM pg_temp.expect('k1.used after two stations', 2,
        $q$SELECT used FROM license_sources WHERE server_id = %1$L AND source_id = 'k1'$q$);
    PERFORM pg_temp.refused('conservation',
        $q$INSERT INTO stations VALUES (%1$L, 's3', 'x', 'k1', 5000, 5000)$q$);
END $$;
COMMIT;
DO $$ BEGIN
    PERFORM pg_temp.expect('k1.used after commit', 2,
        $q$SELECT used FROM license_sources WHERE server_id = %1$L AND source_id = 'k1'$q$);
    PERFORM pg_temp.expect('stations on k1', 2,
        $q$SELECT count(*) FROM stations WHERE server_id = %1$L AND source_id = 'k1'$q$);
END $$;

\echo '-- in force: judged by updhub.now, not by the wall clock'
BEGIN;
SELECT set_config('updhub.now', '5000', true) \gset
DO $$ BEGIN
    PERFORM pg_temp.refused('conservation',
        $q$INSERT INTO stations VALUES (%1$L, 'e1', 'x', 'k2', 5000, 5000)$q$);
    -- k1 has ended by the wall clock (usable_until 100000) but not at 5000: a move off it is
    -- judged at 5000 too (k2 not yet in force there).
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE stations SET source_id = 'k2' WHERE server_id = %1$L AND station_id = 's1'$q$);
    -- nor can a grant be carved from k2 at 5000
    PERFORM pg_temp.refused('conservation',
        $q$INSERT INTO grants VALUES (%1$L, 'g4', 'k2', 'r2', 1, 50000, 'active', 1, 'req4', 'tok', 5000, 5000)$q$);
END $$;
COMMIT;
BEGIN;
SELECT set_config('updhub.now', '4000000000', true) \gset
DO $$ BEGIN
    -- k2 is in force until 4000000000 exclusive (usable_until > now)
    PERFORM pg_temp.refused('conservation',
        $q$INSERT INTO stations VALUES (%1$L, 'e1', 'x', 'k2', 1, 1)$q$);
END $$;
COMMIT;
BEGIN;
SELECT set_config('updhub.now', '7000', true) \gset
INSERT INTO stations VALUES (pg_temp.sid(), 'e1', 'x', 'k2', 7000, 7000);
DO $$ BEGIN
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE stations SET source_id = 'nope' WHERE server_id = %1$L AND station_id = 'e1'$q$);
END $$;
-- a move to a source in force: the counters follow
UPDATE stations SET source_id = 'k3' WHERE server_id = pg_temp.sid() AND station_id = 'e1';
DO $$ BEGIN
    PERFORM pg_temp.expect('k2.used after the move off it', 0,
        $q$SELECT used FROM license_sources WHERE server_id = %1$L AND source_id = 'k2'$q$);
    PERFORM pg_temp.expect('k3.used after the move onto it', 1,
        $q$SELECT used FROM license_sources WHERE server_id = %1$L AND source_id = 'k3'$q$);
END $$;
-- an update that does not change source_id does not count
UPDATE stations SET source_id = 'k3', last_seen = 7001 WHERE server_id = pg_temp.sid() AND station_id = 'e1';
DELETE FROM stations WHERE server_id = pg_temp.sid() AND station_id = 's2';
DO $$ BEGIN
    PERFORM pg_temp.expect('k3.used after a no-op move', 1,
        $q$SELECT used FROM license_sources WHERE server_id = %1$L AND source_id = 'k3'$q$);
    PERFORM pg_temp.expect('k1.used after deleting a station', 1,
        $q$SELECT used FROM license_sources WHERE server_id = %1$L AND source_id = 'k1'$q$);
END $$;
COMMIT;

\echo '-- grants: donated follows them; count, source and end are kept; never deleted'
BEGIN;
SELECT set_config('updhub.now', '7000', true) \gset
INSERT INTO grants VALUES (pg_temp.sid(), 'g1', 'k3', 'r1', 3, 50000, 'active', 1, 'req1', 'tok', 7000, 7000);
INSERT INTO grants VALUES (pg_temp.sid(), 'g0', 'k3', 'r1', 4, 50000, 'returned', 1, 'req0', 'tok', 7000, 7000);
DO $$ BEGIN
    PERFORM pg_temp.expect('k3.donated after an active grant of 3 (and an ended one)', 3,
        $q$SELECT donated FROM license_sources WHERE server_id = %1$L AND source_id = 'k3'$q$);
    -- 1 used + 3 donated + 7 > 10
    PERFORM pg_temp.refused('conservation',
        $q$INSERT INTO grants VALUES (%1$L, 'g2', 'k3', 'r2', 7, 50000, 'active', 1, 'req2', 'tok', 7000, 7000)$q$);
    PERFORM pg_temp.refused('conservation',
        $q$INSERT INTO grants VALUES (%1$L, 'g3', 'k3', 'r2', 1, 200000, 'active', 1, 'req3', 'tok', 7000, 7000)$q$);
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE grants SET count = 2 WHERE server_id = %1$L AND grant_id = 'g1'$q$);
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE grants SET source_id = 'k1' WHERE server_id = %1$L AND grant_id = 'g1'$q$);
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE grants SET receiver = 'r9' WHERE server_id = %1$L AND grant_id = 'g1'$q$);
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE grants SET not_after = 100001 WHERE server_id = %1$L AND grant_id = 'g1'$q$);
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE grants SET status = 'active' WHERE server_id = %1$L AND grant_id = 'g0'$q$);
    PERFORM pg_temp.refused('grants_no_delete',
        $q$DELETE FROM grants WHERE server_id = %1$L AND grant_id = 'g1'$q$);
    PERFORM pg_temp.refused('grants_no_delete', $q$TRUNCATE grants$q$);
END $$;
-- extending within the source's life is allowed; 'revoking' still counts
UPDATE grants SET not_after = 100000, status = 'revoking', revision = 2 WHERE server_id = pg_temp.sid() AND grant_id = 'g1';
DO $$ BEGIN
    PERFORM pg_temp.expect('k3.donated while revoking', 3,
        $q$SELECT donated FROM license_sources WHERE server_id = %1$L AND source_id = 'k3'$q$);
END $$;
COMMIT;
BEGIN;
SELECT set_config('updhub.now', '8000', true) \gset
UPDATE grants SET status = 'revoked', revision = 3 WHERE server_id = pg_temp.sid() AND grant_id = 'g1';
DO $$ BEGIN
    PERFORM pg_temp.expect('k3.donated after the grant ended', 0,
        $q$SELECT donated FROM license_sources WHERE server_id = %1$L AND source_id = 'k3'$q$);
    PERFORM pg_temp.refused('conservation',
        $q$UPDATE grants SET status = 'revoking' WHERE server_id = %1$L AND grant_id = 'g1'$q$);
END $$;
COMMIT;

\echo '-- the license log is append-only'
BEGIN;
SELECT set_config('updhub.now', '8000', true) \gset
INSERT INTO license_log (server_id, at, event, subject, details)
VALUES (pg_temp.sid(), updhub_now(), 'check', 'log', 'one'), (pg_temp.sid(), updhub_now(), 'check', 'log', 'two');
DO $$ BEGIN
    PERFORM pg_temp.expect('log rows', 2,
        $q$SELECT count(*) FROM license_log WHERE server_id = %1$L AND at = 8000$q$);
    PERFORM pg_temp.refused('append_only',
        $q$UPDATE license_log SET details = 'changed' WHERE server_id = %1$L$q$);
    PERFORM pg_temp.refused('append_only',
        $q$DELETE FROM license_log WHERE server_id = %1$L$q$);
    PERFORM pg_temp.refused('append_only', $q$TRUNCATE license_log$q$);
END $$;
COMMIT;

\echo '-- clock: unset again after a transaction that set it, empty, or not a number'
DO $$ BEGIN
    PERFORM pg_temp.refused('clock',
        $q$INSERT INTO stations VALUES (%1$L, 'c1', 'x', 'k3', 1, 1)$q$);
    PERFORM pg_temp.refused('clock',
        $q$INSERT INTO grants VALUES (%1$L, 'c2', 'k3', 'r', 1, 50000, 'active', 1, 'reqc2', 'tok', 1, 1)$q$);
END $$;
BEGIN;
SELECT set_config('updhub.now', '', true) \gset
DO $$ BEGIN
    PERFORM pg_temp.refused('clock',
        $q$INSERT INTO stations VALUES (%1$L, 'c1', 'x', 'k3', 1, 1)$q$);
END $$;
SELECT set_config('updhub.now', '12:00', true) \gset
DO $$ BEGIN
    PERFORM pg_temp.refused('clock',
        $q$UPDATE stations SET source_id = 'k1' WHERE server_id = %1$L AND station_id = 'e1'$q$);
END $$;
COMMIT;

DO $$ BEGIN
    PERFORM pg_temp.expect('stations in all (s1, e1)', 2,
        $q$SELECT count(*) FROM stations WHERE server_id = %1$L$q$);
    PERFORM pg_temp.expect('sources whose used differs from their stations', 0,
        $q$SELECT count(*) FROM license_sources s WHERE server_id = %1$L
             AND used <> (SELECT count(*) FROM stations t WHERE t.server_id = s.server_id AND t.source_id = s.source_id)$q$);
END $$;
\echo 'pg-schema-check: every rule holds'
