-- updhub schema 2: license keys, received grants, stations, outgoing grants, audit log.
--
-- Conservation is enforced by the database, not by the code that calls it: every source
-- (a key, or a grant this server received) keeps counters of the stations using it and of
-- the licenses it donated, maintained by triggers, and a CHECK constraint holds them within
-- its count. A request that would break it fails inside its own transaction.

-- Where licenses come from: a key added by an admin, or a grant received from a donor.
CREATE TABLE license_sources (
    server_id    TEXT NOT NULL,
    source_id    TEXT NOT NULL,      -- a key id, or the grant id of a received grant
    kind         TEXT NOT NULL CHECK (kind IN ('key', 'grant')),
    holder       TEXT NOT NULL,      -- the key's holder, or the donor's id for a grant
    count        INTEGER NOT NULL CHECK (count >= 0),
    used         INTEGER NOT NULL DEFAULT 0,   -- stations holding a license from it
    donated      INTEGER NOT NULL DEFAULT 0,   -- licenses in its grants that still count
    not_before   INTEGER NOT NULL,
    not_after    INTEGER NOT NULL,   -- the key's or grant's own end
    usable_until INTEGER NOT NULL,   -- when this server stops counting it (grant: end - skew margin)
    status       TEXT NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'revoked', 'returning', 'returned', 'expired')),
    revision     INTEGER NOT NULL DEFAULT 1,
    document     TEXT NOT NULL,      -- the signed key file or grant token
    added        INTEGER NOT NULL,
    PRIMARY KEY (server_id, source_id),
    CONSTRAINT conservation CHECK (used >= 0 AND donated >= 0 AND used + donated <= count)
);

-- Stations registered with this server, each holding one station license from a source.
CREATE TABLE stations (
    server_id   TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    registered  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
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
    count      INTEGER NOT NULL CHECK (count > 0),
    not_after  INTEGER NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'revoking', 'revoked', 'returned', 'expired')),
    revision   INTEGER NOT NULL,
    request_id TEXT NOT NULL,       -- idempotency: a retried request finds its grant
    token      TEXT NOT NULL,       -- the signed token the receiver verifies
    created    INTEGER NOT NULL,
    updated    INTEGER NOT NULL,
    PRIMARY KEY (server_id, grant_id),
    UNIQUE (server_id, request_id),
    FOREIGN KEY (server_id, source_id) REFERENCES license_sources (server_id, source_id)
);
CREATE INDEX grants_by_source ON grants (server_id, source_id, status);
CREATE INDEX grants_by_receiver ON grants (server_id, receiver);

-- The append-only audit trail.
CREATE TABLE license_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL,
    at        INTEGER NOT NULL,
    event     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL
);
CREATE TRIGGER license_log_append_only_u BEFORE UPDATE ON license_log
BEGIN SELECT RAISE(ABORT, 'the license log is append-only'); END;
CREATE TRIGGER license_log_append_only_d BEFORE DELETE ON license_log
BEGIN SELECT RAISE(ABORT, 'the license log is append-only'); END;

-- A station or grant may only take from a source that is in force now (and, for a grant,
-- lasts at least as long as the grant).
CREATE TRIGGER stations_source_in_force BEFORE INSERT ON stations
WHEN NOT EXISTS (SELECT 1 FROM license_sources s
                  WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
                    AND s.status = 'active' AND s.not_before <= unixepoch() AND s.usable_until > unixepoch())
BEGIN SELECT RAISE(ABORT, 'conservation: the license source is not in force'); END;

CREATE TRIGGER stations_move_in_force BEFORE UPDATE OF source_id ON stations
WHEN NEW.source_id <> OLD.source_id
 AND NOT EXISTS (SELECT 1 FROM license_sources s
                  WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
                    AND s.status = 'active' AND s.not_before <= unixepoch() AND s.usable_until > unixepoch())
BEGIN SELECT RAISE(ABORT, 'conservation: the license source is not in force'); END;

CREATE TRIGGER grants_source_in_force BEFORE INSERT ON grants
WHEN NOT EXISTS (SELECT 1 FROM license_sources s
                  WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
                    AND s.status = 'active' AND s.not_before <= unixepoch()
                    AND s.usable_until >= NEW.not_after)
BEGIN SELECT RAISE(ABORT, 'conservation: the grant outlives its source or the source is not in force'); END;

-- A grant keeps its count and source, never outlives its source, never counts again once
-- ended.
CREATE TRIGGER grants_immutable BEFORE UPDATE ON grants
WHEN NEW.count <> OLD.count OR NEW.source_id <> OLD.source_id OR NEW.receiver <> OLD.receiver
  OR (OLD.status NOT IN ('active', 'revoking') AND NEW.status IN ('active', 'revoking'))
  OR (NEW.not_after > OLD.not_after AND NOT EXISTS (
        SELECT 1 FROM license_sources s
         WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
           AND s.status = 'active' AND s.usable_until >= NEW.not_after))
BEGIN SELECT RAISE(ABORT, 'conservation: a grant keeps its count, never outlives its source and never comes back once ended'); END;

-- The counters.
CREATE TRIGGER stations_count_insert AFTER INSERT ON stations
BEGIN UPDATE license_sources SET used = used + 1
       WHERE server_id = NEW.server_id AND source_id = NEW.source_id; END;
CREATE TRIGGER stations_count_delete AFTER DELETE ON stations
BEGIN UPDATE license_sources SET used = used - 1
       WHERE server_id = OLD.server_id AND source_id = OLD.source_id; END;
CREATE TRIGGER stations_count_move AFTER UPDATE OF source_id ON stations
WHEN NEW.source_id <> OLD.source_id
BEGIN
  UPDATE license_sources SET used = used - 1 WHERE server_id = OLD.server_id AND source_id = OLD.source_id;
  UPDATE license_sources SET used = used + 1 WHERE server_id = NEW.server_id AND source_id = NEW.source_id;
END;
CREATE TRIGGER grants_count_insert AFTER INSERT ON grants
WHEN NEW.status IN ('active', 'revoking')
BEGIN UPDATE license_sources SET donated = donated + NEW.count
       WHERE server_id = NEW.server_id AND source_id = NEW.source_id; END;
CREATE TRIGGER grants_count_end AFTER UPDATE OF status ON grants
WHEN OLD.status IN ('active', 'revoking') AND NEW.status NOT IN ('active', 'revoking')
BEGIN UPDATE license_sources SET donated = donated - OLD.count
       WHERE server_id = OLD.server_id AND source_id = OLD.source_id; END;
CREATE TRIGGER grants_no_delete BEFORE DELETE ON grants
BEGIN SELECT RAISE(ABORT, 'grants are never deleted; they end'); END;
