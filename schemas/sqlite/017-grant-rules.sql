-- updhub schema 17: the receiver's rules of conservation (issue 18). The twin of
-- schemas/postgres/017-grant-rules.sql.
--
-- A grant's chain ends at a license key; the cluster that signed the first grant carved
-- from it holds it. A receiver binds each key it learns of to that cluster (the first chain
-- that reached it), and refuses a chain that names another holder of a bound key. A key
-- this cluster holds itself is never bound to anyone else, and a key bound to another
-- cluster is never added here: a key counts in one cluster only.
CREATE TABLE key_bindings (
    server_id   TEXT NOT NULL,   -- this cluster's ledger
    key_id      TEXT NOT NULL,
    issuer      TEXT NOT NULL,   -- the key's issuer (hex): key ids of two issuers may meet
    holder_key  TEXT NOT NULL,   -- the cluster key (hex) that signed the first grant of it
    first_donor TEXT NOT NULL,   -- that grant's donor
    first_grant TEXT NOT NULL,   -- the grant through which this cluster learned the binding
    bound_at    INTEGER NOT NULL,
    PRIMARY KEY (server_id, key_id, issuer)
);

-- Received grants that failed the rules when they were checked again (the upgrade to
-- schema 17 checks every one): they stopped counting; `status` shows each.
CREATE TABLE grant_flags (
    server_id  TEXT NOT NULL,
    grant_id   TEXT NOT NULL,
    donor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    flagged_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, grant_id)
);

-- A received grant has an id of the schema's form (g- and 16 lowercase hex digits: no line
-- feed, no Unicode, no 10,000 characters in `license status`), never the id of a grant this
-- cluster donated itself.
CREATE TRIGGER received_grant_id BEFORE INSERT ON license_sources
WHEN NEW.kind = 'grant'
 AND (length(NEW.source_id) <> 18
      OR NEW.source_id NOT GLOB 'g-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
      OR EXISTS (SELECT 1 FROM grants g WHERE g.server_id = NEW.server_id AND g.grant_id = NEW.source_id))
BEGIN SELECT RAISE(ABORT, 'grant_rules: a received grant needs an id g- and 16 lowercase hex digits that is not one of this cluster''s own grants'); END;

-- A grant this cluster donates never takes the id of one it received.
CREATE TRIGGER donated_grant_id BEFORE INSERT ON grants
WHEN EXISTS (SELECT 1 FROM license_sources s WHERE s.server_id = NEW.server_id AND s.source_id = NEW.grant_id)
BEGIN SELECT RAISE(ABORT, 'grant_rules: a donated grant takes an id no license source of this cluster has'); END;

-- A key this cluster holds is never bound to another cluster, and the other way round.
CREATE TRIGGER key_bindings_not_held BEFORE INSERT ON key_bindings
WHEN EXISTS (SELECT 1 FROM license_sources s
              WHERE s.server_id = NEW.server_id AND s.source_id = NEW.key_id AND s.kind = 'key')
BEGIN SELECT RAISE(ABORT, 'grant_rules: a grant carved from a key this cluster holds itself is never received'); END;

CREATE TRIGGER keys_not_bound_elsewhere BEFORE INSERT ON license_sources
WHEN NEW.kind = 'key'
 AND EXISTS (SELECT 1 FROM key_bindings b WHERE b.server_id = NEW.server_id AND b.key_id = NEW.source_id)
BEGIN SELECT RAISE(ABORT, 'grant_rules: this key is held by another cluster, whose grants of it were received here'); END;

-- A binding moves only to a new key of the same holder (a rotation the node followed).
CREATE TRIGGER key_bindings_fixed BEFORE UPDATE ON key_bindings
WHEN NEW.server_id <> OLD.server_id OR NEW.key_id <> OLD.key_id OR NEW.issuer <> OLD.issuer
  OR NEW.first_donor <> OLD.first_donor OR NEW.first_grant <> OLD.first_grant
BEGIN SELECT RAISE(ABORT, 'grant_rules: a key stays bound to the cluster that first donated from it (only its key may move, with a rotation)'); END;
