//! Every limit of the bridge in one place, each with the reason for its value. The ones an
//! operator may change are defaults of flags in config.rs; the rest are fixed here.

use std::time::Duration;

/// Default `--listen`: loopback, so a bridge started without thought is not on the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11280";

/// Default `--max-message-size`: 2 MiB holds memcached's default 1 MiB item limit with room
/// for a pipelined batch. The bridge never holds a message whole (websocket.rs relays the
/// payload as it arrives), so this is not a memory bound: it refuses, from the frame header
/// alone, messages no memcached client needs, with the 1009 close clients expect.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 2 * 1024 * 1024;

/// Default `--max-connections`: enough for a fleet of dashboards and scripts, while bounding
/// file descriptors (two per relay) and memory far below a small machine's limits.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Default `--idle-timeout` in seconds: a dashboard polls stats every few seconds; a relay
/// quiet for five minutes is abandoned and should give its upstream connection back.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;

/// Default `--handshake-timeout` in seconds: a client that cannot send an HTTP request head
/// in ten seconds is slow-lorising, not browsing.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// Default `--connect-timeout` in seconds: memcached on a LAN answers a connect in
/// milliseconds; waiting longer only keeps the client from seeing the error.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 3;

/// Default `--shutdown-grace` in seconds: on SIGTERM open relays get this long to finish
/// before they are closed (systemd's default stop timeout is 90 s, so this fits inside it).
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;

/// Default `--max-connections-per-client`: connections one client address (an IPv4 address,
/// or an IPv6 /64) may hold at once, relays and handshakes together. A dashboard uses one
/// relay per server; 512 leaves room for scripts and pools while one address can take at
/// most an eighth of the default `--max-connections`. Behind a reverse proxy every client
/// has the proxy's address: raise it there.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 512;

/// Handshakes (plain HTTP connections being read) one client address may have in progress
/// at once; its further connections wait their turn. Browsers open at most six connections
/// per host, so 64 is never felt by a real client, and slow sockets from one address hold
/// at most 64 of hyper's request buffers.
pub const MAX_HANDSHAKES_PER_CLIENT: usize = 64;

/// Upstream connections per memcached when `--max-upstream-connections` is not given and the
/// bridge cannot read memcached's `maxconns` at start: half of memcached's default 1,024.
pub const FALLBACK_MAX_UPSTREAM_CONNECTIONS: usize = 512;

/// How much the bridge reads from memcached at once. One read becomes one WebSocket frame,
/// so this is also the most the bridge holds per relay for the client direction: with a
/// client that does not read, the bridge stops reading memcached after one such chunk. It is
/// allocated when the socket is readable and freed when the frame is sent, so an idle relay
/// holds none.
pub const UPSTREAM_READ_CHUNK: usize = 64 * 1024;

/// How much the bridge reads from a client at once, for the same reasons in the other
/// direction: frames are unmasked in place and relayed as they arrive, so a message in
/// progress (even an unfinished 2 MiB frame) costs a relay at most this, never the message.
pub const CLIENT_READ_CHUNK: usize = 64 * 1024;

/// Most client frames' pieces gathered into one upstream write; each becomes an iovec of one
/// writev call, and the kernel takes at most 1024 of them.
pub const MAX_UPSTREAM_BATCH_MESSAGES: usize = 64;

/// How long a refused or ended relay waits for memcached's answers to the commands it did
/// forward before closing the WebSocket, so no response to an accepted request is dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// After the client left, the most bytes of memcached's answers the bridge reads (and throws
/// away) before it closes the upstream connection. Waiting for memcached to finish lets the
/// last writes a client sent complete instead of being cut by a reset; 1 MiB holds the
/// replies to about 100,000 pipelined writes, while a client that queued gigabytes of `get`s
/// and left costs memcached at most this plus the kernel's socket buffers.
pub const DRAIN_AFTER_CLIENT_LEFT: u64 = 1024 * 1024;

/// How long the bridge waits for the client's close handshake after sending its close frame.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Plain HTTP connections (health, metrics, files, handshakes in progress or waiting their
/// client's turn) at once; beyond this a new connection gets a 503 and is closed at once, so
/// the accept loop never stops and descriptors stay bounded. 8,192 is 16 addresses' worth of
/// `--max-connections-per-client` waiting at once; a waiting connection costs a parked task
/// (well under 1 KiB), one being read at most hyper's 64 KiB buffer, and with two descriptors
/// per relay it fits the 16,384 descriptors the systemd example allows.
pub const MAX_HTTP_CONNECTIONS: usize = 8192;

/// Biggest static file served from `--www`; the dashboard is a few hundred KiB of HTML,
/// JavaScript and WebAssembly, and files are read whole into memory.
pub const MAX_STATIC_FILE: u64 = 16 * 1024 * 1024;

/// Most memory the compressed-file cache holds (identity, gzip and brotli copies together);
/// the dashboard needs about 1 MiB, so this only stops a huge `--www` from growing it.
pub const MAX_STATIC_CACHE: usize = 64 * 1024 * 1024;

/// memcached refuses keys over 250 bytes without reading a data block; so does the scanner.
pub const MAX_KEY_LENGTH: usize = 250;

/// The longest command line the scanner holds back across frames. memcached itself closes a
/// connection whose line passes 2048 bytes without a newline unless it is a get; a storage
/// line is under 400 bytes.
pub const MAX_COMMAND_LINE: usize = 2048;

/// Most tokens a meta set (`ms`) may have: memcached rejects more than 19 without reading
/// the data block, so the scanner refuses earlier and never disagrees with it.
pub const MAX_META_SET_TOKENS: usize = 16;

/// The listen backlog: 1,000 clients connecting at once must wait in the kernel, not fail.
pub const LISTEN_BACKLOG: u32 = 2048;

/// After memcached refuses the bridge's credentials, how long new relays to it are refused
/// without asking again; each refusal in a row doubles it, up to [`AUTH_RETRY_MAX`]. A wrong
/// `--upstream-auth-file` then costs memcached one failed authentication a minute at most,
/// not one per browser reconnect, while a fixed password is noticed within a second.
pub const AUTH_RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between authentication attempts to a memcached that refuses them.
pub const AUTH_RETRY_MAX: Duration = Duration::from_secs(60);

/// The longest answer to the authentication read: memcached's are one short line
/// (`STORED`, `CLIENT_ERROR authentication failure`).
pub const MAX_AUTH_ANSWER: usize = 256;
