//! `updhub.toml`: one serde struct with defaults, validated on load. Each setting is marked
//! the way reference point 1 sorts them: the same on every node of a cluster, different on
//! every node, or irrelevant. The "same" ones are digested and reported to the parent, so
//! drift shows in `updhub status`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::db::Location;
use crate::id::ServerId;

/// The longest span (validity, period, interval) updhub accepts: 100 years. Every span is
/// bounded, so that no date computed from one can overflow.
pub const MAX_SPAN: Duration = Duration::from_secs(100 * 366 * 86400);

/// Parse a span such as `7d` or `12h` (humantime), at most [`MAX_SPAN`].
///
/// # Errors
/// Not a span, or longer than 100 years; the message says which.
pub fn parse_span(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a span ({e}): write e.g. 30d, 12h or 90m"))?;
    if d > MAX_SPAN {
        return Err(format!("'{s}' is too long: at most 100 years"));
    }
    Ok(d)
}

/// The `[same]` settings a cluster shares through its database (`updhub config set`) and
/// every node applies while running. The others need a restart (listeners, limits) or
/// are the node's own.
pub const SHARED_SETTINGS: &[&str] = &[
    "upstream.sync_interval",
    "upstream.mirror_interval",
    "upstream.stale_after",
    "upstream.products",
    "publish.expires_in",
    "publish.delay",
    "rollout.canary",
    "rollout.soak",
    "publish.auto_resign",
    "publish.warn_before",
    "publish.stage_timeout",
    "publish.quorum",
    "licenses.issuers",
    "licenses.skew_margin",
    "licenses.station_ttl",
    "licenses.warn_before",
    "licenses.log_retention",
    "store.keep_versions",
    "server.report_retention",
];

/// `[same]` settings that only the publishing cluster (the top parent's) acts on: when to
/// mirror, which products, how a version is staged and rolled out. The members of that
/// cluster must agree on them (`cluster check`); its children need not hold them, so they
/// are left out of the digest a child reports ([`Config::tree_digest`]).
pub const PUBLISHER_ONLY: &[&str] = &[
    "upstream.mirror_interval",
    "upstream.stale_after",
    "upstream.products",
    "publish.delay",
    "publish.stage_timeout",
    "publish.quorum",
    "rollout.canary",
    "rollout.soak",
];

/// `[same]` settings of the cluster protocol: the members of one cluster must agree on
/// them, a child across an interserver link runs its own cluster's (left out of the digest
/// it reports, as [`PUBLISHER_ONLY`] are).
pub const CLUSTER_ONLY: &[&str] = &[
    "cluster.protocol",
    "cluster.group",
    "cluster.port",
    "cluster.announce_every",
];

/// The `[same]` settings that are spans, with the unit [`Config::same_settings`] keeps them
/// in (that form is digested and compared across releases, so it stays as it is); shown to
/// an admin as written in updhub.toml ([`shown_same_settings`]).
const SPAN_SETTINGS: &[(&str, SpanUnit)] = &[
    ("upstream.sync_interval", SpanUnit::Millis),
    ("upstream.mirror_interval", SpanUnit::Secs),
    ("upstream.stale_after", SpanUnit::Secs),
    ("publish.expires_in", SpanUnit::Secs),
    ("publish.warn_before", SpanUnit::Secs),
    ("publish.delay", SpanUnit::Secs),
    ("publish.stage_timeout", SpanUnit::Secs),
    ("rollout.soak", SpanUnit::Secs),
    ("licenses.skew_margin", SpanUnit::Secs),
    ("licenses.station_ttl", SpanUnit::Secs),
    ("licenses.warn_before", SpanUnit::Secs),
    ("licenses.log_retention", SpanUnit::Secs),
    ("server.report_retention", SpanUnit::Secs),
    ("cluster.announce_every", SpanUnit::Millis),
];

/// The unit a span of [`SPAN_SETTINGS`] is kept in.
#[derive(Clone, Copy)]
enum SpanUnit {
    Secs,
    Millis,
}

/// `value` of the `[same]` setting `key` as an admin writes it: a span as in updhub.toml
/// (`14days`, `2s`), anything else as it is.
pub fn shown_same_setting(key: &str, value: &serde_json::Value) -> serde_json::Value {
    let span = SPAN_SETTINGS.iter().find(|(k, _)| *k == key);
    match (span, value.as_u64()) {
        (Some((_, unit)), Some(n)) => {
            let d = match unit {
                SpanUnit::Secs => Duration::from_secs(n),
                SpanUnit::Millis => Duration::from_millis(n),
            };
            serde_json::Value::String(humantime::format_duration(d).to_string())
        }
        _ => value.clone(),
    }
}

/// [`Config::same_settings`] as an admin writes them ([`shown_same_setting`] for each).
pub fn shown_same_settings(settings: &serde_json::Value) -> serde_json::Value {
    match settings.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), shown_same_setting(k, v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        None => settings.clone(),
    }
}

/// The config file's name inside the data folder.
pub const FILE: &str = "updhub.toml";

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// Errors loading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot be read ({source}); run `updhub init` to create the data folder, or pass --data")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of our shape.
    #[error("{path}: {message}\nfix the setting shown above (see the comments in the file), or delete the line to use its default")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which shows the line and the key.
        message: String,
    },
    /// `config set` of a key that is not one the cluster shares.
    #[error("{key} is not a setting the cluster shares, so `config set` cannot set it; these are: {shared}. Set any other setting in updhub.toml on each node (and restart it)", shared = SHARED_SETTINGS.join(", "))]
    NotShared {
        /// The key given.
        key: String,
    },
    /// A setting has a value we cannot use.
    #[error("{path}: {key} = {value}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and the fix.
        why: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node.
    pub server: ServerSection,
    /// Where updates come from.
    #[serde(default)]
    pub upstream: UpstreamSection,
    /// Publishing and signing.
    #[serde(default)]
    pub publish: PublishSection,
    /// The database.
    #[serde(default)]
    pub database: DatabaseSection,
    /// Station licenses.
    #[serde(default)]
    pub licenses: LicensesSection,
    /// The blob store.
    #[serde(default)]
    pub store: StoreSection,
    /// Staged rollout to a test group of children.
    #[serde(default)]
    pub rollout: RolloutSection,
    /// Scheduled backups of this node.
    #[serde(default)]
    pub backup: BackupSection,
    /// The cluster protocol: signed UDP announcements among the members.
    #[serde(default)]
    pub cluster: ClusterSection,
}

/// `[cluster]`: the cluster protocol (reference point 4), see [`crate::announce`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// The same: how members announce themselves: multicast, unicast, or off.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// The same: the multicast group (multicast only).
    #[serde(default = "default_group")]
    pub group: Ipv4Addr,
    /// The same: the UDP port announcements go to (0: any free port, unicast only).
    #[serde(default = "default_cluster_port")]
    pub port: u16,
    /// Different: the node's own address on the cluster's internal network; 0.0.0.0: all.
    #[serde(default = "default_interface")]
    pub interface: Ipv4Addr,
    /// Different: HOST:PORT of members to announce to besides those found in the database.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The same: how often a member announces itself when nothing changed.
    #[serde(default = "default_announce_every", with = "humantime_serde")]
    pub announce_every: Duration,
}

/// `cluster.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// To the multicast group on the interface.
    Multicast,
    /// To each member the database lists (and `cluster.peers`), one datagram each.
    Unicast,
    /// None: the members converge through the database polls alone.
    Off,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Multicast => "multicast",
            Protocol::Unicast => "unicast",
            Protocol::Off => "off",
        })
    }
}

fn default_protocol() -> Protocol {
    Protocol::Off
}
fn default_group() -> Ipv4Addr {
    Ipv4Addr::new(232, 0, 0, 1)
}
fn default_cluster_port() -> u16 {
    11111
}
fn default_interface() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}
fn default_announce_every() -> Duration {
    Duration::from_secs(1)
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            protocol: default_protocol(),
            group: default_group(),
            port: default_cluster_port(),
            interface: default_interface(),
            peers: Vec::new(),
            announce_every: default_announce_every(),
        }
    }
}

/// Whether `a` is HOST:PORT with a port above 0.
fn is_host_port(a: &str) -> bool {
    a.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && port.parse::<u16>().is_ok_and(|p| p > 0)
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    })
}

/// `[backup]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Irrelevant: how often `serve` writes an archive of this node (`updhub backup`). 0: never.
    #[serde(default = "default_backup_every", with = "humantime_serde")]
    pub every: Duration,
    /// Irrelevant: where (relative to the data folder); best on another disk.
    #[serde(default = "default_backup_dir")]
    pub dir: PathBuf,
    /// Irrelevant: how many of the newest archives are kept there; older ones are removed.
    #[serde(default = "default_backup_keep")]
    pub keep: usize,
}

fn default_backup_every() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_backup_dir() -> PathBuf {
    "backups".into()
}
fn default_backup_keep() -> usize {
    7
}

impl Default for BackupSection {
    fn default() -> Self {
        BackupSection {
            every: default_backup_every(),
            dir: default_backup_dir(),
            keep: default_backup_keep(),
        }
    }
}

/// `[rollout]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    /// The same: ids of the children that get a new version first (the test group); none:
    /// every child gets it when it is activated.
    #[serde(default)]
    pub canary: Vec<String>,
    /// The same: how long the test group holds a new version before every child gets it.
    #[serde(default = "default_soak", with = "humantime_serde")]
    pub soak: Duration,
}

fn default_soak() -> Duration {
    Duration::from_secs(3600)
}

impl Default for RolloutSection {
    fn default() -> Self {
        RolloutSection {
            canary: Vec::new(),
            soak: default_soak(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Irrelevant: `serve` rehashes the store in the background at this many MiB of content
    /// per second; a damaged blob is quarantined (never served) and fetched again. 0: off.
    #[serde(default = "default_scrub_rate")]
    pub scrub_rate_mib: u64,
    /// Irrelevant: the pause between the end of one scrub pass and the start of the next.
    #[serde(default = "default_scrub_every", with = "humantime_serde")]
    pub scrub_every: Duration,
    /// Same: retention keeps the last this many versions by number (plus the active, the
    /// mirrored, those children still hold and those replaced less than `gc_grace` ago;
    /// see `gc::keep_roots`). At least 1.
    #[serde(default = "default_keep_versions")]
    pub keep_versions: usize,
    /// Irrelevant: how often `serve` collects the store's garbage. 0: never (`updhub gc`
    /// still works).
    #[serde(default = "default_gc_every", with = "humantime_serde")]
    pub gc_every: Duration,
    /// Irrelevant: garbage collection spares a blob written or reused less than this long
    /// ago (a mirror or sync in progress has not recorded its version yet) and a version
    /// replaced less than this long ago (a child may be syncing it). Longer than the
    /// longest mirror or sync run.
    #[serde(default = "default_gc_grace", with = "humantime_serde")]
    pub gc_grace: Duration,
}

fn default_keep_versions() -> usize {
    5
}
fn default_gc_every() -> Duration {
    Duration::from_secs(3600)
}
fn default_gc_grace() -> Duration {
    Duration::from_secs(3600)
}

fn default_scrub_rate() -> u64 {
    16
}
fn default_scrub_every() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            scrub_rate_mib: default_scrub_rate(),
            scrub_every: default_scrub_every(),
            keep_versions: default_keep_versions(),
            gc_every: default_gc_every(),
            gc_grace: default_gc_grace(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Different on every node: identifies this node's rows and its client certificate.
    pub id: ServerId,
    /// The same on every node: the cluster's DNS name (reference point 3).
    #[serde(default = "default_name")]
    pub name: String,
    /// Irrelevant: where `serve` listens.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Irrelevant: at most this many connections at once; past it, the oldest idle ones (no
    /// request yet) make room, and when every one is serving, newcomers wait, then get 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The same: requests per second allowed to each peer before 429.
    #[serde(default = "default_rps")]
    pub requests_per_second: u32,
    /// Irrelevant: where stations register (server-only TLS, station credentials).
    #[serde(default = "default_station_listen")]
    pub station_listen: SocketAddr,
    /// Different: HOST:PORT where the other members of the cluster reach this node's
    /// interserver port (to fetch a version it holds). Default: `listen`, with this
    /// machine's host name in place of an unspecified address (0.0.0.0, ::).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Irrelevant: how long a lease this node takes on one of the cluster's once-a-period
    /// tasks holds without renewal (see [`crate::leases`]): the holder writes its own
    /// expiry and renews every third of it, so members may differ; when the holder dies,
    /// another member takes the task within this time.
    #[serde(default = "default_lease_ttl", with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// The same: children's reports, grant receivers' reports and task runs older than this
    /// are purged (task "purge reports"); never sooner than a child stops counting for the
    /// two-phase switch. 0: kept forever.
    #[serde(default = "default_report_retention", with = "humantime_serde")]
    pub report_retention: Duration,
}

/// `[upstream]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// The same: the zone a parent mirrors, a folder or an https:// URL.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// Irrelevant: a child names its parent's URL; `serve` then follows it.
    #[serde(default)]
    pub parent: Option<String>,
    /// Irrelevant: a child's parents in order, members of one parent cluster: `serve`
    /// follows the first, the next while it fails, and the first again once it answers
    /// (tried first every sync). Either this or `parent`, not both.
    #[serde(default)]
    pub parents: Vec<String>,
    /// Irrelevant: the interserver URL of the node this one is linked to as a peer (`link
    /// join` with a peer token writes it); `serve` exchanges licenses with it every
    /// `sync_interval`.
    #[serde(default)]
    pub peer: Option<String>,
    /// The same: how often a child asks its parent for a new version.
    #[serde(default = "default_sync_interval", with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Irrelevant: blobs fetched at once by a child, files ingested at once by mirror.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// The same: how often a serving parent reads its zone, mirrors what changed and
    /// publishes it. 0: never (mirror and publish by hand).
    #[serde(default = "default_mirror_interval", with = "humantime_serde")]
    pub mirror_interval: Duration,
    /// The same: `status` warns when the zone was last read successfully longer ago.
    #[serde(default = "default_stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
    /// The same: which of the zone's products are mirrored, as glob patterns; one starting
    /// with `!` excludes. The last pattern a product matches decides; none: excluded.
    #[serde(default = "default_products")]
    pub products: Vec<String>,
}

/// `[publish]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    /// The same: how long a signed published version stays valid.
    #[serde(default = "default_expires_in", with = "humantime_serde")]
    pub expires_in: Duration,
    /// The same: a running parent re-signs its version when less than half of this remains.
    #[serde(default = "default_true")]
    pub auto_resign: bool,
    /// The same: a child warns when its version expires within this time.
    #[serde(default = "default_warn_before", with = "humantime_serde")]
    pub warn_before: Duration,
    /// The same: how long a new revision of a delayed product waits before it is published
    /// (`updhub products set P delayed`; `updhub release P` lets it go at once).
    #[serde(default = "default_delay", with = "humantime_serde")]
    pub delay: Duration,
    /// The same: how long a staged version waits for every reporting child to stage it;
    /// after that, `quorum` of them suffice.
    #[serde(default = "default_stage_timeout", with = "humantime_serde")]
    pub stage_timeout: Duration,
    /// The same: how many of the reporting children must have staged a version for it to
    /// be activated once `stage_timeout` has passed.
    #[serde(default)]
    pub quorum: Quorum,
}

/// How many reporting children must hold a staged version before `publish.stage_timeout`
/// lets it be activated without the others: written `"all"`, a count (`"4"`) or a
/// percentage (`"80%"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "QuorumText", into = "String")]
pub enum Quorum {
    /// Every reporting child (the default: a child that cannot stage holds activation back
    /// until an admin runs `updhub activate`, or it stops reporting).
    #[default]
    All,
    /// At least this many (all of them when fewer report).
    Count(u32),
    /// At least this share, in percent, rounded up.
    Percent(u8),
}

impl Quorum {
    /// How many of `reporting` children must have staged.
    pub fn needed(self, reporting: usize) -> usize {
        match self {
            Quorum::All => reporting,
            Quorum::Count(n) => (n as usize).min(reporting),
            Quorum::Percent(p) => (reporting * p as usize).div_ceil(100),
        }
    }
}

/// A quorum as written: a string, or a bare count (`quorum = 4`, `config set publish.quorum 4`).
#[derive(Deserialize)]
#[serde(untagged)]
enum QuorumText {
    Count(u32),
    Text(String),
}

impl TryFrom<QuorumText> for Quorum {
    type Error = String;
    fn try_from(q: QuorumText) -> Result<Quorum, String> {
        match q {
            QuorumText::Count(n) => Ok(Quorum::Count(n)),
            QuorumText::Text(s) => Quorum::try_from(s),
        }
    }
}

impl TryFrom<String> for Quorum {
    type Error = String;
    fn try_from(s: String) -> Result<Quorum, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "{t:?} is not a quorum: write \"all\", a count of children (\"4\") or a percentage (\"80%\")"
            )
        };
        if t.eq_ignore_ascii_case("all") {
            return Ok(Quorum::All);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Quorum::Percent(p)),
                _ => Err(bad()),
            };
        }
        t.parse().map(Quorum::Count).map_err(|_| bad())
    }
}

impl From<Quorum> for String {
    fn from(q: Quorum) -> String {
        q.to_string()
    }
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quorum::All => write!(f, "all"),
            Quorum::Count(n) => write!(f, "{n}"),
            Quorum::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `[licenses]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensesSection {
    /// The same: ed25519 public keys (hex) of the license issuers this cluster trusts. None
    /// by default: an issuer is trusted on purpose, never by default.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// The same: clock-skew allowance between servers. A receiver stops counting a grant this
    /// long before its end; the donor takes it back only this long after.
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub skew_margin: Duration,
    /// The same: stations not seen for this long are purged and free their license.
    #[serde(default = "default_station_ttl", with = "humantime_serde")]
    pub station_ttl: Duration,
    /// The same: warn when a key or received grant ends within this time.
    #[serde(default = "default_license_warn", with = "humantime_serde")]
    pub warn_before: Duration,
    /// The same: audit-log rows older than this are archived to a file and leave the log
    /// (task "archive license log"). 0: kept in the log forever.
    #[serde(default = "default_log_retention", with = "humantime_serde")]
    pub log_retention: Duration,
    /// Irrelevant (the node's own disk): where this node writes the audit-log archives when
    /// it holds the task, relative to the data folder.
    #[serde(default = "default_log_archive_dir")]
    pub log_archive_dir: PathBuf,
}

/// The public key (hex) of the demo issuer whose demo license ships, signed, in
/// `mirror/licenses/`. No node trusts it by default: only the zero-config first `serve` on
/// the default data folder does, and `status` then says so. Its private key is not shipped.
pub const DEMO_ISSUER: &str = include_str!("../mirror/licenses/demo-issuer.pub");

/// Whether `issuer` (hex) is the demo issuer's public key.
pub fn is_demo_issuer(issuer: &str) -> bool {
    issuer.trim().eq_ignore_ascii_case(DEMO_ISSUER.trim())
}
fn default_skew() -> Duration {
    Duration::from_secs(300)
}
fn default_station_ttl() -> Duration {
    Duration::from_secs(30 * 86400)
}
fn default_license_warn() -> Duration {
    Duration::from_secs(3 * 86400)
}
fn default_lease_ttl() -> Duration {
    crate::leases::LEASE_TTL
}
fn default_report_retention() -> Duration {
    Duration::from_secs(30 * 86400)
}
/// A year: a license key and its grants usually live a year, so the log keeps the whole
/// life of the keys in force and of the ones they replaced; older rows are in archives.
fn default_log_retention() -> Duration {
    // humantime's year (365.25 days), so updhub.toml says "1year".
    Duration::from_secs(31_557_600)
}
fn default_log_archive_dir() -> PathBuf {
    "archive".into()
}
fn default_station_listen() -> SocketAddr {
    "127.0.0.1:8843".parse().expect("valid default")
}

impl Default for LicensesSection {
    fn default() -> Self {
        LicensesSection {
            issuers: Vec::new(),
            skew_margin: default_skew(),
            station_ttl: default_station_ttl(),
            warn_before: default_license_warn(),
            log_retention: default_log_retention(),
            log_archive_dir: default_log_archive_dir(),
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// The same in a cluster: `sqlite:FILE` (relative to the data folder) for a lone node,
    /// or `postgres://USER:PASSWORD@HOST:PORT/DBNAME` for the database a cluster shares.
    #[serde(default = "default_db")]
    pub url: String,
    /// A file holding the URL (so the password stays out of updhub.toml); read at start,
    /// relative to the data folder. Replaces `url` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
}

fn default_name() -> String {
    "localhost".into()
}
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default")
}
/// An idle connection costs a few KiB, a served one tens (TLS and HTTP buffers): thousands
/// are cheap, and a server with room for many is not locked out by idle sockets (nginx's
/// deployments use 4,096 and more per worker).
fn default_max_connections() -> usize {
    8192
}
fn default_rps() -> u32 {
    5000
}
/// The sample zone shipped in the source tree: the default upstream, so the hub runs offline.
/// A binary moved away from its source tree looks for `./mirror` instead.
pub fn default_zone() -> String {
    let built = concat!(env!("CARGO_MANIFEST_DIR"), "/mirror");
    if Path::new(built).join("zone.json").is_file() {
        built.into()
    } else {
        "mirror".into()
    }
}
fn default_sync_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_parallel() -> usize {
    4
}
fn default_mirror_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_stale_after() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_products() -> Vec<String> {
    vec!["*".into()]
}
fn default_delay() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_expires_in() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_true() -> bool {
    true
}
fn default_warn_before() -> Duration {
    Duration::from_secs(2 * 86400)
}
fn default_stage_timeout() -> Duration {
    Duration::from_secs(600)
}
/// Whether `url` names a database kind updhub knows.
pub fn is_db_url(url: &str) -> bool {
    url.strip_prefix("sqlite:").is_some_and(|f| !f.is_empty())
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
}

fn default_db() -> String {
    "sqlite:updhub.db".into()
}

impl UpstreamSection {
    /// A child's parents in the order it tries them: `parents`, or `parent` as a list of
    /// one; empty on a top parent.
    pub fn parent_urls(&self) -> Vec<String> {
        match &self.parent {
            Some(p) => vec![p.clone()],
            None => self.parents.clone(),
        }
    }
}

impl Default for UpstreamSection {
    fn default() -> Self {
        UpstreamSection {
            zone: default_zone(),
            parent: None,
            parents: Vec::new(),
            peer: None,
            sync_interval: default_sync_interval(),
            parallel: default_parallel(),
            mirror_interval: default_mirror_interval(),
            stale_after: default_stale_after(),
            products: default_products(),
        }
    }
}

impl Default for PublishSection {
    fn default() -> Self {
        PublishSection {
            expires_in: default_expires_in(),
            auto_resign: true,
            warn_before: default_warn_before(),
            delay: default_delay(),
            stage_timeout: default_stage_timeout(),
            quorum: Quorum::default(),
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: default_db(),
            url_file: None,
        }
    }
}

impl Config {
    /// A new node's configuration.
    pub fn new(id: ServerId, name: Option<String>) -> Config {
        Config {
            server: ServerSection {
                id,
                name: name.unwrap_or_else(default_name),
                listen: default_listen(),
                max_connections: default_max_connections(),
                requests_per_second: default_rps(),
                station_listen: default_station_listen(),
                advertise: None,
                lease_ttl: default_lease_ttl(),
                report_retention: default_report_retention(),
            },
            upstream: UpstreamSection::default(),
            publish: PublishSection::default(),
            database: DatabaseSection::default(),
            licenses: LicensesSection::default(),
            store: StoreSection::default(),
            rollout: RolloutSection::default(),
            backup: BackupSection::default(),
            cluster: ClusterSection::default(),
        }
    }

    /// Load and check `<data>/updhub.toml`.
    ///
    /// # Errors
    /// Unreadable file, bad TOML, unknown keys or unusable values, each named.
    pub fn load(data: &Path) -> Result<Config, ConfigError> {
        let path = data.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Config::parse(&text, &path)
    }

    /// This configuration with the shared setting `key` (one of [`SHARED_SETTINGS`]) set to
    /// `value`, written as in updhub.toml (`"2h"`, `true`, `["ab12..."]`; a bare word is
    /// taken as a string), checked as updhub.toml is.
    ///
    /// # Errors
    /// An unknown or not shared key, or a value the setting cannot take.
    pub fn with_setting(&self, key: &str, value: &str) -> Result<Config, ConfigError> {
        let at = Path::new("the cluster's settings");
        let invalid = |why: String| ConfigError::Invalid {
            path: at.to_owned(),
            key: SHARED_SETTINGS
                .iter()
                .find(|k| **k == key)
                .copied()
                .unwrap_or("the setting"),
            value: value.to_owned(),
            why,
        };
        if !SHARED_SETTINGS.contains(&key) {
            return Err(ConfigError::NotShared {
                key: key.to_owned(),
            });
        }
        let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
            Ok(mut t) => t.remove("v").expect("just parsed"),
            Err(_) => toml::Value::String(value.to_owned()),
        };
        let mut table = toml::Value::try_from(self).map_err(|e| invalid(e.to_string()))?;
        let (section, name) = key.split_once('.').expect("shared settings are dotted");
        table
            .get_mut(section)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| invalid(format!("no [{section}] section")))?
            .insert(name.to_owned(), parsed);
        let text = toml::to_string(&table).map_err(|e| invalid(e.to_string()))?;
        Config::parse(&text, at).map_err(|e| match e {
            // toml's message quotes a line of the internal document; its last line says why.
            ConfigError::Parse { message, .. } => invalid(
                message
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("not a value this setting takes")
                    .trim()
                    .to_owned(),
            ),
            other => other,
        })
    }

    /// Parse and check config text; `path` names it in errors.
    ///
    /// # Errors
    /// Bad TOML, unknown keys or unusable values.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, value: String, why: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            value,
            why: why.to_owned(),
        };
        let name = &self.server.name;
        if name.is_empty()
            || name.len() > 253
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        {
            return Err(invalid(
                "server.name",
                format!("{name:?}"),
                "not a DNS name or IP address; use the cluster's DNS name, the same on every node, e.g. \"updhub.example.com\"",
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.server.requests_per_second == 0 {
            return Err(invalid(
                "server.requests_per_second",
                "0".into(),
                "must be at least 1",
            ));
        }
        if let Some(a) = &self.server.advertise {
            if !is_host_port(a) {
                return Err(invalid(
                    "server.advertise",
                    format!("{a:?}"),
                    "not HOST:PORT; give the address the other members reach this node's interserver port at, e.g. \"node1.example.net:8443\" or \"10.0.0.5:8443\"",
                ));
            }
        }
        if self.upstream.zone.trim().is_empty() {
            return Err(invalid(
                "upstream.zone",
                "\"\"".into(),
                "name a zone folder or an https:// URL, or delete the line for the sample zone",
            ));
        }
        if let Some(p) = &self.upstream.parent {
            if !p.starts_with("https://") {
                return Err(invalid(
                    "upstream.parent",
                    format!("{p:?}"),
                    "a parent is an https:// URL, e.g. \"https://10.0.0.1:8443\"; delete the line on the top parent",
                ));
            }
            if !self.upstream.parents.is_empty() {
                return Err(invalid(
                    "upstream.parents",
                    format!("{:?}", self.upstream.parents),
                    &format!("upstream.parent ({p:?}) is set too: keep one of them, e.g. parents = [{p:?}, ...] with the parent line deleted"),
                ));
            }
        }
        for (i, p) in self.upstream.parents.iter().enumerate() {
            if !p.starts_with("https://") {
                return Err(invalid(
                    "upstream.parents",
                    format!("{p:?}"),
                    "each parent is an https:// URL of a member of the parent cluster, e.g. parents = [\"https://10.0.0.1:8443\", \"https://10.0.0.2:8443\"]",
                ));
            }
            if self.upstream.parents[..i].contains(p) {
                return Err(invalid(
                    "upstream.parents",
                    format!("{p:?}"),
                    "it is listed twice: list each member of the parent cluster once, in the order to try them",
                ));
            }
        }
        if let Some(p) = &self.upstream.peer {
            if !p.starts_with("https://") {
                return Err(invalid(
                    "upstream.peer",
                    format!("{p:?}"),
                    "a peer is the https:// URL of its interserver port, e.g. \"https://10.0.0.1:8443\"; delete the line if this node has no peer link",
                ));
            }
        }
        if !(1..=64).contains(&self.upstream.parallel) {
            return Err(invalid(
                "upstream.parallel",
                self.upstream.parallel.to_string(),
                "must be between 1 and 64",
            ));
        }
        // Every span is bounded, so no time computed from one can overflow.
        for (key, d) in [
            ("upstream.sync_interval", self.upstream.sync_interval),
            ("publish.expires_in", self.publish.expires_in),
            ("publish.warn_before", self.publish.warn_before),
            ("publish.delay", self.publish.delay),
            ("rollout.soak", self.rollout.soak),
            ("backup.every", self.backup.every),
            ("upstream.mirror_interval", self.upstream.mirror_interval),
            ("upstream.stale_after", self.upstream.stale_after),
            ("publish.stage_timeout", self.publish.stage_timeout),
            ("licenses.skew_margin", self.licenses.skew_margin),
            ("licenses.station_ttl", self.licenses.station_ttl),
            ("licenses.warn_before", self.licenses.warn_before),
            ("licenses.log_retention", self.licenses.log_retention),
            ("server.report_retention", self.server.report_retention),
            ("store.gc_every", self.store.gc_every),
            ("store.gc_grace", self.store.gc_grace),
        ] {
            if d > MAX_SPAN {
                return Err(invalid(
                    key,
                    humantime::format_duration(d).to_string(),
                    "is too long: at most 100 years",
                ));
            }
        }
        if self.store.keep_versions == 0 {
            return Err(invalid(
                "store.keep_versions",
                "0".into(),
                "must be at least 1 (the active version is always kept anyway), e.g. 5",
            ));
        }
        if !self.store.gc_every.is_zero() && self.store.gc_every < Duration::from_millis(100) {
            return Err(invalid(
                "store.gc_every",
                humantime::format_duration(self.store.gc_every).to_string(),
                "must be at least 100ms, e.g. \"1h\", or \"0s\" to turn the periodic run off",
            ));
        }
        if self.upstream.sync_interval < Duration::from_millis(100) {
            return Err(invalid(
                "upstream.sync_interval",
                humantime::format_duration(self.upstream.sync_interval).to_string(),
                "must be at least 100ms, e.g. \"60s\"",
            ));
        }
        let mi = self.upstream.mirror_interval;
        if !mi.is_zero() && mi < Duration::from_secs(1) {
            return Err(invalid(
                "upstream.mirror_interval",
                humantime::format_duration(mi).to_string(),
                "must be at least 1s, e.g. \"1h\", or \"0s\" to mirror by hand only",
            ));
        }
        if let Some(bad) = self
            .rollout
            .canary
            .iter()
            .find(|c| ServerId::new(c.as_str()).is_err())
        {
            return Err(invalid(
                "rollout.canary",
                format!("{bad:?}"),
                "each entry is a child's server id (server.id in its updhub.toml; `updhub status` on this node lists its children)",
            ));
        }
        if let Err(why) = crate::products::Filter::new(&self.upstream.products) {
            return Err(invalid(
                "upstream.products",
                format!("{:?}", self.upstream.products),
                &why,
            ));
        }
        if self.backup.keep == 0 {
            return Err(invalid(
                "backup.keep",
                "0".into(),
                "must be at least 1 (turn scheduled backups off with backup.every = \"0s\")",
            ));
        }
        if self.publish.expires_in < Duration::from_secs(1) {
            return Err(invalid(
                "publish.expires_in",
                humantime::format_duration(self.publish.expires_in).to_string(),
                "must be at least 1s, e.g. \"7d\"",
            ));
        }
        for i in &self.licenses.issuers {
            let mut k = [0u8; 32];
            if hex::decode_to_slice(i, &mut k).is_err()
                || ed25519_dalek::VerifyingKey::from_bytes(&k).is_err()
            {
                return Err(invalid(
                    "licenses.issuers",
                    format!("{i:?}"),
                    "each issuer is an ed25519 public key as 64 hex characters, as given by the issuer",
                ));
            }
        }
        if self.server.lease_ttl < Duration::from_secs(1) {
            return Err(invalid(
                "server.lease_ttl",
                humantime::format_duration(self.server.lease_ttl).to_string(),
                "must be at least 1s (the holder renews every third of it), e.g. \"30s\"",
            ));
        }
        if self.licenses.skew_margin >= self.licenses.station_ttl {
            return Err(invalid(
                "licenses.skew_margin",
                humantime::format_duration(self.licenses.skew_margin).to_string(),
                "must be shorter than licenses.station_ttl, e.g. \"5m\"",
            ));
        }
        self.check_cluster(path)?;
        if self.database.url_file.is_none() && !is_db_url(&self.database.url) {
            return Err(invalid(
                "database.url",
                format!("{:?}", crate::db::postgres::redact_any(&self.database.url)),
                "use \"sqlite:FILE\" (a file in the data folder) or \"postgres://USER:PASSWORD@HOST:PORT/DBNAME\" (the cluster's shared database)",
            ));
        }
        Ok(())
    }

    /// `[cluster]`: a multicast group that is one, a port multicast can use, peers as
    /// HOST:PORT, a period between 100 ms and a minute.
    fn check_cluster(&self, path: &Path) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let invalid = |key, value: String, why: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            value,
            why: why.to_owned(),
        };
        if c.protocol == Protocol::Multicast && !c.group.is_multicast() {
            return Err(invalid(
                "cluster.group",
                format!("\"{}\"", c.group),
                "not a multicast address (224.0.0.0 to 239.255.255.255); use e.g. \"232.0.0.1\"",
            ));
        }
        if c.protocol == Protocol::Multicast && c.port == 0 {
            return Err(invalid(
                "cluster.port",
                "0".into(),
                "multicast needs a port every member knows: give one, e.g. 11111 (0, any free port, is for unicast, where members find each other's port in the database)",
            ));
        }
        if c.interface.is_multicast() || c.interface.is_broadcast() {
            return Err(invalid(
                "cluster.interface",
                format!("\"{}\"", c.interface),
                "give this node's own address on the cluster's internal network, e.g. \"192.168.1.1\", or \"0.0.0.0\" for every interface",
            ));
        }
        if let Some(p) = c.peers.iter().find(|p| !is_host_port(p)) {
            return Err(invalid(
                "cluster.peers",
                format!("{p:?}"),
                "each peer is HOST:PORT where a member receives announcements, e.g. \"10.0.0.6:11111\"",
            ));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&c.announce_every) {
            return Err(invalid(
                "cluster.announce_every",
                humantime::format_duration(c.announce_every).to_string(),
                "must be between 100ms and 1m, e.g. \"1s\"",
            ));
        }
        Ok(())
    }

    /// Where the database is: `database.url_file`'s content when it is set, else
    /// `database.url`.
    ///
    /// # Errors
    /// An unreadable `url_file`, or a URL of no known kind.
    pub fn database_location(&self, data: &Path) -> Result<Location, ConfigError> {
        let url = match &self.database.url_file {
            Some(f) => {
                let path = data.join(f);
                let invalid = |why: String| ConfigError::Invalid {
                    path: data.join("updhub.toml"),
                    key: "database.url_file",
                    value: path.display().to_string(),
                    why,
                };
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(format!("cannot be read ({e}); it must hold the database URL, e.g. postgres://updhub:PASSWORD@db.example:5432/updhub"))
                })?;
                let url = text.trim().to_owned();
                if !is_db_url(&url) {
                    return Err(invalid("holds no database URL; write one line, e.g. postgres://updhub:PASSWORD@db.example:5432/updhub".into()));
                }
                url
            }
            None => self.database.url.clone(),
        };
        Ok(match url.strip_prefix("sqlite:") {
            Some(file) => Location::Sqlite(data.join(file)),
            None => Location::Postgres(url),
        })
    }

    /// A digest of the settings that must be the same on every node of a cluster
    /// (reference point 1), so a parent can tell which children drifted. The database is
    /// left out: the members of a cluster share it by definition, and a child across an
    /// interserver link keeps its own (its URL also holds a password).
    pub fn same_digest(&self) -> String {
        blake3::hash(self.same_settings().to_string().as_bytes()).to_hex()[..16].to_owned()
    }

    /// A digest of the `[same]` settings a child reports to its parent, which compares it
    /// with its own ([`Config::same_digest`] less [`PUBLISHER_ONLY`]: settings only the
    /// publishing cluster acts on, which a child of another cluster has no reason to copy;
    /// and less [`CLUSTER_ONLY`]: each cluster runs its own protocol).
    pub fn tree_digest(&self) -> String {
        let mut v = self.same_settings();
        if let Some(m) = v.as_object_mut() {
            for k in PUBLISHER_ONLY.iter().chain(CLUSTER_ONLY) {
                m.remove(*k);
            }
        }
        blake3::hash(v.to_string().as_bytes()).to_hex()[..16].to_owned()
    }

    /// The settings marked `[same]`, by their dotted name in updhub.toml (no secrets among
    /// them); spans in seconds (`upstream.sync_interval` in milliseconds).
    pub fn same_settings(&self) -> serde_json::Value {
        serde_json::json!({
            "server.name": self.server.name,
            "server.requests_per_second": self.server.requests_per_second,
            "upstream.sync_interval": self.upstream.sync_interval.as_millis() as u64,
            "upstream.mirror_interval": self.upstream.mirror_interval.as_secs(),
            "upstream.stale_after": self.upstream.stale_after.as_secs(),
            "upstream.products": self.upstream.products,
            "publish.expires_in": self.publish.expires_in.as_secs(),
            "publish.auto_resign": self.publish.auto_resign,
            "publish.warn_before": self.publish.warn_before.as_secs(),
            "publish.delay": self.publish.delay.as_secs(),
            "publish.stage_timeout": self.publish.stage_timeout.as_secs(),
            "publish.quorum": self.publish.quorum.to_string(),
            "rollout.canary": self.rollout.canary,
            "rollout.soak": self.rollout.soak.as_secs(),
            "licenses.issuers": self.licenses.issuers,
            "licenses.skew_margin": self.licenses.skew_margin.as_secs(),
            "licenses.station_ttl": self.licenses.station_ttl.as_secs(),
            "licenses.warn_before": self.licenses.warn_before.as_secs(),
            "licenses.log_retention": self.licenses.log_retention.as_secs(),
            "server.report_retention": self.server.report_retention.as_secs(),
            "store.keep_versions": self.store.keep_versions,
            "cluster.protocol": self.cluster.protocol,
            "cluster.group": self.cluster.group,
            "cluster.port": self.cluster.port,
            "cluster.announce_every": self.cluster.announce_every.as_millis() as u64,
        })
    }

    /// Whether the demo issuer is among the trusted license issuers (`status` warns).
    pub fn trusts_demo_issuer(&self) -> bool {
        self.licenses.issuers.iter().any(|i| is_demo_issuer(i))
    }

    /// The commented file `init` writes.
    pub fn to_commented_toml(&self) -> String {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let parent = match (&self.upstream.parent, self.upstream.parents.as_slice()) {
            (Some(p), _) => format!("parent = {p:?}"),
            (None, []) => "# parent = \"https://parent.example:8443\"\n# parents = [\"https://a.parent.example:8443\", \"https://b.parent.example:8443\"]".into(),
            (None, ps) => format!("parents = {ps:?}"),
        };
        let peer = match &self.upstream.peer {
            Some(p) => format!("peer = {p:?}"),
            None => "# peer = \"https://neighbor.example:8443\"".into(),
        };
        format!(
            r#"# updhub configuration. CLI flags override UPDHUB_* environment variables, which
# override this file. Unknown keys are an error. Each setting says how it relates to
# the other nodes of a cluster: [same] must match on every node, [different] must
# differ, [irrelevant] may be anything. `updhub status` on a parent shows drift.

[server]
# [different] This node's unique id; its database rows and client certificate carry it.
id = {id:?}
# [same] The cluster's DNS name, used by stations and put in the server certificate.
name = {name:?}
# [irrelevant] Address `updhub serve` listens on.
listen = "{listen}"
# [irrelevant] Connections open at once. Past it the oldest idle one (no request yet) is
# closed for a newcomer; when all are serving requests, newcomers wait up to 8 s, then get
# 503 with Retry-After. Needs an open-files limit (ulimit -n) above twice this.
max_connections = {maxc}
# [same] Requests per second allowed to each peer before it gets 429.
requests_per_second = {rps}
# [irrelevant] Address where stations register (server-only TLS, station credentials).
station_listen = "{sl}"
# [different] HOST:PORT where the other members of the cluster reach this node (they fetch
# versions they lack from it). Default: listen, with the host name for 0.0.0.0 or ::.
{advertise}
# [irrelevant] How long this node's lease on a task that runs once a period on one member
# (`updhub cluster tasks`) holds without renewal; renewed every third of it. When the
# holder dies, another member takes the task within this time.
lease_ttl = "{lttl}"
# [same] Children's reports (a child silent this long is forgotten: its version no longer
# holds back GC), grant receivers' reports and the task history older than this are
# purged, by one member ("purge reports" in `updhub cluster tasks`). "0s": never.
report_retention = "{rret}"

[upstream]
# [same] The zone a parent mirrors: a folder or an https:// URL (another updhub's /v1/zone).
zone = {zone:?}
# [irrelevant] A child's parent. With it set, `updhub serve` also follows the parent.
# Or several members of the parent cluster in order (parents, not both): the next one is
# used while the first fails, and the first again once it answers (tried every sync).
{parent}
# [irrelevant] The node this one is linked to as a peer (licenses only, no updates);
# `link join` writes it. `updhub serve` exchanges licenses with it every sync_interval.
{peer}
# [same] How often a child asks its parent for a new version.
sync_interval = "{si}"
# [irrelevant] Blobs fetched (child) or files ingested (mirror) at once.
parallel = {par}
# [same] How often a serving parent reads its zone, mirrors what changed and publishes it
# (once it has published a version). "0s": mirror and publish by hand only.
mirror_interval = "{mi}"
# [same] `status` warns when the zone was last read successfully longer ago than this.
stale_after = "{stale}"
# [same] The zone's products to mirror, as glob patterns; "!" excludes. The last pattern a
# product matches decides. `updhub products` lists them with their modes.
products = {products}

[publish]
# [same] How long a signed published version stays valid.
expires_in = "{exp}"
# [same] A running parent re-signs its version when half of that time is left.
auto_resign = {ar}
# [same] A child warns when its version expires within this time (parent down?).
warn_before = "{wb}"
# [same] How long a new revision of a delayed product (`updhub products set P delayed`)
# waits before it is published; `updhub release P` lets it go at once.
delay = "{delay}"
# [same] A published version is staged first: children fetch and verify it beside their
# active one, and it is activated (every child switches at once) when every child that
# reports has staged it; after stage_timeout, when a quorum of them has ("all", a count
# such as "4", or a share such as "80%"). `updhub activate` activates it by hand.
stage_timeout = "{st}"
quorum = "{quorum}"

[database]
# [same] The database. "sqlite:FILE" (relative to the data folder) for a lone node; the
# nodes of a cluster share one PostgreSQL database: "postgres://USER:PASSWORD@HOST:PORT/DB"
# (add ?sslmode=require for TLS). Keep the password out of this file with url_file.
url = {db:?}
# [same] A file (relative to the data folder) holding the URL; replaces url when set.
{url_file}

[licenses]
# [same] ed25519 public keys (hex) of the license issuers this cluster trusts, as each
# issuer gives it; `license add` refuses the keys of any other. None by default.{demo}
issuers = {issuers}
# [same] Clock-skew allowance: a receiver stops counting a grant this long before its end,
# the donor takes it back only this long after it.
skew_margin = "{skew}"
# [same] Stations not seen for this long are purged and free their license.
station_ttl = "{sttl}"
# [same] Audit-log rows older than this are archived to a file (zstd-compressed JSON lines;
# read one with `zstd -dc FILE`) and leave the log, by one member ("archive license log").
# "0s": never.
log_retention = "{lret}"
# [irrelevant] Where this node writes those archives when it runs the task (relative to
# the data folder); `log_archives` in the database says which node holds which file.
log_archive_dir = {ldir:?}
# [same] Warn when a key or received grant ends within this time.
warn_before = "{lwb}"

[store]
# [irrelevant] `serve` rehashes the store in the background at this many MiB/s of content;
# a damaged blob is quarantined (store/quarantine/, never served) and fetched again. 0: off.
scrub_rate_mib = {scrub}
# [irrelevant] The pause between two scrub passes.
scrub_every = "{scrub_every}"
# [same] Retention: the last this many versions are kept, plus the active one, the last
# mirrored one, those children still report and those replaced less than gc_grace ago.
keep_versions = {keep}
# [irrelevant] How often `serve` removes the blobs no kept version needs. "0s": never
# (`updhub gc` still does it by hand).
gc_every = "{gc_every}"
# [irrelevant] Blobs written or reused less than this long ago, and versions replaced less
# than this long ago, are never collected: make it longer than the longest mirror or sync.
gc_grace = "{gc_grace}"

[rollout]
# [same] Ids of the children that get a new version first (the test group); the others get
# it rollout.soak later, unless `updhub rollout halt` stops it. Empty: all at once.
canary = {canary}
# [same] How long the test group holds a new version before every child gets it.
soak = "{soak}"

[backup]
# [irrelevant] How often `serve` writes an archive of this node (`updhub backup`: config,
# keys, embedded database; not the store). "0s": never.
every = "{bk_every}"
# [irrelevant] Where the archives go (relative to the data folder): best on another disk.
dir = {bk_dir:?}
# [irrelevant] How many of the newest archives are kept; older ones are removed.
keep = {bk_keep}

[cluster]
# [same] The cluster protocol: members announce their versions and settings revision to
# each other in signed UDP datagrams, so a change made on one is acted on by the others at
# once. It only accelerates: without it (or with every datagram lost) the members still
# converge through the shared database within seconds. "unicast": to each live member the
# database lists (and to peers below); "multicast": to the group below; "off" (the
# default): a lone node has nobody to tell, and a cluster turns it on, on every member.
protocol = "{cl_protocol}"
# [same] The multicast group and the UDP port (0 with unicast: any free port, which the
# members find in the database).
group = "{cl_group}"
port = {cl_port}
# [different] This node's address on the cluster's internal network: announcements are
# sent and heard on that interface only. "0.0.0.0": every interface.
interface = "{cl_interface}"
# [different] HOST:PORT of members to announce to besides those in the database.
peers = {cl_peers}
# [same] How often a member announces itself when nothing changed; one silent for three
# periods is reported (log and `updhub status`).
announce_every = "{cl_every}"
"#,
            cl_protocol = self.cluster.protocol,
            cl_group = self.cluster.group,
            cl_port = self.cluster.port,
            cl_interface = self.cluster.interface,
            cl_peers = toml::Value::try_from(&self.cluster.peers).expect("strings serialize"),
            cl_every = d(self.cluster.announce_every),
            bk_every = d(self.backup.every),
            bk_dir = self.backup.dir.display().to_string(),
            bk_keep = self.backup.keep,
            canary = toml::Value::try_from(&self.rollout.canary).expect("strings serialize"),
            soak = d(self.rollout.soak),
            keep = self.store.keep_versions,
            gc_every = d(self.store.gc_every),
            gc_grace = d(self.store.gc_grace),
            scrub = self.store.scrub_rate_mib,
            scrub_every = d(self.store.scrub_every),
            id = self.server.id.as_str(),
            name = self.server.name,
            listen = self.server.listen,
            maxc = self.server.max_connections,
            rps = self.server.requests_per_second,
            zone = self.upstream.zone,
            si = d(self.upstream.sync_interval),
            par = self.upstream.parallel,
            mi = d(self.upstream.mirror_interval),
            stale = d(self.upstream.stale_after),
            products = toml::Value::try_from(&self.upstream.products).expect("strings serialize"),
            delay = d(self.publish.delay),
            exp = d(self.publish.expires_in),
            ar = self.publish.auto_resign,
            wb = d(self.publish.warn_before),
            st = d(self.publish.stage_timeout),
            quorum = self.publish.quorum,
            db = self.database.url,
            url_file = match &self.database.url_file {
                Some(f) => format!("url_file = {:?}", f.display().to_string()),
                None => "# url_file = \"database-url\"".to_owned(),
            },
            sl = self.server.station_listen,
            lttl = d(self.server.lease_ttl),
            rret = d(self.server.report_retention),
            advertise = match &self.server.advertise {
                Some(a) => format!("advertise = {a:?}"),
                None => "# advertise = \"node1.example.net:8443\"".to_owned(),
            },
            demo = if self.trusts_demo_issuer() {
                "\n# The demo issuer of mirror/licenses/ is trusted (the demo set-up of `serve`): its keys\n# are demo licenses, not for production. Remove it from this list for production."
            } else {
                ""
            },
            issuers = serde_json::to_string(&self.licenses.issuers).expect("strings serialize"),
            skew = d(self.licenses.skew_margin),
            sttl = d(self.licenses.station_ttl),
            lret = d(self.licenses.log_retention),
            ldir = self.licenses.log_archive_dir.display().to_string(),
            lwb = d(self.licenses.warn_before),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_settings_round_trip_are_checked_and_keep_versions_is_shared() {
        let mut c = Config::new(ServerId::new("n1").unwrap(), None);
        assert_eq!(
            (c.store.keep_versions, c.store.gc_every, c.store.gc_grace),
            (5, Duration::from_secs(3600), Duration::from_secs(3600))
        );
        c.store.keep_versions = 2;
        c.store.gc_every = Duration::ZERO;
        c.store.gc_grace = Duration::from_secs(600);
        let back = Config::parse(&c.to_commented_toml(), Path::new("t.toml")).unwrap();
        assert_eq!(
            (
                back.store.keep_versions,
                back.store.gc_every,
                back.store.gc_grace
            ),
            (2, Duration::ZERO, Duration::from_secs(600))
        );
        assert_eq!(back.same_settings()["store.keep_versions"], 2);
        let shared = back.with_setting("store.keep_versions", "7").unwrap();
        assert_eq!(shared.store.keep_versions, 7);
        let err = back
            .with_setting("store.keep_versions", "0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store.keep_versions") && err.contains("at least 1"),
            "{err}"
        );
        let text = c
            .to_commented_toml()
            .replace("gc_every = \"0s\"", "gc_every = \"10ms\"");
        let err = Config::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store.gc_every") && err.contains("0s"),
            "{err}"
        );
    }

    #[test]
    fn the_database_url_comes_from_url_file_when_set_and_bad_urls_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::new(ServerId::new("n1").unwrap(), None);
        assert_eq!(
            c.database_location(dir.path()).unwrap(),
            Location::Sqlite(dir.path().join("updhub.db"))
        );
        c.database.url_file = Some("database-url".into());
        let text = c.to_commented_toml();
        let back = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(back.database.url_file, c.database.url_file);
        let err = back.database_location(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("database.url_file") && err.contains("cannot be read"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("database-url"),
            "postgres://u:secret@db:5432/x\n",
        )
        .unwrap();
        assert_eq!(
            back.database_location(dir.path()).unwrap(),
            Location::Postgres("postgres://u:secret@db:5432/x".into())
        );
        std::fs::write(dir.path().join("database-url"), "mysql://nope\n").unwrap();
        let err = back.database_location(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds no database URL"), "{err}");
        let bad = text
            .replace(
                "url = \"sqlite:updhub.db\"",
                "url = \"mysql://u:secret@db/x\"",
            )
            .replace("url_file = \"database-url\"", "");
        let err = Config::parse(&bad, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database.url") && err.contains("postgres://"),
            "{err}"
        );
    }

    #[test]
    fn commented_file_round_trips() {
        let mut c = Config::new(ServerId::new("n1").unwrap(), Some("hub.example".into()));
        c.upstream.parent = Some("https://127.0.0.1:9".into());
        c.upstream.peer = Some("https://127.0.0.1:10".into());
        let text = c.to_commented_toml();
        let back = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(back.server.name, "hub.example");
        assert_eq!(back.upstream.parent.as_deref(), Some("https://127.0.0.1:9"));
        assert_eq!(back.upstream.peer.as_deref(), Some("https://127.0.0.1:10"));
        assert_eq!(back.same_digest(), c.same_digest());
        let err = Config::parse(
            &text.replace("https://127.0.0.1:10", "http://127.0.0.1:10"),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("upstream.peer") && err.contains("https://"),
            "{err}"
        );
    }

    #[test]
    fn a_new_config_trusts_no_license_issuer_and_the_demo_issuer_is_marked_when_trusted() {
        let mut c = Config::new(ServerId::new("n1").unwrap(), None);
        assert!(c.licenses.issuers.is_empty());
        assert!(!c.trusts_demo_issuer());
        let text = c.to_commented_toml();
        assert!(text.contains("issuers = []"), "{text}");
        assert!(!text.contains("not for production"), "{text}");
        // A file without the setting trusts no issuer either.
        let bare = Config::parse("[server]\nid = \"n1\"\n", Path::new("t.toml")).unwrap();
        assert!(bare.licenses.issuers.is_empty());

        c.licenses.issuers = vec![DEMO_ISSUER.trim().to_uppercase()];
        assert!(c.trusts_demo_issuer());
        let text = c.to_commented_toml();
        assert!(text.contains("not for production"), "{text}");
        let back = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert!(back.trusts_demo_issuer());
        assert_eq!(back.same_digest(), c.same_digest());
    }

    #[test]
    fn bad_settings_are_named() {
        let p = Path::new("u.toml");
        let e = Config::parse("[server]\nid = \"n1\"\nlisten = \"nowhere\"\n", p).unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let e = Config::parse("[server]\nid = \"n1\"\ncolour = 1\n", p).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = Config::parse(
            "[server]\nid = \"n1\"\n[upstream]\nparent = \"http://x\"\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("upstream.parent"), "{e}");
        let e = Config::parse("[server]\nid = \"-bad\"\n", p).unwrap_err();
        assert!(e.to_string().contains("server id"), "{e}");
    }

    #[test]
    fn cluster_protocol_settings_default_off_round_trip_and_bad_ones_are_named() {
        let c = Config::new(ServerId::new("n1").unwrap(), None);
        assert_eq!(c.cluster.protocol, Protocol::Off);
        assert_eq!(c.cluster.group, Ipv4Addr::new(232, 0, 0, 1));
        assert_eq!(
            (c.cluster.port, c.cluster.interface),
            (11111, Ipv4Addr::UNSPECIFIED)
        );
        let mut c2 = c.clone();
        c2.cluster.protocol = Protocol::Unicast;
        c2.cluster.peers = vec!["10.0.0.6:11111".into()];
        let back = Config::parse(&c2.to_commented_toml(), Path::new("u.toml")).unwrap();
        assert_eq!(back.cluster.protocol, Protocol::Unicast);
        assert_eq!(back.cluster.peers, c2.cluster.peers);
        assert_eq!(back.same_settings()["cluster.protocol"], "unicast");
        assert_ne!(
            back.same_digest(),
            c.same_digest(),
            "the protocol is [same]"
        );
        assert_eq!(
            back.tree_digest(),
            c.tree_digest(),
            "a child across a link runs its own cluster's protocol"
        );
        let p = Path::new("u.toml");
        let bad = |section: &str, key: &str| {
            let e = Config::parse(&format!("[server]\nid = \"n1\"\n[cluster]\n{section}\n"), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{section}: {e}");
        };
        bad(
            "protocol = \"multicast\"\ngroup = \"10.0.0.1\"",
            "cluster.group",
        );
        bad("protocol = \"multicast\"\nport = 0", "cluster.port");
        bad("peers = [\"nohost\"]", "cluster.peers");
        bad("announce_every = \"10ms\"", "cluster.announce_every");
        bad("interface = \"239.1.1.1\"", "cluster.interface");
        bad("protocol = \"broadcast\"", "protocol");
    }

    #[test]
    fn a_child_lists_several_parents_or_one_never_both() {
        let p = Path::new("u.toml");
        let parse = |upstream: &str| {
            Config::parse(
                &format!("[server]\nid = \"c1\"\n[upstream]\n{upstream}\n"),
                p,
            )
        };
        let c = parse("parents = [\"https://a:8443\", \"https://b:8443\"]").unwrap();
        assert_eq!(
            c.upstream.parent_urls(),
            ["https://a:8443", "https://b:8443"]
        );
        let text = c.to_commented_toml();
        let back = Config::parse(&text, p).unwrap();
        assert_eq!(back.upstream.parent_urls(), c.upstream.parent_urls());
        // One parent is a list of one; none is a top parent.
        let one = parse("parent = \"https://a:8443\"").unwrap();
        assert_eq!(one.upstream.parent_urls(), ["https://a:8443"]);
        assert!(parse("").unwrap().upstream.parent_urls().is_empty());
        for (bad, says) in [
            (
                "parent = \"https://a:8443\"\nparents = [\"https://b:8443\"]",
                "keep one of them",
            ),
            (
                "parents = [\"https://a:8443\", \"http://b:8443\"]",
                "https:// URL",
            ),
            (
                "parents = [\"https://a:8443\", \"https://a:8443\"]",
                "listed twice",
            ),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("upstream.parents") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }
}
