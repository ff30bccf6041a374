//! What `link remove` does to the grants between this cluster and the removed node. Its
//! certificate is refused from then on, so nothing more travels either way:
//!
//! - grants out to it are revoked. It can neither fetch the revocation nor acknowledge it,
//!   and it may go on counting what it holds until each grant's end minus the skew margin,
//!   so the licenses come back here at the end plus the margin (the sweep frees them then,
//!   with its audit row): the first moment they can no longer be used anywhere;
//! - grants received from it stop counting here now: it can no longer renew, revoke or
//!   take them back, and a return it was owed is settled here (it counts them as donated
//!   until their end anyway).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ledger::Ledger;
use super::{GrantStatus, LicenseError};
use crate::db;

/// What happened to the grants of a removed link.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkGrants {
    /// Grants out to the node, revoked: (grant id, licenses, when they come back here).
    pub out: Vec<(String, i64, DateTime<Utc>)>,
    /// Grants received from the node that stopped counting here: (grant id, licenses).
    pub stopped: Vec<(String, i64)>,
}

impl Ledger {
    /// The link of `peer` is being removed: revoke the grants out to it (they come back at
    /// their end plus the skew margin) and stop counting the ones received from it, each
    /// with an audit-log row, in one transaction. Idempotent.
    ///
    /// # Errors
    /// Database errors.
    pub async fn link_removed(&self, peer: String) -> Result<LinkGrants, LicenseError> {
        let server = self.server.to_string();
        let signing = self.signing.clone();
        let margin = self.margin;
        self.write(move |c, _| {
            let mut done = LinkGrants::default();
            // Both lists first: revoking an active grant makes it one of the second.
            let mut out = Vec::new();
            for status in ["active", "revoking"] {
                for g in db::grant_rules::donated_to(c, &server, &peer, status)? {
                    out.push((status, g));
                }
            }
            for (status, (g, count, end)) in out {
                let back = end + margin;
                if status == "active" {
                    let (mut t, _) = Self::load_grant(c, &server, &g)?;
                    t.status = GrantStatus::Revoked;
                    super::grants::reissue(c, &server, &mut t, "revoking", &signing)?;
                }
                db::license_log::append(
                    c,
                    &server,
                    "grant_revoke_requested",
                    &g,
                    &format!(
                        "the link of {peer} was removed: it can no longer fetch this revocation nor acknowledge it, and may count the grant until its end, so its {count} licenses come back at {back} (its end plus the skew margin)"
                    ),
                )?;
                done.out.push((g, count, back));
            }
            for (g, count) in db::grant_rules::received_from(c, &server, &peer, "active")? {
                super::grants::end_source(c, &server, &g, "revoked", &signing)?;
                db::license_log::append(
                    c,
                    &server,
                    "grant_stopped_link_removed",
                    &g,
                    &format!(
                        "{count} licenses from {peer}: its link was removed, so it can no longer renew, revoke or take back this grant; it stopped counting here"
                    ),
                )?;
                done.stopped.push((g, count));
            }
            for (g, count) in db::grant_rules::received_from(c, &server, &peer, "returning")? {
                db::license_sources::set_returned(c, &server, &g)?;
                db::license_log::append(
                    c,
                    &server,
                    "grant_returned",
                    &g,
                    &format!("{count} licenses to {peer}, whose link was removed: the return is settled here"),
                )?;
            }
            Ok(done)
        })
        .await
    }
}
