//! memcache-bridge: relays WebSocket connections from browsers to configured memcached servers.
//! main reads the configuration, sets up logging and the runtime, and runs the server.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use memcache_bridge::config::{Args, Config};
use memcache_bridge::error::BridgeError;
use memcache_bridge::{server, state};

fn main() -> ExitCode {
    let config = match Config::load(Args::parse()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("memcache-bridge: {error}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("memcache_bridge=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("memcache-bridge: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> Result<(), BridgeError> {
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let relay_threads = server::start_relay_threads(threads)?;
    // This thread accepts connections and handles signals; relays run on relay_threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BridgeError::Runtime)?;
    runtime.block_on(async {
        let listener = server::bind(&config)?;
        // Asked before the address is announced, so a bridge that says it listens has
        // finished talking to memcached.
        let upstreams = state::upstreams(&config);
        let upstream_limits = server::upstream_limits(&config, &upstreams).await;
        let address = listener
            .local_addr()
            .map_err(|source| BridgeError::Listen {
                listen: config.listen.to_string(),
                source,
            })?;
        // One line on stdout with the real address: scripts and tests that listen on port 0
        // read it to learn the port.
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("memcache-bridge listening on {scheme}://{address}");
        tracing::info!(%address, upstreams = ?config.upstreams, read_only = config.policy.read_only,
            token_required = !config.tokens.is_empty(), tls = config.tls.is_some(),
            upstream_tls = config.upstream_tls.is_some(),
            upstream_auth = config.upstream_credentials.is_some(), "listening");
        tracing::info!(?upstream_limits, "connections allowed per upstream");
        server::serve(listener, config, upstreams, upstream_limits, relay_threads).await
    })
}
