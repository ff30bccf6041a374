-- One clock per transaction. Each ledger write sets clock.now to the time its caller took,
-- and every rule below reads that row instead of the database's own clock, so the code and
-- the triggers never disagree about what time it is (on a shared database the nodes'
-- clocks differ, and the code's clock is the one the node acts on).
CREATE TABLE clock (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    now INTEGER NOT NULL
);
INSERT INTO clock (id, now) VALUES (1, 0);

DROP TRIGGER stations_source_in_force;
CREATE TRIGGER stations_source_in_force BEFORE INSERT ON stations
WHEN NOT EXISTS (SELECT 1 FROM license_sources s
                  WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
                    AND s.status = 'active'
                    AND s.not_before <= (SELECT now FROM clock)
                    AND s.usable_until > (SELECT now FROM clock))
BEGIN SELECT RAISE(ABORT, 'conservation: the license source is not in force'); END;

DROP TRIGGER stations_move_in_force;
CREATE TRIGGER stations_move_in_force BEFORE UPDATE OF source_id ON stations
WHEN NEW.source_id <> OLD.source_id
 AND NOT EXISTS (SELECT 1 FROM license_sources s
                  WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
                    AND s.status = 'active'
                    AND s.not_before <= (SELECT now FROM clock)
                    AND s.usable_until > (SELECT now FROM clock))
BEGIN SELECT RAISE(ABORT, 'conservation: the license source is not in force'); END;

DROP TRIGGER grants_source_in_force;
CREATE TRIGGER grants_source_in_force BEFORE INSERT ON grants
WHEN NOT EXISTS (SELECT 1 FROM license_sources s
                  WHERE s.server_id = NEW.server_id AND s.source_id = NEW.source_id
                    AND s.status = 'active'
                    AND s.not_before <= (SELECT now FROM clock)
                    AND s.usable_until >= NEW.not_after)
BEGIN SELECT RAISE(ABORT, 'conservation: the grant outlives its source or the source is not in force'); END;
