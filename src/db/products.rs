//! Products: the mode an admin set for each product and the revisions offered for delayed
//! and on-demand ones (see [`crate::products`]). Both belong to the cluster: every member
//! publishes by the same policy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::sql::args;
use super::{Db, DbError};
use crate::products::{Mode, Offered};

impl Db {
    /// Every product whose mode is not current.
    ///
    /// # Errors
    /// Database errors or a damaged row.
    pub fn product_modes(&self) -> Result<BTreeMap<String, Mode>, DbError> {
        let rows: Vec<(String, String)> = self.read(|c| {
            c.map_rows(
                "SELECT product, mode FROM product_modes ORDER BY product",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })?;
        rows.into_iter()
            .map(|(p, m)| {
                let mode = m
                    .parse()
                    .map_err(|e| self.damaged("product_modes.mode", e))?;
                Ok((p, mode))
            })
            .collect()
    }

    /// Set `product`'s mode (current removes the row), as `by` at `now`.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_product_mode(
        &self,
        product: &str,
        mode: Mode,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.write(|c| {
            if mode == Mode::Current {
                c.exec("DELETE FROM product_modes WHERE product=$1", args![product])?;
            } else {
                c.exec(
                    "INSERT INTO product_modes(product, mode, set_at, set_by) VALUES ($1,$2,$3,$4)
                     ON CONFLICT(product) DO UPDATE SET mode=excluded.mode, set_at=excluded.set_at,
                       set_by=excluded.set_by",
                    args![product, mode.as_str(), now, by],
                )?;
            }
            Ok(())
        })
    }

    /// Every revision offered for a delayed or on-demand product.
    ///
    /// # Errors
    /// Database errors.
    pub fn offered(&self) -> Result<BTreeMap<(String, String), Offered>, DbError> {
        let rows = self.read(|c| {
            c.map_rows(
                "SELECT product, revision, first_seen, released_at FROM product_revisions",
                args![],
                |r| {
                    let offered = Offered {
                        first_seen: r.get(2)?,
                        released: r.get(3)?,
                    };
                    Ok(((r.get(0)?, r.get(1)?), offered))
                },
            )
        })?;
        Ok(rows.into_iter().collect())
    }

    /// Note revisions a run saw waiting, first seen at `now` unless an earlier run saw them.
    ///
    /// # Errors
    /// Database errors.
    pub fn note_offered(
        &self,
        seen: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        if seen.is_empty() {
            return Ok(());
        }
        self.write(|c| {
            for (p, r) in seen {
                c.exec(
                    "INSERT INTO product_revisions(product, revision, first_seen) VALUES ($1,$2,$3)
                     ON CONFLICT(product, revision) DO NOTHING",
                    args![p, r, now],
                )?;
            }
            Ok(())
        })
    }

    /// An admin lets `product`'s `revision` go (`updhub release`).
    ///
    /// # Errors
    /// Database errors.
    pub fn release_revision(
        &self,
        product: &str,
        revision: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.write(|c| {
            c.exec(
                "INSERT INTO product_revisions(product, revision, first_seen, released_at)
                 VALUES ($1,$2,$3,$3)
                 ON CONFLICT(product, revision) DO UPDATE SET released_at=excluded.released_at",
                args![product, revision, now],
            )
            .map(drop)
        })
    }
}
