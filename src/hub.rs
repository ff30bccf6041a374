//! One node: its data folder, configuration, keys, database and store, and the admin
//! commands that act on them (init, keys export, mirror, publish, versions, checkout, export,
//! status). `main.rs` only parses arguments and calls these.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{self, Config};
use crate::db::{ChildReport, Db, SyncState, VersionRow};
use crate::error::Error;
use crate::id::{Root, ServerId};
use crate::keys::{self, ClusterKeys};
use crate::mirror::{self, MirrorSummary};
use crate::repo::{Manifest, Published};
use crate::store::Store;
use crate::zone::{self, Zone};

/// Options of `updhub init`.
#[derive(Debug, Default, Clone)]
pub struct InitOptions {
    /// Take the shared cluster keys from this folder (made by `keys export`).
    pub keys_from: Option<PathBuf>,
    /// This node's id; random if absent.
    pub id: Option<ServerId>,
    /// The cluster's DNS name.
    pub name: Option<String>,
    /// This node's parent, written into the config.
    pub parent: Option<String>,
    /// The upstream zone, written into the config.
    pub zone: Option<String>,
    /// The database URL (`database.url`); the embedded SQLite file if absent.
    pub database: Option<String>,
    /// License issuers to trust (`licenses.issuers`, hex public keys); none if empty.
    pub issuers: Vec<String>,
}

/// How often a serving node refreshes its membership row.
pub const MEMBER_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A member whose row is older than this is taken as gone: its id may be used again.
pub const MEMBER_ALIVE: std::time::Duration = std::time::Duration::from_secs(20);

/// A node.
pub struct Hub {
    /// The data folder.
    pub data: PathBuf,
    /// Its configuration as updhub.toml (and the command line) gave it at start.
    pub config: Config,
    /// The configuration in force: `config` with the cluster's shared settings applied
    /// (see [`Hub::refresh_settings`]).
    live: std::sync::RwLock<std::sync::Arc<Config>>,
    /// The shared settings revision `live` holds.
    settings_revision: std::sync::atomic::AtomicI64,
    /// The cluster keys and this node's certificate.
    pub keys: ClusterKeys,
    /// The database.
    pub db: Db,
    /// The blob store.
    pub store: Store,
    /// Station licenses and grants.
    pub ledger: crate::license::Ledger,
    /// The ids of the parents this node syncs through, nearest first (loop detection).
    pub chain: Mutex<Vec<String>>,
    /// The interserver HTTPS client, built on first use and shared by every sync, so its
    /// connections are reused; built anew when the link's certificate or CA changes.
    client: std::sync::RwLock<Option<reqwest::Client>>,
    /// The parent's CA as its last answer named it (`X-Updhub-Ca`), and the name this node
    /// last took in (see [`crate::link::follow_ca`]).
    pub ca_seen: Mutex<(Option<String>, Option<String>)>,
    /// The cluster's links in force, re-read every [`crate::node::LINKS_EVERY`].
    links: std::sync::RwLock<LinkCache>,
    /// Bumped whenever this node's active or staged version may have moved (publish,
    /// stage, activate, switch), so long-polling children are answered at once.
    pub version_events: tokio::sync::watch::Sender<u64>,
    /// The cluster protocol's counters and wake-ups (see [`crate::announce`]).
    pub announce: crate::announce::Shared,
    /// This node's own clock (tests set it wrong; see [`crate::clock`]).
    pub clock: crate::clock::Clock,
    /// This process, as its membership row names it.
    pub process: crate::cluster::Process,
}

/// A node being made in a temporary folder (see [`Hub::begin_init`]).
pub struct NewNode {
    /// The node, open in its temporary folder: mirror, publish and add keys here.
    pub hub: Hub,
    /// The temporary folder, removed on drop unless renamed into place.
    tmp: tempfile::TempDir,
    /// Where the node goes.
    dest: PathBuf,
}

impl NewNode {
    /// Close the node, move it into place and open it there.
    ///
    /// # Errors
    /// The rename fails (another process made a node there meanwhile), or reopening fails.
    pub fn finish(self) -> Result<Hub, Error> {
        let NewNode { hub, tmp, dest } = self;
        // Everything in the database file and every connection closed before the move.
        hub.db.checkpoint()?;
        drop(hub);
        fs::rename(tmp.path(), &dest).map_err(|e| Error::Data {
            path: dest.clone(),
            why: format!(
                "cannot move the new node into place ({e}); did another process create it meanwhile?"
            ),
        })?;
        // Renamed away: nothing left for the guard to remove.
        let _ = tmp.keep();
        crate::store::sync_dir(
            dest.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        Hub::open(&dest)
    }
}

/// The links in force, by certificate and by id.
#[derive(Debug, Default)]
struct LinkCache {
    /// Certificate fingerprint (hex) -> (id, kind).
    by_fp: std::collections::HashMap<String, (String, String)>,
    /// Id -> certificate fingerprint (hex).
    by_id: std::collections::HashMap<String, String>,
}

/// Who a peer on the interserver port is, from its verified certificate.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerIdentity {
    /// A node enrolled by link: the id bound to this very certificate.
    Linked {
        /// Its id.
        id: String,
        /// "child" or "peer".
        kind: String,
        /// The fingerprint of the certificate it presented (hex).
        fp: String,
    },
    /// A certificate naming the id of an enrolled node, with another key: refused.
    Conflict {
        /// The id it claims.
        id: String,
        /// Its fingerprint.
        fp: String,
        /// The fingerprint bound to that id.
        bound: String,
    },
    /// A member of this cluster, or a child that shares its keys: the certificate's name.
    Member(String),
}

/// What one scheduled round (or `release`) did.
#[derive(Debug, Serialize)]
pub struct Update {
    /// The mirror run.
    pub mirrored: MirrorSummary,
    /// The version published, if the content changed.
    pub published: Option<Published>,
}

/// What `status` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    /// This node's id.
    pub server_id: String,
    /// "parent" or "child".
    pub role: &'static str,
    /// The current version.
    pub current: Option<Published>,
    /// The cluster's links to nodes of other trust domains.
    pub links: Vec<crate::db::Link>,
    /// Differences between what this cluster donated and what its receivers report.
    pub license_mismatches: Vec<String>,
    /// Received grants flagged for breaking the rules of conservation (they no longer count).
    pub license_flags: Vec<crate::db::grant_rules::Flag>,
    /// How this node trusts its parent: "link with PARENT (CA fp)" when enrolled by link.
    pub upstream_trust: Option<String>,
    /// This cluster's CA rotation in progress: its end, and who still holds the old CA.
    pub ca_rotation: Option<CaRotationStatus>,
    /// The cluster's published version (the same as `current` once this node holds it).
    pub cluster_version: Option<Published>,
    /// The cluster's staged version and where its activation stands (a top parent).
    pub rollout: Option<crate::switch::Rollout>,
    /// The version this node holds staged beside its active one.
    pub staged: Option<Published>,
    /// A warning, if the version is about to expire.
    pub warning: Option<String>,
    /// What the store lacks of the version this node serves, and what it quarantined.
    pub store_damage: Option<String>,
    /// The last mirror run.
    pub mirrored: Option<crate::db::Mirrored>,
    /// Live members on different updhub versions, named by version ([`mixed_versions`]).
    pub mixed_versions: Option<String>,
    /// The staged version's rollout to the test group (rollout.canary), and its phase.
    pub canary: Option<(crate::canary::Canary, crate::canary::Phase)>,
    /// A parent whose zone was not read successfully for longer than `upstream.stale_after`,
    /// or whose last scheduled run failed: what is wrong and what to do.
    pub upstream_warning: Option<String>,
    /// The last sync attempt (a child): its parent is the one it syncs from now.
    pub sync: Option<SyncState>,
    /// A child's parents in the order it tries them (`upstream.parents`).
    pub parents: Vec<String>,
    /// A top parent's cluster: the member that holds the publisher role live, if any.
    pub publisher: Option<String>,
    /// Children's last reports (a parent), each child's latest to any member of the cluster.
    pub children: Vec<ChildStatus>,
    /// Whether the demo license issuer is among the trusted issuers (the demo set-up of
    /// `serve`): its keys are demo licenses, not for production.
    pub demo_issuer_trusted: bool,
    /// Digest of this node's must-be-the-same settings.
    pub config_digest: String,
    /// The database (file or URL without password).
    pub database: String,
    /// The cluster the database belongs to.
    pub cluster_id: String,
    /// The cluster's members, as they last recorded themselves.
    pub members: Vec<MemberStatus>,
    /// This node's last garbage collection (`updhub gc` or `serve`'s periodic one).
    pub last_gc: Option<crate::gc::Last>,
    /// The members that run the cluster protocol: where they hear it, their counters.
    pub announcers: Vec<crate::db::Announcer>,
}

/// How a membership row names a key or CA file: blake3 of its bytes, 16 hex digits.
pub(crate) fn fingerprint(b: &[u8]) -> String {
    blake3::hash(b).to_hex()[..16].to_owned()
}

/// A CA rotation in progress, as `status` shows it.
#[derive(Debug, Serialize)]
pub struct CaRotationStatus {
    /// The old CA's fingerprint (hex).
    pub old_ca: String,
    /// The new CA's fingerprint (hex).
    pub new_ca: String,
    /// When certificates of the old CA stop being accepted.
    pub ends: DateTime<Utc>,
    /// Whether that time has passed (`keys rotate-ca --finish` tidies up).
    pub ended: bool,
    /// Live links whose certificate the old CA issued: cut off when the overlap ends.
    pub links_on_old_ca: Vec<String>,
    /// Live members whose keys hold another CA than this node's: they need the new keys.
    pub members_on_other_ca: Vec<String>,
}

/// A member as `status` shows it.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    /// Its row.
    #[serde(flatten)]
    pub member: crate::db::Member,
    /// Heard from within [`MEMBER_ALIVE`].
    pub alive: bool,
}

/// A cluster whose live members run different updhub versions (an upgrade in progress, or
/// one that stopped halfway), as `status` warns of it: each version with its members.
pub fn mixed_versions(members: &[MemberStatus]) -> Option<String> {
    let mut by: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for m in members.iter().filter(|m| m.alive) {
        by.entry(&m.member.updhub_version)
            .or_default()
            .push(m.member.node_id.as_str());
    }
    (by.len() > 1).then(|| {
        let parts: Vec<String> = by
            .iter()
            .map(|(v, ids)| format!("updhub {v} on {}", ids.join(", ")))
            .collect();
        format!(
            "the live members run different versions: {}; finish the upgrade one member at a time (`updhub cluster check` compares them)",
            parts.join("; ")
        )
    })
}

/// A child as its parent sees it.
#[derive(Debug, Serialize)]
pub struct ChildStatus {
    /// The report.
    #[serde(flatten)]
    pub report: ChildReport,
    /// Whether it holds the version this node holds.
    pub in_sync: bool,
    /// Whether it holds the version rolling out to the test group (rollout.canary) first.
    pub test_group: bool,
    /// Whether its must-be-the-same settings match this node's.
    pub config_matches: bool,
}

/// The demo license key shipped, signed, with the sample data (`mirror/licenses/`), built in
/// so the zero-config first `serve` has licenses wherever the binary runs. Only a node that
/// trusts [`crate::config::DEMO_ISSUER`] on purpose accepts it.
pub const DEMO_LICENSE: &[u8] = include_bytes!("../mirror/licenses/demo-license.json");

/// `license add FILE`: read, check (trusted issuer, signature, not expired) and store a key.
///
/// # Errors
/// An unreadable or invalid file, an untrusted issuer, an expired key, the same key twice.
pub async fn add_license_file(hub: &Hub, file: &Path) -> Result<crate::license::LicenseKey, Error> {
    let bytes = fs::read(file).map_err(|e| crate::license::LicenseError::BadKey {
        what: file.display().to_string(),
        why: format!("cannot be read ({e}); check the path"),
    })?;
    add_license_bytes(hub, &bytes, &file.display().to_string()).await
}

/// Check and store a license key given as bytes; `what` names it in errors.
///
/// # Errors
/// An invalid key, an untrusted issuer, an expired key, the same key twice.
pub async fn add_license_bytes(
    hub: &Hub,
    bytes: &[u8],
    what: &str,
) -> Result<crate::license::LicenseKey, Error> {
    let key = crate::license::LicenseKey::parse_and_check(
        bytes,
        what,
        &hub.live().licenses.issuers,
        Utc::now(),
    )?;
    hub.ledger.add_key(key.clone()).await?;
    Ok(key)
}

impl Hub {
    /// Create a data folder: config, database, cluster keys (new or copied) and this node's
    /// certificate. Refuses a folder that already holds a node.
    ///
    /// # Errors
    /// An existing node, bad keys to copy, or write errors.
    pub fn init(data: &Path, opts: InitOptions) -> Result<Hub, Error> {
        Hub::begin_init(data, opts)?.finish()
    }

    /// Make a node in a temporary folder beside `data`; [`NewNode::finish`] renames it into
    /// place. Dropped before that, it leaves nothing behind, so a set-up that fails halfway
    /// (a bad key folder, a missing zone) never leaves a half-made node.
    ///
    /// # Errors
    /// An existing node or other files at `data`, bad keys to copy, or write errors.
    pub fn begin_init(data: &Path, opts: InitOptions) -> Result<NewNode, Error> {
        let cfg_path = data.join(config::FILE);
        if cfg_path.exists() {
            return Err(Error::Data {
                path: cfg_path,
                why: "this data folder already holds a node; use another --data folder, or delete it to start over".into(),
            });
        }
        // rename() replaces an empty folder but no other file.
        if fs::read_dir(data).is_ok_and(|mut d| d.next().is_some()) || data.is_file() {
            return Err(Error::Data {
                path: data.to_owned(),
                why: "exists and is not an empty folder; init makes a node only in a new or empty folder: pass another --data".into(),
            });
        }
        let id = opts.id.unwrap_or_else(ServerId::random);
        let mut cfg = Config::new(id.clone(), opts.name.clone());
        cfg.upstream.parent = opts.parent;
        if let Some(z) = opts.zone {
            cfg.upstream.zone = z;
        }
        if let Some(url) = opts.database {
            cfg.database.url = url;
        }
        cfg.licenses.issuers = opts.issuers;
        // Check the config we are about to write, so init never leaves a node that cannot start.
        let text = cfg.to_commented_toml();
        Config::parse(&text, &cfg_path)?;
        let io = |what: String| move |source| Error::Io { what, source };
        let parent = match data.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        let name = data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "updhub-data".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.init-"))
            .tempdir_in(parent)
            .map_err(io(format!("creating a folder in {}", parent.display())))?;
        let staging = tmp.path();
        let keys_dir = staging.join("keys");
        match &opts.keys_from {
            Some(from) => keys::copy_shared(from, &keys_dir)?,
            None => keys::generate(&keys_dir, &cfg.server.name)?,
        }
        keys::issue_node_cert(&keys_dir, &id)?;
        drop(Db::create_at(&cfg.database_location(staging)?, id.clone())?);
        let staged_cfg = staging.join(config::FILE);
        fs::write(&staged_cfg, text).map_err(io(format!("writing {}", staged_cfg.display())))?;
        let hub = Hub::open(staging)?;
        Ok(NewNode {
            hub,
            tmp,
            dest: data.to_owned(),
        })
    }

    /// Open an initialized data folder.
    ///
    /// # Errors
    /// Missing or bad config, keys or database.
    pub fn open(data: &Path) -> Result<Hub, Error> {
        let config = Config::load(data)?;
        Hub::open_with(data, config)
    }

    /// Open a data folder with a configuration given by the caller (CLI overrides applied).
    ///
    /// # Errors
    /// Bad keys or database.
    pub fn open_with(data: &Path, config: Config) -> Result<Hub, Error> {
        let keys = ClusterKeys::load(&data.join("keys"))?;
        let db = Db::open_at(&config.database_location(data)?, config.server.id.clone())?;
        let store = Store::open(data.join("store"))?;
        // The ledger is the cluster's: every node on one database shares its keys,
        // stations and grants (on SQLite the cluster is this node alone).
        let ledger = crate::license::Ledger::open(
            &db,
            db.cluster_id().clone(),
            keys.signing.clone(),
            config.licenses.skew_margin,
        )?;
        ledger.trust_issuers(&config.licenses.issuers);
        if let Some(u) = &keys.upstream {
            ledger.set_upstream_grant_key(&u.parent_id, &keys.donor());
            ledger.follow_upstream(u.clone());
        }
        let hub = Hub {
            data: data.to_owned(),
            live: std::sync::RwLock::new(std::sync::Arc::new(config.clone())),
            settings_revision: std::sync::atomic::AtomicI64::new(0),
            config,
            keys,
            db,
            store,
            ledger,
            chain: Mutex::new(Vec::new()),
            client: std::sync::RwLock::new(None),
            ca_seen: Mutex::new((None, None)),
            links: std::sync::RwLock::new(LinkCache::default()),
            version_events: tokio::sync::watch::channel(0).0,
            announce: crate::announce::Shared::default(),
            clock: crate::clock::Clock::default(),
            process: crate::cluster::Process::default(),
        };
        hub.refresh_settings()?;
        hub.refresh_links()?;
        Ok(hub)
    }

    /// Re-read the cluster's links: who is bound to which certificate, and which
    /// certificates were removed (refused from then on at the handshake).
    ///
    /// # Errors
    /// Database errors.
    pub fn refresh_links(&self) -> Result<(), Error> {
        let st = self.db.link_state()?;
        let mut cache = LinkCache::default();
        for (id, kind, fp) in st.live {
            cache.by_id.insert(id.clone(), fp.clone());
            cache.by_fp.insert(fp, (id, kind));
        }
        let removed = st
            .removed
            .iter()
            .filter_map(|fp| hex::decode(fp).ok()?.try_into().ok())
            .collect();
        *self.keys.removed.write().unwrap_or_else(|p| p.into_inner()) = removed;
        *self.links.write().unwrap_or_else(|p| p.into_inner()) = cache;
        Ok(())
    }

    /// Who presents `cert` (already verified against the cluster CA): ids come from the
    /// binding made at enrollment, never from a name alone.
    pub fn peer_identity(&self, cert: &rustls::pki_types::CertificateDer<'_>) -> PeerIdentity {
        let fp = hex::encode(keys::cert_fp(cert));
        let name = keys::peer_name(cert).unwrap_or_else(|| "unknown".to_owned());
        if let Some((id, kind)) = self.linked(&fp) {
            return PeerIdentity::Linked { id, kind, fp };
        }
        let cache = self.links.read().unwrap_or_else(|p| p.into_inner());
        if let Some(bound) = cache.by_id.get(&name) {
            return PeerIdentity::Conflict {
                id: name,
                fp,
                bound: bound.clone(),
            };
        }
        PeerIdentity::Member(name)
    }

    /// The live link (id, kind) bound to the certificate with fingerprint `fp` (hex).
    pub fn linked(&self, fp: &str) -> Option<(String, String)> {
        self.links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_fp
            .get(fp)
            .cloned()
    }

    /// Whether the certificate with fingerprint `fp` was removed (checked on every request,
    /// so a connection opened before the removal ends too).
    pub fn is_removed(&self, fp: &[u8; 32]) -> bool {
        self.keys
            .removed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(fp)
    }

    /// The configuration in force: updhub.toml with the cluster's shared settings applied.
    pub fn live(&self) -> std::sync::Arc<Config> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Apply the cluster's shared settings when their revision changed (a serving node
    /// polls this every few seconds); returns the new revision, `None` when nothing changed.
    /// A stored value this build cannot take is skipped with a warning.
    ///
    /// # Errors
    /// Database errors.
    pub fn refresh_settings(&self) -> Result<Option<i64>, Error> {
        use std::sync::atomic::Ordering;
        let rev = self.db.settings_revision()?;
        if rev == self.settings_revision.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut cfg = self.config.clone();
        for s in self.db.shared_settings()? {
            match cfg.with_setting(&s.key, &s.value) {
                Ok(c) => cfg = c,
                Err(e) => tracing::warn!(
                    "shared setting {} = {} (revision {}, set on {}) is not applied: {e}",
                    s.key,
                    s.value,
                    s.revision,
                    s.set_by
                ),
            }
        }
        self.ledger.trust_issuers(&cfg.licenses.issuers);
        *self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(cfg);
        self.settings_revision.store(rev, Ordering::Release);
        self.announce.changed();
        tracing::debug!("shared settings revision {rev} applied");
        Ok(Some(rev))
    }

    /// The shared settings revision in force here.
    pub fn settings_revision(&self) -> i64 {
        self.settings_revision
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// `config set`: set a shared setting for the whole cluster (checked first, as
    /// updhub.toml is); every node applies it within a few seconds. Returns the revision.
    ///
    /// # Errors
    /// A setting that is not shared, a value it cannot take, or database errors.
    pub fn set_shared_setting(&self, key: &str, value: &str) -> Result<i64, Error> {
        self.live().with_setting(key, value)?;
        // The database's clock: `cluster check` compares this time with the members' records,
        // which are stamped by it too.
        let at = self.db.now()?;
        let rev = self.db.set_shared_setting(key, value.trim(), at)?;
        self.refresh_settings()?;
        Ok(rev)
    }

    /// The node's HTTPS client for its parent (see [`crate::peer::upstream_client`]), built
    /// once and reused by every sync.
    ///
    /// # Errors
    /// The client cannot be built (a message for the caller's error).
    pub fn client(&self) -> Result<reqwest::Client, String> {
        if let Some(c) = self
            .client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(c.clone());
        }
        let c = crate::peer::upstream_client(&self.keys)?;
        Ok(self
            .client
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(c)
            .clone())
    }

    /// Forget the HTTPS client and its pooled connections: the link's certificate or the
    /// parent's CA changed, and connections opened with the old ones must not be reused.
    pub fn reset_client(&self) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Wake the children long-polling this node: its active or staged version may have
    /// moved.
    pub fn versions_moved(&self) {
        self.version_events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// This node's id.
    pub fn id(&self) -> &ServerId {
        &self.config.server.id
    }

    /// Whether `id` is a server this one may donate to: a child that reported here, a node
    /// linked to this cluster, or the node this one enrolled with as a peer (a child link
    /// carries licenses down only: its parent refuses what a child offers).
    pub fn knows_server(&self, id: &str) -> bool {
        self.keys
            .upstream
            .as_ref()
            .is_some_and(|u| u.parent_id == id && u.kind == "peer")
            || self.db.knows_server(id).unwrap_or(false)
    }

    /// Whether this node follows a parent.
    pub fn is_child(&self) -> bool {
        !self.config.upstream.parent_urls().is_empty()
    }

    /// `keys export --to DIR`: the shared cluster keys, for `init --keys-from` on another node.
    ///
    /// # Errors
    /// Unreadable keys or a write error.
    pub fn export_keys(&self, to: &Path) -> Result<(), Error> {
        keys::copy_shared(&self.data.join("keys"), to)?;
        Ok(())
    }

    /// `keys import --from DIR` (the node stopped): take the cluster's shared keys exported
    /// by another member (after a `keys rotate` or `keys rotate-ca` there), and issue this
    /// node's own certificate anew from the cluster CA they carry. Its data stays.
    ///
    /// # Errors
    /// A serving node, or keys that do not load (nothing is changed then).
    pub fn import_keys(&self, from: &Path) -> Result<(), Error> {
        if self.keys.upstream.is_some() {
            return Err(Error::State(
                "this node is linked to a parent of another trust domain; only members of one cluster share keys: a linked node follows its parent's rotations by itself".into(),
            ));
        }
        let _lock = crate::lock::DataLock::take(&self.data, "keys import")?;
        let dir = self.data.join("keys");
        keys::copy_shared(from, &dir)?;
        keys::issue_node_cert(&dir, self.id())?;
        Ok(())
    }

    /// `mirror`: pull the zone (`from`, or the configured one) into the store.
    ///
    /// # Errors
    /// See [`mirror::mirror`].
    pub async fn mirror(&self, from: Option<&str>, progress: bool) -> Result<MirrorSummary, Error> {
        self.mirror_run(from, progress, mirror::Run::Full).await
    }

    async fn mirror_run(
        &self,
        from: Option<&str>,
        progress: bool,
        run: mirror::Run,
    ) -> Result<MirrorSummary, Error> {
        // What the kept versions need and the store lacks is fetched again first (a blob
        // quarantined by the scrub or on a child's report, a restored node's whole store):
        // products the policy keeps take their files from the served version, and what is
        // published next must be whole. What cannot be had is logged, and named again by
        // `policy` or `publish` if it matters.
        let repaired = crate::repair::repair(self).await?;
        if repaired.blobs > 0 && repaired.failed.is_empty() {
            tracing::info!("repair before mirroring: {repaired}");
        }
        let live = self.live();
        let spec = from.unwrap_or(&live.upstream.zone);
        let zone = Zone::open(spec, &self.keys)?;
        let policy = self.policy()?;
        Ok(mirror::mirror(
            &self.store,
            &self.db,
            &zone,
            live.upstream.parallel,
            progress,
            &policy,
            run,
        )
        .await?)
    }

    /// The cluster's newest published version: the staged one while it waits for its
    /// children, else the active one. What the next version builds on.
    ///
    /// # Errors
    /// Database errors.
    pub fn latest_published(&self) -> Result<Option<Published>, Error> {
        let active = self.db.cluster_published()?;
        let staged = self.db.cluster_staged()?.map(|s| s.published);
        Ok(match (active, staged) {
            (Some(a), Some(s)) if s.number > a.number => Some(s),
            (None, Some(s)) => Some(s),
            (a, _) => a,
        })
    }

    /// What decides which revision of each product the next version holds: the cluster's
    /// settings and product modes, and the version it serves now.
    ///
    /// # Errors
    /// Database errors, or the active version's manifest missing from this node's store.
    pub fn policy(&self) -> Result<crate::products::Policy, Error> {
        let live = self.live();
        let modes = self.db.product_modes()?;
        let active = match self.latest_published()?.or(self.db.published()?) {
            Some(p) => match self.manifest(&p.root) {
                Ok(m) => Some(m),
                // Only a product that does not follow the zone needs the active version's
                // files; without one, a mirror (the repair of a lost manifest) goes on.
                Err(_) if modes.is_empty() => None,
                Err(e) => {
                    return Err(Error::State(format!(
                        "the cluster's version {} (root {}) is not whole in this node's store ({e}), and products {} keep their files from it; and neither the zone at that version's revisions nor a live member could give it back (the repair's log says why); a member catches up within seconds while it serves; make the zone folder hold those revisions again, then run `updhub verify --repair`",
                        p.number,
                        p.root,
                        modes.keys().cloned().collect::<Vec<_>>().join(", ")
                    )))
                }
            },
            None => None,
        };
        Ok(crate::products::Policy {
            filter: crate::products::Filter::new(&live.upstream.products)
                .map_err(|e| Error::State(format!("upstream.products: {e}")))?,
            modes,
            delay: live.publish.delay,
            offered: self.db.offered()?,
            active,
        })
    }

    /// One scheduled round of a parent (and what `updhub release` runs): read the zone, mirror
    /// what the products policy takes if it changed, and publish it if it differs from the
    /// cluster's version. A round with nothing new reads only the zone index.
    ///
    /// # Errors
    /// A child, zone, store and database errors; a failed round is recorded for `status`.
    pub async fn update(&self) -> Result<Update, Error> {
        if self.is_child() {
            return Err(Error::State(
                "this node follows a parent (upstream.parent is set): only the top parent mirrors and publishes".into(),
            ));
        }
        let result = async {
            let mirrored = self.mirror_run(None, false, mirror::Run::IfChanged).await?;
            // Published already as the newest version (staged and waiting for its children,
            // or active). Compared with the newest only: a zone that went back to the active
            // content while a newer version is staged is published again, forward.
            let newest = self.latest_published()?.map(|p| p.root);
            let published = if newest == Some(mirrored.root) {
                None
            } else {
                Some(self.publish(None)?.0)
            };
            Ok::<_, Error>(Update {
                mirrored,
                published,
            })
        }
        .await;
        if let Err(e) = &result {
            self.db.set_checked(Utc::now(), Some(&e.to_string()))?;
        }
        result
    }

    /// `products`: what the policy decides for each product, against the zone as it is now.
    ///
    /// # Errors
    /// An unreadable zone, or database errors.
    pub async fn products(&self) -> Result<Vec<crate::products::Decision>, Error> {
        let zone = Zone::open(&self.live().upstream.zone, &self.keys)?;
        let index = zone.index().await?;
        Ok(self.policy()?.decide(&index, Utc::now()))
    }

    /// `products set PRODUCT MODE`, for the whole cluster.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_product_mode(
        &self,
        product: &str,
        mode: crate::products::Mode,
    ) -> Result<(), Error> {
        crate::repo::check_name(product)
            .map_err(|why| Error::State(format!("product {product:?}: {why}")))?;
        Ok(self
            .db
            .set_product_mode(product, mode, self.id().as_str(), Utc::now())?)
    }

    /// `release PRODUCT`: take the zone's revision of a delayed or on-demand product now,
    /// mirror and publish it. Returns the revision and the round's outcome.
    ///
    /// # Errors
    /// A frozen product (thaw it first), a product the zone does not offer, or the round's
    /// errors.
    pub async fn release(&self, product: &str) -> Result<(String, Update), Error> {
        let decision = self
            .products()
            .await?
            .into_iter()
            .find(|d| d.product == product)
            .ok_or_else(|| {
                Error::State(format!(
                    "the zone offers no product {product:?}; `updhub products` lists them"
                ))
            })?;
        let Some(revision) = decision.zone.clone() else {
            return Err(Error::State(format!(
                "the zone no longer offers {product}; nothing to release"
            )));
        };
        if !decision.included {
            return Err(Error::State(format!(
                "{product} is excluded by upstream.products; include it there first"
            )));
        }
        if decision.mode == crate::products::Mode::Frozen {
            return Err(Error::State(format!(
                "{product} is frozen at revision {}; `updhub products set {product} current` lets it follow the zone",
                decision.current.as_deref().unwrap_or("(none)")
            )));
        }
        self.db.release_revision(product, &revision, Utc::now())?;
        Ok((revision, self.update().await?))
    }

    /// `publish --version N --product P`: roll one product back. The cluster's version with
    /// `product`'s files as version `number` held them is published under the next number,
    /// and the product is frozen there, so the next scheduled mirror does not move it again.
    /// Returns the document, whether it is new and the product's revision.
    ///
    /// # Errors
    /// No such version, a version without the product, nothing published yet, or the errors
    /// of publishing.
    pub fn publish_product_version(
        &self,
        number: u64,
        product: &str,
        expires_in: Option<Duration>,
    ) -> Result<(Published, bool, String), Error> {
        let v = self.version_row(number)?;
        let old = self.manifest(&v.root)?;
        let active = self.latest_published()?.ok_or_else(|| {
            Error::State(
                "nothing is published yet: publish a version before rolling a product back".into(),
            )
        })?;
        let now = self.manifest(&active.root)?;
        let wanted: Vec<_> = old
            .entries
            .iter()
            .filter(|e| e.product == product)
            .cloned()
            .collect();
        let Some(revision) = wanted.first().map(|e| e.revision.clone()) else {
            return Err(Error::State(format!(
                "version {number} holds no product {product:?}; `updhub versions` and `updhub products` show what each holds"
            )));
        };
        let mut entries: Vec<_> = now
            .entries
            .into_iter()
            .filter(|e| e.product != product)
            .collect();
        entries.extend(wanted);
        let m = crate::repo::Manifest::new(entries)?;
        let root = crate::id::Root(self.store.put_bytes(&m.canonical_bytes())?);
        let (p, new) =
            self.publish_root(root, m.entries.len() as u64, m.total_size(), expires_in)?;
        self.set_product_mode(product, crate::products::Mode::Frozen)?;
        Ok((p, new, revision))
    }

    /// `publish`: make the last mirrored manifest the next version and sign it.
    /// Returns the signed document and whether it is a new version.
    ///
    /// # Errors
    /// Nothing mirrored yet, a missing manifest, or database errors.
    pub fn publish(&self, expires_in: Option<Duration>) -> Result<(Published, bool), Error> {
        let m = self.db.mirrored()?.ok_or_else(|| {
            Error::State("nothing mirrored yet; run `updhub mirror` first".into())
        })?;
        self.publish_root(m.root, m.files, m.bytes, expires_in)
    }

    /// `publish --version N`: a rollback that moves forward. The content of the earlier
    /// version `number` is published again under the cluster's next number (children never
    /// accept a lower number), so every child goes back to it at its next sync.
    ///
    /// # Errors
    /// No such version, its blobs no longer whole here, or database errors.
    pub fn publish_version(
        &self,
        number: u64,
        expires_in: Option<Duration>,
    ) -> Result<(Published, bool), Error> {
        self.rollback(number, expires_in)
            .map(|(p, new, _)| (p, new))
    }

    /// [`Hub::publish_version`], which also freezes every product whose revision the rollback
    /// changed (returned by name), so the next scheduled mirror does not undo it; `updhub
    /// products set P current` lets a product follow the zone again.
    ///
    /// # Errors
    /// See [`Hub::publish_version`].
    pub fn rollback(
        &self,
        number: u64,
        expires_in: Option<Duration>,
    ) -> Result<(Published, bool, Vec<String>), Error> {
        let v = self.version_row(number)?;
        let before = match self.latest_published()? {
            Some(p) => self.manifest(&p.root)?.entries,
            None => Vec::new(),
        };
        let (p, new) = self.publish_root(v.root, v.files, v.bytes, expires_in)?;
        let revs = |entries: &[crate::repo::Entry]| -> std::collections::BTreeMap<String, String> {
            entries
                .iter()
                .map(|e| (e.product.clone(), e.revision.clone()))
                .collect()
        };
        let (was, now) = (revs(&before), revs(&self.manifest(&v.root)?.entries));
        let mut frozen = Vec::new();
        for (product, revision) in &now {
            if was.get(product) != Some(revision) {
                self.set_product_mode(product, crate::products::Mode::Frozen)?;
                frozen.push(product.clone());
            }
        }
        Ok((p, new, frozen))
    }

    /// Version `number`, whose content this store still holds (rollback's source).
    fn version_row(&self, number: u64) -> Result<VersionRow, Error> {
        let v = self
            .versions()?
            .into_iter()
            .find(|v| v.number == number)
            .ok_or_else(|| {
                Error::State(format!(
                    "there is no version {number}; `updhub versions` lists the versions held here"
                ))
            })?;
        if !self.store.contains(&v.root.0) {
            return Err(Error::State(format!(
                "version {number} (root {}) was removed by garbage collection: retention keeps the last {} versions (store.keep_versions) plus the active and mirrored ones, and its content is no longer in this store; publish a newer version from `updhub versions`, or mirror that content again (`updhub mirror --from ZONE`, then `updhub publish`); raise store.keep_versions to keep more versions for rollback",
                v.root,
                self.live().store.keep_versions
            )));
        }
        Ok(v)
    }

    fn publish_root(
        &self,
        root: crate::id::Root,
        files: u64,
        bytes: u64,
        expires_in: Option<Duration>,
    ) -> Result<(Published, bool), Error> {
        if self.is_child() {
            return Err(Error::State(
                "this node follows a parent (upstream.parent is set); only the top parent publishes; remove upstream.parent to make it the parent".into(),
            ));
        }
        // The manifest must be whole in the store before it is offered to anyone, and every
        // blob it names stored with the size it declares, or every child would refuse it.
        let manifest = self.manifest(&root)?;
        mirror::check_stored(&self.store, root, &manifest)?;
        let ttl = expires_in.unwrap_or(self.live().publish.expires_in);
        // One time for the signature's expiry and the rows the publish writes.
        let now = self.clock.now();
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(7));
        let key = self.keys.signing.clone();
        // Staged first while some child reports: it becomes active when they hold it.
        let stage = self.stages_first()?;
        let me = self.holder()?;
        let r = self
            .db
            .publish(&me, root, files, bytes, ttl, now, stage, |n| {
                Published::sign(root, n, expires, &key)
            })?
            .map_err(|publisher| {
                Error::State(if publisher.node == self.id().as_str() {
                    format!(
                        "another process of node {} (instance {}, not this data folder's: a restored or copied data folder) holds the cluster's publisher role until its lease expires (server.lease_ttl); publish again after that, or take the role now with `updhub cluster promote`",
                        publisher.node, publisher.instance
                    )
                } else {
                    format!(
                        "node {} is a standby: {} is the cluster's publisher (it runs the scheduled mirror and publish), and only the publisher publishes, so the cluster's versions come from one mirror; publish on {}, or make this node the publisher with `updhub cluster promote` and publish again",
                        self.id(),
                        publisher.node,
                        publisher.node
                    )
                })
            })?;
        self.versions_moved();
        Ok(r)
    }

    /// This process as a lease holder: the node id and its data folder's instance token (a
    /// CLI command and `serve` on one data folder are the same holder).
    ///
    /// # Errors
    /// The instance token cannot be read or written.
    pub fn holder(&self) -> Result<crate::leases::Holder, Error> {
        Ok(crate::leases::Holder {
            node: self.id().to_string(),
            instance: self.instance()?,
        })
    }

    /// `cluster promote`: this node takes the publisher role now (see
    /// [`crate::leases::PUBLISHER`]); the member that held it steps down at its next
    /// renewal. Returns the node that held it live before (`None`: nobody, or this node).
    /// The role is kept by this node's `serve`; a node that does not serve loses it again
    /// after `server.lease_ttl`.
    ///
    /// # Errors
    /// A child (its parent cluster publishes), or database errors.
    pub fn promote(&self) -> Result<Option<String>, Error> {
        if self.is_child() {
            return Err(Error::State(
                "this node follows a parent (upstream.parent(s) is set): only a member of the top parent's cluster can be its publisher; run `updhub cluster promote` on one of them".into(),
            ));
        }
        let me = self.holder()?;
        let ttl = i64::try_from(self.live().server.lease_ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let before = self.db.take_lease(crate::leases::PUBLISHER, &me, ttl)?;
        tracing::info!(from = ?before.as_ref().map(|h| &h.node), "this node took the publisher role (cluster promote)");
        Ok(before.map(|h| h.node))
    }

    /// The cluster's publisher: the node that holds the role live, or `None` (no member
    /// serves, or its lease expired and no standby took it yet).
    ///
    /// # Errors
    /// Database errors.
    pub fn publisher(&self) -> Result<Option<String>, Error> {
        // The lease's expiry is the database's time.
        let now = self.db.now_ms()?;
        Ok(self
            .db
            .leases()?
            .into_iter()
            .find(|l| l.task == crate::leases::PUBLISHER)
            .filter(|l| l.expires_ms > now)
            .and_then(|l| l.holder)
            .map(|h| h.node))
    }

    /// Re-sign the published version if less than half its validity is left (a running
    /// parent calls this periodically, so children of a live parent never see it expire).
    ///
    /// # Errors
    /// Database errors.
    pub fn resign_if_due(&self) -> Result<Option<Published>, Error> {
        if self.is_child() || !self.live().publish.auto_resign {
            return Ok(None);
        }
        // A staged version waiting long for its children must not expire before it is
        // activated: re-signed on the same terms.
        if let Some(st) = self.db.cluster_staged()? {
            let span = Some(st.validity).filter(|v| !v.is_zero());
            if let Some(fresh) = self.resign_due(&st.published, span) {
                if self.db.renew_staged(&fresh, Utc::now())? {
                    tracing::info!(number = fresh.number, expires = %fresh.expires, "re-signed the staged version");
                    self.versions_moved();
                }
            }
        }
        // The cluster's version: any member holds the key, the first one due re-signs it and
        // the others take the fresh document (see `Db::renew`).
        let Some(p) = self.db.cluster_published()? else {
            return Ok(None);
        };
        let Some(fresh) = self.resign_due(&p, self.db.published_validity()?) else {
            return Ok(None);
        };
        let now = Utc::now();
        if !self.db.renew(&fresh, now)? {
            return Ok(None);
        }
        tracing::info!(number = fresh.number, expires = %fresh.expires, "re-signed the published version");
        Ok(Some(fresh))
    }

    /// `p` signed anew if less than half its validity is left (`span`: the one chosen at
    /// publish time, else `publish.expires_in`).
    fn resign_due(&self, p: &Published, span: Option<Duration>) -> Option<Published> {
        // Re-sign for the span the admin chose at publish time (publish --expires-in).
        let span = span.unwrap_or(self.live().publish.expires_in);
        let ttl = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::days(7));
        let now = Utc::now();
        if p.expires - now > ttl / 2 {
            return None;
        }
        Some(Published::sign(
            p.root,
            p.number,
            now + ttl,
            &self.keys.signing,
        ))
    }

    /// `keys rotate` (the node stopped): a new publisher key signed over by the old one (see
    /// [`keys::Rotation`]), and the cluster's published version signed anew with it.
    /// Children follow the rotation at their next sync and refuse the old key from then on.
    /// The other members of the cluster need the new key: copy it with `keys export` /
    /// `init --keys-from`, or they keep signing with the old one (`cluster check` shows it).
    ///
    /// # Errors
    /// A serving node (the data folder's lock), a child (only the publisher rotates), or
    /// key and database errors.
    pub fn rotate_publisher(&self) -> Result<(keys::Rotation, Option<Published>), Error> {
        if self.keys.upstream.is_some() || self.is_child() {
            return Err(Error::State(
                "this node follows a parent: only the publisher (the top parent's cluster) rotates its key; children follow its rotations".into(),
            ));
        }
        let _lock = crate::lock::DataLock::take(&self.data, "keys rotate")?;
        let dir = self.data.join("keys");
        let r = keys::rotate(&dir)?;
        let fresh = ClusterKeys::load(&dir)?;
        let resigned = match self.db.cluster_published()? {
            Some(p) => {
                let span = self
                    .db
                    .published_validity()?
                    .unwrap_or(self.live().publish.expires_in);
                let now = Utc::now();
                let ttl = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::days(7));
                let p = Published::sign(p.root, p.number, now + ttl, &fresh.signing);
                self.db.replace_signature(&p, now)?;
                Some(p)
            }
            None => None,
        };
        // A staged version too: children that follow the rotation refuse the old key.
        if let Some(st) = self.db.cluster_staged()? {
            let span = Some(st.validity)
                .filter(|v| !v.is_zero())
                .unwrap_or(self.live().publish.expires_in);
            let now = Utc::now();
            let ttl = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::days(7));
            let p = &st.published;
            let p = Published::sign(p.root, p.number, now + ttl, &fresh.signing);
            self.db.renew_staged_any(&p, now)?;
        }
        Ok((r, resigned))
    }

    /// `keys rotate-ca` (the node stopped): a new cluster CA, vouched for by the old one with
    /// a cross-certificate; this node's server and node certificates issued anew by it.
    /// Certificates of both CAs are accepted for `overlap`, then only the new CA's. The other
    /// members need the new keys (`keys export` / `init --keys-from`); linked children learn
    /// the new CA and renew their link certificates at their next sync.
    ///
    /// # Errors
    /// A serving node (the data folder's lock), a rotation in progress, or key errors.
    pub fn rotate_ca(&self, overlap: Duration) -> Result<keys::ca::CaRotated, Error> {
        let _lock = crate::lock::DataLock::take(&self.data, "keys rotate-ca")?;
        Ok(keys::ca::rotate(
            &self.data.join("keys"),
            self.id(),
            &self.config.server.name,
            overlap,
        )?)
    }

    /// `keys rotate-ca --finish` (the node stopped): end the CA rotation's overlap now; from
    /// then on only the new CA is trusted. Returns the old CA's fingerprint and the live
    /// links still holding a certificate of the old CA (cut off from then on).
    ///
    /// # Errors
    /// A serving node, no rotation to finish, or key and database errors.
    pub fn finish_ca_rotation(&self) -> Result<(String, Vec<String>), Error> {
        let _lock = crate::lock::DataLock::take(&self.data, "keys rotate-ca --finish")?;
        let cut = self.links_on_old_ca()?;
        let old = keys::ca::finish(&self.data.join("keys"), self.id(), &self.config.server.name)?;
        Ok((old, cut))
    }

    /// The cluster's links, each with the CA that issued its certificate.
    ///
    /// # Errors
    /// Database errors.
    pub fn links(&self) -> Result<Vec<crate::db::Link>, Error> {
        let mut links = self.db.links()?;
        for l in &mut links {
            l.issuer = keys::first_cert(l.cert.as_bytes())
                .ok()
                .and_then(|c| self.keys.ca.issuer_of(&c));
        }
        Ok(links)
    }

    /// Live links whose certificate the old CA of a rotation issued.
    fn links_on_old_ca(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .links()?
            .into_iter()
            .filter(|l| {
                l.removed_at.is_none() && matches!(l.issuer, Some(keys::ca::Issuer::Old { .. }))
            })
            .map(|l| l.peer_id)
            .collect())
    }

    /// This cluster's CA rotation, while its files are there.
    fn ca_rotation(&self) -> Result<Option<CaRotationStatus>, Error> {
        let Some(o) = &self.keys.ca.overlap else {
            return Ok(None);
        };
        let mine = fingerprint(self.keys.ca.current_pem.as_bytes());
        let now = Utc::now();
        Ok(Some(CaRotationStatus {
            old_ca: hex::encode(keys::cert_fp(&o.old)),
            new_ca: self.keys.ca.current_fp(),
            ends: o.ends,
            ended: o.ends <= now,
            links_on_old_ca: self.links_on_old_ca()?,
            members_on_other_ca: self
                .db
                .live_members(MEMBER_ALIVE)?
                .into_iter()
                .filter(|m| m.ca_fp != mine)
                .map(|m| m.node_id)
                .collect(),
        }))
    }

    /// A warning if the current version expires within `publish.warn_before`.
    pub fn expiry_warning(&self, p: &Published) -> Option<String> {
        let left = p.expires - Utc::now();
        let warn = chrono::Duration::from_std(self.live().publish.warn_before).ok()?;
        if left <= chrono::Duration::zero() {
            Some(format!(
                "version {} expired at {}; children refuse it; is the parent down? restart it or make another node the parent",
                p.number, p.expires
            ))
        } else if left < warn {
            Some(format!(
                "version {} expires at {} (in {}); the parent has not re-signed it: is it down?",
                p.number,
                p.expires,
                humantime::format_duration(Duration::from_secs(left.num_seconds().max(0) as u64))
            ))
        } else {
            None
        }
    }

    /// `status`'s word on the upstream's freshness (a parent that mirrored at least once).
    fn upstream_warning(&self, m: &Option<crate::db::Mirrored>) -> Option<String> {
        let m = m.as_ref().filter(|_| !self.is_child())?;
        let live = self.live();
        let age = (Utc::now() - m.checked_at).to_std().unwrap_or_default();
        let failed = m
            .check_error
            .as_ref()
            .map(|e| format!("; the last scheduled run failed: {e}"))
            .unwrap_or_default();
        let round = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
        if age > live.upstream.stale_after {
            let how = if live.upstream.mirror_interval.is_zero() {
                "upstream.mirror_interval is 0, so only `updhub mirror` and `updhub publish` by hand update it".to_owned()
            } else {
                format!(
                    "`serve` reads it every {}",
                    round(live.upstream.mirror_interval)
                )
            };
            return Some(format!(
                "stale: the zone {} was last read successfully {} ago (upstream.stale_after is {}), so the anti-virus bases may be out of date; {how}{failed}",
                m.zone,
                round(age),
                round(live.upstream.stale_after)
            ));
        }
        (!failed.is_empty()).then(|| {
            format!(
                "the zone {} was last read successfully {} ago{failed}",
                m.zone,
                round(age)
            )
        })
    }

    /// The current version and its manifest.
    ///
    /// # Errors
    /// Database errors or a missing or corrupt manifest.
    pub fn current(&self) -> Result<Option<(Published, Manifest)>, Error> {
        let Some(p) = self.db.published()? else {
            return Ok(None);
        };
        let m = self.manifest(&p.root)?;
        Ok(Some((p, m)))
    }

    /// Read and check the manifest of `root` from the store.
    ///
    /// # Errors
    /// A missing or corrupt manifest.
    pub fn manifest(&self, root: &Root) -> Result<Manifest, Error> {
        let bytes = self.store.read_bytes(&root.0)?;
        Ok(Manifest::parse(&bytes, root)?)
    }

    fn require_current(&self) -> Result<(Published, Manifest), Error> {
        self.current()?.ok_or_else(|| {
            Error::State(
                "no current version: run `updhub publish` on a parent, or `updhub sync` on a child"
                    .into(),
            )
        })
    }

    /// `checkout --to DIR`: the current version as a plain tree `DIR/<product>/<path>`.
    ///
    /// # Errors
    /// No current version, a non-empty folder, or store errors.
    pub fn checkout(&self, dir: &Path) -> Result<(Published, u64), Error> {
        let (p, m) = self.require_current()?;
        let files = zone::checkout(&self.store, &m, dir)?;
        Ok((p, files))
    }

    /// `export --zone DIR`: the current version as a zone another hub can mirror.
    ///
    /// # Errors
    /// No current version, a non-empty folder, or store errors.
    pub fn export_zone(&self, dir: &Path) -> Result<Published, Error> {
        let (p, m) = self.require_current()?;
        zone::export(&self.store, &m, dir)?;
        Ok(p)
    }

    /// `versions`.
    ///
    /// # Errors
    /// Database errors.
    pub fn versions(&self) -> Result<Vec<VersionRow>, Error> {
        Ok(self.db.versions()?)
    }

    /// This data folder's instance token (made on first use, kept in `DATA/instance`): a
    /// restart of this node keeps it, another data folder claiming the same node id does
    /// not have it.
    ///
    /// # Errors
    /// The token cannot be read or written.
    pub fn instance(&self) -> Result<String, Error> {
        let path = self.data.join("instance");
        let io = |what: String| move |source| Error::Io { what, source };
        match fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        }
        let token = hex::encode(rand::random::<[u8; 16]>());
        // Never over another's: the node's tasks may ask at once as it starts, and the
        // first token written is the one every later read finds.
        match crate::durable::write_new(
            &path,
            format!("{token}\n").as_bytes(),
            crate::durable::PUBLIC,
        ) {
            Ok(()) => Ok(token),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => fs::read_to_string(&path)
                .map(|t| t.trim().to_owned())
                .map_err(io(format!("reading {}", path.display()))),
            Err(e) => Err(io(format!("writing {}", path.display()))(e)),
        }
    }

    /// `cluster check`: what differs between the live members where it must be the same.
    ///
    /// # Errors
    /// Database errors.
    pub fn cluster_check(&self) -> Result<crate::cluster::Check, Error> {
        let settings_changed = self.db.shared_settings()?.iter().map(|s| s.set_at).max();
        // The rows' times are the database's clock's.
        Ok(crate::cluster::check(
            &self.db.members()?,
            self.db.now()?,
            MEMBER_ALIVE,
            settings_changed,
        ))
    }

    /// This node's membership row: what it runs, as `status` and `cluster check` compare.
    ///
    /// # Errors
    /// Unreadable keys or database.
    pub fn member(
        &self,
        instance: &str,
        started: DateTime<Utc>,
        listen: &str,
    ) -> Result<crate::db::Member, Error> {
        let fp = fingerprint;
        let ca = self.data.join("keys").join("ca.crt");
        let ca_pem = fs::read(&ca).map_err(|source| Error::Io {
            what: format!("reading {}", ca.display()),
            source,
        })?;
        Ok(crate::db::Member {
            node_id: self.id().to_string(),
            instance: instance.to_owned(),
            process: self.process.id.clone(),
            updhub_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version: self.db.schema_known(),
            server_name: self.config.server.name.clone(),
            key_fp: fp(self.keys.verifying.as_bytes()),
            ca_fp: fp(&ca_pem),
            active_root: self.db.published()?.map(|p| p.root.to_string()),
            settings: self.live().same_settings().to_string(),
            settings_digest: self.live().same_digest(),
            listen: listen.to_owned(),
            started,
            last_seen: self.clock.now(),
        })
    }

    /// Record this process (`Hub::process`, started at its first record by the database's
    /// clock) in the cluster's membership; refused while another running process records
    /// itself under the same id.
    ///
    /// # Errors
    /// The id is taken by a live node, or database errors.
    pub fn record_member(&self, instance: &str, listen: &str) -> Result<(), Error> {
        let started = self.process.started(|| self.db.now())?;
        let me = self.member(instance, started, listen)?;
        match self.db.record_member(&me, MEMBER_ALIVE)? {
            Ok(()) => Ok(()),
            Err(taken) if taken.other.instance == me.instance => {
                // The later start by the database's clock yields; in one second (start
                // times are kept in seconds), the greater process id: both copies agree.
                let yields = (taken.other.started.timestamp(), &taken.other.process)
                    < (me.started.timestamp(), &me.process);
                Err(Error::Copied {
                    why: format!(
                        "node {} is also served by another process with this data folder's instance token (listening on {}, started {}): a copy of this data folder (a cloned machine, or a folder copied to make a member) serves as the same node, and both would take its leases and the publisher role as one; {}; make the copy a new member with its own id and data folder (`updhub init --id NEW_ID --keys-from DIR --database URL`)",
                        me.node_id,
                        taken.other.listen,
                        taken.other.started,
                        if yields {
                            "this process started after it (or in the same second with the greater process id), so it stops serving"
                        } else {
                            "the one that started later (or in the same second with the greater process id) stops serving"
                        }
                    ),
                    yields,
                })
            }
            Err(taken) => Err(Error::State(format!(
                "node id {} is in use by another running node on this database (listening on {}, last seen {}, updhub {}); every node of a cluster needs its own id: give this one another (server.id in updhub.toml, or init --id), or stop the other",
                me.node_id, taken.other.listen, taken.other.last_seen, taken.other.updhub_version
            ))),
        }
    }

    /// `status`.
    ///
    /// # Errors
    /// Database errors.
    /// The blobs of the served version the store lacks (damaged ones are quarantined) and
    /// how many damaged blobs sit in `store/quarantine/`; None when all is well.
    fn store_damage(&self, current: Option<&Published>) -> Option<String> {
        let quarantined = self.store.quarantined().unwrap_or(0);
        let missing = current.map_or(0, |p| {
            crate::verify::version_blobs(&self.store, &p.root).map_or(1, |b| {
                b.iter().filter(|id| !self.store.contains(id)).count()
            })
        });
        if missing == 0 && quarantined == 0 {
            return None;
        }
        let kept = format!(
            "{quarantined} damaged blob(s) were quarantined to store/quarantine/ (kept for inspection; delete them when done)"
        );
        if missing == 0 {
            return Some(format!("the served version is whole; {kept}"));
        }
        let fix = if self.is_child() {
            "the next sync fetches what is missing from the parent"
        } else {
            "the next scheduled round fetches it again from the zone at the version's revisions (or a member); `updhub verify --repair` does it now"
        };
        Some(format!(
            "the served version misses {missing} blob(s) here, so children cannot fetch all of it; {kept}; {fix}"
        ))
    }

    pub fn status(&self) -> Result<Status, Error> {
        // The rows' times are the database's clock's.
        let seen_at = self.db.now()?;
        let members: Vec<MemberStatus> = self
            .db
            .members()?
            .into_iter()
            .map(|m| MemberStatus {
                alive: seen_at - m.last_seen
                    < chrono::Duration::from_std(MEMBER_ALIVE).expect("small"),
                member: m,
            })
            .collect();
        let current = self.db.published()?;
        let mirrored = self.db.mirrored()?;
        let live = self.live();
        let digest = live.tree_digest();
        let canary = self.canary_phase()?;
        let rolling = match &canary {
            Some(_) => self.db.cluster_staged()?.map(|s| s.published.root),
            None => None,
        };
        // Each child's latest report, whichever member it reached: a child with several
        // parents reports to the one it syncs from.
        let children = self
            .db
            .cluster_children()?
            .into_iter()
            .map(|(r, _)| ChildStatus {
                in_sync: current.as_ref().map(|p| p.root) == r.root,
                test_group: rolling.is_some() && rolling == r.root,
                config_matches: r.config_digest == digest,
                report: r,
            })
            .collect();
        Ok(Status {
            server_id: self.id().to_string(),
            role: if self.is_child() { "child" } else { "parent" },
            warning: current.as_ref().and_then(|p| self.expiry_warning(p)),
            store_damage: self.store_damage(current.as_ref()),
            current,
            cluster_version: self.db.cluster_published()?,
            rollout: self.rollout()?,
            staged: self.db.staged()?,
            links: self.links()?,
            license_mismatches: self
                .ledger
                .grants(self.live().licenses.warn_before)?
                .mismatches,
            license_flags: self.ledger.flagged_grants()?,
            upstream_trust: self.keys.upstream.as_ref().map(|u| {
                let tls = u.tls();
                let rotating = tls
                    .ca
                    .overlap_at(Utc::now())
                    .map(|o| {
                        format!(
                            "; the parent's CA is rotating: its old CA {} is trusted too until {}",
                            &hex::encode(keys::cert_fp(&o.old))[..16],
                            o.ends
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{} link with {}, trusting its CA {}; this node's certificate is from {}; versions are accepted from {} publisher key(s){rotating}",
                    u.kind,
                    u.parent_id,
                    &tls.ca.current_fp()[..16],
                    tls.link_issuer
                        .as_ref()
                        .map_or_else(|| "a CA not trusted here".to_owned(), ToString::to_string),
                    self.keys.publishers().len()
                )
            }),
            ca_rotation: self.ca_rotation()?,
            upstream_warning: self.upstream_warning(&mirrored),
            canary,
            mirrored,
            sync: self.db.sync_state()?,
            parents: self.config.upstream.parent_urls(),
            publisher: if self.is_child() {
                None
            } else {
                self.publisher()?
            },
            children,
            demo_issuer_trusted: live.trusts_demo_issuer(),
            config_digest: digest,
            database: self.db.location().to_owned(),
            cluster_id: self.db.cluster_id().to_string(),
            mixed_versions: mixed_versions(&members),
            members,
            last_gc: crate::gc::last(&self.data),
            announcers: self.db.announcers()?,
        })
    }
}
