//! The interserver HTTPS client, and reading answers from other servers (parents, upstream
//! hubs, donors): never more than a bound, so a hostile or broken peer cannot make this node
//! download or hold more than the document it asked for. Also the clients of a station port
//! (a node enrolling, a station), which trust the cluster CA and present no certificate.

use std::time::Duration;

use futures_util::StreamExt;

use crate::keys::ClusterKeys;

/// How long the client keeps an idle connection for reuse: less than the time a parent keeps
/// an idle connection open (`server::Limits::request_head`), so the client never sends a
/// request on a connection the parent is closing.
pub const POOL_IDLE: Duration = Duration::from_secs(15);

/// An HTTPS client for interserver calls: trusts only the cluster CA and presents this node's
/// certificate.
///
/// # Errors
/// A client that cannot be built (a message for the caller's error).
pub fn client(keys: &ClusterKeys) -> Result<reqwest::Client, String> {
    builder(&keys.client_tls).build().map_err(|e| e.to_string())
}

/// An HTTPS client for this node's parent: through the link when the node enrolled by link
/// (the parent's CA, the link certificate), else as [`client`].
///
/// # Errors
/// A client that cannot be built (a message for the caller's error).
pub fn upstream_client(keys: &ClusterKeys) -> Result<reqwest::Client, String> {
    builder(&keys.upstream_tls())
        .build()
        .map_err(|e| e.to_string())
}

/// [`upstream_client`] (an upstream zone is another updhub), whose every read gives up when no byte came for `stall`: a stalled upstream
/// ends a run with an error instead of hanging it.
///
/// # Errors
/// A client that cannot be built (a message for the caller's error).
pub fn stalling_client(keys: &ClusterKeys, stall: Duration) -> Result<reqwest::Client, String> {
    builder(&keys.upstream_tls())
        .read_timeout(stall)
        .build()
        .map_err(|e| e.to_string())
}

/// [`client`] for another member of this cluster at `addrs`: members share the cluster's
/// server certificate, made out to the cluster's name `name`, so the connection goes to the
/// member's own address while the certificate is checked against that name.
///
/// # Errors
/// A client that cannot be built (a message for the caller's error).
pub fn member_client(
    keys: &ClusterKeys,
    name: &str,
    addrs: &[std::net::SocketAddr],
) -> Result<reqwest::Client, String> {
    builder(&keys.client_tls)
        .resolve_to_addrs(name, addrs)
        .build()
        .map_err(|e| e.to_string())
}

/// TLS that trusts only the CA certificate in `ca_pem` and presents no certificate: how a
/// station, or a node enrolling by link, reaches a cluster's station port.
///
/// # Errors
/// A PEM that holds no usable certificate (a message naming "the CA certificate").
pub fn ca_only_tls(ca_pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    let ca = crate::keys::first_cert(ca_pem).map_err(|e| format!("the CA certificate {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| format!("the CA certificate is not usable ({e})"))?;
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A client for a cluster's station port as station `creds` (see [`ca_only_tls`]): every
/// request carries the station's credentials, marked sensitive so they are never logged.
///
/// # Errors
/// A bad CA certificate, or a client that cannot be built.
pub fn station_client(
    ca_pem: &[u8],
    creds: &crate::license::api::StationCredentials,
) -> Result<reqwest::Client, String> {
    let mut auth = reqwest::header::HeaderValue::from_str(&creds.authorization())
        .map_err(|e| format!("the station credentials do not fit in a header ({e})"))?;
    auth.set_sensitive(true);
    let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, auth)]);
    builder(&ca_only_tls(ca_pem)?)
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())
}

fn builder(tls: &rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(16)
        .pool_idle_timeout(POOL_IDLE)
        .user_agent(concat!("updhub/", env!("CARGO_PKG_VERSION")))
}

/// Most bytes of a signed published document, a grant list page or an error message.
pub const MAX_DOCUMENT: u64 = 1 << 20;

/// Most bytes of a manifest or zone index (about 400,000 entries).
pub const MAX_INDEX: u64 = 64 << 20;

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    /// The answer is longer than the bound (declared, or found while reading).
    TooLarge,
    /// The connection failed while reading; the text is the error's whole chain.
    Network(String),
}

/// The whole body of `resp`, at most `limit` bytes. A declared length over the bound is
/// refused before a byte is read; an answer that keeps coming stops one chunk past it.
///
/// # Errors
/// [`ReadError::TooLarge`] or [`ReadError::Network`].
pub async fn read_body(resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge);
    }
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ReadError::Network(crate::child::error_chain(&e)))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The text of an error answer, for a message: its first 500 characters, reading at most
/// 4 KiB of it.
pub async fn error_text(resp: reqwest::Response) -> String {
    const MAX: usize = 4096;
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while out.len() < MAX {
        match body.next().await {
            Some(Ok(chunk)) => out.extend_from_slice(&chunk[..chunk.len().min(MAX - out.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).chars().take(500).collect()
}
