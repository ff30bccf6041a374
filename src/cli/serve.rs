//! `serve`: the first-run set-up on the default data folder, the lock, the listeners, and
//! stopping on SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::{io, out, Result};
use crate::config::Config;
use crate::error::Error;
use crate::hub::{Hub, InitOptions};

/// Listen for Ctrl-C (SIGINT) and SIGTERM, the signal systemd and container runtimes stop
/// services with. The handlers are installed here, at once, so a signal that arrives before
/// the returned future is first polled still stops the server gracefully.
///
/// # Errors
/// The signal handlers cannot be installed.
pub(super) fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).map_err(io("listening for SIGINT"))?;
    let mut term = signal(SignalKind::terminate()).map_err(io("listening for SIGTERM"))?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

/// `serve`. Run with the default data folder and none there yet, it first sets up a node on
/// the embedded defaults (sample zone, SQLite, generated certificates), mirrors, publishes,
/// trusts the demo license issuer explicitly (written in its updhub.toml; `status` says so)
/// and adds the demo license, all in a temporary folder moved into place at the end, so one
/// command runs the hub and a failure leaves nothing behind.
pub(super) async fn serve(
    data: &Path,
    default_data: bool,
    listen: Option<SocketAddr>,
    station_listen: Option<SocketAddr>,
) -> Result<()> {
    if !data.join(crate::config::FILE).exists() {
        if !default_data {
            return Err(Error::Data {
                path: data.to_owned(),
                why: format!(
                    "holds no updhub node (no {}); check the --data path, or create a node there with `updhub --data {} init`",
                    crate::config::FILE,
                    data.display()
                ),
            });
        }
        // The demo set-up, and only it, trusts the demo issuer: on purpose, in updhub.toml.
        let new = Hub::begin_init(
            data,
            InitOptions {
                issuers: vec![crate::config::DEMO_ISSUER.trim().to_owned()],
                ..InitOptions::default()
            },
        )?;
        let hub = &new.hub;
        eprintln!(
            "setting up a new node in {} (server {}): mirror the sample zone, publish, add the demo license",
            data.display(),
            hub.id()
        );
        let s = hub.mirror(None, std::io::stderr().is_terminal()).await?;
        eprintln!("{s}");
        let (p, _) = hub.publish(None)?;
        eprintln!("published version {} root {}", p.number, p.root);
        let k = crate::hub::add_license_bytes(hub, crate::hub::DEMO_LICENSE, "the demo license")
            .await?;
        eprintln!(
            "added the demo license key {} ({} stations), trusting the demo issuer (licenses.issuers in updhub.toml): demo licenses, not for production",
            k.key_id, k.stations
        );
        // One line opened the set-up; the serving line that follows says it finished.
        new.finish()?;
    }
    let _lock = crate::lock::DataLock::take(data, "serve")?;
    let mut config = Config::load(data)?;
    if let Some(l) = listen {
        config.server.listen = l;
    }
    if let Some(l) = station_listen {
        config.server.station_listen = l;
    }
    let hub = Arc::new(Hub::open_with(data, config)?);
    hub.db.check_integrity()?;
    if hub.live().trusts_demo_issuer() {
        tracing::warn!(
            "demo licenses: the demo issuer is trusted (licenses.issuers); not for production"
        );
    }
    let stop = stop_signal()?;
    // Catch up on expiry missed while down before taking requests.
    hub.resign_if_due()?;
    let listener = tokio::net::TcpListener::bind(hub.config.server.listen)
        .await
        .map_err(io(format!(
            "listening on {}; is another process using it? pass --listen",
            hub.config.server.listen
        )))?;
    let stations = tokio::net::TcpListener::bind(hub.config.server.station_listen)
        .await
        .map_err(io(format!(
            "listening for stations on {}; is another process using it? pass --station-listen",
            hub.config.server.station_listen
        )))?;
    let addr = listener
        .local_addr()
        .map_err(io("reading the listen address"))?;
    let url = format!("https://{addr}");
    // A second live node with this id on the same database is refused before the banner
    // (node::run records the membership again and keeps it fresh).
    {
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || {
            let instance = hub.instance()?;
            hub.record_member(&instance, &addr.to_string())
        })
        .await
        .map_err(|e| crate::error::Error::State(e.to_string()))??;
    }
    out!(
        "updhub {} serving {url} as server {}",
        env!("CARGO_PKG_VERSION"),
        hub.id()
    );
    if let Some(p) = hub.db.published()? {
        out!(
            "current version {} root {} expires {}",
            p.number,
            p.root,
            p.expires
        );
    }
    let d = data.display();
    let station_addr = stations
        .local_addr()
        .map_err(io("reading the station address"))?;
    out!("a child (its own keys, enrolled by link) connects with:");
    out!("  updhub --data {d} link invite --id CHILD-ID --url https://{station_addr}/      (prints TOKEN)");
    out!(
        "  updhub --data ./child init --parent {url} --token TOKEN      (the child takes CHILD-ID)"
    );
    out!("  updhub --data ./child sync --once      (or, to serve on: updhub --data ./child serve --listen ADDR --station-listen ADDR)");
    out!("stations register at https://{station_addr}/v1/stations/register");
    let stats = crate::server::new_stats();
    crate::node::run(listener, Some(stations), hub.clone(), stats, stop)
        .await
        .map_err(io("serving"))?;
    // A copy of updhub.db taken while updhub is stopped is then complete on its own.
    hub.db.checkpoint()?;
    Ok(())
}
