//! How the bridge reaches one memcached: its address as python-memcached writes it (TCP over
//! IPv4, IPv6 or a DNS name, or a unix socket), TLS when `--upstream-tls` is on, and then
//! memcached's text-protocol authentication (`-Y`) with the bridge's own credentials, all
//! before a byte of the client's is relayed. A memcached that refuses the credentials is not
//! asked again until a backoff has passed, so a wrong password cannot hammer it.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{timeout, Instant};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::limits::{AUTH_RETRY_FIRST, AUTH_RETRY_MAX, MAX_AUTH_ANSWER};

/// The key of the bridge's authentication `set`. memcached `-Y` stores nothing for it (the
/// first command of a connection is the authentication); a memcached without `-Y` would
/// store it, so the `set` carries an exptime of -1: the item is expired at once and no
/// command can read it back.
const AUTH_KEY: &str = "memcache-bridge-auth";

/// Where a memcached listens, parsed from its `--upstream` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host` is an IP address (IPv6 without brackets) or a DNS name.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

impl Address {
    /// python-memcached's forms: `unix:/path`, `inet6:[::1]:11211`, `inet:host:port`,
    /// `[::1]:11211`, `host:port`; the port is required.
    pub fn parse(name: &str) -> Result<Address, &'static str> {
        if let Some(path) = name.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err("a unix socket is named unix:/absolute/path");
            }
            if path.contains('\0') {
                return Err("a socket path cannot hold a NUL byte");
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = name.strip_prefix("inet6:") {
            return match rest.parse::<std::net::SocketAddr>() {
                Ok(std::net::SocketAddr::V6(v6)) if v6.port() > 0 => Ok(Address::Tcp {
                    host: v6.ip().to_string(),
                    port: v6.port(),
                }),
                _ => Err("expected inet6:[IPv6]:PORT"),
            };
        }
        let rest = name.strip_prefix("inet:").unwrap_or(name);
        if let Ok(socket) = rest.parse::<std::net::SocketAddr>() {
            if socket.port() == 0 {
                return Err("the port must be 1-65535");
            }
            if name.starts_with("inet:") && socket.is_ipv6() {
                return Err("an IPv6 address is written inet6:[IPv6]:PORT or [IPv6]:PORT");
            }
            return Ok(Address::Tcp {
                host: socket.ip().to_string(),
                port: socket.port(),
            });
        }
        let (host, port) = rest.rsplit_once(':').ok_or("expected HOST:PORT")?;
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err("the port must be 1-65535"),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !name_ok {
            return Err("the host must be an IP address ([v6] in brackets) or a DNS name");
        }
        Ok(Address::Tcp {
            host: host.to_string(),
            port,
        })
    }

    /// `tcp` or `unix`, as /servers says.
    pub fn transport(&self) -> &'static str {
        match self {
            Address::Tcp { .. } => "tcp",
            Address::Unix(_) => "unix",
        }
    }
}

/// The bridge's memcached credentials, from `--upstream-auth-file`. Its `Debug` shows
/// nothing and nothing else prints it: they go to memcached and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Checked by config.rs: neither part empty, no whitespace or control bytes.
    pub fn new(username: String, password: String) -> Credentials {
        Credentials { username, password }
    }

    /// The authentication command memcached `-Y` expects as a connection's first.
    fn command(&self) -> Vec<u8> {
        let token_len = self.username.len() + 1 + self.password.len();
        let mut command = format!("set {AUTH_KEY} 0 -1 {token_len}\r\n").into_bytes();
        command.extend_from_slice(self.username.as_bytes());
        command.push(b' ');
        command.extend_from_slice(self.password.as_bytes());
        command.extend_from_slice(b"\r\n");
        command
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(hidden)")
    }
}

/// How to reach memcached over TLS: rustls's configuration and the name its certificate
/// must carry (the upstream's host, an IP address or a DNS name).
struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

/// One configured memcached.
pub struct Upstream {
    /// The name as configured, which clients use in the URL and /servers lists.
    pub name: String,
    pub address: Address,
    tls: Option<Tls>,
    credentials: Option<Credentials>,
    backoff: Mutex<AuthBackoff>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("tls", &self.tls.is_some())
            .field("auth", &self.credentials.is_some())
            .finish()
    }
}

/// Refused credentials: when the next attempt may be made, and how many failed in a row.
#[derive(Debug, Default)]
struct AuthBackoff {
    failures: u32,
    retry_at: Option<Instant>,
}

/// An open connection to memcached, authenticated if the bridge has credentials.
pub enum Connected {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Why the bridge could not open an upstream connection; `Display` is the close reason's
/// tail (after "upstream NAME ") and the log's. Never holds the credentials.
#[derive(Debug)]
pub enum ConnectError {
    Unreachable(io::Error),
    TimedOut,
    Tls(io::Error),
    /// memcached answered `CLIENT_ERROR authentication failure`.
    AuthFailed,
    /// Credentials were refused recently: not tried again for `retry_in`.
    AuthBackoff {
        retry_in: Duration,
    },
    /// memcached answered the authentication with something else (its line, cut short).
    AuthAnswer(String),
    /// The connection broke during the authentication.
    AuthBroken(io::Error),
}

impl ConnectError {
    /// Whether a client may retry soon (close 1013) or should tell a person (1011).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Unreachable(_)
                | ConnectError::TimedOut
                | ConnectError::AuthBackoff { .. }
        )
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Unreachable(error) => write!(f, "unreachable: {}", error.kind()),
            ConnectError::TimedOut => f.write_str("unreachable: connect timed out"),
            ConnectError::Tls(error) => write!(f, "TLS handshake failed: {error}"),
            ConnectError::AuthFailed => {
                f.write_str("refused the bridge's credentials (--upstream-auth-file)")
            }
            ConnectError::AuthBackoff { retry_in } => write!(
                f,
                "refused the bridge's credentials; next try in {} s",
                retry_in.as_secs_f64().ceil() as u64
            ),
            ConnectError::AuthAnswer(line) => {
                write!(f, "answered the bridge's authentication with {line:?}")
            }
            ConnectError::AuthBroken(error) => {
                write!(f, "failed during authentication: {}", error.kind())
            }
        }
    }
}

impl Upstream {
    /// `name` must have parsed (config.rs checked it); `tls` applies to TCP upstreams only.
    pub fn new(
        name: &str,
        tls: Option<&Arc<ClientConfig>>,
        credentials: Option<&Credentials>,
    ) -> Upstream {
        let address = Address::parse(name).expect("config.rs checked every upstream");
        let tls = match (&address, tls) {
            (Address::Tcp { host, .. }, Some(config)) => Some(Tls {
                connector: TlsConnector::from(config.clone()),
                server_name: match host.parse::<IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(host.clone())
                        .expect("config.rs checked the host is a DNS name"),
                },
            }),
            _ => None,
        };
        Upstream {
            name: name.to_string(),
            address,
            tls,
            credentials: credentials.cloned(),
            backoff: Mutex::new(AuthBackoff::default()),
        }
    }

    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn authenticates(&self) -> bool {
        self.credentials.is_some()
    }

    /// Opens a connection and authenticates it, all within `limit`.
    pub async fn connect(&self, limit: Duration) -> Result<Connected, ConnectError> {
        if let Some(retry_in) = self.auth_retry_in() {
            return Err(ConnectError::AuthBackoff { retry_in });
        }
        let result = match timeout(limit, self.connect_and_authenticate()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::TimedOut),
        };
        match &result {
            Ok(_) if self.credentials.is_some() => self.auth_succeeded(),
            Err(ConnectError::AuthFailed) => self.auth_failed(),
            _ => {}
        }
        result
    }

    async fn connect_and_authenticate(&self) -> Result<Connected, ConnectError> {
        let mut connected = self.open().await?;
        if let Some(credentials) = &self.credentials {
            authenticate(&mut connected, credentials).await?;
        }
        Ok(connected)
    }

    /// Opens the connection (TCP, TLS over TCP, or the unix socket) without authenticating.
    pub async fn open(&self) -> Result<Connected, ConnectError> {
        match &self.address {
            Address::Unix(path) => UnixStream::connect(path)
                .await
                .map(Connected::Unix)
                .map_err(ConnectError::Unreachable),
            Address::Tcp { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(ConnectError::Unreachable)?;
                // Requests and answers are small and latency-bound: send each write at once.
                if let Err(error) = tcp.set_nodelay(true) {
                    debug!(%error, "cannot set TCP_NODELAY upstream");
                }
                match &self.tls {
                    None => Ok(Connected::Tcp(tcp)),
                    Some(tls) => tls
                        .connector
                        .connect(tls.server_name.clone(), tcp)
                        .await
                        .map(|stream| Connected::Tls(Box::new(stream)))
                        .map_err(ConnectError::Tls),
                }
            }
        }
    }

    /// Authenticates a connection from [`Upstream::open`] with the bridge's credentials,
    /// counting a refusal towards the backoff as [`Upstream::connect`] does.
    pub async fn authenticate(&self, stream: &mut Connected) -> Result<(), ConnectError> {
        let Some(credentials) = &self.credentials else {
            return Ok(());
        };
        let result = authenticate(stream, credentials).await;
        match &result {
            Ok(()) => self.auth_succeeded(),
            Err(ConnectError::AuthFailed) => self.auth_failed(),
            Err(_) => {}
        }
        result
    }

    fn auth_retry_in(&self) -> Option<Duration> {
        let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let retry_at = backoff.retry_at?;
        let now = Instant::now();
        (retry_at > now).then(|| retry_at - now)
    }

    fn auth_failed(&self) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff.failures = backoff.failures.saturating_add(1);
        let wait = AUTH_RETRY_FIRST
            .saturating_mul(1 << (backoff.failures - 1).min(16))
            .min(AUTH_RETRY_MAX);
        backoff.retry_at = Some(Instant::now() + wait);
    }

    fn auth_succeeded(&self) {
        *self.backoff.lock().unwrap_or_else(|e| e.into_inner()) = AuthBackoff::default();
    }
}

/// memcached's text-protocol authentication: the `set` of [`Credentials::command`], then
/// `STORED`. Nothing else is sent until it is answered, and nothing memcached sends after
/// its answer is expected (it sends nothing unasked).
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    credentials: &Credentials,
) -> Result<(), ConnectError> {
    stream
        .write_all(&credentials.command())
        .await
        .map_err(ConnectError::AuthBroken)?;
    stream.flush().await.map_err(ConnectError::AuthBroken)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; MAX_AUTH_ANSWER];
    while !answer.ends_with(b"\r\n") {
        if answer.len() >= MAX_AUTH_ANSWER {
            break;
        }
        let read = stream
            .read(&mut chunk[..MAX_AUTH_ANSWER - answer.len()])
            .await
            .map_err(ConnectError::AuthBroken)?;
        if read == 0 {
            return Err(ConnectError::AuthBroken(
                io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    match &answer[..] {
        b"STORED\r\n" => Ok(()),
        b"CLIENT_ERROR authentication failure\r\n" => Err(ConnectError::AuthFailed),
        other => {
            let line: String = String::from_utf8_lossy(other)
                .trim_end()
                .chars()
                .take(60)
                .collect();
            Err(ConnectError::AuthAnswer(line))
        }
    }
}

impl AsyncRead for Connected {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connected::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Connected::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Connected::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connected {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connected::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Connected::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Connected::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connected::Tcp(s) => Pin::new(s).poll_flush(cx),
            Connected::Unix(s) => Pin::new(s).poll_flush(cx),
            Connected::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connected::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Connected::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Connected::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_named_as_python_memcached_names_them() {
        let tcp = |host: &str, port| Address::Tcp {
            host: host.into(),
            port,
        };
        for (name, address) in [
            ("127.0.0.1:11211", tcp("127.0.0.1", 11211)),
            ("inet:127.0.0.1:11211", tcp("127.0.0.1", 11211)),
            ("[::1]:11211", tcp("::1", 11211)),
            ("inet6:[::1]:11212", tcp("::1", 11212)),
            ("cache-1.internal:11211", tcp("cache-1.internal", 11211)),
            ("localhost:1", tcp("localhost", 1)),
            (
                "unix:/run/memcached/memcached.sock",
                Address::Unix("/run/memcached/memcached.sock".into()),
            ),
        ] {
            assert_eq!(Address::parse(name), Ok(address), "{name}");
        }
        for bad in [
            "127.0.0.1",
            "host:0",
            "host:99999",
            ":11211",
            "a b:1",
            "host/x:1",
            "[::1:1",
            "[::1]:0",
            "inet6:127.0.0.1:11211",
            "inet6:[::1]",
            "inet:[::1]:11211",
            "unix:relative.sock",
            "unix:",
            "::1:11211",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_auth_command_is_a_set_that_expires_at_once_and_debug_hides_it() {
        let credentials = Credentials::new("alice".into(), "s3cret".into());
        assert_eq!(
            credentials.command(),
            b"set memcache-bridge-auth 0 -1 12\r\nalice s3cret\r\n"
        );
        assert_eq!(format!("{credentials:?}"), "Credentials(hidden)");
        let upstream = Upstream::new("127.0.0.1:1", None, Some(&credentials));
        assert!(!format!("{upstream:?}").contains("s3cret"));
    }

    #[test]
    fn refused_credentials_back_off_doubling_up_to_the_cap() {
        let credentials = Credentials::new("a".into(), "b".into());
        let upstream = Upstream::new("127.0.0.1:1", None, Some(&credentials));
        assert_eq!(upstream.auth_retry_in(), None);
        upstream.auth_failed();
        let first = upstream.auth_retry_in().unwrap();
        assert!(first <= AUTH_RETRY_FIRST && first > AUTH_RETRY_FIRST / 2);
        upstream.auth_failed();
        assert!(upstream.auth_retry_in().unwrap() > AUTH_RETRY_FIRST);
        for _ in 0..40 {
            upstream.auth_failed();
        }
        assert!(upstream.auth_retry_in().unwrap() <= AUTH_RETRY_MAX);
        upstream.auth_succeeded();
        assert_eq!(upstream.auth_retry_in(), None);
    }
}
