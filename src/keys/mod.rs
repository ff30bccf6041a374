//! The cluster's shared keys (reference point 2): an ed25519 signing key for published
//! versions, a cluster CA, and one server certificate shared by every node; plus this node's
//! own client certificate, issued by the cluster CA with the server id as its common name.
//!
//! Files in `<data>/keys/`: `cluster.key` (PKCS#8 PEM) and `cluster.pub` (hex), `ca.crt`,
//! `ca.key`, `server.crt`, `server.key` (all exported to other nodes), `node.crt`, `node.key`
//! (this node only).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::id::ServerId;

/// The handshake-signature checks of a certificate verifier that only adds to the check of
/// the webpki verifier in its field `$inner` (client and server verifiers alike).
macro_rules! delegate_signatures {
    ($inner:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$inner.supported_verify_schemes()
        }
    };
}

pub mod ca;
pub mod renewal;

/// The files `keys export` carries to the other nodes.
pub const SHARED_FILES: [&str; 6] = [
    "cluster.key",
    "cluster.pub",
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
];

/// Errors about keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key or certificate file cannot be read or parsed.
    #[error("{path}: {why}; {fix}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
        /// What to do.
        fix: &'static str,
    },
    /// Writing a key file failed.
    #[error("{path}: {source}; check that the folder is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Generating a key or certificate failed.
    #[error("generating {what} failed: {why}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// TLS configuration failed.
    #[error("TLS setup: {0}; the certificates do not fit together, run `updhub init` again or copy the keys anew")]
    Tls(String),
}

const FIX_COPY: &str = "copy the cluster keys again with `updhub keys export --to DIR` on a node that has them and `updhub init --keys-from DIR` here";

fn bad(path: &Path, why: impl std::fmt::Display) -> KeyError {
    KeyError::Bad {
        path: path.to_owned(),
        why: why.to_string(),
        fix: FIX_COPY,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    fs::read(path).map_err(|e| bad(path, format!("cannot be read ({e})")))
}

/// Write a file of `keys/` durably (see [`crate::durable`]). `secret` says it holds one:
/// every file there is owner-only from its creation either way, as the folder is private.
fn write(path: &Path, data: &[u8], secret: bool) -> Result<(), KeyError> {
    write_file(path, data, secret, true)
}

/// [`write`], replacing an existing file only if `replace`.
fn write_file(path: &Path, data: &[u8], _secret: bool, replace: bool) -> Result<(), KeyError> {
    let w = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    if replace {
        crate::durable::write_atomic(path, data, crate::durable::SECRET).map_err(w)
    } else {
        crate::durable::write_new(path, data, crate::durable::SECRET).map_err(w)
    }
}

/// A new ed25519 key and its PKCS#8 PEM; `what` names it in errors.
fn new_signing_key(
    what: &'static str,
) -> Result<(SigningKey, impl std::ops::Deref<Target = String>), KeyError> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = signing
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyError::Generate {
            what,
            why: e.to_string(),
        })?;
    Ok((signing, pem))
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> KeyError {
    move |e| KeyError::Generate {
        what,
        why: e.to_string(),
    }
}

fn validity(params: &mut CertificateParams, years: i32) {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::days(1);
    params.not_before = rcgen::date_time_ymd(start.year(), start.month() as u8, start.day() as u8);
    params.not_after = rcgen::date_time_ymd(now.year() + years, now.month() as u8, 1);
}

/// Make a new license issuer at `path`: an ed25519 private key (PKCS#8 PEM, owner-only
/// permissions) for `updhub license issue --issuer-key`. An existing file is never replaced:
/// the keys it signed would lose their issuer.
///
/// # Errors
/// `path` exists, or generation or write errors.
pub fn new_issuer_key(path: &Path) -> Result<SigningKey, KeyError> {
    let (signing, pem) = new_signing_key("the license issuer key")?;
    write_file(path, pem.as_bytes(), true, false)?;
    Ok(signing)
}

/// Make a fresh set of cluster keys in `dir` (the first node of a cluster).
/// `name` is the cluster's DNS name (reference point 3), put in the server certificate.
///
/// # Errors
/// Generation or write errors.
pub fn generate(dir: &Path, name: &str) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let (signing, pem) = new_signing_key("the cluster signing key")?;
    write(&dir.join("cluster.key"), pem.as_bytes(), true)?;
    write(
        &dir.join("cluster.pub"),
        format!("{}\n", hex::encode(signing.verifying_key().as_bytes())).as_bytes(),
        false,
    )?;

    let ca_key = KeyPair::generate().map_err(gen_err("the CA key"))?;
    let mut ca_params = ca::ca_params(name, "updhub cluster CA")?;
    validity(&mut ca_params, 20);
    let ca = ca_params.self_signed(&ca_key).map_err(gen_err("the CA"))?;
    write(&dir.join("ca.crt"), ca.pem().as_bytes(), false)?;
    write(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), true)?;
    issue_server_cert(dir, name)
}

/// Issue the cluster's server certificate (for the cluster's DNS name `name`) from the CA in
/// `dir`, with the chain the CA's trust sends (see [`ca::CaTrust::chain_tail`]).
///
/// # Errors
/// Unreadable CA files, generation or write errors.
pub fn issue_server_cert(dir: &Path, name: &str) -> Result<(), KeyError> {
    let mut sans = vec![
        name.to_owned(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    sans.dedup();
    let mut p = CertificateParams::new(sans).map_err(gen_err("the server certificate"))?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    issue_own(dir, p, "server")
}

/// Issue this node's `{file}.crt` and `{file}.key` from the CA in `dir` with `params`, valid
/// for ten years, followed by the chain the CA's trust sends (see
/// [`ca::CaTrust::chain_tail`]).
fn issue_own(dir: &Path, mut params: CertificateParams, file: &str) -> Result<(), KeyError> {
    let (ca, ca_key) = load_ca(dir)?;
    let tail = ca::CaTrust::load(dir)?.chain_tail().to_owned();
    let key = KeyPair::generate().map_err(gen_err("a certificate's key"))?;
    validity(&mut params, 10);
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .map_err(gen_err("a certificate"))?;
    write(
        &dir.join(format!("{file}.crt")),
        format!("{}{tail}", cert.pem()).as_bytes(),
        false,
    )?;
    write(
        &dir.join(format!("{file}.key")),
        key.serialize_pem().as_bytes(),
        true,
    )
}

/// Copy the shared cluster files from `from` into `to` (both ways of `keys export` / `init
/// --keys-from`), checking each before anything is written.
///
/// # Errors
/// A missing or unreadable file in `from`, or a write error.
pub fn copy_shared(from: &Path, to: &Path) -> Result<(), KeyError> {
    let mut files = Vec::new();
    for name in SHARED_FILES {
        let p = from.join(name);
        files.push((name, read(&p)?));
    }
    // A CA rotation's overlap travels with the keys, so every member trusts both CAs; so
    // does the chain of publisher key rotations, so every member serves it to the children
    // that still trust an old key (`GET /v1/rotations`).
    for name in [ca::OLD, ca::CROSS, ROTATIONS] {
        let p = from.join(name);
        if p.exists() {
            files.push((name, read(&p)?));
        }
    }
    if let Some((_, chain)) = files.iter().find(|(n, _)| *n == ROTATIONS) {
        serde_json::from_slice::<Vec<Rotation>>(chain).map_err(|e| {
            bad(
                &from.join(ROTATIONS),
                format!("is not a list of rotations ({e})"),
            )
        })?;
    }
    // Parse them all first, so a bad set is refused before anything changes.
    let check = tempfile::tempdir().map_err(|source| KeyError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    for (name, data) in &files {
        write(&check.path().join(name), data, true)?;
    }
    load_shared(check.path()).map_err(|e| match e {
        KeyError::Bad { path, why, fix } => KeyError::Bad {
            path: from.join(path.file_name().unwrap_or_default()),
            why,
            fix,
        },
        other => other,
    })?;
    fs::create_dir_all(to).map_err(|source| KeyError::Write {
        path: to.to_owned(),
        source,
    })?;
    for (name, data) in &files {
        write(&to.join(name), data, name.ends_with(".key"))?;
    }
    for name in [ca::OLD, ca::CROSS] {
        if !files.iter().any(|(n, _)| *n == name) && to.join(name).exists() {
            fs::remove_file(to.join(name)).map_err(|source| KeyError::Write {
                path: to.join(name),
                source,
            })?;
        }
    }
    Ok(())
}

/// Issue this node's client certificate (common name = server id) from the cluster CA.
///
/// # Errors
/// Unreadable CA files or generation errors.
pub fn issue_node_cert(dir: &Path, id: &ServerId) -> Result<(), KeyError> {
    let mut p =
        CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the node certificate"))?;
    p.distinguished_name.push(DnType::CommonName, id.as_str());
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue_own(dir, p, "node")
}

/// The cluster CA, to issue certificates with.
fn load_ca(dir: &Path) -> Result<(rcgen::Certificate, KeyPair), KeyError> {
    ca::recover(dir)?;
    let ca_pem = String::from_utf8_lossy(&read(&dir.join("ca.crt"))?).into_owned();
    let ca_key_pem = String::from_utf8_lossy(&read(&dir.join("ca.key"))?).into_owned();
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| bad(&dir.join("ca.key"), e))?;
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem)
        .map_err(|e| bad(&dir.join("ca.crt"), e))?
        .self_signed(&ca_key)
        .map_err(|e| bad(&dir.join("ca.key"), format!("does not match ca.crt: {e}")))?;
    Ok((ca, ca_key))
}

/// A node enrolling by link: a new key pair of its own and a certificate request for `id`.
/// Returns (private key PEM, request PEM); the key never leaves this node.
///
/// # Errors
/// Generation errors.
pub fn link_request(id: &str) -> Result<(String, String), KeyError> {
    let key = KeyPair::generate().map_err(gen_err("the link key"))?;
    let mut p =
        CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the link request"))?;
    p.distinguished_name.push(DnType::CommonName, id);
    let csr = p
        .serialize_request(&key)
        .map_err(gen_err("the link request"))?;
    let pem = csr.pem().map_err(gen_err("the link request"))?;
    Ok((key.serialize_pem(), pem))
}

/// Issue a client certificate from the cluster CA in `dir` for the key in the certificate
/// request `csr_pem`, made out to `id` whatever the request asks (only the key is taken
/// from it): client authentication only, valid for two years. Returns its PEM, followed by
/// the cross-certificate while a CA rotation's overlap lasts.
///
/// # Errors
/// A request that does not parse or whose signature does not verify, or CA errors.
pub fn issue_link_cert(dir: &Path, csr_pem: &str, id: &str) -> Result<String, String> {
    let (ca, ca_key) = load_ca(dir).map_err(|e| e.to_string())?;
    let tail = ca::CaTrust::load(dir)
        .map_err(|e| e.to_string())?
        .chain_tail()
        .to_owned();
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| format!("the certificate request does not parse or verify ({e})"))?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.distinguished_name.push(DnType::CommonName, id);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.is_ca = IsCa::ExplicitNoCa;
    validity(&mut p, 2);
    csr.params = p;
    let cert = csr
        .signed_by(&ca, &ca_key)
        .map_err(|e| format!("issuing the certificate failed ({e})"))?;
    Ok(format!("{}{tail}", cert.pem()))
}

/// Write the files of a link enrollment into `dir/upstream/` (replacing an older link),
/// after checking that they load together.
///
/// # Errors
/// Files that do not fit together, or write errors.
pub fn write_upstream(
    dir: &Path,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    link: &LinkFile,
) -> Result<(), KeyError> {
    let check = tempfile::tempdir_in(dir).map_err(|source| KeyError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let staged = check.path().join("upstream");
    let write_all = |to: &Path| -> Result<(), KeyError> {
        fs::create_dir_all(to).map_err(|source| KeyError::Write {
            path: to.to_owned(),
            source,
        })?;
        write(&to.join("ca.crt"), ca_pem.as_bytes(), false)?;
        write(&to.join("link.crt"), cert_pem.as_bytes(), false)?;
        write(&to.join("link.key"), key_pem.as_bytes(), true)?;
        write(
            &to.join("link.json"),
            &serde_json::to_vec_pretty(link).expect("a link file serializes"),
            false,
        )
    };
    check_issued(ca_pem, cert_pem, key_pem).map_err(|why| KeyError::Bad {
        path: dir.join("upstream"),
        why,
        fix: "nothing was changed; enroll again (`updhub link join URL TOKEN` with a new token, or `updhub link request` and carry the new request)",
    })?;
    write_all(&staged)?;
    load_upstream(check.path())?;
    write_all(&dir.join("upstream"))
}

/// That the link certificate `cert_pem` was issued by the CA `ca_pem` for client
/// authentication, and certifies the key `key_pem` (which never left this node).
fn check_issued(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<(), String> {
    let first =
        |pem: &str, what: &str| first_cert(pem.as_bytes()).map_err(|e| format!("the {what} {e}"));
    let cert = first(cert_pem, "link certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(first(ca_pem, "parent's CA certificate")?)
        .map_err(|e| format!("the parent's CA certificate is not usable ({e})"))?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| e.to_string())?
        .verify_client_cert(&cert, &[], rustls::pki_types::UnixTime::now())
        .map_err(|e| {
            format!(
                "the link certificate is not a client certificate issued by the parent's CA ({e})"
            )
        })?;
    let key = KeyPair::from_pem(key_pem).map_err(|e| format!("the link key: {e}"))?;
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("the link certificate does not parse ({e})"))?;
    if x.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(
            "the link certificate certifies another key than this node's: the answer belongs to another request".into(),
        );
    }
    Ok(())
}

/// The loaded shared keys.
struct Shared {
    signing: SigningKey,
    ca: ca::CaTrust,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn load_cert(path: &Path) -> Result<Vec<CertificateDer<'static>>, KeyError> {
    let data = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(path, format!("is not a PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(bad(path, "holds no certificate"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, KeyError> {
    let data = read(path)?;
    PrivateKeyDer::from_pem_slice(&data)
        .map_err(|e| bad(path, format!("is not a PEM private key ({e})")))
}

fn load_shared(dir: &Path) -> Result<Shared, KeyError> {
    let sk_path = dir.join("cluster.key");
    let pem = String::from_utf8(read(&sk_path)?).map_err(|_| bad(&sk_path, "is not text"))?;
    let signing = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| bad(&sk_path, format!("is not an ed25519 PKCS#8 PEM key ({e})")))?;
    let pub_path = dir.join("cluster.pub");
    let pub_hex = String::from_utf8_lossy(&read(&pub_path)?).trim().to_owned();
    if pub_hex != hex::encode(signing.verifying_key().as_bytes()) {
        return Err(bad(&pub_path, "does not match cluster.key"));
    }
    let ca = ca::CaTrust::load(dir)?;
    let server_chain = load_cert(&dir.join("server.crt"))?;
    let server_key = load_key(&dir.join("server.key"))?;
    let _ = load_key(&dir.join("ca.key"))?;
    Ok(Shared {
        signing,
        ca,
        server_chain,
        server_key,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's loaded keys, ready for TLS and signing.
#[derive(Clone)]
pub struct ClusterKeys {
    /// Signs published versions (only the top parent uses it).
    pub signing: Arc<SigningKey>,
    /// Verifies published versions.
    pub verifying: VerifyingKey,
    /// mTLS server side: only clients with a certificate of the cluster CA get through.
    pub server_tls: Arc<rustls::ServerConfig>,
    /// mTLS client side: trusts the cluster CA, presents this node's certificate.
    pub client_tls: Arc<rustls::ClientConfig>,
    /// The station listener: the same server certificate, no client certificate asked
    /// (stations authenticate with their own credentials).
    pub station_tls: Arc<rustls::ServerConfig>,
    /// The link to a parent in another trust domain, when this node enrolled by link
    /// (`keys/upstream/`); None for a top parent, a cluster member, or a child that shares
    /// its parent's keys.
    pub upstream: Option<Arc<Upstream>>,
    /// Fingerprints of the client certificates of removed links: refused at the handshake.
    pub removed: Arc<std::sync::RwLock<std::collections::HashSet<[u8; 32]>>>,
    /// This cluster's CA, and the old one while a rotation's overlap lasts.
    pub ca: Arc<ca::CaTrust>,
}

/// What a node enrolled by link trusts of its parent, and how it proves itself to it
/// (`keys/upstream/`: `ca.crt`, `link.crt`, `link.key`, `link.json`). It holds no private
/// key of the parent.
#[derive(Debug)]
pub struct Upstream {
    /// The parent's node id.
    pub parent_id: String,
    /// "child" or "peer".
    pub kind: String,
    /// The publisher keys whose signed versions this node accepts (the origin's); moved on
    /// by the origin's signed key rotations (see [`Rotation`]).
    pub publishers: std::sync::RwLock<Vec<VerifyingKey>>,
    /// The parent's own key, which signs the grants it donates (moved on by the rotations of
    /// the origin's key when the parent is the origin).
    pub donor: std::sync::RwLock<VerifyingKey>,
    /// What changes when the parent rotates its CA: replaced whole, in a running node too.
    pub tls: std::sync::RwLock<Arc<UpstreamTls>>,
}

/// The parent's CA as this node trusts it, and the link certificate it presents.
#[derive(Debug)]
pub struct UpstreamTls {
    /// The parent's CA (and its old one during a rotation's overlap).
    pub ca: ca::CaTrust,
    /// Which of them issued the link certificate.
    pub link_issuer: Option<ca::Issuer>,
    /// mTLS to the parent: trusts only the parent's CA(s), presents the link certificate.
    pub client_tls: Arc<rustls::ClientConfig>,
}

impl Upstream {
    /// The parent's CA, the link certificate's issuer and the TLS client in force.
    pub fn tls(&self) -> Arc<UpstreamTls> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Read `dir/upstream/` again after the parent's CA or the link certificate changed.
    ///
    /// # Errors
    /// Files that do not fit together.
    pub fn reload(&self, dir: &Path) -> Result<(), KeyError> {
        let fresh = upstream_tls(&dir.join("upstream"))?;
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

/// What `keys/upstream/link.json` holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LinkFile {
    /// The parent's node id.
    pub parent_id: String,
    /// "child" or "peer".
    pub kind: String,
    /// Publisher keys (hex).
    pub publishers: Vec<String>,
    /// The parent's own key (hex).
    pub donor: String,
    /// When this node enrolled.
    pub enrolled: chrono::DateTime<chrono::Utc>,
}

/// A publisher key rotation (`updhub keys rotate`), as TUF rotates its root: the new key,
/// signed by the old one. A node that trusts the old key follows a chain of these to the
/// newest key, and trusts the old one no more. Signed bytes are a fixed text layout, never
/// a serializer's output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rotation {
    /// "updhub-rotation-1".
    pub format: String,
    /// The key rotated away from (hex).
    pub old: String,
    /// The key rotated to (hex).
    pub new: String,
    /// 1 for the first rotation of this publisher, then 2, 3 ...
    pub number: u64,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The old key's ed25519 signature over [`Rotation::signed_bytes`] (hex).
    pub signature: String,
}

const ROTATION_FORMAT: &str = "updhub-rotation-1";

impl Rotation {
    fn signed_bytes(
        old: &str,
        new: &str,
        number: u64,
        at: &chrono::DateTime<chrono::Utc>,
    ) -> Vec<u8> {
        format!(
            "{ROTATION_FORMAT}\nold {old}\nnew {new}\nnumber {number}\nat {}\n",
            at.timestamp()
        )
        .into_bytes()
    }

    /// Rotate from `old` to `new`.
    pub fn sign(old: &SigningKey, new: &VerifyingKey, number: u64) -> Rotation {
        use ed25519_dalek::Signer;
        let at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0)
            .expect("now is a valid time");
        let (o, n) = (
            hex::encode(old.verifying_key().as_bytes()),
            hex::encode(new.as_bytes()),
        );
        let sig = old.sign(&Self::signed_bytes(&o, &n, number, &at));
        Rotation {
            format: ROTATION_FORMAT.to_owned(),
            old: o,
            new: n,
            number,
            at,
            signature: hex::encode(sig.to_bytes()),
        }
    }

    /// The keys, after checking that the old key signed the document.
    ///
    /// # Errors
    /// A malformed document, or a signature the old key did not make.
    pub fn verify(&self) -> Result<(VerifyingKey, VerifyingKey), String> {
        use ed25519_dalek::Verifier;
        let key = |h: &str| -> Result<VerifyingKey, String> {
            let b: [u8; 32] = hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("{h:?} is not an ed25519 key"))?;
            VerifyingKey::from_bytes(&b).map_err(|e| e.to_string())
        };
        if self.format != ROTATION_FORMAT {
            return Err(format!("unknown format {:?}", self.format));
        }
        let (old, new) = (key(&self.old)?, key(&self.new)?);
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not 64 bytes of hex")?;
        old.verify(
            &Self::signed_bytes(&self.old, &self.new, self.number, &self.at),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .map_err(|_| {
            format!(
                "rotation {} to key {} is not signed by the key it rotates away from ({}): refused",
                self.number,
                &self.new[..16.min(self.new.len())],
                &self.old[..16.min(self.old.len())]
            )
        })?;
        Ok((old, new))
    }
}

/// Follow `chain` from the keys in `trusted`: each rotation away from a trusted key, signed
/// by it, replaces it by the new key. Returns the keys trusted at the end (the old ones
/// dropped) and whether anything changed.
///
/// # Errors
/// A rotation away from a trusted key that the key did not sign.
pub fn follow_rotations(
    trusted: &[VerifyingKey],
    chain: &[Rotation],
) -> Result<(Vec<VerifyingKey>, bool), String> {
    let mut keys = trusted.to_vec();
    let mut changed = false;
    for r in chain {
        let Some(at) = keys.iter().position(|k| hex::encode(k.as_bytes()) == r.old) else {
            continue;
        };
        let (_, new) = r.verify()?;
        keys[at] = new;
        changed = true;
    }
    Ok((keys, changed))
}

/// The file of the chain of publisher key rotations.
const ROTATIONS: &str = "rotations.json";

/// The rotations file of this cluster's own publisher key, or of the origin's (learned).
fn rotations_path(dir: &Path, upstream: bool) -> PathBuf {
    if upstream {
        dir.join("upstream").join(ROTATIONS)
    } else {
        dir.join(ROTATIONS)
    }
}

fn read_rotations(path: &Path) -> Result<Vec<Rotation>, KeyError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| bad(path, format!("is not a list of rotations ({e})"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(bad(path, format!("cannot be read ({e})"))),
    }
}

/// `keys rotate`: a new publisher key for this cluster, signed over by the old one. The
/// new key replaces `cluster.key`/`cluster.pub`; the rotation joins `rotations.json`, which
/// the interserver port serves so children follow. Returns the rotation.
///
/// # Errors
/// Unreadable keys or write errors.
pub fn rotate(dir: &Path) -> Result<Rotation, KeyError> {
    let shared = load_shared(dir)?;
    let path = rotations_path(dir, false);
    let mut chain = read_rotations(&path)?;
    let new = SigningKey::generate(&mut rand::rngs::OsRng);
    let r = Rotation::sign(
        &shared.signing,
        &new.verifying_key(),
        chain.len() as u64 + 1,
    );
    chain.push(r.clone());
    let pem = new
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyError::Generate {
            what: "the new publisher key",
            why: e.to_string(),
        })?;
    // The chain first: a crash between the writes leaves the old key with a rotation that
    // names a key nobody holds, which a second `keys rotate` supersedes.
    write(
        &path,
        &serde_json::to_vec_pretty(&chain).expect("rotations serialize"),
        false,
    )?;
    write(&dir.join("cluster.key"), pem.as_bytes(), true)?;
    write(
        &dir.join("cluster.pub"),
        format!("{}\n", hex::encode(new.verifying_key().as_bytes())).as_bytes(),
        false,
    )?;
    Ok(r)
}

/// A linked node learned rotations of the origin's publisher key: keep the chain (served on
/// to its own children), the keys it now trusts, and its donor's key (which moves with them
/// when its parent is the origin: one key signs both versions and grants).
///
/// # Errors
/// Write errors.
pub fn learn_rotations(
    dir: &Path,
    upstream: &Upstream,
    chain: &[Rotation],
    keys: Vec<VerifyingKey>,
    donor: VerifyingKey,
) -> Result<(), KeyError> {
    let json_path = dir.join("upstream").join("link.json");
    let mut link: LinkFile = serde_json::from_slice(&read(&json_path)?)
        .map_err(|e| bad(&json_path, format!("is not a link file ({e})")))?;
    link.publishers = keys.iter().map(|k| hex::encode(k.as_bytes())).collect();
    link.donor = hex::encode(donor.as_bytes());
    write(
        &rotations_path(dir, true),
        &serde_json::to_vec_pretty(chain).expect("rotations serialize"),
        false,
    )?;
    write(
        &json_path,
        &serde_json::to_vec_pretty(&link).expect("a link file serializes"),
        false,
    )?;
    *upstream
        .publishers
        .write()
        .unwrap_or_else(|p| p.into_inner()) = keys;
    *upstream.donor.write().unwrap_or_else(|p| p.into_inner()) = donor;
    Ok(())
}

/// The rotation chain this node serves to its children: the origin's as learned through its
/// link, else its own cluster's.
///
/// # Errors
/// An unreadable rotations file.
pub fn served_rotations(dir: &Path, linked: bool) -> Result<Vec<Rotation>, KeyError> {
    read_rotations(&rotations_path(dir, linked))
}

/// The fingerprint of a certificate (blake3 of its DER), as bound at enrollment.
pub fn cert_fp(cert: &CertificateDer<'_>) -> [u8; 32] {
    *blake3::hash(cert.as_ref()).as_bytes()
}

/// The fingerprint of the first certificate of a PEM file's bytes, as hex: how `status`,
/// `cluster check` and enrollment tokens name a CA.
///
/// # Errors
/// Bytes that hold no PEM certificate.
pub fn pem_fp(pem: &[u8]) -> Result<String, String> {
    Ok(hex::encode(cert_fp(&first_cert(pem)?)))
}

/// The first certificate of PEM bytes.
///
/// # Errors
/// Bytes that hold no PEM certificate, said as the end of a sentence about them.
pub fn first_cert(pem: &[u8]) -> Result<CertificateDer<'static>, String> {
    CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or("holds no certificate")?
        .map_err(|e| format!("is not a PEM certificate ({e})"))
}

fn parse_hex_key(path: &Path, hex_key: &str) -> Result<VerifyingKey, KeyError> {
    verifying_key_hex(hex_key.trim()).map_err(|why| bad(path, why))
}

/// An ed25519 public key written as 64 hex digits (publisher, donor and grant keys).
///
/// # Errors
/// What is wrong with it, naming it.
pub fn verifying_key_hex(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{hex_key:?} is not a 64-hex-digit ed25519 key"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("{hex_key:?}: {e}"))
}

/// Load `dir/upstream/` if this node enrolled by link.
fn load_upstream(dir: &Path) -> Result<Option<Upstream>, KeyError> {
    let up = dir.join("upstream");
    let json_path = up.join("link.json");
    if !json_path.exists() {
        return Ok(None);
    }
    let link: LinkFile = serde_json::from_slice(&read(&json_path)?)
        .map_err(|e| bad(&json_path, format!("is not a link file ({e})")))?;
    let publishers = link
        .publishers
        .iter()
        .map(|k| parse_hex_key(&json_path, k))
        .collect::<Result<Vec<_>, _>>()?;
    if publishers.is_empty() {
        return Err(bad(&json_path, "names no publisher key"));
    }
    let donor = parse_hex_key(&json_path, &link.donor)?;
    Ok(Some(Upstream {
        parent_id: link.parent_id,
        kind: link.kind,
        publishers: std::sync::RwLock::new(publishers),
        donor: std::sync::RwLock::new(donor),
        tls: std::sync::RwLock::new(Arc::new(upstream_tls(&up)?)),
    }))
}

/// The TLS side of a link, from the folder `up` (`keys/upstream/`).
fn upstream_tls(up: &Path) -> Result<UpstreamTls, KeyError> {
    renewal::recover(up)?;
    let ca = ca::CaTrust::load(up)?;
    let chain = load_cert(&up.join("link.crt"))?;
    let key = load_key(&up.join("link.key"))?;
    let client_tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| KeyError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(ca.server_verifier()?)
        .with_client_auth_cert(chain.clone(), key)
        .map_err(|e| bad(&up.join("link.key"), format!("does not fit link.crt ({e})")))?;
    Ok(UpstreamTls {
        link_issuer: ca.issuer_of(&chain[0]),
        ca,
        client_tls: Arc::new(client_tls),
    })
}

/// The interserver port's client check: the cluster CA's (webpki), then the certificates of
/// removed links are refused, at the handshake, so a removed child gets no byte.
#[derive(Debug)]
struct LinkAwareVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    /// During a CA rotation: the old CA's check, and when the overlap ends (unix seconds).
    old: Option<(ca::ClientCheck, u64)>,
    removed: Arc<std::sync::RwLock<std::collections::HashSet<[u8; 32]>>>,
}

impl rustls::server::danger::ClientCertVerifier for LinkAwareVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(_)
                if self
                    .old
                    .as_ref()
                    .is_some_and(|(_, ends)| now.as_secs() < *ends) =>
            {
                let (old, _) = self.old.as_ref().expect("checked above");
                old.verify_client_cert(end_entity, intermediates, now)?
            }
            other => other?,
        };
        if self
            .removed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&cert_fp(end_entity))
        {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(verified)
    }

    delegate_signatures!(inner);
}

impl std::fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKeys({})", hex::encode(self.verifying.as_bytes()))
    }
}

impl ClusterKeys {
    /// Load keys from `dir` and build the TLS configurations.
    ///
    /// # Errors
    /// Any missing, unreadable or mismatched file, named with the fix.
    pub fn load(dir: &Path) -> Result<ClusterKeys, KeyError> {
        let shared = load_shared(dir)?;
        let node_chain = load_cert(&dir.join("node.crt"))?;
        let node_key = load_key(&dir.join("node.key"))?;

        let removed = Arc::new(std::sync::RwLock::new(std::collections::HashSet::new()));
        let (inner, old) = shared.ca.client_verifier()?;
        let verifier = Arc::new(LinkAwareVerifier {
            inner,
            old,
            removed: removed.clone(),
        });
        let mut station_tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| KeyError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(shared.server_chain.clone(), shared.server_key.clone_key())
            .map_err(|e| {
                bad(
                    &dir.join("server.key"),
                    format!("does not fit server.crt ({e})"),
                )
            })?;
        station_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| KeyError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(shared.server_chain, shared.server_key)
            .map_err(|e| {
                bad(
                    &dir.join("server.key"),
                    format!("does not fit server.crt ({e})"),
                )
            })?;
        let mut server_tls = server_tls;
        server_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        // No session resumption: a resumed session skips the client certificate check, so a
        // link removed since would get through the handshake (the per-request check would
        // still cut it, but without telling the node why).
        server_tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server_tls.send_tls13_tickets = 0;
        let client_tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| KeyError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(shared.ca.server_verifier()?)
            .with_client_auth_cert(node_chain, node_key)
            .map_err(|e| {
                bad(
                    &dir.join("node.key"),
                    format!("does not fit node.crt ({e})"),
                )
            })?;
        Ok(ClusterKeys {
            verifying: shared.signing.verifying_key(),
            signing: Arc::new(shared.signing),
            server_tls: Arc::new(server_tls),
            client_tls: Arc::new(client_tls),
            station_tls: Arc::new(station_tls),
            upstream: load_upstream(dir)?.map(Arc::new),
            removed,
            ca: Arc::new(shared.ca),
        })
    }

    /// The keys whose signature on a published version this node accepts: the origin's
    /// publisher keys learned at enrollment, or this cluster's own.
    pub fn publishers(&self) -> Vec<VerifyingKey> {
        match &self.upstream {
            Some(u) => u
                .publishers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            None => vec![self.verifying],
        }
    }

    /// The key that signs the grants this node receives from its parent.
    pub fn donor(&self) -> VerifyingKey {
        self.upstream.as_ref().map_or(self.verifying, |u| {
            *u.donor.read().unwrap_or_else(|p| p.into_inner())
        })
    }

    /// The TLS client for the parent (or an upstream zone): the link's when enrolled by
    /// link, else the cluster's own.
    pub fn upstream_tls(&self) -> Arc<rustls::ClientConfig> {
        self.upstream
            .as_ref()
            .map_or_else(|| self.client_tls.clone(), |u| u.tls().client_tls.clone())
    }
}

/// The common name of a peer's certificate: the server id of the calling node.
pub fn peer_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = x
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_copy() {
        let a = tempfile::tempdir().unwrap();
        generate(a.path(), "hub.example").unwrap();
        issue_node_cert(a.path(), &ServerId::new("n1").unwrap()).unwrap();
        let ka = ClusterKeys::load(a.path()).unwrap();
        let b = tempfile::tempdir().unwrap();
        copy_shared(a.path(), b.path()).unwrap();
        issue_node_cert(b.path(), &ServerId::new("n2").unwrap()).unwrap();
        let kb = ClusterKeys::load(b.path()).unwrap();
        assert_eq!(ka.verifying, kb.verifying);
        let node = load_cert(&b.path().join("node.crt")).unwrap().remove(0);
        assert_eq!(peer_name(&node).as_deref(), Some("n2"));
        assert!(served_rotations(b.path(), false).unwrap().is_empty());
        // After a publisher key rotation the chain travels with the keys: a member made
        // from them serves it to children that still trust the old key.
        let r = rotate(a.path()).unwrap();
        let c = tempfile::tempdir().unwrap();
        copy_shared(a.path(), c.path()).unwrap();
        assert_eq!(served_rotations(c.path(), false).unwrap(), vec![r]);
        // A damaged chain is refused before anything is copied.
        fs::write(a.path().join(ROTATIONS), "not json").unwrap();
        let d = tempfile::tempdir().unwrap();
        let err = copy_shared(a.path(), d.path()).unwrap_err().to_string();
        assert!(err.contains("rotations.json"), "{err}");
        assert!(!d.path().join("cluster.key").exists());
    }

    #[test]
    fn rotations_chain_from_a_trusted_key_and_a_forged_link_is_refused() {
        let k1 = SigningKey::generate(&mut rand::rngs::OsRng);
        let k2 = SigningKey::generate(&mut rand::rngs::OsRng);
        let k3 = SigningKey::generate(&mut rand::rngs::OsRng);
        let r1 = Rotation::sign(&k1, &k2.verifying_key(), 1);
        let r2 = Rotation::sign(&k2, &k3.verifying_key(), 2);
        let (keys, changed) =
            follow_rotations(&[k1.verifying_key()], &[r1.clone(), r2.clone()]).unwrap();
        assert!(changed);
        assert_eq!(keys, vec![k3.verifying_key()], "the old keys are dropped");
        // Rotations away from keys not trusted here change nothing.
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let (keys, changed) =
            follow_rotations(&[other.verifying_key()], std::slice::from_ref(&r1)).unwrap();
        assert!(!changed);
        assert_eq!(keys, vec![other.verifying_key()]);
        // A rotation whose signature is not the old key's, or whose fields were changed.
        let mut forged = Rotation::sign(&k3, &k3.verifying_key(), 2);
        forged.old = r1.new.clone();
        let err = follow_rotations(&[k1.verifying_key()], &[r1.clone(), forged]).unwrap_err();
        assert!(
            err.contains("not signed by the key it rotates away from"),
            "{err}"
        );
        let mut moved = r2;
        moved.number = 7;
        assert!(moved.verify().is_err());
        // The signed text is stable (no serializer output inside the signature).
        assert_eq!(
            String::from_utf8(Rotation::signed_bytes("aa", "bb", 3, &r1.at)).unwrap(),
            format!(
                "updhub-rotation-1\nold aa\nnew bb\nnumber 3\nat {}\n",
                r1.at.timestamp()
            )
        );
    }

    #[test]
    fn a_damaged_key_is_refused_with_its_path() {
        let a = tempfile::tempdir().unwrap();
        generate(a.path(), "hub.example").unwrap();
        fs::write(a.path().join("cluster.key"), "garbage").unwrap();
        let b = tempfile::tempdir().unwrap();
        let err = copy_shared(a.path(), b.path()).unwrap_err().to_string();
        assert!(err.contains("cluster.key"), "{err}");
        assert!(
            !b.path().join("ca.crt").exists(),
            "nothing copied from a bad set"
        );
    }
}
