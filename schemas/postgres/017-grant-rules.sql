-- updhub schema 17 (PostgreSQL 15): the receiver's rules of conservation (issue 18). The
-- twin of schemas/sqlite/017-grant-rules.sql, which says why.
CREATE TABLE key_bindings (
    server_id   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    holder_key  TEXT NOT NULL,
    first_donor TEXT NOT NULL,
    first_grant TEXT NOT NULL,
    bound_at    BIGINT NOT NULL,
    PRIMARY KEY (server_id, key_id, issuer)
);

CREATE TABLE grant_flags (
    server_id  TEXT NOT NULL,
    grant_id   TEXT NOT NULL,
    donor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    flagged_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, grant_id)
);

CREATE FUNCTION received_grant_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'grant' AND (NEW.source_id !~ '^g-[0-9a-f]{16}$' OR EXISTS (
        SELECT 1 FROM grants g WHERE g.server_id = NEW.server_id AND g.grant_id = NEW.source_id)) THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'grant_rules',
            MESSAGE = 'grant_rules: a received grant needs an id g- and 16 lowercase hex digits that is not one of this cluster''s own grants';
    END IF;
    IF NEW.kind = 'key' AND EXISTS (
        SELECT 1 FROM key_bindings b WHERE b.server_id = NEW.server_id AND b.key_id = NEW.source_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'grant_rules',
            MESSAGE = 'grant_rules: this key is held by another cluster, whose grants of it were received here';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER received_grant_id BEFORE INSERT ON license_sources
    FOR EACH ROW EXECUTE FUNCTION received_grant_id();

CREATE FUNCTION donated_grant_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM license_sources s WHERE s.server_id = NEW.server_id AND s.source_id = NEW.grant_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'grant_rules',
            MESSAGE = 'grant_rules: a donated grant takes an id no license source of this cluster has';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER donated_grant_id BEFORE INSERT ON grants
    FOR EACH ROW EXECUTE FUNCTION donated_grant_id();

CREATE FUNCTION key_bindings_rules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.server_id = OLD.server_id AND NEW.key_id = OLD.key_id AND NEW.issuer = OLD.issuer
           AND NEW.first_donor = OLD.first_donor AND NEW.first_grant = OLD.first_grant THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'grant_rules',
            MESSAGE = 'grant_rules: a key stays bound to the cluster that first donated from it';
    END IF;
    IF EXISTS (SELECT 1 FROM license_sources s
                WHERE s.server_id = NEW.server_id AND s.source_id = NEW.key_id AND s.kind = 'key') THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'grant_rules',
            MESSAGE = 'grant_rules: a grant carved from a key this cluster holds itself is never received';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER key_bindings_rules BEFORE INSERT OR UPDATE ON key_bindings
    FOR EACH ROW EXECUTE FUNCTION key_bindings_rules();
