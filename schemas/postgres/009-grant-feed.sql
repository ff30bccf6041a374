-- updhub schema 9 (PostgreSQL 15): a change cursor for the grants fetch. The twin of
-- schemas/sqlite/009-grant-feed.sql.
--
-- Donor side. Every change of a grant (an insert or any update, whatever code makes it)
-- bumps its receiver's counter in grant_feeds and records the new number as the grant's
-- latest change in grant_changes: the trigger below, inside the changing transaction. A
-- receiver fetches with the cursor of its last answer (`GET /v1/licenses/grants?since=`)
-- and gets the grants changed after it, plus every revocation it has not acknowledged.
-- The counter is one row per (donor, receiver), not one global sequence: a sequence hands
-- out numbers at once, so a transaction holding a lower number can commit after a reader
-- saw a higher one, and the reader would skip it forever. The counter row's lock is held
-- to the commit, so a receiver's changes are numbered in commit order and a reader that
-- sees number N also sees every change numbered up to N (src/db/grant_feed.rs argues it).
-- The trigger fires after grants_count_* (PostgreSQL fires AFTER triggers by name), so a
-- change locks its license source before its receiver's counter, always in that order.
CREATE TABLE grant_feeds (
    server_id TEXT NOT NULL,        -- the donor's ledger
    receiver  TEXT NOT NULL,
    seq       BIGINT NOT NULL,      -- the number of the receiver's latest grant change
    PRIMARY KEY (server_id, receiver)
);
CREATE TABLE grant_changes (
    server_id TEXT NOT NULL,        -- the donor's ledger
    grant_id  TEXT NOT NULL,
    receiver  TEXT NOT NULL,
    seq       BIGINT NOT NULL,      -- the grant's latest change, numbered in its receiver's feed
    PRIMARY KEY (server_id, grant_id)
);
CREATE INDEX grant_changes_by_receiver ON grant_changes (server_id, receiver, seq);
-- Revocations not yet acknowledged are sent on every fetch: found without reading the rest.
CREATE INDEX grants_revoking ON grants (server_id, receiver) WHERE status = 'revoking';

CREATE FUNCTION grants_feed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n BIGINT;
BEGIN
    INSERT INTO grant_feeds(server_id, receiver, seq) VALUES (NEW.server_id, NEW.receiver, 1)
        ON CONFLICT (server_id, receiver) DO UPDATE SET seq = grant_feeds.seq + 1
        RETURNING seq INTO n;
    INSERT INTO grant_changes(server_id, grant_id, receiver, seq)
        VALUES (NEW.server_id, NEW.grant_id, NEW.receiver, n)
        ON CONFLICT (server_id, grant_id) DO UPDATE SET seq = excluded.seq;
    RETURN NULL;
END $$;
CREATE TRIGGER grants_feed AFTER INSERT OR UPDATE ON grants
    FOR EACH ROW EXECUTE FUNCTION grants_feed();

-- The feed's epoch, in every cursor: drawn anew whenever a node starts serving (and when
-- a fetch finds none). A restored database rewinds the counters and a replaced one has
-- others; either way a cursor given before carries another epoch and gets a full answer,
-- never a number that now means another change.
CREATE TABLE grant_feed_epochs (
    server_id TEXT NOT NULL PRIMARY KEY,   -- the donor's ledger
    epoch     TEXT NOT NULL,               -- 32 random hex digits
    drawn_at  BIGINT NOT NULL
);

-- Receiver side: the cursor of the last answer from each donor, so a restart does not
-- fetch everything again. Written in the transaction that applied that answer.
CREATE TABLE grant_cursors (
    server_id TEXT NOT NULL,        -- this server's ledger (the receiver)
    donor_url TEXT NOT NULL,        -- the donor, as this server reaches it
    donor     TEXT NOT NULL,        -- the donor's ledger id, as its answer said
    cursor    TEXT NOT NULL,        -- EPOCH.NUMBER, as the donor gave it
    updated   BIGINT NOT NULL,
    PRIMARY KEY (server_id, donor_url)
);
