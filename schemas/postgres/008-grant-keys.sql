-- updhub schema 8: the key each linked node signs its grants with. The twin of
-- schemas/sqlite/008-grant-keys.sql.
--
-- A node enrolling by link names the ed25519 key it signs grants with (its cluster's
-- signing key). This cluster names that key in every grant it donates to the node, so a
-- grant the node donates on proves, offline, that it was signed by the receiver of the grant
-- it was carved from; and grants the node donates to this cluster are verified with it.
-- NULL for links enrolled before schema 8: such a node donates on without that proof, and
-- enrolling it again records its key.

ALTER TABLE links ADD COLUMN grant_key TEXT;
