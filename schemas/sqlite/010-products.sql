-- updhub schema 10: scheduled mirroring and the products policy. The twin of
-- schemas/postgres/010-products.sql.
--
-- mirrored.checked_at: the last time this node read its zone successfully, changed or not
-- (mirrored.at is the last time the mirrored content changed); status shows its age and
-- warns when it is older than upstream.stale_after. mirrored.check_error: why the last
-- scheduled run failed (NULL after a good run), so `status` on any node can say it.
ALTER TABLE mirrored ADD COLUMN checked_at INTEGER;
ALTER TABLE mirrored ADD COLUMN check_error TEXT;

-- The mode an admin set for a product (`updhub products set`), shared by every member of
-- the cluster. A product without a row follows its zone ("current").
--   frozen:    keeps the revision it has, whatever the zone says;
--   delayed:   a new revision waits publish.delay (or `updhub release`) before it is taken;
--   on-demand: mirrored only when an admin asks (`updhub release`).
CREATE TABLE product_modes (
    product TEXT PRIMARY KEY,
    mode    TEXT NOT NULL CHECK (mode IN ('frozen', 'delayed', 'on-demand')),
    set_at  INTEGER NOT NULL,
    set_by  TEXT NOT NULL
);

-- Each revision of a product the zone offered while the product was delayed or on demand:
-- when it was first seen (a delayed revision is due publish.delay later) and when an admin
-- released it (`updhub release`: taken at the next run, which release starts at once).
CREATE TABLE product_revisions (
    product     TEXT NOT NULL,
    revision    TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    released_at INTEGER,
    PRIMARY KEY (product, revision)
);
