//! The accept loop and the bridge's life: bind, accept under a bound on plain HTTP
//! connections, hand each connection to a relay thread, and on SIGTERM/SIGINT stop
//! accepting, give open relays `--shutdown-grace` to finish, then tell the rest to close.
//!
//! Each relay thread runs its own single-threaded runtime and owns its connections for their
//! whole life (thread per core). A relay's two sockets are then always served by the thread
//! that epoll woke, never handed to another thread: on a busy machine that hand-off (a futex
//! wake and a context switch) is most of a relay's added latency.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};

use crate::config::Config;
use crate::error::BridgeError;
use crate::handshake::Rules;
use crate::http;
use crate::limits::{CLOSE_TIMEOUT, LISTEN_BACKLOG, MAX_HTTP_CONNECTIONS, WEBSOCKET_READ_BUFFER};
use crate::metrics::Metrics;

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub rules: Rules,
    pub metrics: Metrics,
    /// One permit per open relay, `--max-connections` in all.
    pub relays: Arc<Semaphore>,
    pub websocket: WebSocketConfig,
    /// Turns true when open relays must close (the shutdown grace is over).
    pub closing: watch::Receiver<bool>,
}

/// Binds the listener; separate from [`serve`] so start-up errors surface before serving.
pub fn bind(config: &Config) -> Result<TcpListener, BridgeError> {
    let listen_error = |source| BridgeError::Listen {
        listen: config.listen.to_string(),
        source,
    };
    let socket = if config.listen.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(listen_error)?;
    socket.set_reuseaddr(true).map_err(listen_error)?;
    socket.bind(config.listen).map_err(listen_error)?;
    socket.listen(LISTEN_BACKLOG).map_err(listen_error)
}

/// Starts `count` relay threads, each with a single-threaded runtime that runs until the
/// process ends; returns their handles.
pub fn start_relay_threads(count: usize) -> Result<Vec<Handle>, BridgeError> {
    (0..count)
        .map(|index| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BridgeError::Runtime)?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("relay-{index}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .map_err(BridgeError::Runtime)?;
            Ok(handle)
        })
        .collect()
}

/// Serves until SIGTERM or SIGINT, then shuts down gracefully. Connections are dealt to the
/// relay threads in turn.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    relay_threads: Vec<Handle>,
) -> Result<(), BridgeError> {
    let (close_relays, closing) = watch::channel(false);
    let shared = Arc::new(Shared {
        rules: Rules {
            upstreams: config.upstreams.clone(),
            allowed_origins: config.allowed_origins.clone(),
            tokens: config.tokens.clone(),
        },
        metrics: Metrics::default(),
        relays: Arc::new(Semaphore::new(config.max_connections)),
        websocket: WebSocketConfig::default()
            .read_buffer_size(WEBSOCKET_READ_BUFFER)
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size)),
        closing,
        config,
    });
    let http_connections = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    let mut next_thread = 0;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = http_connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: wait for some to be freed.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A socket belongs to the runtime that registered it: move it to the relay thread's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%error, "cannot hand over an accepted connection");
                continue;
            }
        };
        let shared = shared.clone();
        relay_threads[next_thread].spawn(async move {
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => http::serve_connection(stream, peer, shared, permit).await,
                Err(error) => warn!(%error, "cannot register an accepted connection"),
            }
        });
        next_thread = (next_thread + 1) % relay_threads.len();
    }

    drop(listener);
    let open = |shared: &Shared| shared.config.max_connections - shared.relays.available_permits();
    info!(
        open_relays = open(&shared),
        grace_secs = shared.config.shutdown_grace.as_secs(),
        "shutting down: not accepting"
    );
    let deadline = Instant::now() + shared.config.shutdown_grace;
    while open(&shared) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if open(&shared) > 0 {
        info!(
            open_relays = open(&shared),
            "grace over: closing open relays"
        );
        let _ = close_relays.send(true);
        let deadline = Instant::now() + CLOSE_TIMEOUT * 2;
        while open(&shared) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            warn!("cannot install signal handlers; stop the bridge with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
