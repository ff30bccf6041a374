//! A linked child's side of its parent's CA rotation, in `keys/upstream/`: learning the new
//! CA (vouched for by the CA it trusts), renewing the link certificate under it, and
//! dropping the old CA when the overlap ends.
//!
//! A renewal keeps its new key in `link-renew.key` until the answer is written to
//! `link.crt`; loading the link finishes a renewal a crash interrupted there.

use std::fs;
use std::path::Path;

use super::ca::{self, CaTrust};
use super::{bad, first_cert, read, write, KeyError};

const PENDING: &str = "link-renew.key";

/// What learning the parent's CA changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// The parent's CA is the one trusted already.
    Nothing,
    /// A new CA, vouched for by the trusted one: both are trusted until the overlap ends.
    NewCa,
    /// The parent ended its overlap: only its CA in force is trusted from now on.
    OverlapEnded,
}

/// Take the parent's CA in force `new_pem` (and, during its overlap, the cross-certificate
/// `cross_pem` by which its old CA vouched for it) into the link folder `up`.
///
/// # Errors
/// A new CA not vouched for by the CA trusted now (nothing changes), or write errors.
pub fn learn(up: &Path, new_pem: &str, cross_pem: Option<&str>) -> Result<Learned, String> {
    let trust = CaTrust::load(up).map_err(|e| e.to_string())?;
    let new = first_cert(new_pem.as_bytes()).map_err(|e| format!("the parent's CA {e}"))?;
    if new == trust.current {
        if trust.overlap.is_some() && cross_pem.is_none() {
            end_overlap(up).map_err(|e| e.to_string())?;
            return Ok(Learned::OverlapEnded);
        }
        return Ok(Learned::Nothing);
    }
    let cross_pem = cross_pem.ok_or(
        "the parent presents a CA this node does not trust, with no cross-certificate from the CA it trusts: refused; if the parent's admin made a new CA without `updhub keys rotate-ca`, enroll again (`updhub link join URL TOKEN`)",
    )?;
    let cross =
        first_cert(cross_pem.as_bytes()).map_err(|e| format!("the cross-certificate {e}"))?;
    ca::vouched(&cross, &new, &trust.current, Some(chrono::Utc::now())).map_err(|why| {
        format!(
            "the parent's new CA {} is refused: {why}; this node keeps trusting CA {} only",
            &hex::encode(super::cert_fp(&new))[..16],
            &trust.current_fp()[..16]
        )
    })?;
    let w = |name: &str, data: &str| {
        write(&up.join(name), data.as_bytes(), false).map_err(|e| e.to_string())
    };
    // The overlap files first: until `ca.crt` changes they are checked against it, found
    // not to fit, and the node keeps its old trust.
    w(ca::OLD, &trust.current_pem)?;
    w(ca::CROSS, cross_pem)?;
    w("ca.crt", new_pem)?;
    Ok(Learned::NewCa)
}

/// Trust only the parent's CA in force: its overlap ended.
///
/// # Errors
/// Files that cannot be removed.
pub fn end_overlap(up: &Path) -> Result<(), KeyError> {
    for name in [ca::CROSS, ca::OLD] {
        let path = up.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KeyError::Write { path, source }),
        }
    }
    Ok(())
}

/// Start a renewal of the link certificate for `id`: a new key, kept in `link-renew.key`,
/// and its certificate request (PEM).
///
/// # Errors
/// Generation or write errors.
pub fn begin(up: &Path, id: &str) -> Result<String, KeyError> {
    let (key_pem, csr) = super::link_request(id)?;
    write(&up.join(PENDING), key_pem.as_bytes(), true)?;
    Ok(csr)
}

/// Finish a renewal: the certificate `cert_pem` the parent issued (checked: by its CA in
/// force, for the renewal's key) becomes `link.crt`, its key `link.key`.
///
/// # Errors
/// A certificate that does not check out (nothing changes), or write errors.
pub fn finish(up: &Path, cert_pem: &str) -> Result<(), KeyError> {
    let pending = up.join(PENDING);
    let key_pem = String::from_utf8(read(&pending)?).map_err(|_| bad(&pending, "is not text"))?;
    let ca_pem = String::from_utf8_lossy(&read(&up.join("ca.crt"))?).into_owned();
    super::check_issued(&ca_pem, cert_pem, &key_pem).map_err(|why| KeyError::Bad {
        path: up.join("link.crt"),
        why: format!("the renewed certificate is refused: {why}"),
        fix: "nothing was changed; the renewal is tried again at the next sync",
    })?;
    write(&up.join("link.crt"), cert_pem.as_bytes(), false)?;
    crate::durable::rename(&pending, &up.join("link.key")).map_err(|source| KeyError::Write {
        path: up.join("link.key"),
        source,
    })
}

/// Finish a renewal a crash interrupted between writing `link.crt` and moving its key.
///
/// # Errors
/// Unreadable files.
pub(super) fn recover(up: &Path) -> Result<(), KeyError> {
    let pending = up.join(PENDING);
    if !pending.exists() {
        return Ok(());
    }
    let cert =
        first_cert(&read(&up.join("link.crt"))?).map_err(|e| bad(&up.join("link.crt"), e))?;
    let key_pem = String::from_utf8_lossy(&read(&pending)?).into_owned();
    let Ok(key) = rcgen::KeyPair::from_pem(&key_pem) else {
        return Ok(());
    };
    let fits = x509_parser::parse_x509_certificate(cert.as_ref()).is_ok_and(|(_, x)| {
        x.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
    });
    if fits {
        crate::durable::rename(&pending, &up.join("link.key")).map_err(|source| {
            KeyError::Write {
                path: up.join("link.key"),
                source,
            }
        })?;
    }
    Ok(())
}
