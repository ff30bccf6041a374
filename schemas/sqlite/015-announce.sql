-- updhub schema 15: the cluster protocol (signed UDP announcements among the members; see
-- src/announce/). The twin of schemas/postgres/015-announce.sql.
--
-- One row a member that runs the protocol: where it receives announcements (so members on
-- unicast find each other without a peer list) and its counters of what it received and
-- dropped, written every few seconds by the serving process that holds them, for
-- `updhub status`. Times are unix milliseconds.
CREATE TABLE announcers (
    node_id   TEXT PRIMARY KEY,
    addr      TEXT NOT NULL,           -- HOST:PORT it receives announcements on
    protocol  TEXT NOT NULL,           -- multicast or unicast
    counters  TEXT NOT NULL,           -- JSON: sent, accepted, dropped by reason, silent members
    updated   INTEGER NOT NULL
);
