-- updhub schema 16: failed station logins, counted for the whole cluster (see
-- src/server/logins.rs). The twin of schemas/postgres/016-logins.sql.
--
-- One row a cluster, kind and subject: a station id (kind 'station') or a client address
-- (kind 'address') that gave wrong station credentials, and how many times since its
-- window began. Every member writes and reads the same rows, so a guesser who spreads
-- tries over the members is counted once. A row whose window has passed counts nothing
-- and is deleted now and then. Times are unix milliseconds.
CREATE TABLE login_failures (
    cluster_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,            -- station or address
    subject      TEXT NOT NULL,            -- the station id or the address
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, kind, subject)
);
CREATE INDEX login_failures_window ON login_failures(window_start);
