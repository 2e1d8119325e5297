//! One relay: a client's WebSocket and one connection to the memcached it named (TCP, TLS
//! or a unix socket, opened and authenticated by upstream.rs), with bytes copied both ways
//! until a side ends, and then a close frame that says why. Both sides are any
//! [`Stream`](crate::stream::Stream); each pair of stream types gets its own copy of the loops.
//!
//! Both directions run in one task, each a plain loop that awaits its next read and then its
//! write, so backpressure is structural: a client that stops reading stalls the loop that
//! reads memcached (the bridge holds at most one chunk), and a slow memcached stalls the loop
//! that reads the client. Client frames are unmasked in place and their payload passes
//! through the command scanner (policy.rs) as it arrives (websocket.rs); read buffers exist
//! only while bytes are in flight, so an idle relay holds none.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};
use tracing::{info, warn};

use crate::limits::{
    CLIENT_READ_CHUNK, CLOSE_TIMEOUT, DRAIN_AFTER_CLIENT_LEFT, DRAIN_TIMEOUT,
    MAX_UPSTREAM_BATCH_MESSAGES, UPSTREAM_READ_CHUNK,
};
use crate::metrics::Metrics;
use crate::policy::{CommandScanner, Policy, Refusal};
use crate::shutdown::Shutdown;
use crate::stream::{Readable, Stream};
use crate::upstream::{ConnectError, Connected, Upstream};
use crate::websocket::{
    close_frame, server_header, Event, FrameError, FrameReader, OPCODE_BINARY, OPCODE_PONG,
};

/// WebSocket close codes the relay sends (RFC 6455, 7.4.1).
mod code {
    pub const NORMAL: u16 = 1000;
    pub const AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const ERROR: u16 = 1011;
    pub const AGAIN: u16 = 1013;
}

/// The settings a relay runs with, taken from the configuration once.
#[derive(Debug)]
pub struct RelaySettings {
    pub policy: Policy,
    pub max_message_size: usize,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

/// What a relay needs from the bridge, and nothing more.
#[derive(Debug)]
pub struct RelayContext {
    pub settings: Arc<RelaySettings>,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
}

/// Why a relay ended; decides the close frame the client gets.
#[derive(Debug)]
enum End {
    /// The client sent a close frame (with this code): answer it, nothing more to say.
    ClientClosed(Option<u16>),
    /// The client's connection broke or ended without a close frame.
    ClientGone,
    /// The client broke the WebSocket protocol.
    ClientProtocol(&'static str),
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
    fn drains_to_client(&self) -> bool {
        matches!(self, End::Refused(_) | End::TextFrame | End::TooBig)
    }

    /// Ends after which nobody reads memcached's answers.
    fn client_left(&self) -> bool {
        matches!(self, End::ClientClosed(_) | End::ClientGone)
    }
}

/// Keeps the open-relays gauge right however the relay ends.
struct OpenRelay<'a>(&'a Metrics);

impl Drop for OpenRelay<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Runs one relay to its end. `client` is the upgraded connection and `inbox` what was read
/// from it past the handshake; `places` (its bounds under admission.rs) are given back when
/// the relay ends.
pub async fn run<C: Stream, P: Send>(
    mut client: C,
    inbox: BytesMut,
    upstream: Arc<Upstream>,
    peer: SocketAddr,
    context: RelayContext,
    places: P,
) {
    let metrics = context.metrics.clone();
    let settings = context.settings.clone();
    metrics.connections_total.fetch_add(1, Relaxed);
    metrics.connections_open.fetch_add(1, Relaxed);
    let _open = OpenRelay(&metrics);

    let name = upstream.name.as_str();
    let connected = match upstream.connect(settings.connect_timeout).await {
        Ok(connected) => connected,
        Err(error) => {
            match &error {
                ConnectError::AuthBackoff { .. } => metrics.refused("upstream_auth_backoff"),
                ConnectError::Tls(_) => {
                    metrics.upstream_connect_errors.fetch_add(1, Relaxed);
                    metrics.upstream_tls_errors.fetch_add(1, Relaxed);
                }
                ConnectError::AuthFailed => {
                    metrics.upstream_connect_errors.fetch_add(1, Relaxed);
                    metrics.upstream_auth_failures.fetch_add(1, Relaxed);
                }
                _ => {
                    metrics.upstream_connect_errors.fetch_add(1, Relaxed);
                }
            }
            warn!(%peer, upstream = %name, %error, "upstream connection failed");
            let code = if error.is_transient() {
                code::AGAIN
            } else {
                code::ERROR
            };
            let reason = format!("upstream {name} {error}");
            close(&mut client, &close_frame(code, &reason)).await;
            return;
        }
    };
    info!(%peer, upstream = %name, "relay open");
    match connected {
        Connected::Tcp(stream) => relay(client, inbox, stream, name, peer, context).await,
        Connected::Unix(stream) => relay(client, inbox, stream, name, peer, context).await,
        // Boxed: a relay's task is as big as its biggest arm, and the TLS stream held by
        // value made every relay's task 5,136 bytes instead of 3,064 (idle relays: 8.8 to
        // 7.0 KiB each, medians of three runs); only TLS relays now pay for their stream.
        Connected::Tls(stream) => {
            Box::pin(relay(client, inbox, *stream, name, peer, context)).await
        }
    }
    drop(places);
}

/// The relay once memcached is connected: pump, then the close frame that says why.
async fn relay<C: Stream, U: Stream>(
    mut client: C,
    inbox: BytesMut,
    mut upstream: U,
    upstream_addr: &str,
    peer: SocketAddr,
    mut context: RelayContext,
) {
    let metrics = context.metrics.clone();
    let settings = context.settings.clone();
    let mut scanner = CommandScanner::new(settings.policy.clone());
    let end = pump(
        &mut client,
        inbox,
        &mut upstream,
        &mut scanner,
        &mut context,
    )
    .await;
    drop(upstream);

    let (code, reason) = match &end {
        End::ClientClosed(code) => {
            // Answer the client's close frame with its own code, as RFC 6455 asks.
            let frame = match code {
                Some(code) => close_frame(*code, ""),
                None => vec![0x88, 0x00],
            };
            close(&mut client, &frame).await;
            info!(%peer, upstream = %upstream_addr, "relay closed by client");
            return;
        }
        End::ClientGone => {
            info!(%peer, upstream = %upstream_addr, "relay ended: client gone");
            return;
        }
        End::ClientProtocol(problem) => (
            code::PROTOCOL,
            format!("WebSocket protocol error: {problem}"),
        ),
        End::Refused(refusal) => {
            metrics.refused(refusal.metric_label());
            (code::POLICY, refusal.to_string())
        }
        End::TextFrame => {
            metrics.refused("text_frame");
            (
                code::UNSUPPORTED,
                "text frames are not relayed: send memcached commands as binary frames".into(),
            )
        }
        End::TooBig => {
            metrics.refused("message_too_big");
            (
                code::TOO_BIG,
                format!(
                    "message over the bridge's limit of {} bytes",
                    settings.max_message_size
                ),
            )
        }
        End::UpstreamClosed if scanner.quit_sent() => (code::NORMAL, "quit".into()),
        End::UpstreamClosed => {
            metrics.upstream_closed.fetch_add(1, Relaxed);
            (
                code::ERROR,
                format!("upstream {upstream_addr} closed the connection"),
            )
        }
        End::UpstreamError(error) => {
            metrics.upstream_closed.fetch_add(1, Relaxed);
            (
                code::ERROR,
                format!("upstream {upstream_addr} failed: {}", error.kind()),
            )
        }
        End::Idle => {
            metrics.idle_timeouts.fetch_add(1, Relaxed);
            (
                code::AWAY,
                format!("idle for {} s", settings.idle_timeout.as_secs()),
            )
        }
        End::Shutdown => (code::AWAY, "bridge shutting down".into()),
    };
    info!(%peer, upstream = %upstream_addr, code, %reason, "relay closed");
    close(&mut client, &close_frame(code, &reason)).await;
}

/// Copies both ways until one side ends, the relay idles out or the bridge shuts down; then
/// drains memcached's answers (the one drain loop is `upstream_to_client` itself: to the
/// client after a refusal, into the void, bounded by bytes, after the client left).
async fn pump<C: Stream, U: Stream>(
    client: &mut C,
    inbox: BytesMut,
    upstream: &mut U,
    scanner: &mut CommandScanner,
    context: &mut RelayContext,
) -> End {
    let (mut client_read, mut client_write) = client.split();
    let (mut up_read, mut up_write) = upstream.split();
    let activity = Activity::new();
    let pong = Pong::default();
    let metrics = &*context.metrics;
    let settings = &*context.settings;
    let shutdown = &mut context.shutdown;

    let end = {
        let client_side = async {
            let mut frames = FrameReader::new(settings.max_message_size);
            let end = client_to_upstream(
                &mut client_read,
                inbox,
                &mut frames,
                &mut up_write,
                scanner,
                metrics,
                &activity,
                &pong,
            )
            .await;
            // No more commands will come: memcached answers what it has, then closes.
            let _ = up_write.shutdown().await;
            end
        };
        let upstream_side = upstream_to_client(
            &mut up_read,
            Sink::Client(&mut client_write),
            metrics,
            &activity,
            &pong,
        );
        tokio::pin!(client_side, upstream_side);
        tokio::select! {
            end = &mut client_side => {
                if end.drains_to_client() {
                    let _ = timeout(DRAIN_TIMEOUT, &mut upstream_side).await;
                }
                end
            }
            end = &mut upstream_side => end,
            () = idle(&activity, settings.idle_timeout) => End::Idle,
            () = shutdown.closing() => End::Shutdown,
        }
    };
    if end.client_left() {
        // The upstream got its FIN after the client's last command. Waiting for memcached
        // to close in turn means every forwarded command ran: closing with its answers
        // unread would reset the connection, and a reset can discard commands memcached has
        // not read yet. But nobody reads these answers, so only so many bytes of them are
        // read: a client that queued gigabytes of gets and left costs memcached no more.
        // (The client side may have ended without sending that FIN; a second one is harmless.)
        let _ = up_write.shutdown().await;
        let sink: Sink<'_, C::Writer<'_>> = Sink::Discard {
            left: DRAIN_AFTER_CLIENT_LEFT,
        };
        let _ = timeout(
            DRAIN_TIMEOUT,
            upstream_to_client(&mut up_read, sink, metrics, &activity, &pong),
        )
        .await;
    }
    end
}

/// The latest ping's payload, waiting for the upstream-to-client loop (which owns the
/// client's write half) to send it back as a pong. One slot: a newer ping replaces an
/// unanswered one (RFC 6455 allows answering only the most recent), so a client that sends
/// pings and never reads costs at most 125 bytes, not a pong per ping.
#[derive(Default)]
struct Pong {
    payload: Mutex<Option<BytesMut>>,
    ready: Notify,
}

impl Pong {
    fn offer(&self, payload: BytesMut) {
        *self.payload.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
        self.ready.notify_one();
    }

    fn take(&self) -> Option<BytesMut> {
        self.payload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Client to memcached: frames are decoded as bytes arrive and their payload passes through
/// the scanner to the socket; pieces that arrived together go in one write.
#[allow(clippy::too_many_arguments)]
async fn client_to_upstream<R: Readable + AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    client_read: &mut R,
    mut inbox: BytesMut,
    frames: &mut FrameReader,
    up_write: &mut W,
    scanner: &mut CommandScanner,
    metrics: &Metrics,
    activity: &Activity,
    pong: &Pong,
) -> End {
    let mut pieces: Vec<Bytes> = Vec::new();
    loop {
        let mut end = None;
        while end.is_none() && pieces.len() + 2 <= MAX_UPSTREAM_BATCH_MESSAGES {
            match frames.next_event(&mut inbox) {
                Ok(None) => break,
                Ok(Some(Event::Data(data))) => {
                    let scanned = scanner.feed(&data);
                    if !scanned.released.is_empty() {
                        pieces.push(Bytes::from(scanned.released));
                    }
                    if scanned.pass > 0 {
                        let mut data = data;
                        data.truncate(scanned.pass);
                        pieces.push(data.freeze());
                    }
                    end = scanned.refusal.map(End::Refused);
                }
                Ok(Some(Event::Ping(payload))) => pong.offer(payload),
                Ok(Some(Event::Close(code))) => end = Some(End::ClientClosed(code)),
                Ok(Some(Event::Text)) => end = Some(End::TextFrame),
                Err(FrameError::TooBig) => end = Some(End::TooBig),
                Err(FrameError::Protocol(problem)) => end = Some(End::ClientProtocol(problem)),
            }
        }
        if !pieces.is_empty() {
            activity.touch();
            match write_pieces(up_write, &mut pieces).await {
                Ok(written) => {
                    metrics
                        .bytes_client_to_upstream
                        .fetch_add(written as u64, Relaxed);
                }
                Err(error) => return End::UpstreamError(error),
            }
            // A batch cut short by the iovec bound: take the rest before reading more.
            if end.is_none() && !inbox.is_empty() {
                continue;
            }
        }
        if let Some(end) = end {
            return end;
        }
        if inbox.is_empty() {
            // Nothing left over: give the buffer back while waiting, so idle relays hold none.
            inbox = BytesMut::new();
        }
        if client_read.readable().await.is_err() {
            return End::ClientGone;
        }
        inbox.reserve(CLIENT_READ_CHUNK);
        match client_read.read_buf(&mut inbox).await {
            Ok(0) | Err(_) => return End::ClientGone,
            Ok(_) => {}
        }
    }
}

/// Writes all pieces in as few system calls as the kernel allows; returns the bytes written.
async fn write_pieces<W: AsyncWrite + Unpin>(
    up_write: &mut W,
    pieces: &mut Vec<Bytes>,
) -> io::Result<usize> {
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
    // A no-op on sockets; TLS sends the records it still holds.
    up_write.flush().await?;
    Ok(total)
}

/// Where memcached's answers go.
enum Sink<'a, W> {
    /// To the client, one binary frame per read.
    Client(&'a mut W),
    /// Nowhere: the client left. `left` is how many more bytes may be read before giving up.
    Discard { left: u64 },
}

/// memcached to client: each read becomes one binary frame, sent before the next read.
/// Pongs go out between frames.
async fn upstream_to_client<R: Readable + AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    up_read: &mut R,
    mut sink: Sink<'_, W>,
    metrics: &Metrics,
    activity: &Activity,
    pong: &Pong,
) -> End {
    loop {
        tokio::select! {
            biased;
            () = pong.ready.notified(), if matches!(sink, Sink::Client(_)) => {
                if let (Some(payload), Sink::Client(client)) = (pong.take(), &mut sink) {
                    if write_frame(client, OPCODE_PONG, &payload).await.is_err() {
                        return End::ClientGone;
                    }
                }
                continue;
            }
            readable = up_read.readable() => {
                if let Err(error) = readable {
                    return End::UpstreamError(error);
                }
            }
        }
        // Allocated only once readable and dropped once sent: an idle relay holds no buffer.
        let mut buffer = BytesMut::with_capacity(UPSTREAM_READ_CHUNK);
        // read_buf (not try_read_buf): a read that does not fill the buffer tells tokio the
        // socket is drained, which saves the next read's EAGAIN system call.
        match up_read.read_buf(&mut buffer).await {
            Ok(0) => return End::UpstreamClosed,
            Ok(read) => match &mut sink {
                Sink::Client(client) => {
                    activity.touch();
                    metrics
                        .bytes_upstream_to_client
                        .fetch_add(read as u64, Relaxed);
                    if write_frame(client, OPCODE_BINARY, &buffer).await.is_err() {
                        return End::ClientGone;
                    }
                }
                Sink::Discard { left } => {
                    *left = left.saturating_sub(read as u64);
                    if *left == 0 {
                        return End::ClientGone;
                    }
                }
            },
            Err(error) => return End::UpstreamError(error),
        }
    }
}

/// Writes one unmasked server frame: header and payload in one writev when the kernel takes it.
async fn write_frame<W: AsyncWrite + Unpin>(
    client: &mut W,
    opcode: u8,
    payload: &[u8],
) -> io::Result<()> {
    let mut header = [0u8; 10];
    let header_len = server_header(opcode, payload.len(), &mut header);
    let mut head = &header[..header_len];
    let mut body = payload;
    while !head.is_empty() {
        let written = client
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if written >= head.len() {
            body = &body[written - head.len()..];
            head = &[];
        } else {
            head = &head[written..];
        }
    }
    client.write_all(body).await?;
    // A no-op on sockets; TLS sends the records it still holds.
    client.flush().await
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
        self.start + Duration::from_millis(self.last.load(Relaxed))
    }
}

/// Resolves once neither side has moved for `limit`.
async fn idle(activity: &Activity, limit: Duration) {
    loop {
        let deadline = activity.last() + limit;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Sends a close frame, then lingers: stops writing and discards what the client still
/// sends until it closes too. Closing the socket with unread data would make the kernel
/// reset the connection, and a reset can destroy the close frame before the client reads it.
pub async fn close<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, frame: &[u8]) {
    if !matches!(
        timeout(CLOSE_TIMEOUT, client.write_all(frame)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let _ = client.shutdown().await;
    let mut scratch = vec![0u8; 4096];
    let _ = timeout(CLOSE_TIMEOUT, async {
        while let Ok(read) = client.read(&mut scratch).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::ShutdownController;
    use tokio::net::{TcpListener, TcpStream};

    /// A relay's task lives as long as its WebSocket, so its size is most of what an idle
    /// relay costs (the bridge holds no buffers while idle). `run` for a plain relay is 2,840
    /// bytes in a test build; it was 4,912 while the arm for a TLS memcached held its stream
    /// inline (5,136 for the release bridge's whole task), which this bound catches.
    const MAX_PLAIN_RELAY_TASK: usize = 4096;

    #[tokio::test]
    async fn a_plain_relay_task_does_not_carry_the_tls_arm() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let client = TcpStream::connect(peer).await.unwrap();
        let context = RelayContext {
            settings: Arc::new(RelaySettings {
                policy: Policy::default(),
                max_message_size: 1 << 20,
                idle_timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
            }),
            metrics: Arc::new(Metrics::default()),
            shutdown: ShutdownController::new().handle(),
        };
        let upstream = Arc::new(Upstream::new("127.0.0.1:1", None, None));
        // Never polled: only its size is of interest.
        let task = run(client, BytesMut::new(), upstream, peer, context, ());
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= MAX_PLAIN_RELAY_TASK,
            "a plain relay's task is {size} bytes"
        );
    }
}
