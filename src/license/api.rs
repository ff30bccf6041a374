//! The license routes. Interserver (mutual TLS; the caller is the server id in its
//! certificate): `GET /v1/licenses/grants`, `POST /v1/licenses/ack`, `POST /v1/licenses/return`.
//! Stations (their own listener, server-only TLS, station credentials in the body):
//! `POST /v1/stations/register`, `POST /v1/stations/heartbeat`. And the receiver's side:
//! fetching its grants from its parent on every sync and heartbeat.

use serde::{Deserialize, Serialize};

use ed25519_dalek::VerifyingKey;

use super::{GrantToken, Ledger, LicenseError};
use crate::keys::ClusterKeys;

/// Body of `POST /v1/licenses/ack` and `/v1/licenses/return`. Unknown fields are ignored:
/// a request between nodes must survive a rolling upgrade that adds one.
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantRef {
    /// The grant.
    pub grant_id: String,
}

/// Body of the station routes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationCredentials {
    /// The station's id.
    pub station: String,
    /// Its secret.
    pub secret: String,
}

/// Answer of the station routes.
#[derive(Debug, Serialize, Deserialize)]
pub struct StationAnswer {
    /// The station.
    pub station: String,
    /// The server that holds its license.
    pub server: String,
    /// The key or grant its license comes from.
    pub license: String,
    /// Whether this call took a new license.
    pub new: bool,
}

/// Check station credentials: ids like server ids, secrets 16-256 bytes.
///
/// # Errors
/// [`LicenseError::BadKey`]-style refusal naming the field.
pub fn check_credentials(c: &StationCredentials) -> Result<(), LicenseError> {
    crate::id::ServerId::new(&c.station)
        .map_err(|e| LicenseError::Refused(format!("station id: {e}")))?;
    if c.secret.len() < 16 || c.secret.len() > 256 {
        return Err(LicenseError::Refused(
            "a station secret is 16 to 256 characters; generate a random one per station".into(),
        ));
    }
    Ok(())
}

/// Receiver side, run on every sync and heartbeat: fetch our grants from the parent, verify
/// each token offline, apply them, acknowledge revocations, retry pending returns.
/// Returns how many tokens were fetched.
///
/// # Errors
/// Network errors or a refused token; nothing is applied from a batch with a bad token.
pub async fn refresh_from_parent(
    ledger: &Ledger,
    verifying: &VerifyingKey,
    client: &reqwest::Client,
    base: &reqwest::Url,
) -> Result<usize, LicenseError> {
    let net = |url: &reqwest::Url, e: &dyn std::fmt::Display| LicenseError::Network {
        url: url.to_string(),
        why: e.to_string(),
    };
    let url = base
        .join("v1/licenses/grants")
        .expect("relative path joins");
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| net(&url, &e))?;
    if !resp.status().is_success() {
        return Err(net(&url, &format!("answered {}", resp.status())));
    }
    // Every grant this server holds from its parent, each a small signed token.
    let body = crate::peer::read_body(resp, crate::peer::MAX_INDEX)
        .await
        .map_err(|e| match e {
            crate::peer::ReadError::TooLarge => net(&url, &"sent a grant list longer than 64 MiB"),
            crate::peer::ReadError::Network(why) => net(&url, &why),
        })?;
    let tokens: Vec<GrantToken> = serde_json::from_slice(&body)
        .map_err(|e| net(&url, &format!("sent no grant list ({e})")))?;
    let n = tokens.len();
    // Verify and apply only what changed since the last refresh; a revoked token is always
    // passed on, as its acknowledgement may still be owed.
    let known = ledger.received_revisions()?;
    let tokens: Vec<GrantToken> = tokens
        .into_iter()
        .filter(|t| {
            t.status == super::GrantStatus::Revoked
                || known.get(&t.grant_id).is_none_or(|&r| t.revision > r)
        })
        .collect();
    let issuers = ledger.trusted_issuers();
    for t in &tokens {
        t.verify(verifying, ledger.server.as_str(), &issuers)?;
    }
    // Nothing new: no write transaction (and no fsync) on every heartbeat.
    let acks = if tokens.is_empty() {
        Vec::new()
    } else {
        ledger.apply_tokens(tokens).await?
    };
    for grant_id in acks {
        post(client, base, "v1/licenses/ack", &GrantRef { grant_id }).await?;
    }
    for grant_id in ledger.pending_returns()? {
        post(
            client,
            base,
            "v1/licenses/return",
            &GrantRef {
                grant_id: grant_id.clone(),
            },
        )
        .await?;
        ledger.finish_return(grant_id).await?;
    }
    Ok(n)
}

async fn post(
    client: &reqwest::Client,
    base: &reqwest::Url,
    path: &str,
    body: &GrantRef,
) -> Result<(), LicenseError> {
    let url = base.join(path).expect("relative path joins");
    let resp = client
        .post(url.clone())
        .json(body)
        .send()
        .await
        .map_err(|e| LicenseError::Network {
            url: url.to_string(),
            why: e.to_string(),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(LicenseError::Network {
            url: url.to_string(),
            why: format!(
                "answered {}: {}",
                resp.status(),
                crate::peer::error_text(resp).await
            ),
        })
    }
}

/// `license return`: stop counting a received grant and tell the donor (`parent`, this
/// node's parent, over a client with `keys`). If the donor is unreachable the return stays
/// pending and is retried on every sync.
///
/// # Errors
/// See [`super::Ledger::start_return`]; an unreachable donor is not an error.
pub async fn return_grant(
    ledger: &Ledger,
    keys: &ClusterKeys,
    parent: Option<&str>,
    grant_id: &str,
) -> Result<bool, LicenseError> {
    ledger.start_return(grant_id.to_owned()).await?;
    let Some(parent) = parent.map(str::to_owned) else {
        return Ok(false);
    };
    let client = crate::peer::upstream_client(keys).map_err(|why| LicenseError::Network {
        url: parent.clone(),
        why,
    })?;
    let base = reqwest::Url::parse(&parent).map_err(|e| LicenseError::Network {
        url: parent.clone(),
        why: e.to_string(),
    })?;
    match post(
        &client,
        &base,
        "v1/licenses/return",
        &GrantRef {
            grant_id: grant_id.to_owned(),
        },
    )
    .await
    {
        Ok(()) => {
            ledger.finish_return(grant_id.to_owned()).await?;
            Ok(true)
        }
        Err(e) => {
            tracing::warn!("{e}");
            Ok(false)
        }
    }
}
