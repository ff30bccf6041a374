//! updhub: an update-repository and license distribution hub for clusters of anti-virus
//! management servers.
//!
//! The modules, in the order data flows through them:
//! - [`durable`]: files written whole or not at all, synced, with their final mode from the
//!   start (keys, secrets, archives, summaries); a batch form for many files at once.
//! - [`config`]: `updhub.toml`, validated; which settings must match across a cluster.
//! - [`keys`]: the cluster's shared signing key, CA and server certificate; node certificates;
//!   rotating the CA with an overlap (`keys::ca`) and following a parent's (`keys::renewal`).
//! - [`zone`]: upstream zones (folder or HTTPS) and exporting a version as a zone.
//! - [`store`]: the content-addressed blob store (blake3 names, zstd frames, atomic writes).
//! - [`mirror`]: zone → store, streaming, verified, incremental, resumable.
//! - [`gc`]: retention (which versions are kept) and garbage collection of the store.
//! - [`repair`]: what the kept versions need and the store lacks, fetched again (zone at
//!   the version's revisions, members, parents); `verify` and the scrub find the damage.
//! - [`peer`]: the interserver HTTPS client, built once per node, and bounded reads of answers.
//! - [`proto`]: what both ends of an interserver connection agree on.
//! - [`repo`]: manifests, roots and signed published versions.
//! - [`db`]: the SQLite database and its migrations (`schemas/*.sql`).
//! - [`hub`]: one node and the admin commands on it.
//! - [`clock`]: a node's own clock, and which rules read it rather than the database's.
//! - [`join`]: `cluster join`, a lone node's database moved into a cluster's.
//! - [`lock`]: one server per data folder.
//! - [`leases`]: tasks that run on exactly one node of a cluster, chosen by a lease in the
//!   shared database, once a period; and the publisher role, a lease too.
//! - [`announce`]: the cluster protocol: members announce their versions and settings in
//!   signed UDP datagrams and act at once on what they hear (the database polls converge
//!   without it).
//! - [`node`]: a running node: its listeners and background tasks, started and stopped together
//!   (on a top parent's members, the publisher's tasks only on the role's holder).
//! - [`server`]: the mutual-TLS interserver API (hyper over tokio-rustls).
//! - [`switch`]: the two-phase switch: a version is staged, then activated for the whole
//!   cluster at once; the one rule that decides when.
//! - [`child`]: syncing from a parent: staging, then switching.
//! - [`license`]: license keys, stations and grants (donations between servers).
//! - [`station`]: a station's side of the station port: register, fetch the active version.
//! - [`backup`]: one archive of a node (configuration, keys, embedded database) and a node
//!   restored from it.
//! - [`cli`]: the command line, one function per command group (`main.rs` only calls it).
//! - [`id`], [`error`]: typed ids and the crate error.

pub mod announce;
pub mod backup;
pub mod canary;
pub mod child;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod durable;
pub mod error;
pub mod gc;
pub mod hub;
pub mod id;
pub mod join;
pub mod keys;
pub mod leases;
pub mod license;
pub mod link;
pub mod lock;
pub mod mirror;
pub mod node;
pub mod peer;
pub mod products;
pub mod proto;
pub mod repair;
pub mod repo;
pub mod server;
pub mod station;
pub mod store;
pub mod switch;
pub mod verify;
pub mod zone;

pub use error::Error;
pub use hub::Hub;
