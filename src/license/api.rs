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

impl StationCredentials {
    /// The `Authorization` header value that carries these credentials on the station routes
    /// of updates: HTTP Basic (RFC 7617), the station id as the user and its secret as the
    /// password, as `curl -u ID:SECRET` sends them.
    pub fn authorization(&self) -> String {
        use base64::Engine as _;
        let pair = format!("{}:{}", self.station, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Read credentials from an `Authorization` header value made as
    /// [`StationCredentials::authorization`] makes it, and check them as
    /// [`check_credentials`] does.
    ///
    /// # Errors
    /// What is wrong with the header, saying how a station sends its credentials.
    pub fn from_authorization(h: &str) -> Result<StationCredentials, String> {
        use base64::Engine as _;
        const HOW: &str = "send `Authorization: Basic BASE64(STATION_ID:SECRET)` (curl -u STATION_ID:SECRET) with the id and secret the station registered with";
        let (scheme, b64) = h
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("the Authorization header has no scheme; {HOW}"))?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(format!(
                "the Authorization scheme is {:?}, not Basic; {HOW}",
                scheme.chars().take(20).collect::<String>()
            ));
        }
        let pair = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("the Basic credentials are not base64 of UTF-8 text; {HOW}"))?;
        // A station id is a label (no ':'), so the first ':' ends it; the secret may hold ':'.
        let (station, secret) = pair.split_once(':').ok_or_else(|| {
            format!("the Basic credentials hold no ':' between id and secret; {HOW}")
        })?;
        let c = StationCredentials {
            station: station.to_owned(),
            secret: secret.to_owned(),
        };
        check_credentials(&c).map_err(|e| format!("{e}; {HOW}"))?;
        Ok(c)
    }
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
/// Returns how many tokens the donor sent: with a cursor (see [`super::feed`]) the grants
/// changed since the last fetch and the revocations not yet acknowledged.
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
    // From the cursor of the last answer (none yet: every grant, and a cursor).
    let since = ledger.grant_cursor(base.as_str())?;
    let url = super::feed::grants_url(base, since.as_deref());
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| net(&url, &e))?;
    if !resp.status().is_success() {
        return Err(net(
            &url,
            &format!(
                "answered {}: {}",
                resp.status(),
                crate::peer::error_text(resp).await
            ),
        ));
    }
    // The grants changed since the cursor (or every one), each a small signed token.
    let body = crate::peer::read_body(resp, crate::peer::MAX_INDEX)
        .await
        .map_err(|e| match e {
            crate::peer::ReadError::TooLarge => net(&url, &"sent a grant list longer than 64 MiB"),
            crate::peer::ReadError::Network(why) => net(&url, &why),
        })?;
    let fetched = super::feed::Fetched::<GrantToken>::parse(&body)
        .map_err(|e| net(&url, &format!("sent no grant list ({e})")))?;
    let tokens = fetched.tokens;
    let n = tokens.len();
    // The answer's cursor is kept with the grants it brought, when it moved.
    let keep = fetched
        .cursor
        .filter(|(_, c)| since.as_ref() != Some(c))
        .map(|(donor, cursor)| super::feed::KeptCursor {
            donor_url: base.to_string(),
            donor,
            cursor,
        });
    let acks = take_tokens(ledger, verifying, tokens, keep).await?;
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

/// Verify the tokens a donor signed with `donor` and apply what changed since the last time
/// (a revoked token is always passed on, as its acknowledgement may still be owed), keeping
/// `keep` (the fetch's cursor) in the same transaction. Returns the revoked grant ids to
/// acknowledge.
///
/// # Errors
/// A refused token (nothing of the batch is applied), or database errors.
async fn take_tokens(
    ledger: &Ledger,
    donor: &VerifyingKey,
    tokens: Vec<GrantToken>,
    keep: Option<super::feed::KeptCursor>,
) -> Result<Vec<String>, LicenseError> {
    // One answer (or offer) names each grant once: a second token of one id would be
    // applied over the first in the same transaction, unchecked against it.
    let mut seen = std::collections::HashSet::new();
    if let Some(t) = tokens.iter().find(|t| !seen.insert(t.grant_id.as_str())) {
        return Err(LicenseError::BadGrant {
            what: super::shown(&t.grant_id),
            why: "this id appears twice in one list of grants; a donor sends each grant once: nothing of the list was applied".into(),
        });
    }
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
        t.verify(donor, ledger.server.as_str(), &issuers)?;
    }
    // Nothing new: no write transaction (and no fsync) on every heartbeat.
    if tokens.is_empty() && keep.is_none() {
        return Ok(Vec::new());
    }
    // What each token does, for the log once they are applied (the audit log has it too).
    let said: Vec<String> = tokens
        .iter()
        .map(|t| {
            let what = match (t.status, known.contains_key(&t.grant_id)) {
                (super::GrantStatus::Active, false) => "received",
                (super::GrantStatus::Active, true) => "renewed",
                (super::GrantStatus::Revoked, _) => "revoked by its donor",
                (super::GrantStatus::Returned, _) => "returned",
                (super::GrantStatus::Expired, _) => "expired",
            };
            format!(
                "license grant {} {what}: {} license(s) of {} from {} until {}",
                super::shown(&t.grant_id),
                t.count,
                super::shown(&t.source),
                super::shown(&t.donor),
                t.not_after.format("%Y-%m-%d %H:%M:%S UTC")
            )
        })
        .collect();
    let acks = ledger.apply_fetched(tokens, keep).await?;
    for line in said {
        tracing::info!("{line}");
    }
    Ok(acks)
}

/// The answer to `POST /v1/licenses/offered`: what the receiver owes its donor.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OfferAnswer {
    /// Revoked grants it stopped counting: the donor takes them back.
    pub acks: Vec<String>,
    /// Grants it is giving back (`license return` there).
    pub returns: Vec<String>,
}

/// Licenses donated up or across a link (point 7b: into a cluster from a server outside
/// it): the node that enrolled offers the node it enrolled with (`to`, at `base`) the grants
/// it donated to it, since that node cannot reach it. The receiver verifies and applies them
/// and answers with what it owes: acknowledged revocations and returns, which are settled
/// here; the returned grants' final tokens go back at once. Returns how many grants were
/// offered.
///
/// # Errors
/// Network errors, a refusal from the receiver, or database errors.
pub async fn offer_to(
    ledger: &Ledger,
    client: &reqwest::Client,
    base: &reqwest::Url,
    to: &str,
) -> Result<usize, LicenseError> {
    let tokens = ledger.raw_tokens_for(to)?;
    let answer = offer(client, base, &tokens).await?;
    for grant_id in answer.acks {
        ledger.acknowledge(to.to_owned(), grant_id).await?;
    }
    let mut returned = Vec::new();
    for grant_id in answer.returns {
        ledger
            .accept_return(to.to_owned(), grant_id.clone())
            .await?;
        returned.extend(ledger.raw_token(&grant_id)?);
    }
    if !returned.is_empty() {
        offer(client, base, &returned).await?;
    }
    Ok(tokens.len())
}

async fn offer(
    client: &reqwest::Client,
    base: &reqwest::Url,
    tokens: &[String],
) -> Result<OfferAnswer, LicenseError> {
    let url = base
        .join("v1/licenses/offered")
        .expect("relative path joins");
    let net = |why: String| LicenseError::Network {
        url: url.to_string(),
        why,
    };
    let resp = client
        .post(url.clone())
        .header("content-type", "application/json")
        .body(format!("[{}]", tokens.join(",")))
        .send()
        .await
        .map_err(|e| net(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(net(format!(
            "answered {}: {}",
            resp.status(),
            crate::peer::error_text(resp).await
        )));
    }
    let body = crate::peer::read_body(resp, crate::peer::MAX_DOCUMENT)
        .await
        .map_err(|e| net(format!("{e:?}")))?;
    serde_json::from_slice(&body).map_err(|e| net(format!("sent no offer answer ({e})")))
}

/// The receiver's side of an offer from `caller` (a node linked to this cluster, whose
/// grants are signed with `donor`): verify the offered tokens, each with the whole chain it
/// carries, apply them, and answer with what this server owes the caller.
///
/// # Errors
/// A token not signed by the caller, not for this server, or with a bad chain (nothing of
/// the offer is applied); database errors.
pub async fn accept_offer(
    ledger: &Ledger,
    caller: &str,
    kind: &str,
    donor: &VerifyingKey,
    body: &[u8],
) -> Result<OfferAnswer, LicenseError> {
    let tokens: Vec<GrantToken> =
        serde_json::from_slice(body).map_err(|e| LicenseError::BadGrant {
            what: "offer".into(),
            why: format!("the body is not a JSON list of grant tokens ({e})"),
        })?;
    // Licenses go down a child link and both ways on a peer link; a child of the previous
    // release still offers its (empty) list with every sync, which changes nothing.
    if kind != "peer" && !tokens.is_empty() {
        return Err(LicenseError::NotAllowed(format!(
            "{caller} is linked to this cluster as a {kind}, and a {kind} link carries licenses down only: it may not donate to this cluster (nothing of the offer was applied); to take licenses from a node of another trust domain, link it as a peer (`updhub link invite --peer`)"
        )));
    }
    if let Some(t) = tokens.iter().find(|t| t.donor != caller) {
        return Err(LicenseError::BadGrant {
            what: t.grant_id.clone(),
            why: format!(
                "it names {} as its donor, but {caller} offered it; a node offers only its own grants",
                t.donor
            ),
        });
    }
    let acks = take_tokens(ledger, donor, tokens, None).await?;
    Ok(OfferAnswer {
        acks,
        returns: ledger.pending_returns_to(caller)?,
    })
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
    // A grant of a node linked to this cluster is settled when that node offers its
    // grants (it reaches this one, not the other way round): not the parent's business.
    let for_parent = ledger.pending_returns()?.iter().any(|g| g == grant_id);
    let Some(parent) = parent.filter(|_| for_parent).map(str::to_owned) else {
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

#[cfg(test)]
mod tests {
    use super::StationCredentials;

    fn creds(station: &str, secret: &str) -> StationCredentials {
        StationCredentials {
            station: station.into(),
            secret: secret.into(),
        }
    }

    #[test]
    fn station_credentials_go_through_the_authorization_header_and_back() {
        let c = creds("ws-1", "a:secret:with-colons-0123");
        let h = c.authorization();
        assert!(h.starts_with("Basic "), "{h}");
        let back = StationCredentials::from_authorization(&h).unwrap();
        assert_eq!((back.station, back.secret), (c.station, c.secret));
        // The scheme is case-insensitive (RFC 9110); what curl -u sends is read too.
        let lower = h.replacen("Basic", "basic", 1);
        assert!(StationCredentials::from_authorization(&lower).is_ok());
    }

    #[test]
    fn a_bad_authorization_header_is_named_with_the_way_to_send_credentials() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for (h, why) in [
            ("Basic".to_owned(), "no scheme"),
            ("Bearer abc".to_owned(), "not Basic"),
            ("Basic !!!".to_owned(), "not base64"),
            (format!("Basic {}", b64("no-colon-here")), "no ':'"),
            (format!("Basic {}", b64("ws-1:short")), "16 to 256"),
            (
                format!("Basic {}", b64("bad id:0123456789abcdef")),
                "station id",
            ),
        ] {
            let e = StationCredentials::from_authorization(&h).unwrap_err();
            assert!(e.contains(why), "{h}: {e}");
            assert!(e.contains("curl -u STATION_ID:SECRET"), "{e}");
        }
    }
}
