//! `station ...`: a station's side of a server's station port, for admins and tests: register
//! a station, fetch the active version as a station does (see [`crate::station`]). These
//! commands need no data folder: they run where the station is.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{out, print_json, Result};
use crate::license::api::StationCredentials;
use crate::station::{Connection, FetchOptions, StationError};

#[derive(Subcommand)]
pub enum StationCommand {
    /// Register a station with a server (it takes one station license); registering again
    /// with the same secret keeps its license.
    Register {
        #[command(flatten)]
        conn: ConnArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download the server's active version as a registered station does: the signed
    /// published document (checked against the publisher key), the manifest (checked against
    /// its root), each blob (checked after decompression); then write the files as
    /// `checkout` does. Nothing is written unless everything verified.
    Fetch {
        #[command(flatten)]
        conn: ConnArgs,
        /// The publisher keys to check the version's signature with: a file holding what
        /// `updhub keys publishers` prints on a server of the cluster (64 hex digits a key,
        /// one a line; on a child cluster, its origin's keys).
        #[arg(long)]
        publisher_key: PathBuf,
        /// The folder to write the files in: new or empty.
        #[arg(long)]
        out: PathBuf,
        /// Keep fetched blobs in this folder for the next run, which then fetches only what
        /// changed (default: a temporary folder, removed at the end).
        #[arg(long)]
        store: Option<PathBuf>,
        /// Blobs fetched at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How the station reaches the server.
#[derive(Args)]
pub struct ConnArgs {
    /// The server's station port, https://HOST:PORT (its server.station_listen).
    #[arg(long)]
    url: String,
    /// The station's id (letters, digits, '.', '_', '-').
    #[arg(long)]
    id: String,
    /// A file holding the station's secret (16 to 256 characters; a trailing newline is
    /// ignored).
    #[arg(long)]
    secret_file: PathBuf,
    /// The cluster CA certificate (PEM) the server's certificate is checked against:
    /// keys/ca.crt of any server of the cluster.
    #[arg(long)]
    ca: PathBuf,
}

fn read(path: &Path, what: &str) -> std::result::Result<Vec<u8>, StationError> {
    std::fs::read(path).map_err(|e| StationError::Setup {
        what: format!("{what} {}", path.display()),
        why: format!("cannot be read ({e})"),
    })
}

impl ConnArgs {
    fn connection(&self) -> std::result::Result<Connection, StationError> {
        let secret = String::from_utf8(read(&self.secret_file, "--secret-file")?)
            .map_err(|_| StationError::Setup {
                what: format!("--secret-file {}", self.secret_file.display()),
                why: "is not text; write the station's secret in it".into(),
            })?
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        let creds = StationCredentials {
            station: self.id.clone(),
            secret,
        };
        crate::license::api::check_credentials(&creds).map_err(|e| StationError::Setup {
            what: format!("station {} (--id, --secret-file)", self.id),
            why: e.to_string(),
        })?;
        Ok(Connection {
            url: self.url.clone(),
            creds,
            ca_pem: read(&self.ca, "--ca")?,
        })
    }
}

/// Run one `station` command.
///
/// # Errors
/// Whatever the command fails with.
pub async fn station(command: StationCommand) -> Result<()> {
    match command {
        StationCommand::Register { conn, json } => {
            let a = crate::station::register(&conn.connection()?).await?;
            if json {
                print_json(&a)?;
            } else {
                out!(
                    "station {} {} on server {} (license from {})",
                    a.station,
                    if a.new {
                        "registered"
                    } else {
                        "was already registered"
                    },
                    a.server,
                    a.license
                );
            }
        }
        StationCommand::Fetch {
            conn,
            publisher_key,
            out,
            store,
            parallel,
            json,
        } => {
            let text =
                String::from_utf8_lossy(&read(&publisher_key, "--publisher-key")?).into_owned();
            let publishers =
                crate::station::parse_publishers(&text).map_err(|why| StationError::Setup {
                    what: format!("--publisher-key {}", publisher_key.display()),
                    why,
                })?;
            let r = crate::station::fetch(
                &conn.connection()?,
                FetchOptions {
                    publishers,
                    out,
                    store,
                    parallel,
                },
            )
            .await?;
            if json {
                print_json(&r)?;
            } else {
                out!("{r}");
            }
        }
    }
    Ok(())
}
