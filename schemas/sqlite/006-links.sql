-- updhub schema 6: interserver links between trust domains. The twin of
-- schemas/postgres/006-links.sql.
--
-- A node of another trust domain (a child in a branch office, a peer) enrolls with a
-- one-time token: it sends a certificate request for its own key, and gets a client
-- certificate issued by this cluster's CA, bound here to its id. Links belong to the
-- cluster (every member serves the cluster's children).

CREATE TABLE links (
    cluster_id  TEXT NOT NULL,
    peer_id     TEXT NOT NULL,         -- the enrolled node's id, bound to its certificate
    kind        TEXT NOT NULL CHECK (kind IN ('child', 'peer')),
    cert_fp     TEXT NOT NULL,         -- blake3 of the DER of the certificate it was issued
    cert        TEXT NOT NULL,         -- that certificate (PEM)
    enrolled_at INTEGER NOT NULL,
    enrolled_by TEXT NOT NULL,         -- the member that issued it
    removed_at  INTEGER,               -- `link remove`: its certificate is refused from then on
    removed_by  TEXT,
    refused_fp  TEXT,                  -- the last certificate refused for this id (another key)
    refused_at  INTEGER,
    PRIMARY KEY (cluster_id, cert_fp)
);
-- One live link per id: a second node presenting the same id with another key is refused.
CREATE UNIQUE INDEX links_one_live_per_id ON links (cluster_id, peer_id) WHERE removed_at IS NULL;

CREATE TABLE link_tokens (
    cluster_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,          -- blake3 of the secret; the secret is shown once
    peer_id    TEXT,                   -- the id it is for (NULL: the enrolling node names itself)
    kind       TEXT NOT NULL CHECK (kind IN ('child', 'peer')),
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    used_at    INTEGER,                -- one use only
    used_by    TEXT,
    PRIMARY KEY (cluster_id, token_hash)
);
