//! Interserver links: the enrollment tokens a cluster hands out, and the nodes of other
//! trust domains enrolled with them, each bound to the certificate it was issued.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{args, Row, SqlError};
use super::{Db, DbError};

/// One enrolled node.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Link {
    /// Its node id, bound to its certificate.
    pub peer_id: String,
    /// "child" or "peer".
    pub kind: String,
    /// Fingerprint of its certificate (blake3 of the DER, hex).
    pub cert_fp: String,
    /// When it enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// The member that issued its certificate.
    pub enrolled_by: String,
    /// When it was removed (its certificate is refused since).
    pub removed_at: Option<DateTime<Utc>>,
    /// The last certificate refused for this id (another key), and when.
    pub refused: Option<(String, DateTime<Utc>)>,
    /// The ed25519 key (hex) it signs grants with, when it named one at enrollment.
    pub grant_key: Option<String>,
    /// Its certificate (PEM), as issued.
    #[serde(skip)]
    pub cert: String,
    /// Which of this cluster's CAs issued it (filled by the node, which knows its CAs;
    /// None when read straight from the database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<crate::keys::ca::Issuer>,
}

/// A certificate just issued to an enrolling node, to bind to its id.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Fingerprint of the certificate.
    pub cert_fp: &'a str,
    /// The certificate (PEM).
    pub cert: &'a str,
    /// The key the node signs grants with (hex), if it named one.
    pub grant_key: Option<&'a str>,
}

/// Why a token does not enroll.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No such token.
    #[error("the token is not known here: check you copied all of it, or ask the parent's admin for a new one (`updhub link invite`)")]
    Unknown,
    /// Used before.
    #[error("the token was used at {at} by {by}; a token enrolls one node once: ask the parent's admin for a new one (`updhub link invite`)")]
    Used {
        /// When.
        at: DateTime<Utc>,
        /// By which node id.
        by: String,
    },
    /// Expired.
    #[error("the token expired at {0}; ask the parent's admin for a new one (`updhub link invite --valid-for 1h`)")]
    Expired(DateTime<Utc>),
    /// The token is for another id.
    #[error("the token is for node id {bound}, not {asked}; enroll the node with id {bound}, or ask for a token for {asked}")]
    WrongId {
        /// The id the token binds.
        bound: String,
        /// The id asked for.
        asked: String,
    },
    /// The id is bound to another node's key.
    #[error("node id {id} is already enrolled here with another key (certificate {fp}, enrolled {at}); every node needs its own id: enroll this one under another id, or have the parent's admin run `updhub link remove {id}` if the first one is gone")]
    IdTaken {
        /// The id.
        id: String,
        /// The bound certificate's fingerprint.
        fp: String,
        /// When it enrolled.
        at: DateTime<Utc>,
    },
    /// The id is known to this node or its cluster as another server's: an id-less token
    /// (or one made for that id) would let the newcomer take its place.
    #[error("id {id} is {holder}: every node needs its own id, whatever its token says; give the enrolling node an id of its own (`updhub init --id NEW-ID ...`) and ask the parent's admin for a token that names it (`updhub link invite --id NEW-ID`)")]
    IdKnown {
        /// The id.
        id: String,
        /// Who holds it, said for the admin ("this node's own id", "a member of this
        /// cluster", ...).
        holder: String,
    },
}

/// The links in force, for the interserver port's checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkState {
    /// Live links: (peer id, kind, certificate fingerprint).
    pub live: Vec<(String, String, String)>,
    /// Fingerprints of removed links' certificates.
    pub removed: Vec<String>,
}

fn link(r: &Row) -> Result<Link, SqlError> {
    let refused_fp: Option<String> = r.get(7)?;
    let refused_at: Option<DateTime<Utc>> = r.get(8)?;
    Ok(Link {
        peer_id: r.get(0)?,
        kind: r.get(1)?,
        cert_fp: r.get(2)?,
        enrolled_at: r.get(3)?,
        enrolled_by: r.get(4)?,
        removed_at: r.get(5)?,
        refused: refused_fp.zip(refused_at),
        grant_key: r.get(9)?,
        cert: r.get(10)?,
        issuer: None,
    })
}

const COLUMNS: &str =
    "peer_id, kind, cert_fp, enrolled_at, enrolled_by, removed_at, removed_by, refused_fp, refused_at, grant_key, cert";

impl Db {
    /// Store a new enrollment token (its hash) for `peer_id` (None: the enrolling node names
    /// itself), valid until `expires`.
    ///
    /// # Errors
    /// Database errors.
    pub fn create_link_token(
        &self,
        hash: &str,
        peer_id: Option<&str>,
        kind: &str,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let (cluster, by) = (self.cluster.as_str(), self.server.as_str());
        self.write(|c| {
            c.exec(
                "INSERT INTO link_tokens(cluster_id, token_hash, peer_id, kind, created_at, created_by, expires)
                 VALUES ($1,$2,$3,$4,$5,$6,$7)",
                args![cluster, hash, peer_id, kind, now, by, expires],
            )
            .map(drop)
        })
    }

    /// What a token allows, before a certificate is issued for it: the id to bind (the
    /// token's own, else `requested`) and the link's kind; or why it does not enroll.
    ///
    /// # Errors
    /// Database errors.
    pub fn check_link_token(
        &self,
        hash: &str,
        requested: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(String, String), Refusal>, DbError> {
        let (cluster, server) = (self.cluster.as_str(), self.server.as_str());
        self.read(|c| token_allows(c, (cluster, server), hash, requested, now))
    }

    /// Enroll: in one transaction, check the token again, bind its id to the certificate
    /// of `new` and use the token up.
    ///
    /// # Errors
    /// Database errors.
    pub fn redeem_link_token(
        &self,
        hash: &str,
        requested: &str,
        new: Binding<'_>,
        now: DateTime<Utc>,
    ) -> Result<Result<Link, Refusal>, DbError> {
        let (cluster, by) = (self.cluster.as_str(), self.server.as_str());
        self.write(|c| {
            let (id, kind) = match token_allows(c, (cluster, by), hash, requested, now)? {
                Ok(x) => x,
                Err(r) => return Ok(Err(r)),
            };
            c.exec(
                "UPDATE link_tokens SET used_at=$3, used_by=$4 WHERE cluster_id=$1 AND token_hash=$2",
                args![cluster, hash, now, id],
            )?;
            insert_link(c, cluster, by, &id, &kind, new, now).map(Ok)
        })
    }

    /// Offline enrollment (`link accept`): bind `peer_id` to the certificate of `new` on the
    /// admin's say, unless a live link holds that id already or another server known here
    /// does ([`Refusal::IdKnown`]).
    ///
    /// # Errors
    /// Database errors.
    pub fn add_link(
        &self,
        peer_id: &str,
        kind: &str,
        new: Binding<'_>,
        now: DateTime<Utc>,
    ) -> Result<Result<Link, Refusal>, DbError> {
        let (cluster, by) = (self.cluster.as_str(), self.server.as_str());
        self.write(|c| {
            if let Some(taken) = bound(c, cluster, peer_id)? {
                return Ok(Err(taken));
            }
            if let Some(known) = known_id(c, (cluster, by), peer_id)? {
                return Ok(Err(known));
            }
            insert_link(c, cluster, by, peer_id, kind, new, now).map(Ok)
        })
    }

    /// Why no node may enroll as `id` here, if one may not: a live link holds it
    /// ([`Refusal::IdTaken`]) or another server known here does ([`Refusal::IdKnown`]).
    /// `link invite --id` asks before it makes a token; enrollment asks again in the
    /// transaction that records the link.
    ///
    /// # Errors
    /// Database errors.
    pub fn enrollment_refusal(&self, id: &str) -> Result<Option<Refusal>, DbError> {
        let (cluster, server) = (self.cluster.as_str(), self.server.as_str());
        self.read(|c| {
            if let Some(taken) = bound(c, cluster, id)? {
                return Ok(Some(taken));
            }
            known_id(c, (cluster, server), id)
        })
    }

    /// Every link, live and removed, by id.
    ///
    /// # Errors
    /// Database errors.
    pub fn links(&self) -> Result<Vec<Link>, DbError> {
        self.read(|c| {
            c.map_rows(
                &format!(
                    "SELECT {COLUMNS} FROM links WHERE cluster_id=$1 ORDER BY peer_id, enrolled_at"
                ),
                args![self.cluster.as_str()],
                link,
            )
        })
    }

    /// Remove the live link of `peer_id`: its certificate is refused from now on. Returns
    /// the removed link, None when there is no live link with that id.
    ///
    /// # Errors
    /// Database errors.
    pub fn remove_link(&self, peer_id: &str, now: DateTime<Utc>) -> Result<Option<Link>, DbError> {
        let (cluster, by) = (self.cluster.as_str(), self.server.as_str());
        self.write(|c| {
            let found = c
                .row(
                    &format!("SELECT {COLUMNS} FROM links WHERE cluster_id=$1 AND peer_id=$2 AND removed_at IS NULL"),
                    args![cluster, peer_id],
                )?
                .map(|r| link(&r))
                .transpose()?;
            if found.is_some() {
                c.exec(
                    "UPDATE links SET removed_at=$3, removed_by=$4 WHERE cluster_id=$1 AND peer_id=$2 AND removed_at IS NULL",
                    args![cluster, peer_id, now, by],
                )?;
            }
            Ok(found.map(|l| Link {
                removed_at: Some(now),
                ..l
            }))
        })
    }

    /// Renew the certificate of `peer_id`'s live link, presented with fingerprint `old_fp`:
    /// the link (its id, kind, grant key, enrollment) moves to the certificate of `new`, and
    /// the old certificate is bound no more. None when there is no such live link (removed,
    /// or renewed already with another certificate).
    ///
    /// # Errors
    /// Database errors.
    pub fn renew_link(
        &self,
        peer_id: &str,
        old_fp: &str,
        new: Binding<'_>,
    ) -> Result<Option<Link>, DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| {
            let n = c.exec(
                "UPDATE links SET cert_fp=$4, cert=$5 WHERE cluster_id=$1 AND peer_id=$2 AND cert_fp=$3 AND removed_at IS NULL",
                args![cluster, peer_id, old_fp, new.cert_fp, new.cert],
            )?;
            if n == 0 {
                return Ok(None);
            }
            c.row(
                &format!("SELECT {COLUMNS} FROM links WHERE cluster_id=$1 AND cert_fp=$2"),
                args![cluster, new.cert_fp],
            )?
            .map(|r| link(&r))
            .transpose()
        })
    }

    /// The key the live link of `peer_id` signs grants with (see [`grant_key`]).
    ///
    /// # Errors
    /// Database errors.
    pub fn link_grant_key(&self, peer_id: &str) -> Result<Option<Option<String>>, DbError> {
        let cluster = self.cluster.as_str();
        self.read(|c| grant_key(c, cluster, peer_id))
    }

    /// The kind of the live link of `peer_id` and the key it signs grants with (None when
    /// it enrolled before schema 8); None when it has no live link.
    ///
    /// # Errors
    /// Database errors.
    pub fn link_for_grants(
        &self,
        peer_id: &str,
    ) -> Result<Option<(String, Option<String>)>, DbError> {
        let cluster = self.cluster.as_str();
        self.read(|c| {
            c.row(
                "SELECT kind, grant_key FROM links WHERE cluster_id=$1 AND peer_id=$2 AND removed_at IS NULL",
                args![cluster, peer_id],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
        })
    }

    /// The links in force and the removed certificates.
    ///
    /// # Errors
    /// Database errors.
    pub fn link_state(&self) -> Result<LinkState, DbError> {
        let all = self.links()?;
        let mut st = LinkState::default();
        for l in all {
            if l.removed_at.is_some() {
                st.removed.push(l.cert_fp);
            } else {
                st.live.push((l.peer_id, l.kind, l.cert_fp));
            }
        }
        Ok(st)
    }

    /// Note that a certificate with fingerprint `fp` claimed the id of `peer_id`'s live
    /// link with another key (shown by `link list` and `status`).
    ///
    /// # Errors
    /// Database errors.
    pub fn record_link_refusal(
        &self,
        peer_id: &str,
        fp: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| {
            c.exec(
                "UPDATE links SET refused_fp=$3, refused_at=$4 WHERE cluster_id=$1 AND peer_id=$2 AND removed_at IS NULL",
                args![cluster, peer_id, fp, now],
            )
            .map(drop)
        })
    }
}

/// Inside a transaction: what the token `hash` allows `requested` (see
/// [`Db::check_link_token`]).
/// Inside a ledger transaction: the key the live link of `peer_id` signs grants with.
/// None: no live link has that id; Some(None): the link named no key (enrolled before
/// schema 8).
///
/// # Errors
/// The query failed.
pub fn grant_key(
    c: &super::sql::Conn<'_>,
    cluster: &str,
    peer_id: &str,
) -> Result<Option<Option<String>>, SqlError> {
    c.row(
        "SELECT grant_key FROM links WHERE cluster_id=$1 AND peer_id=$2 AND removed_at IS NULL",
        args![cluster, peer_id],
    )?
    .map(|r| r.get(0))
    .transpose()
}

fn token_allows(
    c: &super::sql::Conn<'_>,
    (cluster, server): (&str, &str),
    hash: &str,
    requested: &str,
    now: DateTime<Utc>,
) -> Result<Result<(String, String), Refusal>, SqlError> {
    let token = c
        .row(
            "SELECT peer_id, kind, expires, used_at, used_by FROM link_tokens WHERE cluster_id=$1 AND token_hash=$2",
            args![cluster, hash],
        )?
        .map(|r| {
            Ok::<_, SqlError>((
                r.get::<Option<String>>(0)?,
                r.get::<String>(1)?,
                r.get::<DateTime<Utc>>(2)?,
                r.get::<Option<DateTime<Utc>>>(3)?,
                r.get::<Option<String>>(4)?,
            ))
        })
        .transpose()?;
    let Some((id, kind, expires, used_at, used_by)) = token else {
        return Ok(Err(Refusal::Unknown));
    };
    if let Some(at) = used_at {
        return Ok(Err(Refusal::Used {
            at,
            by: used_by.unwrap_or_default(),
        }));
    }
    if expires <= now {
        return Ok(Err(Refusal::Expired(expires)));
    }
    if let Some(bound) = id.as_ref().filter(|b| b.as_str() != requested) {
        return Ok(Err(Refusal::WrongId {
            bound: bound.clone(),
            asked: requested.to_owned(),
        }));
    }
    let id = id.unwrap_or_else(|| requested.to_owned());
    if let Some(taken) = bound(c, cluster, &id)? {
        return Ok(Err(taken));
    }
    // Whatever the token says: a token made before the id was taken, or made without one
    // (the enrolling node names itself), must not hand a known server's id to another.
    if let Some(known) = known_id(c, (cluster, server), &id)? {
        return Ok(Err(known));
    }
    Ok(Ok((id, kind)))
}

/// The refusal for `id` when this node (`server`) or its cluster knows it as another
/// server's than an enrolling node's: this node's own id, the cluster's, a member's, or,
/// unless the admin released the id with `link remove`, a child that reported to a member
/// or the receiver of a grant. A certificate for a known id would lock the holder out (its
/// certificate names the same id) and send it its reports' place and its grants.
fn known_id(
    c: &super::sql::Conn<'_>,
    (cluster, server): (&str, &str),
    id: &str,
) -> Result<Option<Refusal>, SqlError> {
    let known = |holder: String| {
        Ok(Some(Refusal::IdKnown {
            id: id.to_owned(),
            holder,
        }))
    };
    if id == server {
        return known("this node's own id".to_owned());
    }
    if let Some(seen) =
        c.value::<DateTime<Utc>>("SELECT last_seen FROM members WHERE node_id=$1", args![id])?
    {
        return known(format!(
            "a member of this cluster (last seen {})",
            seen.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if id == cluster {
        return known("this cluster's id (its license ledger is filed under it)".to_owned());
    }
    Ok(other_holders(c, cluster, id)?
        .into_iter()
        .next()
        .map(|holder| Refusal::IdKnown {
            id: id.to_owned(),
            holder,
        }))
}

/// Who else holds `id` in the cluster whose rows are filed under `cluster`, said for the
/// admin, besides this node, its members and the cluster itself: a live link, or, unless
/// the admin released the id with `link remove`, a child that reported to a member and the
/// receiver of grants. `cluster join` asks it of a joining node's id too.
///
/// # Errors
/// The queries failed.
pub(crate) fn other_holders(
    c: &super::sql::Conn<'_>,
    cluster: &str,
    id: &str,
) -> Result<Vec<String>, SqlError> {
    if let Some(Refusal::IdTaken { fp, at, .. }) = bound(c, cluster, id)? {
        return Ok(vec![format!(
            "a live link's id (certificate {}, enrolled {})",
            &fp[..16.min(fp.len())],
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )]);
    }
    // A removed link's id was released by the admin (`link remove`, then enroll again):
    // the reports and grants filed under it are that link's, whose node is replaced.
    let released = c
        .row(
            "SELECT 1 FROM links WHERE cluster_id=$1 AND peer_id=$2",
            args![cluster, id],
        )?
        .is_some();
    if released {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // One database is one cluster: a child that reported to any member.
    if let Some(r) = c.row(
        "SELECT server_id, reported_at FROM children WHERE child_id=$1 ORDER BY reported_at DESC LIMIT 1",
        args![id],
    )? {
        let (to, at): (String, DateTime<Utc>) = (r.get(0)?, r.get(1)?);
        out.push(format!(
            "a child that reported on {} (to member {to})",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if let Some(r) = c.row(
        "SELECT grant_id, status FROM grants WHERE server_id=$1 AND receiver=$2 ORDER BY created DESC LIMIT 1",
        args![cluster, id],
    )? {
        let (grant, status): (String, String) = (r.get(0)?, r.get(1)?);
        out.push(format!("the receiver of grant {grant} ({status})"));
    }
    Ok(out)
}

/// The refusal for `id` when a live link holds it.
fn bound(c: &super::sql::Conn<'_>, cluster: &str, id: &str) -> Result<Option<Refusal>, SqlError> {
    Ok(c
        .row(
            "SELECT cert_fp, enrolled_at FROM links WHERE cluster_id=$1 AND peer_id=$2 AND removed_at IS NULL",
            args![cluster, id],
        )?
        .map(|r| Ok::<_, SqlError>((r.get::<String>(0)?, r.get::<DateTime<Utc>>(1)?)))
        .transpose()?
        .map(|(fp, at)| Refusal::IdTaken {
            id: id.to_owned(),
            fp,
            at,
        }))
}

fn insert_link(
    c: &super::sql::Conn<'_>,
    cluster: &str,
    by: &str,
    id: &str,
    kind: &str,
    new: Binding<'_>,
    now: DateTime<Utc>,
) -> Result<Link, SqlError> {
    c.exec(
        "INSERT INTO links(cluster_id, peer_id, kind, cert_fp, cert, enrolled_at, enrolled_by, grant_key)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        args![cluster, id, kind, new.cert_fp, new.cert, now, by, new.grant_key],
    )?;
    Ok(Link {
        peer_id: id.to_owned(),
        kind: kind.to_owned(),
        cert_fp: new.cert_fp.to_owned(),
        enrolled_at: now,
        enrolled_by: by.to_owned(),
        removed_at: None,
        refused: None,
        grant_key: new.grant_key.map(str::to_owned),
        cert: new.cert.to_owned(),
        issuer: None,
    })
}
