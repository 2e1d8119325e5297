//! The accept loop and the bridge's life: bind, admit each connection (admission.rs) and hand
//! it to a relay thread, and on SIGTERM/SIGINT stop accepting, give open relays
//! `--shutdown-grace` to finish, then tell the rest to close (shutdown.rs).
//!
//! Each relay thread runs its own single-threaded runtime and owns its connections for their
//! whole life (thread per core). A relay's two sockets are then always served by the thread
//! that epoll woke, never handed to another thread: on a busy machine that hand-off (a futex
//! wake and a context switch) is most of a relay's added latency.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::error::BridgeError;
use crate::http;
use crate::limits::{CLOSE_TIMEOUT, FALLBACK_MAX_UPSTREAM_CONNECTIONS, LISTEN_BACKLOG};
use crate::shutdown::{ShutdownController, Stopped};
use crate::state::Shared;
use crate::upstream::{Connected, Upstream};

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
/// relay threads in turn. The accept loop never waits for a place: a connection over a bound
/// gets a 503 at once, so slow or greedy clients cannot stop it from serving others.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    upstreams: Vec<Arc<Upstream>>,
    upstream_limits: Vec<(String, usize)>,
    relay_threads: Vec<Handle>,
) -> Result<(), BridgeError> {
    let shared = Arc::new(Shared::new(config, upstreams, &upstream_limits));
    if shared.files.is_some() {
        let shared = shared.clone();
        relay_threads[0].spawn(async move {
            if let Some(files) = &shared.files {
                files.warm().await;
            }
        });
    }
    let controller = ShutdownController::new();
    let mut next_thread = 0;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    loop {
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
        let admitted = match shared.admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(full) => {
                shared.metrics.refused(full.metric_label());
                refuse_now(stream);
                continue;
            }
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
        let handle = controller.handle();
        relay_threads[next_thread].spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => http::serve_connection(stream, peer, shared, admitted, handle).await,
                Err(error) => warn!(%error, "cannot register an accepted connection"),
            }
        });
        next_thread = (next_thread + 1) % relay_threads.len();
    }

    drop(listener);
    let open = || {
        shared
            .metrics
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    info!(
        open_relays = open(),
        grace_secs = shared.config.shutdown_grace.as_secs(),
        "shutting down: not accepting"
    );
    match controller
        .finish(shared.config.shutdown_grace, CLOSE_TIMEOUT * 2)
        .await
    {
        Stopped::InGrace => {}
        Stopped::Closed => info!("grace over: open relays were closed"),
        Stopped::TimedOut => warn!(open_relays = open(), "relays still open after closing"),
    }
    info!("stopped");
    Ok(())
}

/// Answers a connection that is over a bound with a 503 in one non-blocking write, and
/// closes it.
fn refuse_now(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
connection: close\r\n\r\ntoo many connections; retry later\n";
    let _ = stream.try_write(BUSY);
}

/// How many connections the bridge may open to each upstream: `--max-upstream-connections`,
/// else half of the `maxconns` memcached reports (the other half stays for the applications
/// that share it), else half of memcached's default; never more than `--max-connections`.
/// memcached is asked over the same transport, TLS and authentication as a relay's; what
/// that reveals about the set-up (memcached wants credentials the bridge lacks, refuses
/// them, or needs none) is logged here, once.
pub async fn upstream_limits(config: &Config, upstreams: &[Arc<Upstream>]) -> Vec<(String, usize)> {
    let mut limits = Vec::new();
    for upstream in upstreams {
        let limit = match config.max_upstream_connections {
            Some(limit) => limit,
            None => match maxconns(upstream, config.connect_timeout).await {
                Ok(maxconns) => (maxconns / 2).max(1),
                Err(problem) => {
                    warn!(upstream = %upstream.name, %problem, "cannot read maxconns from memcached at start; allowing {FALLBACK_MAX_UPSTREAM_CONNECTIONS} connections (set --max-upstream-connections)");
                    FALLBACK_MAX_UPSTREAM_CONNECTIONS
                }
            },
        };
        limits.push((upstream.name.clone(), limit.min(config.max_connections)));
    }
    limits
}

/// memcached's `maxconns` from `stats settings`, or what kept the bridge from reading it.
async fn maxconns(upstream: &Upstream, limit: Duration) -> Result<usize, String> {
    const UNAUTHENTICATED: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";
    let ask = async {
        let mut stream = upstream.open().await.map_err(|e| e.to_string())?;
        let mut reply = stats_settings(&mut stream).await?;
        if reply == UNAUTHENTICATED {
            if !upstream.authenticates() {
                warn!(upstream = %upstream.name, "memcached requires authentication (-Y) and the bridge has no --upstream-auth-file: clients get CLIENT_ERROR unauthenticated");
                return Err("memcached requires authentication".to_string());
            }
            upstream.authenticate(&mut stream).await.map_err(|e| {
                error!(upstream = %upstream.name, %e, "memcached refused the bridge's authentication at start");
                e.to_string()
            })?;
            reply = stats_settings(&mut stream).await?;
        } else if upstream.authenticates() {
            warn!(upstream = %upstream.name, "memcached does not ask for authentication (-Y is off); the bridge authenticates anyway, harmlessly");
        }
        let _ = stream.write_all(b"quit\r\n").await;
        let _ = stream.flush().await;
        String::from_utf8_lossy(&reply)
            .lines()
            .find_map(|line| line.strip_prefix("STAT maxconns "))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| "no maxconns in stats settings".to_string())
    };
    tokio::time::timeout(limit, ask)
        .await
        .unwrap_or_else(|_| Err("no answer in --connect-timeout".to_string()))
}

/// Sends `stats settings`; the reply up to `END`, or a one-line error answer.
async fn stats_settings(stream: &mut Connected) -> Result<Vec<u8>, String> {
    stream
        .write_all(b"stats settings\r\n")
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        if reply.ends_with(b"END\r\n") || (reply.ends_with(b"\r\n") && !reply.starts_with(b"STAT "))
        {
            return Ok(reply);
        }
        if reply.len() >= 64 * 1024 {
            return Err("stats settings answer too long".to_string());
        }
        let read = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("memcached closed the connection".to_string());
        }
        reply.extend_from_slice(&chunk[..read]);
    }
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
