-- updhub schema 7: reconciliation. The twin of schemas/postgres/007-grant-reports.sql.
--
-- Each report from a receiver says, for every grant it holds from this donor, how many
-- licenses it holds under it and how many it counts (its stations plus what it donated on).
-- The donor compares that with what it donated and flags every difference (`license
-- grants`, `status`): a malfunction or a forgery.

CREATE TABLE grant_reports (
    server_id   TEXT NOT NULL,      -- the donor's ledger (the cluster)
    grant_id    TEXT NOT NULL,
    receiver    TEXT NOT NULL,      -- the reporting node, by its verified identity
    count       INTEGER NOT NULL,   -- licenses it says it holds under the grant
    counted     INTEGER NOT NULL,   -- licenses it says it counts from it
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, receiver, grant_id)
);
