//! The `updhub` binary: tracing, the runtime, and the command line of [`updhub::cli`].

use std::io::IsTerminal;

use clap::{CommandFactory, FromArgMatches};

use updhub::cli::{self, Cli};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UPDHUB_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let matches = Cli::command().get_matches();
    // Only the README's zero-config run (no --data, no UPDHUB_DATA) sets up a node on `serve`:
    // a typo in an explicit --data must not create a whole new parent.
    let default_data =
        matches.value_source("data") == Some(clap::parser::ValueSource::DefaultValue);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = rt.block_on(cli::run(cli, default_data)) {
        if cli::stdout_closed(&e) {
            return;
        }
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
