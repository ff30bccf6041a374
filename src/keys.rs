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
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::id::ServerId;

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

/// Write a file with owner-only permissions where it holds a secret.
fn write(path: &Path, data: &[u8], secret: bool) -> Result<(), KeyError> {
    let w = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(folder).map_err(w)?;
    io::Write::write_all(&mut tmp, data).map_err(w)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o600)).map_err(w)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    tmp.as_file().sync_all().map_err(w)?;
    tmp.persist(path).map_err(|e| w(e.error))?;
    Ok(())
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
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = signing
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyError::Generate {
            what: "the cluster signing key",
            why: e.to_string(),
        })?;
    write(&dir.join("cluster.key"), pem.as_bytes(), true)?;
    write(
        &dir.join("cluster.pub"),
        format!("{}\n", hex::encode(signing.verifying_key().as_bytes())).as_bytes(),
        false,
    )?;

    let ca_key = KeyPair::generate().map_err(gen_err("the CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the CA"))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "updhub cluster CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca_params, 20);
    let ca = ca_params.self_signed(&ca_key).map_err(gen_err("the CA"))?;
    write(&dir.join("ca.crt"), ca.pem().as_bytes(), false)?;
    write(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), true)?;

    let mut sans = vec![
        name.to_owned(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    sans.dedup();
    let key = KeyPair::generate().map_err(gen_err("the server key"))?;
    let mut p = CertificateParams::new(sans).map_err(gen_err("the server certificate"))?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut p, 10);
    let cert = p
        .signed_by(&key, &ca, &ca_key)
        .map_err(gen_err("the server certificate"))?;
    write(&dir.join("server.crt"), cert.pem().as_bytes(), false)?;
    write(
        &dir.join("server.key"),
        key.serialize_pem().as_bytes(),
        true,
    )?;
    Ok(())
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
    Ok(())
}

/// Issue this node's client certificate (common name = server id) from the cluster CA.
///
/// # Errors
/// Unreadable CA files or generation errors.
pub fn issue_node_cert(dir: &Path, id: &ServerId) -> Result<(), KeyError> {
    let ca_pem = String::from_utf8_lossy(&read(&dir.join("ca.crt"))?).into_owned();
    let ca_key_pem = String::from_utf8_lossy(&read(&dir.join("ca.key"))?).into_owned();
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| bad(&dir.join("ca.key"), e))?;
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem)
        .map_err(|e| bad(&dir.join("ca.crt"), e))?
        .self_signed(&ca_key)
        .map_err(|e| bad(&dir.join("ca.key"), format!("does not match ca.crt: {e}")))?;
    let key = KeyPair::generate().map_err(gen_err("the node key"))?;
    let mut p =
        CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the node certificate"))?;
    p.distinguished_name.push(DnType::CommonName, id.as_str());
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut p, 10);
    let cert = p
        .signed_by(&key, &ca, &ca_key)
        .map_err(gen_err("the node certificate"))?;
    write(&dir.join("node.crt"), cert.pem().as_bytes(), false)?;
    write(&dir.join("node.key"), key.serialize_pem().as_bytes(), true)?;
    Ok(())
}

/// The loaded shared keys.
struct Shared {
    signing: SigningKey,
    ca: CertificateDer<'static>,
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
    let ca = load_cert(&dir.join("ca.crt"))?.remove(0);
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

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(shared.ca.clone())
            .map_err(|e| bad(&dir.join("ca.crt"), format!("is not a usable CA ({e})")))?;
        let roots = Arc::new(roots);
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| KeyError::Tls(e.to_string()))?;
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
        let client_tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| KeyError::Tls(e.to_string()))?
            .with_root_certificates(roots)
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
        })
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
