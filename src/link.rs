//! Interserver links between trust domains (`updhub link ...`). A node of another trust
//! domain (a child in a branch office, a peer) enrolls with a one-time token: it makes its
//! own key pair, sends a certificate request, and receives a client certificate issued by
//! this cluster's CA and bound to its id, this cluster's CA certificate and the publisher
//! keys this cluster trusts. No private key of the parent ever leaves it.
//!
//! Enrollment runs over the station port (server-only TLS: the enrolling node has no
//! client certificate yet; the interserver port stays closed to anyone without one). The
//! token carries that port's URL and the fingerprint of the parent's CA: the child fetches
//! the CA, checks the fingerprint, and only then sends the token's secret over a connection
//! that verifies the parent's server certificate against that CA.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{Link, Refusal};
use crate::error::Error;
use crate::hub::Hub;
use crate::id::ServerId;
use crate::keys::{self, LinkFile};

/// What a token starts with.
const TOKEN_PREFIX: &str = "updhub-link-1.";

/// Link kinds.
pub const KINDS: [&str; 2] = ["child", "peer"];

/// What a token carries (base64url JSON after [`TOKEN_PREFIX`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// The parent's enrollment URL (its station port), https://HOST:PORT/.
    pub url: String,
    /// Fingerprint of the parent's CA certificate (blake3 of the DER, hex).
    pub ca: String,
    /// The one-time secret (hex); the parent keeps only its hash.
    pub secret: String,
    /// The id the token is for, if the parent's admin named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// "child" or "peer".
    pub kind: String,
}

impl Token {
    /// The text an admin copies.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a token serializes");
        format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        )
    }

    /// Read a token as an admin pasted it.
    ///
    /// # Errors
    /// Text that is not an updhub link token, named with the fix.
    pub fn decode(text: &str) -> Result<Token, Error> {
        let bad = |why: &str| {
            Error::State(format!(
                "the link token {why}; copy the whole token that `updhub link invite` printed on the parent (it starts with {TOKEN_PREFIX})"
            ))
        };
        let body = text
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| bad("does not start with the right prefix"))?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("is damaged (not base64url)"))?;
        let t: Token = serde_json::from_slice(&json).map_err(|_| bad("is damaged"))?;
        if !t.url.starts_with("https://") || t.ca.len() != 64 || t.secret.len() != 64 {
            return Err(bad("is damaged"));
        }
        Ok(t)
    }

    fn hash(&self) -> String {
        secret_hash(&self.secret)
    }
}

fn secret_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// `link invite`: a one-time token for a node of another trust domain, valid for
/// `valid_for`, enrolling through `enroll_url` (this node's station port).
///
/// # Errors
/// Unreadable keys, a bad kind, or database errors.
pub fn invite(
    hub: &Hub,
    id: Option<&ServerId>,
    kind: &str,
    valid_for: Duration,
    enroll_url: &str,
) -> Result<(Token, DateTime<Utc>), Error> {
    if !KINDS.contains(&kind) {
        return Err(Error::State(format!(
            "link kind {kind:?} is unknown; use \"child\" (updates and licenses) or \"peer\" (licenses only)"
        )));
    }
    if !enroll_url.starts_with("https://") {
        return Err(Error::State(format!(
            "the enrollment URL {enroll_url:?} is not https://HOST:PORT/ (this node's station port, as the enrolling node reaches it)"
        )));
    }
    // Said now rather than when the node enrolls (which asks again).
    if let Some(id) = id {
        if let Some(r) = refusal(hub, id.as_str())? {
            return Err(Error::State(format!("link invite --id {id}: {r}")));
        }
    }
    let ca = hub.data.join("keys").join("ca.crt");
    let ca_pem = std::fs::read(&ca).map_err(|source| Error::Io {
        what: format!("reading {}", ca.display()),
        source,
    })?;
    let token = Token {
        url: if enroll_url.ends_with('/') {
            enroll_url.to_owned()
        } else {
            format!("{enroll_url}/")
        },
        ca: keys::pem_fp(&ca_pem).map_err(|e| Error::State(format!("{}: {e}", ca.display())))?,
        secret: hex::encode(rand::random::<[u8; 32]>()),
        id: id.map(|i| i.to_string()),
        kind: kind.to_owned(),
    };
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::hours(1));
    hub.db
        .create_link_token(&token.hash(), token.id.as_deref(), kind, expires, now)?;
    Ok((token, expires))
}

/// What an enrolling node sends.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The token's secret.
    pub secret: String,
    /// The id it asks for (a token made for an id binds that one).
    pub id: String,
    /// Its certificate request (PEM).
    pub csr: String,
    /// The ed25519 key (hex) it signs grants with; absent from nodes older than schema 8.
    #[serde(default)]
    pub grant_key: Option<String>,
}

/// What it gets back.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollReply {
    /// The parent's node id.
    pub parent_id: String,
    /// The id bound to the certificate.
    pub id: String,
    /// "child" or "peer".
    pub kind: String,
    /// Its client certificate (PEM), issued by the parent's CA.
    pub cert: String,
    /// The parent's CA certificate (PEM).
    pub ca: String,
    /// The publisher keys the parent trusts (hex): the origin's.
    pub publishers: Vec<String>,
    /// The parent's own key (hex), which signs the grants it donates.
    pub donor: String,
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The token does not enroll.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The request is malformed.
    #[error("{0}")]
    Bad(String),
    /// The link is not live (removed, or renewed already with another certificate).
    #[error("{0}")]
    Gone(String),
    /// A fault on this side.
    #[error(transparent)]
    Internal(#[from] Error),
}

/// The parent's side of an enrollment (the station port's `POST /v1/link/enroll`).
///
/// # Errors
/// A refused token, a bad request, or faults.
pub fn enroll(hub: &Hub, req: &EnrollRequest) -> Result<EnrollReply, EnrollError> {
    ServerId::new(&req.id).map_err(|e| EnrollError::Bad(format!("the requested id: {e}")))?;
    let hash = secret_hash(&req.secret);
    let now = Utc::now();
    let grant_key = checked_grant_key(req.grant_key.as_deref()).map_err(EnrollError::Bad)?;
    let (id, _) = hub
        .db
        .check_link_token(&hash, &req.id, now)
        .map_err(Error::from)??;
    // The database asks again, in the transaction that records the link; this node's own
    // parent is known from its link file only.
    if let Some(r) = parent_refusal(hub, &id) {
        return Err(r.into());
    }
    let keys_dir = hub.data.join("keys");
    let cert = keys::issue_link_cert(&keys_dir, &req.csr, &id).map_err(EnrollError::Bad)?;
    let fp = keys::pem_fp(cert.as_bytes()).map_err(|e| EnrollError::Bad(e.to_string()))?;
    let link = hub
        .db
        .redeem_link_token(
            &hash,
            &req.id,
            crate::db::Binding {
                cert_fp: &fp,
                cert: &cert,
                grant_key: grant_key.as_deref(),
            },
            now,
        )
        .map_err(Error::from)??;
    Ok(enrolled(hub, link, cert)?)
}

/// Why no node may enroll as `id` here: a live link holds it, or this node or its cluster
/// knows it as another server's (see [`crate::db::Db::enrollment_refusal`]), or it is this
/// node's own parent's.
fn refusal(hub: &Hub, id: &str) -> Result<Option<Refusal>, Error> {
    Ok(match parent_refusal(hub, id) {
        Some(r) => Some(r),
        None => hub.db.enrollment_refusal(id)?,
    })
}

/// The refusal for `id` when it is the id of the parent this node enrolled with.
fn parent_refusal(hub: &Hub, id: &str) -> Option<Refusal> {
    let up = hub.keys.upstream.as_ref()?;
    (up.parent_id == id).then(|| Refusal::IdKnown {
        id: id.to_owned(),
        holder: format!(
            "this node's parent (this node enrolled with it as a {})",
            up.kind
        ),
    })
}

/// The grant key an enrolling node names: 32 bytes of ed25519 public key, in hex.
fn checked_grant_key(key: Option<&str>) -> Result<Option<String>, String> {
    let Some(key) = key else { return Ok(None) };
    keys::verifying_key_hex(key).map_err(|why| format!("the grant key: {why}"))?;
    Ok(Some(key.to_ascii_lowercase()))
}

/// The key this node signs grants with (`keys/cluster.pub`), which it names when it enrolls.
fn own_grant_key(keys_dir: &std::path::Path) -> Result<String, Error> {
    let path = keys_dir.join("cluster.pub");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| Error::Io {
            what: format!("reading {}", path.display()),
            source,
        })
}

/// After a link was recorded: every member's view of the links, the log, and the answer
/// the enrolled node keeps.
fn enrolled(hub: &Hub, link: Link, cert: String) -> Result<EnrollReply, Error> {
    hub.refresh_links()?;
    tracing::info!(
        "enrolled {} ({}) by link, certificate {}",
        link.peer_id,
        link.kind,
        link.cert_fp
    );
    let ca = hub.data.join("keys").join("ca.crt");
    Ok(EnrollReply {
        parent_id: hub.id().to_string(),
        id: link.peer_id,
        kind: link.kind,
        cert,
        ca: std::fs::read_to_string(&ca).map_err(|source| Error::Io {
            what: format!("reading {}", ca.display()),
            source,
        })?,
        publishers: hub
            .keys
            .publishers()
            .iter()
            .map(|k| hex::encode(k.as_bytes()))
            .collect(),
        donor: hex::encode(hub.keys.verifying.as_bytes()),
    })
}

/// What `link request` writes for an air-gapped site: the node's id and a certificate
/// request for a key that stays on the node.
#[derive(Debug, Serialize, Deserialize)]
pub struct OfflineRequest {
    /// "updhub-link-request-1".
    pub format: String,
    /// The node's id.
    pub id: String,
    /// Its certificate request (PEM).
    pub csr: String,
    /// The ed25519 key (hex) it signs grants with; absent from requests of older nodes.
    #[serde(default)]
    pub grant_key: Option<String>,
    /// When it was made.
    pub made: DateTime<Utc>,
}

const REQUEST_FORMAT: &str = "updhub-link-request-1";

/// Where a node keeps the link key of a request until the answer comes back.
fn pending_key(keys_dir: &std::path::Path) -> std::path::PathBuf {
    keys_dir.join("link-request.key")
}

/// `link request --out FILE` (on the node that enrolls, offline): a new link key, kept in
/// `keys/link-request.key` until `link import`, and the request to carry to the parent.
///
/// # Errors
/// Generation or write errors.
pub fn offline_request(hub: &Hub) -> Result<OfflineRequest, Error> {
    let keys_dir = hub.data.join("keys");
    let (key_pem, csr) = keys::link_request(hub.id().as_str())?;
    write_secret(&pending_key(&keys_dir), key_pem.as_bytes())?;
    Ok(OfflineRequest {
        format: REQUEST_FORMAT.to_owned(),
        id: hub.id().to_string(),
        csr,
        grant_key: Some(own_grant_key(&keys_dir)?),
        made: Utc::now(),
    })
}

/// A secret (a link key) written through [`crate::durable`]: owner-only from the moment
/// the file exists, synced and renamed into place.
fn write_secret(path: &std::path::Path, data: &[u8]) -> Result<(), Error> {
    crate::durable::write_atomic(path, data, crate::durable::SECRET).map_err(|source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

/// `link accept FILE --out REPLY` (on the parent): the admin vouches for the request by
/// carrying it; its id is bound to the certificate issued for its key, as an online
/// enrollment would.
///
/// # Errors
/// A malformed request, an id enrolled already, or faults.
pub fn offline_accept(hub: &Hub, req: &OfflineRequest, kind: &str) -> Result<EnrollReply, Error> {
    if req.format != REQUEST_FORMAT {
        return Err(Error::State(format!(
            "this is not a link request (format {:?}, expected {REQUEST_FORMAT}); give the file `updhub link request --out FILE` wrote",
            req.format
        )));
    }
    if !KINDS.contains(&kind) {
        return Err(Error::State(format!("link kind {kind:?} is unknown")));
    }
    ServerId::new(&req.id).map_err(|e| Error::State(format!("the request's id: {e}")))?;
    if let Some(r) = parent_refusal(hub, &req.id) {
        return Err(Error::State(r.to_string()));
    }
    let grant_key = checked_grant_key(req.grant_key.as_deref())
        .map_err(|e| Error::State(format!("the link request: {e}")))?;
    let cert = keys::issue_link_cert(&hub.data.join("keys"), &req.csr, &req.id)
        .map_err(|e| Error::State(format!("the link request: {e}")))?;
    let fp = keys::pem_fp(cert.as_bytes()).map_err(Error::State)?;
    let link = hub
        .db
        .add_link(
            &req.id,
            kind,
            crate::db::Binding {
                cert_fp: &fp,
                cert: &cert,
                grant_key: grant_key.as_deref(),
            },
            Utc::now(),
        )?
        .map_err(|r| Error::State(r.to_string()))?;
    enrolled(hub, link, cert)
}

/// `link import REPLY` (back on the node): check the answer (issued by the CA it carries,
/// for this node's id and the key of its request) and keep it as the link to the parent.
/// Returns the CA's fingerprint, which the admin compares with the one the parent's admin
/// reads out (the files travelled by hand).
///
/// # Errors
/// An answer for another node or request, or write errors.
pub fn offline_import(hub: &Hub, reply: &EnrollReply) -> Result<String, Error> {
    checked_reply(reply)?;
    if reply.id != hub.id().as_str() {
        return Err(Error::State(format!(
            "this answer is for node {}, this node is {}",
            reply.id,
            hub.id()
        )));
    }
    let keys_dir = hub.data.join("keys");
    let path = pending_key(&keys_dir);
    let key_pem = std::fs::read_to_string(&path).map_err(|e| {
        Error::State(format!(
            "{}: {e}; this node made no link request (or imported its answer already): run `updhub link request --out FILE` first",
            path.display()
        ))
    })?;
    keep(&keys_dir, reply, &key_pem)?;
    std::fs::remove_file(&path).map_err(|source| Error::Io {
        what: format!("removing {}", path.display()),
        source,
    })?;
    keys::pem_fp(reply.ca.as_bytes()).map_err(Error::State)
}
/// The child's side: enroll `id` whose keys live in `keys_dir` with the parent named in
/// `token`; on success the link's files are in `keys_dir/upstream/`.
///
/// # Errors
/// An unreachable parent, a CA that does not match the token's fingerprint, a refusal
/// (named by the parent), or write errors.
pub async fn join(
    keys_dir: &std::path::Path,
    id: &str,
    token: &Token,
) -> Result<EnrollReply, Error> {
    if let Some(bound) = &token.id {
        if bound != id {
            return Err(Error::State(format!(
                "the token is for node id {bound}, this node is {id}; ask for a token for {id} (`updhub link invite --id {id}`), or give this node the id {bound}"
            )));
        }
    }
    let at = |why: String| Error::State(format!("enrolling with {}: {why}", token.url));
    // 1. The parent's CA, over a connection not yet verified: the CA proves itself by the
    //    fingerprint the token pins. Nothing secret is sent.
    let probe = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| at(e.to_string()))?;
    let ca_pem = probe
        .get(format!("{}v1/link/ca", token.url))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| at(format!("cannot fetch the parent's CA certificate ({e}); check that the parent serves and that the URL in the token reaches its station port")))?;
    let ca_pem = crate::peer::read_body(ca_pem, crate::peer::MAX_DOCUMENT)
        .await
        .map_err(|e| at(format!("reading the CA certificate: {e:?}")))?;
    let fp = keys::pem_fp(&ca_pem).map_err(|e| at(format!("the CA certificate {e}")))?;
    if fp != token.ca {
        return Err(at(format!(
            "the server's CA certificate has fingerprint {fp}, the token pins {}; this is not the parent that issued the token (or someone is in between), or the parent rotated its CA since (`keys rotate-ca`): nothing was sent; ask for a new token (`updhub link invite`)",
            token.ca
        )));
    }
    // 2. The request, over TLS verified against that CA.
    let tls = crate::peer::ca_only_tls(&ca_pem).map_err(at)?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| at(e.to_string()))?;
    let (key_pem, csr) = keys::link_request(id)?;
    let resp = client
        .post(format!("{}v1/link/enroll", token.url))
        .json(&EnrollRequest {
            secret: token.secret.clone(),
            id: id.to_owned(),
            csr,
            grant_key: Some(own_grant_key(keys_dir)?),
        })
        .send()
        .await
        .map_err(|e| at(format!("{e}")))?;
    let reply: EnrollReply = answer(resp).await.map_err(at)?;
    checked_reply(&reply).map_err(|e| at(e.to_string()))?;
    if reply.id != id {
        return Err(at(format!(
            "the answer binds the id {} to the certificate, this node is {id}",
            reply.id
        )));
    }
    if keys::pem_fp(reply.ca.as_bytes()).ok().as_deref() != Some(token.ca.as_str()) {
        return Err(at(
            "the answer carries another CA than the token pins".into()
        ));
    }
    keep(keys_dir, &reply, &key_pem)?;
    Ok(reply)
}

/// That an enrollment's answer names ids by the id rule and a known kind: they are printed,
/// logged and kept in `link.json`, and came over a link or by hand.
fn checked_reply(reply: &EnrollReply) -> Result<(), Error> {
    let bad = |what: &str, why: String| {
        Error::State(format!(
            "the link answer's {what} {why}; it is damaged or not made by updhub: nothing was changed; enroll again"
        ))
    };
    ServerId::new(&reply.parent_id).map_err(|e| bad("parent_id", e.to_string()))?;
    ServerId::new(&reply.id).map_err(|e| bad("id", e.to_string()))?;
    if !KINDS.contains(&reply.kind.as_str()) {
        return Err(bad(
            "kind",
            format!(
                "{:?} is none of {}",
                reply.kind.chars().take(40).collect::<String>(),
                KINDS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Keep an enrollment's answer (with the link key `key_pem`) as this node's link to its
/// parent, once it checks out (see [`keys::write_upstream`]).
fn keep(keys_dir: &std::path::Path, reply: &EnrollReply, key_pem: &str) -> Result<(), Error> {
    keys::write_upstream(
        keys_dir,
        &reply.ca,
        &reply.cert,
        key_pem,
        &LinkFile {
            parent_id: reply.parent_id.clone(),
            kind: reply.kind.clone(),
            publishers: reply.publishers.clone(),
            donor: reply.donor.clone(),
            enrolled: Utc::now(),
        },
    )?;
    Ok(())
}

/// What `GET /v1/ca` answers: the CA a linked node must trust for this cluster.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaAnswer {
    /// The CA in force (PEM): it issues every new certificate.
    pub ca: String,
    /// During a CA rotation's overlap: the new CA certified by the old one (PEM), which a
    /// child checks with the old CA it trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross: Option<String>,
}

/// This node's answer to `GET /v1/ca`.
pub fn ca_answer(hub: &Hub) -> CaAnswer {
    let t = &hub.keys.ca;
    CaAnswer {
        ca: t.current_pem.clone(),
        cross: t.overlap_at(Utc::now()).map(|o| o.cross_pem.clone()),
    }
}

/// What a linked node sends to renew its certificate (`POST /v1/link/renew`).
#[derive(Debug, Serialize, Deserialize)]
pub struct RenewRequest {
    /// A certificate request for a new key of its own (PEM).
    pub csr: String,
}

/// The renewed certificate.
#[derive(Debug, Serialize, Deserialize)]
pub struct RenewReply {
    /// The certificate (PEM), issued by the CA in force, with the cross-certificate after
    /// it during a rotation's overlap.
    pub cert: String,
    /// The CA in force (PEM).
    pub ca: String,
}

/// The parent's side of a renewal: the linked node `id`, which presented the certificate
/// with fingerprint `fp` over its link, gets a certificate of the CA in force for the key of
/// `csr`; its link moves to the new certificate in one transaction (the old one is bound no
/// more). A removed link cannot renew: its certificate is refused at the handshake, and the
/// database finds no live link for it.
///
/// # Errors
/// A link that is not live, a bad request, or faults.
pub fn renew(hub: &Hub, id: &str, fp: &str, csr: &str) -> Result<RenewReply, EnrollError> {
    let keys_dir = hub.data.join("keys");
    let cert = keys::issue_link_cert(&keys_dir, csr, id).map_err(EnrollError::Bad)?;
    let new_fp = keys::pem_fp(cert.as_bytes()).map_err(EnrollError::Bad)?;
    let Some(link) = hub
        .db
        .renew_link(
            id,
            fp,
            crate::db::Binding {
                cert_fp: &new_fp,
                cert: &cert,
                grant_key: None,
            },
        )
        .map_err(Error::from)?
    else {
        return Err(EnrollError::Gone(format!(
            "node {id} has no live link with the certificate it presented ({}): it was removed or renewed already; ask for a new token (`updhub link invite` on the parent) and enroll again",
            &fp[..16.min(fp.len())]
        )));
    };
    hub.refresh_links()?;
    tracing::info!(
        "renewed the link certificate of {}: {} -> {}",
        link.peer_id,
        &fp[..16.min(fp.len())],
        &new_fp[..16]
    );
    Ok(RenewReply {
        cert,
        ca: hub.keys.ca.current_pem.clone(),
    })
}

/// What [`follow_ca`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaFollowed {
    /// What this node learned of its parent's CA.
    pub learned: keys::renewal::Learned,
    /// Whether it renewed its link certificate under the parent's CA in force.
    pub renewed: bool,
}

impl CaFollowed {
    /// Whether the link's TLS changed (a new client is needed).
    pub fn changed(&self) -> bool {
        self.renewed || self.learned != keys::renewal::Learned::Nothing
    }
}

/// A linked node's side of its parent's CA rotation, over its existing link (`client` at
/// `base`): ask the parent's CA (`GET /v1/ca`); trust a new one only if the CA trusted now
/// vouched for it (a cross-certificate), both until the overlap ends; drop the old one when
/// the parent ended its overlap; and renew the link certificate when the parent's CA in
/// force did not issue it, keeping this node's id binding.
///
/// # Errors
/// An unreachable parent, a new CA not vouched for (refused: the node keeps what it
/// trusts), a refused renewal (a removed link), or write errors.
pub async fn follow_ca(
    hub: &Hub,
    client: &reqwest::Client,
    base: &reqwest::Url,
) -> Result<CaFollowed, Error> {
    let mut done = CaFollowed {
        learned: keys::renewal::Learned::Nothing,
        renewed: false,
    };
    let Some(up) = hub.keys.upstream.clone() else {
        return Ok(done);
    };
    let keys_dir = hub.data.join("keys");
    let dir = keys_dir.join("upstream");
    let at = |why: String| Error::State(format!("the parent's CA ({base}): {why}"));
    let resp = client
        .get(base.join("v1/ca").map_err(|e| at(e.to_string()))?)
        .send()
        .await
        .map_err(|e| at(crate::child::error_chain(&e)))?;
    let ca: CaAnswer = answer(resp).await.map_err(at)?;
    done.learned = keys::renewal::learn(&dir, &ca.ca, ca.cross.as_deref()).map_err(at)?;
    if done.learned != keys::renewal::Learned::Nothing {
        up.reload(&keys_dir)?;
        hub.reset_client();
        tracing::info!(
            "the parent's CA: {}",
            match done.learned {
                keys::renewal::Learned::NewCa => format!(
                    "now trusting its new CA {} (vouched for by the old one, trusted too until the overlap ends)",
                    &up.tls().ca.current_fp()[..16]
                ),
                _ => "its rotation ended: trusting only its CA in force".to_owned(),
            }
        );
    }
    if matches!(up.tls().link_issuer, Some(keys::ca::Issuer::Current { .. })) {
        return Ok(done);
    }
    let csr = keys::renewal::begin(&dir, hub.id().as_str())?;
    let resp = client
        .post(base.join("v1/link/renew").map_err(|e| at(e.to_string()))?)
        .json(&RenewRequest { csr })
        .send()
        .await
        .map_err(|e| at(crate::child::error_chain(&e)))?;
    let reply: RenewReply = answer(resp)
        .await
        .map_err(|why| at(format!("renewing this node's link certificate: {why}")))?;
    keys::renewal::finish(&dir, &reply.cert)?;
    up.reload(&keys_dir)?;
    hub.reset_client();
    done.renewed = true;
    tracing::info!(
        "renewed this node's link certificate under the parent's CA {}",
        &up.tls().ca.current_fp()[..16]
    );
    Ok(done)
}

/// A JSON answer of a parent, or why not (its error text when it refused).
async fn answer<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, String> {
    let status = resp.status();
    if !status.is_success() {
        let text = crate::peer::error_text(resp).await;
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(format!("refused ({}): {why}", status.as_u16()));
    }
    let body = crate::peer::read_body(resp, crate::peer::MAX_DOCUMENT)
        .await
        .map_err(|e| format!("reading the answer: {e:?}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("the answer does not parse ({e})"))
}

/// `link list`.
///
/// # Errors
/// Database errors.
pub fn list(hub: &Hub) -> Result<Vec<Link>, Error> {
    hub.links()
}

/// What `link remove` did.
#[derive(Debug, Clone)]
pub struct Removed {
    /// The removed link.
    pub link: Link,
    /// What became of the grants between this cluster and the node.
    pub grants: crate::license::removal::LinkGrants,
}

/// `link remove ID`: the node's certificate is refused from now on, by every member (each
/// re-reads the links within [`crate::node::LINKS_EVERY`]). First the grants between this
/// cluster and the node are settled (see [`crate::license::removal`]): grants out to it
/// are revoked and come back at their end plus the skew margin, grants from it stop
/// counting. A crash between the two steps leaves the link live with its grants settled;
/// removing it again finishes.
///
/// # Errors
/// No live link with that id, or database errors.
pub async fn remove(hub: &Hub, id: &str) -> Result<Removed, Error> {
    let gone = || {
        Error::State(format!(
            "no live link with id {id}; `updhub link list` shows the links"
        ))
    };
    if hub.db.link_for_grants(id)?.is_none() {
        return Err(gone());
    }
    let grants = hub
        .ledger
        .link_removed(id.to_owned())
        .await
        .map_err(|e| Error::State(format!("settling the grants of {id}: {e}")))?;
    let link = hub.db.remove_link(id, Utc::now())?.ok_or_else(gone)?;
    hub.refresh_links()?;
    Ok(Removed { link, grants })
}

/// Licenses either way with the node this one enrolled with as a peer (at `url`, with id
/// `peer_id`): fetch the grants it donated to this node, then offer it those this node
/// donated to it. Returns how many grants came and went.
///
/// # Errors
/// Network errors, a refused grant (nothing of its batch is applied), database errors.
pub async fn exchange_licenses(
    hub: &Hub,
    url: &str,
    peer_id: &str,
) -> Result<(usize, usize), crate::license::LicenseError> {
    let net = |why: String| crate::license::LicenseError::Network {
        url: url.to_owned(),
        why,
    };
    let base = reqwest::Url::parse(url).map_err(|e| net(e.to_string()))?;
    // A peer does not sync versions: it follows its peer's CA rotation here (learning the
    // new CA, renewing its link certificate), before the exchange.
    let client = hub.client().map_err(net)?;
    if let Err(e) = follow_ca(hub, &client, &base).await {
        tracing::warn!("{e}");
    }
    let client = hub.client().map_err(net)?;
    let got =
        crate::license::api::refresh_from_parent(&hub.ledger, &hub.keys.donor(), &client, &base)
            .await?;
    let gave = crate::license::api::offer_to(&hub.ledger, &client, &base, peer_id).await?;
    Ok((got, gave))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 point 8: the link key was written with the default mode and narrowed to 0600
    /// only afterwards (readable by others meanwhile), and renamed without an fsync.
    #[test]
    #[cfg(unix)]
    fn a_link_key_is_owner_only_from_the_moment_its_file_exists() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let key = pending_key(d.path());
        let (r, seen) = crate::durable::hook::watch(|| write_secret(&key, b"PRIVATE KEY"));
        r.unwrap();
        // Every file that held (or was about to hold) the key, as another user would have
        // seen it the moment it appeared: empty and owner-only.
        assert_eq!(
            seen.len(),
            1,
            "written through one temporary file: {seen:?}"
        );
        let (tmp, mode, len) = &seen[0];
        assert_eq!(tmp.parent(), Some(d.path()), "beside the key: {seen:?}");
        assert_eq!((*mode, *len), (0o600, 0), "{seen:?}");
        assert!(!tmp.exists(), "renamed into place");
        let m = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"PRIVATE KEY");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
