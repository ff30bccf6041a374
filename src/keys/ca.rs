//! Rotating a cluster CA with an overlap period (`keys rotate-ca`), as Kubernetes rotates
//! its cluster CA: for a while both CAs are trusted, then only the new one.
//!
//! Three files describe a rotation, alike on the cluster that rotates (`keys/`) and on a
//! linked child that learned it from its parent (`keys/upstream/`):
//! - `ca.crt`: the CA in force (it issues every new certificate);
//! - `ca-old.crt`: the CA rotated away from, trusted until the overlap ends;
//! - `ca-cross.crt`: the new CA's key and name certified by the old CA. It is how the old
//!   CA vouches for the new one (a child checks it with only the old CA certificate), and
//!   its end of validity, signed by the old CA, is the end of the overlap. Certificates
//!   issued during the overlap carry it as their chain, so a node that trusts only the old
//!   CA (a child that has not learned the new one yet, a member that has not got the new
//!   keys yet) still verifies them.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, UnixTime};

use super::{bad, first_cert, gen_err, pem_fp, provider, read, write, KeyError};

/// The old CA, kept while the overlap lasts.
pub const OLD: &str = "ca-old.crt";
/// The new CA certified by the old one; its end is the end of the overlap.
pub const CROSS: &str = "ca-cross.crt";

/// The CAs a node trusts for one trust domain (its own cluster's, or its parent's).
#[derive(Debug, Clone)]
pub struct CaTrust {
    /// The CA in force (PEM), which issues.
    pub current_pem: String,
    /// It, parsed.
    pub current: CertificateDer<'static>,
    /// A rotation's overlap, while its files are there (ended or not).
    pub overlap: Option<Overlap>,
}

/// The old CA of a rotation and the cross-certificate by which it vouched for the new one.
#[derive(Debug, Clone)]
pub struct Overlap {
    /// The old CA (PEM).
    pub old_pem: String,
    /// It, parsed.
    pub old: CertificateDer<'static>,
    /// The cross-certificate (PEM).
    pub cross_pem: String,
    /// It, parsed.
    pub cross: CertificateDer<'static>,
    /// When the overlap ends: the cross-certificate's end, signed by the old CA.
    pub ends: DateTime<Utc>,
}

impl CaTrust {
    /// Load `dir/ca.crt` and, if a rotation left them, `dir/ca-old.crt` and `ca-cross.crt`
    /// (checked: the old CA certified the current one's key).
    ///
    /// # Errors
    /// Unreadable files, or overlap files that do not fit the CA in force.
    pub fn load(dir: &Path) -> Result<CaTrust, KeyError> {
        recover(dir)?;
        let path = dir.join("ca.crt");
        let current_pem = read_text(&path)?;
        let current = first_cert(current_pem.as_bytes()).map_err(|e| bad(&path, e))?;
        let old_path = dir.join(OLD);
        let overlap = if old_path.exists() {
            let old_pem = read_text(&old_path)?;
            let cross_path = dir.join(CROSS);
            let cross_pem = read_text(&cross_path)?;
            let old = first_cert(old_pem.as_bytes()).map_err(|e| bad(&old_path, e))?;
            let cross = first_cert(cross_pem.as_bytes()).map_err(|e| bad(&cross_path, e))?;
            match vouched(&cross, &current, &old, None) {
                Ok(ends) => Some(Overlap {
                    old_pem,
                    old,
                    cross_pem,
                    cross,
                    ends,
                }),
                // Left by a rotation that stopped before `ca.crt` changed (or damaged):
                // trusting less is the safe side.
                Err(why) => {
                    tracing::warn!(
                        "{}: {why}; ignored: only {} is trusted",
                        cross_path.display(),
                        path.display()
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(CaTrust {
            current_pem,
            current,
            overlap,
        })
    }

    /// The overlap, if it has not ended at `now`.
    pub fn overlap_at(&self, now: DateTime<Utc>) -> Option<&Overlap> {
        self.overlap.as_ref().filter(|o| now < o.ends)
    }

    /// The fingerprint of the CA in force (hex).
    pub fn current_fp(&self) -> String {
        hex::encode(super::cert_fp(&self.current))
    }

    /// What names this trust in a header (`X-Updhub-Ca`): the CA in force, and the
    /// cross-certificate while an overlap lasts. A child that sees it change asks for the
    /// CA (`GET /v1/ca`).
    pub fn tag(&self) -> String {
        match self.overlap_at(Utc::now()) {
            Some(o) => format!(
                "{}+{}",
                &self.current_fp()[..16],
                &hex::encode(super::cert_fp(&o.cross))[..16]
            ),
            None => self.current_fp()[..16].to_owned(),
        }
    }

    /// Which of these CAs issued `cert` (its signature verifies under the CA's key).
    pub fn issuer_of(&self, cert: &CertificateDer<'_>) -> Option<Issuer> {
        if signed_by(cert, &self.current) {
            return Some(Issuer::Current {
                fp: self.current_fp(),
            });
        }
        let o = self.overlap.as_ref()?;
        signed_by(cert, &o.old).then(|| Issuer::Old {
            fp: hex::encode(super::cert_fp(&o.old)),
            until: o.ends,
        })
    }

    /// The chain to send after a certificate this trust's CA issued: the cross-certificate
    /// while the overlap lasts, so nodes that trust only the old CA verify it.
    pub fn chain_tail(&self) -> &str {
        self.overlap_at(Utc::now())
            .map_or("", |o| o.cross_pem.as_str())
    }

    /// A verifier for client certificates of this trust: the CA in force, or the old one
    /// until the overlap ends.
    pub(crate) fn client_verifier(
        &self,
    ) -> Result<(ClientCheck, Option<(ClientCheck, u64)>), KeyError> {
        let one = |ca: &CertificateDer<'static>| {
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                .build()
                .map_err(|e| KeyError::Tls(e.to_string()))
        };
        let old = match &self.overlap {
            Some(o) => Some((one(&o.old)?, unix(o.ends))),
            None => None,
        };
        Ok((one(&self.current)?, old))
    }

    /// A verifier for server certificates of this trust (as [`CaTrust::client_verifier`]).
    pub(crate) fn server_verifier(&self) -> Result<Arc<OverlapServerVerifier>, KeyError> {
        let one = |ca: &CertificateDer<'static>| {
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
                .build()
                .map_err(|e| KeyError::Tls(e.to_string()))
        };
        let old = match &self.overlap {
            Some(o) => Some((one(&o.old)?, unix(o.ends))),
            None => None,
        };
        Ok(Arc::new(OverlapServerVerifier {
            current: one(&self.current)?,
            old,
        }))
    }
}

/// A client-certificate check, as rustls takes it.
pub(crate) type ClientCheck = Arc<dyn rustls::server::danger::ClientCertVerifier>;

/// Which CA of a [`CaTrust`] issued a certificate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "ca", rename_all = "lowercase")]
pub enum Issuer {
    /// The CA in force. A struct variant, not a newtype: serde's internally tagged form
    /// (`{"ca": "current", "fp": ...}`) cannot hold a bare string.
    Current {
        /// Its fingerprint.
        fp: String,
    },
    /// The CA rotated away from: its certificates are refused after `until`.
    Old {
        /// Its fingerprint.
        fp: String,
        /// The end of the overlap.
        until: DateTime<Utc>,
    },
}

impl std::fmt::Display for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Issuer::Current { fp } => write!(f, "CA {}", &fp[..16]),
            Issuer::Old { fp, until } => {
                write!(f, "OLD CA {} (refused after {until})", &fp[..16])
            }
        }
    }
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    String::from_utf8(read(path)?).map_err(|_| bad(path, "is not text"))
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<rustls::RootCertStore>, KeyError> {
    let mut r = rustls::RootCertStore::empty();
    r.add(ca.clone())
        .map_err(|e| KeyError::Tls(format!("a CA is not usable ({e})")))?;
    Ok(Arc::new(r))
}

fn unix(t: DateTime<Utc>) -> u64 {
    t.timestamp().max(0) as u64
}

/// Whether `cert`'s signature verifies under `ca`'s key.
fn signed_by(cert: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> bool {
    let (Ok((_, c)), Ok((_, a))) = (
        x509_parser::parse_x509_certificate(cert.as_ref()),
        x509_parser::parse_x509_certificate(ca.as_ref()),
    ) else {
        return false;
    };
    c.verify_signature(Some(a.public_key())).is_ok()
}

/// That `cross` certifies the key and name of the CA `new`, as a CA, signed by the CA
/// `old`; and that `new` is a CA that signed itself. With `now`, that the cross-certificate
/// is valid then. Returns the end of the overlap (the cross-certificate's end).
///
/// # Errors
/// What does not hold, said as a sentence.
pub fn vouched(
    cross: &CertificateDer<'_>,
    new: &CertificateDer<'_>,
    old: &CertificateDer<'_>,
    now: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, String> {
    fn parse<'a>(
        c: &'a CertificateDer<'_>,
        what: &str,
    ) -> Result<x509_parser::certificate::X509Certificate<'a>, String> {
        x509_parser::parse_x509_certificate(c.as_ref())
            .map(|(_, x)| x)
            .map_err(|e| format!("the {what} does not parse ({e})"))
    }
    let (x, n, o) = (
        parse(cross, "cross-certificate")?,
        parse(new, "new CA certificate")?,
        parse(old, "old CA certificate")?,
    );
    if !n.is_ca() || n.verify_signature(None).is_err() {
        return Err("the new CA certificate is not a CA certificate that signed itself".into());
    }
    if x.public_key().raw != n.public_key().raw || x.subject().as_raw() != n.subject().as_raw() {
        return Err("the cross-certificate certifies another key or name than the new CA's".into());
    }
    if !x.is_ca() {
        return Err("the cross-certificate is not a CA certificate".into());
    }
    if x.issuer().as_raw() != o.subject().as_raw()
        || x.verify_signature(Some(o.public_key())).is_err()
    {
        return Err(
            "the cross-certificate is not signed by the CA trusted now: the new CA is not vouched for by the old one".into(),
        );
    }
    let ends = DateTime::from_timestamp(x.validity().not_after.timestamp(), 0)
        .ok_or("the cross-certificate's end is not a time")?;
    if let Some(now) = now {
        let starts = DateTime::from_timestamp(x.validity().not_before.timestamp(), 0)
            .ok_or("the cross-certificate's start is not a time")?;
        if now < starts || now >= ends {
            return Err(format!(
                "the cross-certificate is not valid now (valid from {starts} to {ends})"
            ));
        }
    }
    Ok(ends)
}

/// A server-certificate check for a trust in rotation: the CA in force, or the old one
/// until the overlap ends (then the old one no more, in a running process too).
#[derive(Debug)]
pub(crate) struct OverlapServerVerifier {
    current: Arc<rustls::client::WebPkiServerVerifier>,
    old: Option<(Arc<rustls::client::WebPkiServerVerifier>, u64)>,
}

impl rustls::client::danger::ServerCertVerifier for OverlapServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let first =
            self.current
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match (&first, &self.old) {
            (Err(_), Some((old, ends))) if now.as_secs() < *ends => {
                old.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            _ => first,
        }
    }

    delegate_signatures!(current);
}

/// A new CA's parameters: a name of its own (so paths through the old and the new CA never
/// mix), for the cluster `name`.
pub(super) fn ca_params(name: &str, cn: &str) -> Result<CertificateParams, KeyError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the CA"))?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// Make `params` valid from `from` to `to`, to the second.
fn valid_between(params: &mut CertificateParams, from: DateTime<Utc>, to: DateTime<Utc>) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + std::time::Duration::from_secs(unix(from));
    params.not_after = epoch + std::time::Duration::from_secs(unix(to));
}

/// What `keys rotate-ca` did.
#[derive(Debug, Clone)]
pub struct CaRotated {
    /// The old CA's fingerprint (hex).
    pub old_fp: String,
    /// The new CA's fingerprint (hex).
    pub new_fp: String,
    /// When certificates of the old CA stop being accepted.
    pub ends: DateTime<Utc>,
}

/// `keys rotate-ca`: a new CA key and certificate in `dir`, vouched for by the old CA with a
/// cross-certificate valid for `overlap`; this node's server and node certificates issued
/// anew by the new CA (their chains carry the cross-certificate). The old CA's private key
/// is not kept (it may be why the CA rotates).
///
/// # Errors
/// A rotation whose overlap has not ended, unreadable keys, or write errors.
pub fn rotate(
    dir: &Path,
    id: &crate::id::ServerId,
    name: &str,
    overlap: std::time::Duration,
) -> Result<CaRotated, KeyError> {
    let now = Utc::now();
    let trust = CaTrust::load(dir)?;
    if let Some(o) = trust.overlap_at(now) {
        return Err(KeyError::Bad {
            path: dir.join(OLD),
            why: format!("a CA rotation is in progress until {}", o.ends),
            fix: "finish it first: `updhub keys rotate-ca --finish` once every link shows the new CA (`updhub link list`)",
        });
    }
    let (old_ca, old_key) = super::load_ca(dir)?;
    let key = KeyPair::generate().map_err(gen_err("the new CA key"))?;
    let cn = format!("updhub cluster CA {}", now.format("%Y%m%dT%H%M%SZ"));
    let mut params = ca_params(name, &cn)?;
    super::validity(&mut params, 20);
    let new_ca = params
        .clone()
        .self_signed(&key)
        .map_err(gen_err("the CA"))?;
    let ends = now + chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::days(7));
    valid_between(&mut params, now - chrono::Duration::hours(1), ends);
    let cross = params
        .signed_by(&key, &old_ca, &old_key)
        .map_err(gen_err("the cross-certificate"))?;
    let rotated = CaRotated {
        old_fp: trust.current_fp(),
        new_fp: hex::encode(super::cert_fp(new_ca.der())),
        ends: vouched(cross.der(), new_ca.der(), &trust.current, Some(now)).map_err(|why| {
            KeyError::Generate {
                what: "the cross-certificate",
                why,
            }
        })?,
    };
    // The new pair and the overlap files first, beside the CA in force: a crash leaves the
    // old CA whole (the overlap files do not fit it and are ignored). Then the key and the
    // certificate move in; a crash between the two is finished by [`recover`].
    write(&dir.join(NEXT_KEY), key.serialize_pem().as_bytes(), true)?;
    write(&dir.join(NEXT_CRT), new_ca.pem().as_bytes(), false)?;
    write(&dir.join(OLD), trust.current_pem.as_bytes(), false)?;
    write(&dir.join(CROSS), cross.pem().as_bytes(), false)?;
    rename(dir, NEXT_KEY, "ca.key")?;
    rename(dir, NEXT_CRT, "ca.crt")?;
    super::issue_server_cert(dir, name)?;
    super::issue_node_cert(dir, id)?;
    Ok(rotated)
}

/// `keys rotate-ca --finish`: end a rotation now (or tidy one whose overlap ended): the old
/// CA and the cross-certificate go, and this node's server and node certificates are issued
/// anew by the CA in force, without the cross-certificate. Returns the old CA's fingerprint.
///
/// # Errors
/// No rotation to finish, or write errors.
pub fn finish(dir: &Path, id: &crate::id::ServerId, name: &str) -> Result<String, KeyError> {
    let trust = CaTrust::load(dir)?;
    let Some(o) = trust.overlap else {
        return Err(KeyError::Bad {
            path: dir.join(OLD),
            why: "there is no CA rotation to finish".into(),
            fix: "start one with `updhub keys rotate-ca`",
        });
    };
    for name in [CROSS, OLD] {
        std::fs::remove_file(dir.join(name)).map_err(|source| KeyError::Write {
            path: dir.join(name),
            source,
        })?;
    }
    super::issue_server_cert(dir, name)?;
    super::issue_node_cert(dir, id)?;
    pem_fp(o.old_pem.as_bytes()).map_err(|e| bad(&dir.join(OLD), e))
}

/// The new CA's key and certificate, written beside the CA in force before they move in.
const NEXT_KEY: &str = "ca-next.key";
const NEXT_CRT: &str = "ca-next.crt";

fn rename(dir: &Path, from: &str, to: &str) -> Result<(), KeyError> {
    crate::durable::rename(&dir.join(from), &dir.join(to)).map_err(|source| KeyError::Write {
        path: dir.join(to),
        source,
    })
}

/// Finish a rotation a crash stopped between moving the new CA's key into `ca.key` and its
/// certificate into `ca.crt` (the old CA's key is gone by then: only going forward is
/// possible). A crash before the key moved left the old CA whole: nothing to do.
///
/// # Errors
/// Unreadable files.
pub(super) fn recover(dir: &Path) -> Result<(), KeyError> {
    let next = dir.join(NEXT_CRT);
    if !next.exists() || dir.join(NEXT_KEY).exists() {
        return Ok(());
    }
    let cert = first_cert(&read(&next)?).map_err(|e| bad(&next, e))?;
    let key_pem = String::from_utf8_lossy(&read(&dir.join("ca.key"))?).into_owned();
    let fits = KeyPair::from_pem(&key_pem).is_ok_and(|k| {
        x509_parser::parse_x509_certificate(cert.as_ref()).is_ok_and(|(_, x)| {
            x.public_key().subject_public_key.data.as_ref() == k.public_key_raw()
        })
    });
    if fits {
        tracing::warn!(
            "{}: finishing a CA rotation that stopped half-way",
            dir.display()
        );
        rename(dir, NEXT_CRT, "ca.crt")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ServerId;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::server::danger::ClientCertVerifier as _;

    fn at(t: DateTime<Utc>) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(unix(t)))
    }

    fn chain(path: &Path) -> Vec<CertificateDer<'static>> {
        rustls::pki_types::pem::PemObject::pem_file_iter(path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn both_cas_are_trusted_until_the_overlap_ends_then_only_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        super::super::generate(d, "hub.example").unwrap();
        let id = ServerId::new("n1").unwrap();
        super::super::issue_node_cert(d, &id).unwrap();
        let old_dir = tempfile::tempdir().unwrap();
        for f in ["ca.crt", "server.crt", "node.crt"] {
            std::fs::copy(d.join(f), old_dir.path().join(f)).unwrap();
        }
        let r = rotate(d, &id, "hub.example", std::time::Duration::from_secs(3600)).unwrap();
        let trust = CaTrust::load(d).unwrap();
        assert_eq!(trust.current_fp(), r.new_fp);
        assert_eq!(trust.overlap.as_ref().unwrap().ends, r.ends);
        // A second rotation waits for the first to finish.
        let err = rotate(d, &id, "hub.example", std::time::Duration::from_secs(60))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("in progress") && err.contains("--finish"),
            "{err}"
        );

        let (during, after) = (Utc::now(), r.ends + chrono::Duration::seconds(1));
        let name = rustls::pki_types::ServerName::try_from("hub.example").unwrap();
        let servers = trust.server_verifier().unwrap();
        let (clients, old) = trust.client_verifier().unwrap();
        let clients = super::super::LinkAwareVerifier {
            inner: clients,
            old,
            removed: Default::default(),
        };
        let (old_server, old_node) = (
            chain(&old_dir.path().join("server.crt")),
            chain(&old_dir.path().join("node.crt")),
        );
        let (new_server, new_node) = (chain(&d.join("server.crt")), chain(&d.join("node.crt")));
        assert_eq!(
            new_server.len(),
            2,
            "the new server certificate carries the cross-certificate"
        );
        // During the overlap: both CAs' certificates.
        for (c, who) in [(&old_server, "old"), (&new_server, "new")] {
            servers
                .verify_server_cert(&c[0], &c[1..], &name, &[], at(during))
                .unwrap_or_else(|e| panic!("{who} server certificate: {e}"));
        }
        for (c, who) in [(&old_node, "old"), (&new_node, "new")] {
            clients
                .verify_client_cert(&c[0], &c[1..], at(during))
                .unwrap_or_else(|e| panic!("{who} node certificate: {e}"));
        }
        // A node that trusts only the old CA verifies the new certificates through the
        // cross-certificate.
        let only_old = CaTrust::load(old_dir.path())
            .unwrap()
            .server_verifier()
            .unwrap();
        only_old
            .verify_server_cert(&new_server[0], &new_server[1..], &name, &[], at(during))
            .unwrap();
        // After it: the old CA's certificates are refused, in the same running verifier.
        assert!(servers
            .verify_server_cert(&old_server[0], &[], &name, &[], at(after))
            .is_err());
        assert!(clients
            .verify_client_cert(&old_node[0], &[], at(after))
            .is_err());
        servers
            .verify_server_cert(&new_server[0], &new_server[1..], &name, &[], at(after))
            .unwrap();
        clients
            .verify_client_cert(&new_node[0], &new_node[1..], at(after))
            .unwrap();
        assert_eq!(
            trust.issuer_of(&old_node[0]),
            Some(Issuer::Old {
                fp: r.old_fp.clone(),
                until: r.ends
            })
        );
        assert_eq!(
            trust.issuer_of(&new_node[0]),
            Some(Issuer::Current {
                fp: r.new_fp.clone()
            })
        );

        // The overlap travels with `keys export` to the other members, and `--finish` ends it.
        let member = tempfile::tempdir().unwrap();
        super::super::copy_shared(d, member.path()).unwrap();
        assert!(CaTrust::load(member.path()).unwrap().overlap.is_some());
        assert_eq!(finish(d, &id, "hub.example").unwrap(), r.old_fp);
        assert!(CaTrust::load(d).unwrap().overlap.is_none());
        assert_eq!(chain(&d.join("server.crt")).len(), 1);
        super::super::copy_shared(d, member.path()).unwrap();
        assert!(!member.path().join(OLD).exists() && !member.path().join(CROSS).exists());
        assert!(finish(d, &id, "hub.example")
            .unwrap_err()
            .to_string()
            .contains("no CA rotation"));
    }

    #[test]
    fn a_rotation_stopped_between_its_key_and_its_certificate_is_finished_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        super::super::generate(d, "hub.example").unwrap();
        let old = CaTrust::load(d).unwrap().current_fp();
        // As `rotate` leaves it when it stops after moving the new key in.
        let key = KeyPair::generate().unwrap();
        let new = ca_params("hub.example", "updhub cluster CA next")
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(d.join(NEXT_CRT), new.pem()).unwrap();
        std::fs::write(d.join("ca.key"), key.serialize_pem()).unwrap();
        let trust = CaTrust::load(d).unwrap();
        assert_ne!(trust.current_fp(), old);
        assert_eq!(trust.current, *new.der());
        assert!(!d.join(NEXT_CRT).exists());
        super::super::load_ca(d).expect("the CA key and certificate fit again");
        // Stopped before the key moved: the CA in force stays whole.
        std::fs::write(d.join(NEXT_KEY), "not yet").unwrap();
        std::fs::write(d.join(NEXT_CRT), "not yet").unwrap();
        assert_eq!(CaTrust::load(d).unwrap().current, *new.der());
    }
}
