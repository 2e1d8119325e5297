//! One relay: a client's WebSocket and one TCP connection to the memcached it named, with
//! bytes copied both ways until a side ends, and then a close frame that says why.
//!
//! Both directions run in one task, each a plain loop that awaits its next read and then its
//! write, so backpressure is structural: a client that stops reading stalls the loop that
//! reads memcached (the bridge holds at most one chunk), and a slow memcached stalls the loop
//! that reads the client. Client bytes pass through the command scanner (policy.rs) first.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use crate::limits::{
    CLOSE_TIMEOUT, DRAIN_TIMEOUT, MAX_UPSTREAM_BATCH, MAX_UPSTREAM_BATCH_MESSAGES,
    UPSTREAM_READ_CHUNK,
};
use crate::policy::{CommandScanner, Refusal};
use crate::server::Shared;

type Socket = WebSocketStream<TcpStream>;

/// Why a relay ended; decides the close frame the client gets.
#[derive(Debug)]
enum End {
    /// The client sent a close frame: answer it, nothing more to say.
    ClientClosed,
    /// The client's connection broke or ended without a close frame.
    ClientGone,
    /// The client broke the WebSocket protocol.
    ClientProtocol(String),
    Refused(Refusal),
    TextFrame,
    TooBig,
    UpstreamClosed,
    UpstreamError(io::Error),
    Idle,
    Shutdown,
}

impl End {
    /// Ends after which memcached's answers to the commands already forwarded still go back
    /// to the client before the close frame, so no accepted request loses its response.
    fn drains_upstream(&self) -> bool {
        matches!(self, End::Refused(_) | End::TextFrame | End::TooBig)
    }
}

/// Keeps the open-relays gauge right however the relay ends.
struct OpenRelay<'a>(&'a Shared);

impl Drop for OpenRelay<'_> {
    fn drop(&mut self) {
        self.0.metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Runs one relay to its end. `permit` is this relay's place under --max-connections.
pub async fn run(
    mut ws: Socket,
    upstream_addr: String,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let metrics = &shared.metrics;
    metrics.connections_total.fetch_add(1, Relaxed);
    metrics.connections_open.fetch_add(1, Relaxed);
    let _open = OpenRelay(&shared);

    let connect = timeout(
        shared.config.connect_timeout,
        TcpStream::connect(upstream_addr.as_str()),
    )
    .await;
    let mut upstream = match connect {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            metrics.upstream_connect_errors.fetch_add(1, Relaxed);
            warn!(%peer, upstream = %upstream_addr, %error, "upstream unreachable");
            let reason = format!("upstream {upstream_addr} unreachable: {}", error.kind());
            close(&mut ws, CloseCode::Again, reason).await;
            return;
        }
        Err(_) => {
            metrics.upstream_connect_errors.fetch_add(1, Relaxed);
            warn!(%peer, upstream = %upstream_addr, "upstream connect timed out");
            close(
                &mut ws,
                CloseCode::Again,
                format!("upstream {upstream_addr} unreachable: connect timed out"),
            )
            .await;
            return;
        }
    };
    // Requests and answers are small and latency-bound: send each write at once.
    if let Err(error) = upstream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY upstream");
    }
    info!(%peer, upstream = %upstream_addr, "relay open");

    let mut scanner = CommandScanner::new(shared.config.policy.clone());
    let end = pump(&mut ws, &mut upstream, &mut scanner, &shared).await;
    if matches!(end, End::ClientClosed | End::ClientGone) {
        // The upstream got its FIN after the client's last command. Waiting for memcached
        // to close in turn means every forwarded command ran: closing with its answers
        // unread would reset the connection, and a reset can discard commands memcached has
        // not read yet. Nobody wants the answers any more, so they are dropped.
        // (The client side may have ended without sending that FIN; a second one is harmless.)
        let _ = upstream.shutdown().await;
        let mut scratch = [0u8; 4096];
        let _ = timeout(DRAIN_TIMEOUT, async {
            while let Ok(read) = upstream.read(&mut scratch).await {
                if read == 0 {
                    break;
                }
            }
        })
        .await;
    }
    drop(upstream);

    let (code, reason) = match &end {
        End::ClientClosed | End::ClientGone => {
            // Sends the reply to the client's close frame, if tungstenite queued one.
            let _ = timeout(CLOSE_TIMEOUT, ws.flush()).await;
            info!(%peer, upstream = %upstream_addr, ?end, "relay closed by client");
            drop(permit);
            return;
        }
        End::ClientProtocol(problem) => (
            CloseCode::Protocol,
            format!("WebSocket protocol error: {problem}"),
        ),
        End::Refused(refusal) => {
            metrics.refused(refusal.metric_label());
            (CloseCode::Policy, refusal.to_string())
        }
        End::TextFrame => {
            metrics.refused("text_frame");
            (
                CloseCode::Unsupported,
                "text frames are not relayed: send memcached commands as binary frames".into(),
            )
        }
        End::TooBig => {
            metrics.refused("message_too_big");
            (
                CloseCode::Size,
                format!(
                    "message over the bridge's limit of {} bytes",
                    shared.config.max_message_size
                ),
            )
        }
        End::UpstreamClosed if scanner.quit_sent() => (CloseCode::Normal, "quit".into()),
        End::UpstreamClosed => {
            metrics.upstream_closed.fetch_add(1, Relaxed);
            (
                CloseCode::Error,
                format!("upstream {upstream_addr} closed the connection"),
            )
        }
        End::UpstreamError(error) => {
            metrics.upstream_closed.fetch_add(1, Relaxed);
            (
                CloseCode::Error,
                format!("upstream {upstream_addr} failed: {}", error.kind()),
            )
        }
        End::Idle => {
            metrics.idle_timeouts.fetch_add(1, Relaxed);
            (
                CloseCode::Away,
                format!("idle for {} s", shared.config.idle_timeout.as_secs()),
            )
        }
        End::Shutdown => (CloseCode::Away, "bridge shutting down".into()),
    };
    info!(%peer, upstream = %upstream_addr, code = u16::from(code), %reason, "relay closed");
    close(&mut ws, code, reason).await;
    drop(permit);
}

/// Copies both ways until one side ends, the relay idles out or the bridge shuts down.
async fn pump(
    ws: &mut Socket,
    upstream: &mut TcpStream,
    scanner: &mut CommandScanner,
    shared: &Shared,
) -> End {
    let (mut up_read, mut up_write) = upstream.split();
    let (mut ws_send, mut ws_receive) = ws.split();
    let last_activity = Activity::new();
    let mut closing = shared.closing.clone();

    let client_side = async {
        let end = client_to_upstream(
            &mut ws_receive,
            &mut up_write,
            scanner,
            shared,
            &last_activity,
        )
        .await;
        // No more commands will come: memcached answers what it has, then closes.
        let _ = up_write.shutdown().await;
        end
    };
    let upstream_side = upstream_to_client(&mut up_read, &mut ws_send, shared, &last_activity);
    tokio::pin!(client_side, upstream_side);

    tokio::select! {
        end = &mut client_side => {
            if end.drains_upstream() {
                let _ = timeout(DRAIN_TIMEOUT, &mut upstream_side).await;
            }
            end
        }
        end = &mut upstream_side => end,
        () = idle(&last_activity, shared.config.idle_timeout) => End::Idle,
        () = closing_time(&mut closing) => End::Shutdown,
    }
}

type WsReceive<'a> = futures_util::stream::SplitStream<&'a mut Socket>;
type WsSend<'a> = futures_util::stream::SplitSink<&'a mut Socket, Message>;

/// Client to memcached: every binary message through the scanner, then to the socket.
/// Messages that have already arrived are gathered into one write.
async fn client_to_upstream(
    ws_receive: &mut WsReceive<'_>,
    up_write: &mut WriteHalf<'_>,
    scanner: &mut CommandScanner,
    shared: &Shared,
    last_activity: &Activity,
) -> End {
    let mut pieces: Vec<Bytes> = Vec::new();
    loop {
        let first = ws_receive.next().await;
        let mut end = absorb(first, scanner, &mut pieces);
        let mut gathered = 1;
        while end.is_none()
            && gathered < MAX_UPSTREAM_BATCH_MESSAGES
            && pieces.iter().map(Bytes::len).sum::<usize>() < MAX_UPSTREAM_BATCH
        {
            // Only what is already buffered: never wait here, that would add latency.
            match ws_receive.next().now_or_never() {
                Some(item) => end = absorb(item, scanner, &mut pieces),
                None => break,
            }
            gathered += 1;
        }
        if !pieces.is_empty() {
            last_activity.touch();
            match write_pieces(up_write, &mut pieces).await {
                Ok(written) => {
                    shared
                        .metrics
                        .bytes_client_to_upstream
                        .fetch_add(written as u64, Relaxed);
                }
                Err(error) => return End::UpstreamError(error),
            }
        }
        if let Some(end) = end {
            return end;
        }
    }
}

/// Takes one received item: its passing bytes go to `pieces`; an ending is returned.
fn absorb(
    item: Option<Result<Message, WsError>>,
    scanner: &mut CommandScanner,
    pieces: &mut Vec<Bytes>,
) -> Option<End> {
    let Some(item) = item else {
        return Some(End::ClientGone);
    };
    match item {
        Ok(Message::Binary(data)) => {
            let scanned = scanner.feed(&data);
            if !scanned.released.is_empty() {
                pieces.push(Bytes::from(scanned.released));
            }
            if scanned.pass > 0 {
                pieces.push(data.slice(..scanned.pass));
            }
            scanned.refusal.map(End::Refused)
        }
        Ok(Message::Text(_)) => Some(End::TextFrame),
        Ok(Message::Close(_)) => Some(End::ClientClosed),
        // tungstenite answers pings itself.
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => None,
        Err(WsError::Capacity(_)) => Some(End::TooBig),
        Err(WsError::Protocol(problem)) => Some(End::ClientProtocol(problem.to_string())),
        Err(_) => Some(End::ClientGone),
    }
}

/// Writes all pieces in as few system calls as the kernel allows; returns the bytes written.
async fn write_pieces(up_write: &mut WriteHalf<'_>, pieces: &mut Vec<Bytes>) -> io::Result<usize> {
    let total = pieces.iter().map(Bytes::len).sum();
    if pieces.len() == 1 {
        up_write.write_all(&pieces[0]).await?;
    } else {
        let mut first = 0;
        while first < pieces.len() {
            let slices: Vec<IoSlice<'_>> =
                pieces[first..].iter().map(|p| IoSlice::new(p)).collect();
            let mut written = up_write.write_vectored(&slices).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let piece = &mut pieces[first];
                let step = written.min(piece.len());
                piece.advance(step);
                written -= step;
                if piece.is_empty() {
                    first += 1;
                }
            }
            while first < pieces.len() && pieces[first].is_empty() {
                first += 1;
            }
        }
    }
    pieces.clear();
    Ok(total)
}

/// memcached to client: each read becomes one binary message, sent before the next read.
async fn upstream_to_client(
    up_read: &mut ReadHalf<'_>,
    ws_send: &mut WsSend<'_>,
    shared: &Shared,
    last_activity: &Activity,
) -> End {
    let mut buffer = BytesMut::new();
    loop {
        // Reserving only once readable keeps idle relays from pinning a read buffer; after a
        // message is sent its memory is free again and this reuses it.
        if let Err(error) = up_read.readable().await {
            return End::UpstreamError(error);
        }
        buffer.reserve(UPSTREAM_READ_CHUNK);
        // read_buf (not try_read_buf): a read that does not fill the buffer tells tokio the
        // socket is drained, which saves the next read's EAGAIN system call.
        match up_read.read_buf(&mut buffer).await {
            Ok(0) => return End::UpstreamClosed,
            Ok(read) => {
                last_activity.touch();
                shared
                    .metrics
                    .bytes_upstream_to_client
                    .fetch_add(read as u64, Relaxed);
                if ws_send
                    .send(Message::Binary(buffer.split().freeze()))
                    .await
                    .is_err()
                {
                    return End::ClientGone;
                }
            }
            Err(error) => return End::UpstreamError(error),
        }
    }
}

/// When either direction last moved bytes, shared by both loops of a relay.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last activity.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + std::time::Duration::from_millis(self.last.load(Relaxed))
    }
}

/// Resolves when the bridge tells open relays to close.
async fn closing_time(closing: &mut tokio::sync::watch::Receiver<bool>) {
    if closing.wait_for(|closing| *closing).await.is_err() {
        // The server is gone without saying so; the process is ending anyway.
        std::future::pending::<()>().await;
    }
}

/// Resolves once neither side has moved for `limit`.
async fn idle(last_activity: &Activity, limit: std::time::Duration) {
    loop {
        let deadline = last_activity.last() + limit;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Sends a close frame, then lingers: stops writing and discards what the client still
/// sends until it closes too. Closing the socket with unread data would make the kernel
/// reset the connection, and a reset can destroy the close frame before the client reads it.
async fn close(ws: &mut Socket, code: CloseCode, reason: String) {
    let frame = CloseFrame {
        code,
        reason: fit_close_reason(reason).into(),
    };
    if timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await.is_err() {
        return;
    }
    let tcp = ws.get_mut();
    let _ = tcp.shutdown().await;
    let mut scratch = [0u8; 4096];
    let _ = timeout(CLOSE_TIMEOUT, async {
        while let Ok(read) = tcp.read(&mut scratch).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}

/// A close frame's reason may hold at most 123 bytes of UTF-8.
fn fit_close_reason(mut reason: String) -> String {
    const MAX_REASON: usize = 123;
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_to_123_bytes_on_a_char_boundary() {
        let reason = format!("upstream {}:11211 closed the connection", "é".repeat(100));
        let fitted = fit_close_reason(reason);
        assert!(fitted.len() <= 123);
        assert!(fitted.starts_with("upstream é"));
        assert_eq!(fit_close_reason("short".into()), "short");
    }
}
