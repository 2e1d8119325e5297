//! HTTP on the bridge's port, over TLS with `--tls-cert`: `/healthz`, `/metrics`, `/servers`,
//! the `--www` files, and the WebSocket handshake at `/memcached/<name>`, checked
//! (handshake.rs) before any upstream is touched and then handed to relay.rs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONNECTION, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::{debug, info};

use crate::admission::{Admitted, ClientPlace, Full as Busy};
use crate::files::{pick_encoding, Missing};
use crate::handshake::RELAY_PREFIX;
use crate::relay::{self, RelayContext};
use crate::shutdown::Shutdown;
use crate::state::Shared;
use crate::stream::Stream;
use crate::websocket::close_frame;

type Body = Full<Bytes>;

/// The dashboard's Content-Security-Policy, sent on every answer: scripts and WebSockets
/// from the bridge itself only, WebAssembly allowed to compile, no framing (clickjacking).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Serves one accepted connection: HTTP requests, or a handshake that turns into a relay.
/// The whole plain-HTTP life of a connection, its wait for a handshake turn and its TLS
/// handshake included, is bounded by --handshake-timeout (a browser reconnects for later
/// requests); a TLS handshake takes one of its address's handshake turns, like a request
/// head, so slow TLS clients wait behind each other, not in front of other addresses.
/// `admitted` holds its places under admission.rs until it ends.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    admitted: Admitted,
    mut shutdown: Shutdown,
) {
    // Relayed requests are small and latency-bound: no Nagle delay on the client side either.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    let limit = shared.config.handshake_timeout;
    let metrics = shared.metrics.clone();
    metrics.http_connections_open.fetch_add(1, Relaxed);
    let Admitted { client, http } = admitted;
    let client = Arc::new(client);
    let for_requests = shutdown.clone();
    let served = async move {
        // Slow sockets from one address wait here for that address's turns; nobody else does.
        let _turn = client.handshake_turn().await;
        match shared.tls.clone() {
            None => serve_http(stream, peer, shared, client, for_requests).await,
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(stream) => serve_http(stream, peer, shared, client, for_requests).await,
                Err(error) => {
                    debug!(%peer, %error, "TLS handshake failed");
                    Ok(())
                }
            },
        }
    };
    tokio::select! {
        served = tokio::time::timeout(limit, served) => match served {
            Ok(Ok(())) => {}
            Ok(Err(error)) => debug!(%peer, %error, "HTTP connection failed"),
            Err(_) => debug!(%peer, "HTTP request or handshake timed out"),
        },
        () = shutdown.closing() => {}
    }
    metrics.http_connections_open.fetch_sub(1, Relaxed);
    drop(http);
}

/// HTTP/1.1 over `stream`, plain or TLS, with upgrades to relays.
async fn serve_http<S: Stream>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    client: Arc<ClientPlace>,
    shutdown: Shutdown,
) -> Result<(), hyper::Error> {
    let service = {
        let client = client.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let client = client.clone();
            let shutdown = shutdown.clone();
            async move {
                Ok::<_, Infallible>(respond::<S>(request, peer, shared, &client, shutdown).await)
            }
        })
    };
    http1::Builder::new()
        // keep-alive stays on: hyper answers "Connection: close" without it, even on a 101.
        .keep_alive(true)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
}

async fn respond<S: Stream>(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    client: &ClientPlace,
    shutdown: Shutdown,
) -> Response<Body> {
    shared.metrics.http_requests.fetch_add(1, Relaxed);
    let mut response = route::<S>(request, peer, shared, client, shutdown).await;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let headers = response.headers_mut();
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        headers.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("same-origin"),
        );
    }
    // hyper sends no body to a HEAD request by itself, keeping the GET's Content-Length.
    response
}

async fn route<S: Stream>(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    client: &ClientPlace,
    shutdown: Shutdown,
) -> Response<Body> {
    let path = request.uri().path();
    if path.starts_with(RELAY_PREFIX) || path == "/memcached" {
        return handshake::<S>(request, peer, shared, client, shutdown);
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match path {
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
        _ => static_file(&shared, path, request.headers()).await,
    }
}

/// `/servers`: what the dashboard needs to know before it connects. Each upstream's `path` is
/// the URL path that opens a relay to it. Whether the bridge authenticates is said; the
/// credentials never are.
fn servers(shared: &Shared) -> Response<Body> {
    let upstreams: Vec<_> = shared
        .upstreams
        .iter()
        .map(|upstream| {
            serde_json::json!({
                "name": upstream.name,
                "path": relay_path(&upstream.name),
                "transport": upstream.address.transport(),
                "tls": upstream.uses_tls(),
                "auth": upstream.authenticates(),
            })
        })
        .collect();
    let body = serde_json::json!({
        "servers": shared.config.upstreams,
        "upstreams": upstreams,
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

/// Checks the handshake, takes the relay's places, answers 101 and starts the relay once
/// hyper hands over the connection.
fn handshake<S: Stream>(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    client: &ClientPlace,
    shutdown: Shutdown,
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
            // A browser hides a refused handshake's status and body from the page, but shows
            // it a close frame: a browser (it sends Origin) is told why that way instead.
            if let (Some(code), Some(protocol)) = (refusal.close_code(), browser_protocol(headers))
            {
                let upgrade = hyper::upgrade::on(&mut request);
                let reason = refusal.close_reason();
                tokio::spawn(async move {
                    if let Some((mut stream, _)) = upgraded::<S>(upgrade, peer).await {
                        relay::close(&mut stream, &close_frame(code, reason)).await;
                    }
                    drop(shutdown);
                });
                return switching_protocols(&accept_key, protocol);
            }
            return text(refusal.status(), refusal.message());
        }
    };
    let places = match shared.admission.relay(&accepted.upstream, client) {
        Ok(places) => places,
        Err(full) => {
            shared.metrics.refused(full.metric_label());
            info!(%peer, upstream = %accepted.upstream, reason = full.metric_label(), "handshake refused: full");
            let message = match full {
                Busy::Upstream => format!(
                    "the bridge holds as many connections to {} as it may open (--max-upstream-connections); retry later\n",
                    accepted.upstream
                ),
                _ => "the bridge is at its connection limit; retry later\n".to_string(),
            };
            return text(StatusCode::SERVICE_UNAVAILABLE, message);
        }
    };

    let upgrade = hyper::upgrade::on(&mut request);
    let upstream = shared
        .upstream(&accepted.upstream)
        .expect("handshake.rs admits configured upstreams only")
        .clone();
    let context = RelayContext {
        settings: shared.relay.clone(),
        metrics: shared.metrics.clone(),
        shutdown,
    };
    tokio::spawn(async move {
        if let Some((stream, inbox)) = upgraded::<S>(upgrade, peer).await {
            relay::run(stream, inbox, upstream, peer, context, places).await;
        }
    });
    switching_protocols(&accept_key, accepted.protocol)
}

/// The subprotocol to answer a browser with, when the request came from one (it sent Origin)
/// and a 101 would be accepted by it (it offered nothing, or offered `binary`).
fn browser_protocol(headers: &HeaderMap) -> Option<Option<&'static str>> {
    headers.get(ORIGIN)?;
    let offered: Vec<&str> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        Some(None)
    } else if offered.contains(&crate::handshake::BINARY_PROTOCOL) {
        Some(Some(crate::handshake::BINARY_PROTOCOL))
    } else {
        None
    }
}

fn switching_protocols(accept_key: &str, protocol: Option<&'static str>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(accept_key).expect("base64 is a valid header value"),
    );
    if let Some(protocol) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    response
}

/// The connection (TcpStream, or TLS over it) back from hyper once the 101 went out, with
/// what hyper had read past the request head: the relay then reads and writes it directly.
async fn upgraded<S: Stream>(
    upgrade: hyper::upgrade::OnUpgrade,
    peer: SocketAddr,
) -> Option<(S, BytesMut)> {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            debug!(%peer, %error, "upgrade failed");
            return None;
        }
    };
    match upgraded.downcast::<TokioIo<S>>() {
        Ok(parts) => Some((parts.io.into_inner(), BytesMut::from(&parts.read_buf[..]))),
        Err(_) => unreachable!("serve_http upgrades the stream type it serves"),
    }
}

/// A file under `--www`, in the encoding the client prefers, or 304 when its copy is current.
async fn static_file(shared: &Shared, path: &str, request: &HeaderMap) -> Response<Body> {
    let Some(files) = &shared.files else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let file = match files.get(path).await {
        Ok(file) => file,
        Err(Missing::NotFound) => return text(StatusCode::NOT_FOUND, "not found\n"),
        Err(Missing::TooLarge) => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "file too large to serve\n")
        }
    };
    let etag = HeaderValue::from_str(&file.etag).expect("hex in quotes is a valid header value");
    let current = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == file.etag || t.trim() == "*")
        });
    let accept = request.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    let (body, encoding) = match pick_encoding(accept) {
        Some("br") if file.brotli.is_some() => (file.brotli.clone(), Some("br")),
        Some(_) if file.gzip.is_some() => (file.gzip.clone(), Some("gzip")),
        _ => (None, None),
    };
    let mut response = if current {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(Full::new(body.unwrap_or_else(|| file.identity.clone())))
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type));
    // Revalidate on every load (a 304 costs a round trip, no body): a new bridge version's
    // files are never mixed with an old cached copy of the dashboard.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(ETAG, etag);
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if let (Some(encoding), false) = (encoding, current) {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

/// `/memcached/` and the upstream's name as one path segment: every byte but letters, digits,
/// `-._~` and `:` percent-encoded, so `unix:/run/m.sock` is `/memcached/unix:%2Frun%2Fm.sock`
/// and `[::1]:11211` is `/memcached/%5B::1%5D:11211`. The handshake decodes any escapes, so
/// JavaScript's `encodeURIComponent(name)` names the same upstream.
pub fn relay_path(name: &str) -> String {
    let mut path = String::from(RELAY_PREFIX);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            path.push(byte as char);
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
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
    fn relay_paths_escape_all_but_unreserved_bytes_and_colons() {
        assert_eq!(relay_path("127.0.0.1:11211"), "/memcached/127.0.0.1:11211");
        assert_eq!(relay_path("[::1]:11211"), "/memcached/%5B::1%5D:11211");
        assert_eq!(
            relay_path("unix:/run/m c.sock"),
            "/memcached/unix:%2Frun%2Fm%20c.sock"
        );
    }
}
