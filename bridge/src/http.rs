//! HTTP on the bridge's port: `/healthz`, `/metrics`, `/servers`, the `--www` files, and the
//! WebSocket handshake at `/memcached/<host:port>`, checked (handshake.rs) before any
//! upstream is touched and then handed to relay.rs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

use crate::handshake::{percent_decode, RELAY_PREFIX};
use crate::limits::MAX_STATIC_FILE;
use crate::relay;
use crate::server::Shared;

type Body = Full<Bytes>;

/// Serves one accepted connection: HTTP requests, or a handshake that turns into a relay.
/// The whole plain-HTTP life of a connection is bounded by --handshake-timeout (a browser
/// reconnects for later requests). `permit` bounds plain HTTP connections.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    // Relayed requests are small and latency-bound: no Nagle delay on the client side either.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    let limit = shared.config.handshake_timeout;
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(request, peer, shared).await) }
    });
    let connection = http1::Builder::new()
        // keep-alive stays on: hyper answers "Connection: close" without it, even on a 101.
        .keep_alive(true)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    match tokio::time::timeout(limit, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!(%peer, %error, "HTTP connection failed"),
        Err(_) => debug!(%peer, "HTTP request or handshake timed out"),
    }
    drop(permit);
}

async fn respond(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Response<Body> {
    shared.metrics.http_requests.fetch_add(1, Relaxed);
    let path = request.uri().path();
    if path.starts_with(RELAY_PREFIX) || path == "/memcached" {
        return handshake(request, peer, shared);
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let mut response = match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/metrics" => {
            let mut response = text(StatusCode::OK, shared.metrics.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/servers" => servers(&shared),
        _ => match &shared.config.www {
            Some(root) => static_file(root, path).await,
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    };
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // hyper sends no body to a HEAD request by itself, keeping the GET's Content-Length.
    response
}

/// `/servers`: what the dashboard needs to know before it connects.
fn servers(shared: &Shared) -> Response<Body> {
    let body = serde_json::json!({
        "servers": shared.config.upstreams,
        "readOnly": shared.config.policy.read_only,
        "tokenRequired": !shared.config.tokens.is_empty(),
        "maxMessageSize": shared.config.max_message_size,
    });
    let mut response = text(StatusCode::OK, body.to_string());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Checks the handshake, takes a relay permit, answers 101 and starts the relay once hyper
/// hands over the connection.
fn handshake(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Response<Body> {
    let headers = request.headers();
    let has_token = |name, wanted: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(wanted))
    };
    if request.method() != Method::GET
        || !has_token(UPGRADE, "websocket")
        || !has_token(CONNECTION, "upgrade")
    {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint\n",
        );
        response
            .headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = text(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n");
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let accept_key = derive_accept_key(key.as_bytes());
    let accepted = match shared.rules.check(request.uri().path(), headers) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            shared.metrics.refused(refusal.metric_label());
            info!(%peer, reason = refusal.metric_label(), "handshake refused");
            return text(refusal.status(), refusal.message());
        }
    };
    let Ok(permit) = shared.relays.clone().try_acquire_owned() else {
        shared.metrics.refused("too_many_connections");
        info!(%peer, "handshake refused: --max-connections reached");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the bridge is at its connection limit; retry later\n",
        );
    };

    let upgrade = hyper::upgrade::on(&mut request);
    let upstream = accepted.upstream;
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                debug!(%peer, %error, "upgrade failed");
                return;
            }
        };
        // Back to the plain TcpStream: the relay then reads and writes the socket directly.
        let parts = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => parts,
            Err(_) => unreachable!("the bridge serves only TcpStream connections"),
        };
        let config = Some(shared.websocket);
        let ws = WebSocketStream::from_partially_read(
            parts.io.into_inner(),
            parts.read_buf.to_vec(),
            Role::Server,
            config,
        )
        .await;
        relay::run(ws, upstream, peer, shared, permit).await;
    });

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key).expect("base64 is a valid header value"),
    );
    if let Some(protocol) = accepted.protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    response
}

/// A file under `--www`; `/` and directories serve their `index.html`.
async fn static_file(root: &Path, path: &str) -> Response<Body> {
    let not_found = || text(StatusCode::NOT_FOUND, "not found\n");
    let Some(relative) = safe_relative_path(path) else {
        return not_found();
    };
    let mut file = root.join(relative);
    if tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_dir()) {
        file.push("index.html");
    }
    // A symlink must not lead out of the served directory.
    let (Ok(real_root), Ok(real_file)) = (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&file).await,
    ) else {
        return not_found();
    };
    if !real_file.starts_with(&real_root) {
        return not_found();
    }
    match tokio::fs::metadata(&real_file).await {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_STATIC_FILE => {}
        Ok(meta) if meta.is_file() => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "file too large to serve\n")
        }
        _ => return not_found(),
    }
    match tokio::fs::read(&real_file).await {
        Ok(contents) => {
            let mut response = Response::new(Full::new(Bytes::from(contents)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(content_type(&real_file)),
            );
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(_) => not_found(),
    }
}

/// The URL path as a relative path of plain names: no `..`, no root, no backslashes or NULs.
fn safe_relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut relative = PathBuf::new();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(name) => relative.push(name),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(relative)
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        // Browsers compile WebAssembly while it streams only when served with this type.
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_cannot_leave_the_served_directory() {
        assert_eq!(safe_relative_path("/"), Some(PathBuf::new()));
        assert_eq!(
            safe_relative_path("/js/app.js"),
            Some(PathBuf::from("js/app.js"))
        );
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/a%5cb",
            "/a%00b",
            "/%zz",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn wasm_is_served_as_wasm() {
        assert_eq!(
            content_type(Path::new("pkg/engine_bg.wasm")),
            "application/wasm"
        );
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
    }
}
