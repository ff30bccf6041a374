//! `license ...`: keys, donations, grants, the audit log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use clap::Subcommand;

use super::{io, json_text, out, print_json, render, Result};
use crate::error::Error;
use crate::hub::Hub;

/// A period: `--for DURATION` or `--until DATE`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Period {
    /// How long, e.g. 30d.
    #[arg(long = "for", value_parser = crate::config::parse_span)]
    for_: Option<Duration>,
    /// Until a date: 2026-12-31 (midnight UTC) or RFC 3339.
    #[arg(long, value_parser = parse_date)]
    until: Option<DateTime<Utc>>,
}

impl Period {
    fn end(&self) -> Result<DateTime<Utc>> {
        match (self.for_, self.until) {
            (Some(d), _) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| Utc::now().checked_add_signed(d))
                .ok_or_else(|| Error::State("--for is too long: give at most 100 years".into())),
            (_, Some(u)) => Ok(u),
            _ => unreachable!("clap requires one"),
        }
    }
}

fn parse_date(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    let t = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            .map_err(|_| {
                format!("'{s}' is not a date: write 2026-12-31 or 2026-12-31T12:00:00Z")
            })?,
    };
    // Dates past year 9999 are no real end and would overflow when margins are added.
    if t.year() > 9999 {
        return Err(format!(
            "'{s}' is too far away: give a date before the year 10000"
        ));
    }
    Ok(t)
}

#[derive(Subcommand)]
pub enum LicenseCommand {
    /// Add a license key file (its issuer must be in licenses.issuers).
    Add {
        /// The key file.
        file: PathBuf,
    },
    /// Donate licenses to another server for a period.
    Donate {
        /// The receiving server's id.
        #[arg(long)]
        to: String,
        /// How many station licenses.
        #[arg(long)]
        count: u32,
        #[command(flatten)]
        period: Period,
        /// The key or received grant to donate from (default: the one with most room).
        #[arg(long)]
        key: Option<String>,
        /// Idempotency key: retrying with the same id never donates twice.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Outgoing and incoming grants, with expiry.
    Grants {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Extend a grant this server donated.
    Renew {
        /// The grant.
        grant_id: String,
        #[command(flatten)]
        period: Period,
    },
    /// Take back a grant this server donated.
    Revoke {
        /// The grant.
        grant_id: String,
    },
    /// Give back a grant this server received.
    Return {
        /// The grant.
        grant_id: String,
    },
    /// Per key and received grant: total, used by stations, donated, free, expiring soon.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The audit trail.
    Log {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new license issuer of your own (for tests and trials): write its private key
    /// to FILE and print its public key, for licenses.issuers.
    IssuerKey {
        /// Where to write the private key (PKCS#8 PEM, owner-only); never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a signed license key (for issuers and test set-ups).
    Issue {
        /// The issuer's ed25519 private key (PKCS#8 PEM, e.g. from `license issuer-key`).
        #[arg(long)]
        issuer_key: PathBuf,
        /// Key id.
        #[arg(long)]
        key_id: String,
        /// Holder.
        #[arg(long)]
        holder: String,
        /// Station licenses.
        #[arg(long)]
        stations: u32,
        /// Valid from (default: now).
        #[arg(long, value_parser = parse_date)]
        from: Option<DateTime<Utc>>,
        /// Valid until.
        #[arg(long, value_parser = parse_date)]
        until: DateTime<Utc>,
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) async fn license(data: &Path, cmd: LicenseCommand) -> Result<()> {
    if let LicenseCommand::IssuerKey { out } = &cmd {
        if out.exists() {
            return Err(Error::Data {
                path: out.clone(),
                why: "exists already; an issuer key is never overwritten (the keys it signed would lose their issuer): pass another --out".into(),
            });
        }
        let key = crate::keys::new_issuer_key(out)?;
        let public = hex::encode(key.verifying_key().as_bytes());
        out!("{public}");
        eprintln!(
            "wrote a new license issuer's private key to {f} (keep it secret: whoever holds it can issue license keys); its public key is printed above.\n\
             trust it:   updhub config set licenses.issuers '[\"{public}\"]'   (or licenses.issuers in updhub.toml)\n\
             issue keys: updhub license issue --issuer-key {f} --key-id ID --holder NAME --stations N --until DATE --out KEY.json",
            f = out.display()
        );
        return Ok(());
    }
    if let LicenseCommand::Issue {
        issuer_key,
        key_id,
        holder,
        stations,
        from,
        until,
        out,
    } = cmd
    {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pem = std::fs::read_to_string(&issuer_key)
            .map_err(io(format!("reading {}", issuer_key.display())))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| Error::Data {
            path: issuer_key.clone(),
            why: format!("not an ed25519 PKCS#8 PEM key ({e}); give the issuer's private key file"),
        })?;
        let k = crate::license::LicenseKey::issue(
            &key,
            &key_id,
            &holder,
            stations,
            from.unwrap_or_else(Utc::now),
            until,
        );
        std::fs::write(&out, json_text(&k)?).map_err(io(format!("writing {}", out.display())))?;
        out!(
            "issued key {key_id} ({stations} stations until {until}) to {}; issuer {}",
            out.display(),
            k.issuer
        );
        return Ok(());
    }
    let hub = Hub::open(data)?;
    let warn = hub.live().licenses.warn_before;
    match cmd {
        LicenseCommand::Issue { .. } | LicenseCommand::IssuerKey { .. } => {
            unreachable!("handled above")
        }
        LicenseCommand::Add { file } => {
            let k = crate::hub::add_license_file(&hub, &file).await?;
            out!(
                "added key {} ({} stations for {} until {})",
                k.key_id,
                k.stations,
                k.holder,
                k.valid_until
            );
        }
        LicenseCommand::Donate {
            to,
            count,
            period,
            key,
            request_id,
        } => {
            let known = |id: &str| hub.knows_server(id);
            let d = crate::license::ledger::Donation {
                to,
                count,
                until: period.end()?,
                source: key,
                request_id: request_id.unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>())),
            };
            let t = hub.ledger.donate(d, known).await?;
            // The node this one enrolled with cannot reach it: this node offers the grant.
            let upstream = hub
                .keys
                .upstream
                .as_ref()
                .is_some_and(|u| u.parent_id == t.receiver);
            out!(
                "granted {} ({} licenses from {} to {} until {}); {}",
                t.grant_id,
                t.count,
                t.source,
                t.receiver,
                t.not_after,
                if upstream {
                    "this node offers it to the receiver at its next sync"
                } else {
                    "the receiver picks it up on its next sync"
                }
            );
        }
        LicenseCommand::Grants { json } => {
            let g = hub.ledger.grants(warn)?;
            if json {
                print_json(&g)?;
            } else {
                render::grants(&g)?;
            }
        }
        LicenseCommand::Renew { grant_id, period } => {
            let t = hub.ledger.renew(grant_id, period.end()?).await?;
            out!(
                "renewed {} until {}; the receiver picks it up on its next sync",
                t.grant_id,
                t.not_after
            );
        }
        LicenseCommand::Revoke { grant_id } => {
            let t = hub.ledger.revoke(grant_id).await?;
            out!(
                "revoking {}: {} stops counting it on its next sync; the {} licenses come back when it acknowledges, or at {} at the latest",
                t.grant_id, t.receiver, t.count, t.not_after + hub.ledger.margin()
            );
        }
        LicenseCommand::Return { grant_id } => {
            if crate::license::api::return_grant(
                &hub.ledger,
                &hub.keys,
                hub.config
                    .upstream
                    .parent_urls()
                    .first()
                    .map(String::as_str),
                &grant_id,
            )
            .await?
            {
                out!("returned {grant_id} to its donor");
            } else {
                out!("stopped counting {grant_id}; the donor is told at the next sync between the two servers");
            }
        }
        LicenseCommand::Status { json } => {
            let s = hub.ledger.status(warn)?;
            if json {
                print_json(&s)?;
            } else {
                render::license_status(&s, hub.live().trusts_demo_issuer())?;
            }
        }
        LicenseCommand::Log { json } => {
            let l = hub.ledger.log()?;
            if json {
                print_json(&l)?;
            } else {
                render::license_log(&l)?;
            }
        }
    }
    Ok(())
}
