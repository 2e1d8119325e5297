//! Test support: a real memcached and the real bridge binary on free loopback ports (or a
//! unix socket, IPv6, TLS and -Y authentication), each stopped when dropped (also when a
//! test fails), a throwaway CA made with openssl once per test binary, and small clients.

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket over TLS, as a browser opens `wss://`.
pub type Wss = WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens `wss://` to a bridge that serves TLS, trusting only `ca`.
pub async fn connect_tls(
    bridge: &Bridge,
    upstream: &str,
    ca: &Path,
    headers: &[(&str, &str)],
) -> Result<Wss, u16> {
    let mut request = bridge.url(upstream).into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    let stream = tls_connect(&bridge.addr, ca).await.expect("TLS handshake");
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("handshake failed without an HTTP status: {other}"),
    }
}

/// A TLS connection to `addr` (an IP:PORT) that trusts only `ca`.
pub async fn tls_connect(
    addr: &str,
    ca: &Path,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let ip: std::net::SocketAddr = addr.parse().unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(ip.ip().into());
    tokio_rustls::TlsConnector::from(client_tls(ca))
        .connect(name, tcp)
        .await
}

/// A GET over https: (status, body).
pub async fn https_get(addr: &str, path: &str, ca: &Path) -> (u16, String) {
    https_get_from("127.0.0.1", addr, path, ca).await
}

/// A GET over https from the loopback address `source` (127.0.0.x: another client address).
pub async fn https_get_from(source: &str, addr: &str, path: &str, ca: &Path) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(addr.parse().unwrap()).await.unwrap();
    let ip: std::net::SocketAddr = addr.parse().unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(ip.ip().into());
    let mut stream = tokio_rustls::TlsConnector::from(client_tls(ca))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    // A peer that closes without close_notify still gave the whole answer (Connection: close).
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply).to_string();
    let status = reply[9..12].parse().unwrap();
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Memcached {
    /// The port the bridge is given (TLS when the memcached serves TLS).
    pub port: u16,
    child: Child,
    /// The name the bridge is given with --upstream.
    name: String,
    /// Where a test talks to memcached itself: plain TCP (a notls: port beside a TLS one)
    /// or the unix socket.
    control: Control,
    /// memcached -Y's credentials, sent first on each control connection.
    auth: Option<(String, String)>,
}

enum Control {
    Tcp(String),
    Unix(PathBuf),
}

/// How to start a memcached beyond the defaults.
#[derive(Default, Clone)]
pub struct Launch {
    /// Listen on [::1] instead of 127.0.0.1.
    pub ipv6: bool,
    /// Listen on this unix socket only (memcached -s: no network).
    pub unix: Option<PathBuf>,
    /// Serve TLS (-Z) with the test CA's server certificate; with `verify_client`, require a
    /// client certificate signed by the test CA (ssl_verify_mode=2).
    pub tls: bool,
    pub verify_client: bool,
    /// Require authentication (-Y) with an auth file of these `user:password` entries; the
    /// first one is what the test's own connections use.
    pub auth: Vec<(&'static str, &'static str)>,
    pub extra: Vec<String>,
}

impl Memcached {
    /// Starts memcached on a free port. Another test may take the same port between
    /// free_port() and memcached's bind; then this memcached exits and another port is tried.
    pub fn start() -> Memcached {
        Memcached::start_with(&[])
    }

    /// Starts memcached with extra flags (they come last, so they win: `-c 64`).
    pub fn start_with(extra: &[&str]) -> Memcached {
        Memcached::launch(Launch {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..Launch::default()
        })
    }

    /// Starts memcached as `launch` says.
    pub fn launch(launch: Launch) -> Memcached {
        for _ in 0..5 {
            if let Some(memcached) = Memcached::try_start_on(free_port(), &launch) {
                return memcached;
            }
        }
        panic!("memcached did not start after 5 tries");
    }

    pub fn start_on(port: u16) -> Memcached {
        Memcached::try_start_on(port, &Launch::default())
            .unwrap_or_else(|| panic!("memcached did not start on port {port}"))
    }

    fn try_start_on(port: u16, launch: &Launch) -> Option<Memcached> {
        let mut command = Command::new("/usr/bin/memcached");
        command.args(["-U", "0", "-c", "4096", "-m", "64"]);
        let host = if launch.ipv6 { "[::1]" } else { "127.0.0.1" };
        let (name, control) = if let Some(path) = &launch.unix {
            let _ = std::fs::remove_file(path);
            command.arg("-s").arg(path);
            (
                format!("unix:{}", path.display()),
                Control::Unix(path.clone()),
            )
        } else if launch.tls {
            let pki = pki();
            let control_port = free_port();
            command.args([
                "-l",
                &format!("{host}:{port},notls:{host}:{control_port}"),
                "-Z",
            ]);
            let mut options = format!(
                "ssl_chain_cert={},ssl_key={}",
                pki.server_cert.display(),
                pki.server_key.display()
            );
            if launch.verify_client {
                options.push_str(&format!(
                    ",ssl_ca_cert={},ssl_verify_mode=2",
                    pki.ca.display()
                ));
            }
            command.args(["-o", &options]);
            (
                format!("{host}:{port}"),
                Control::Tcp(format!("{host}:{control_port}")),
            )
        } else {
            let plain = if launch.ipv6 { "::1" } else { "127.0.0.1" };
            command.args(["-l", plain, "-p", &port.to_string()]);
            (
                format!("{host}:{port}"),
                Control::Tcp(format!("{host}:{port}")),
            )
        };
        if !launch.auth.is_empty() {
            let file = temp_path(&format!("memcached-{port}.auth"));
            let lines: String = launch
                .auth
                .iter()
                .map(|(user, password)| format!("{user}:{password}\n"))
                .collect();
            std::fs::write(&file, lines).unwrap();
            command.arg("-Y").arg(&file);
        }
        command.args(&launch.extra);
        // memcached refuses to run as root unless told which user to be.
        if std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(1)
            == 0
        {
            command.args(["-u", "root"]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/memcached");
        let auth = launch
            .auth
            .first()
            .map(|(user, password)| (user.to_string(), password.to_string()));
        let mut memcached = Memcached {
            port,
            child,
            name,
            control,
            auth,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = memcached.child.try_wait() {
                return None; // could not bind
            }
            // Ours answers with its own pid (not another test's memcached, not a socket that
            // connected to itself).
            if let Some(pid) = memcached.try_pid() {
                if pid == memcached.child.id() {
                    return Some(memcached);
                }
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn try_pid(&self) -> Option<u32> {
        let reply = self.stats_then_quit()?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("STAT pid "))?
            .trim()
            .parse()
            .ok()
    }

    /// The name the bridge's --upstream takes.
    pub fn addr(&self) -> String {
        self.name.clone()
    }

    /// A connection of the test's own, authenticated when memcached requires it.
    fn control_connection(&self) -> Option<Box<dyn ReadWrite>> {
        let mut stream: Box<dyn ReadWrite> = match &self.control {
            Control::Tcp(addr) => {
                let stream = TcpStream::connect(addr).ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                Box::new(stream)
            }
            Control::Unix(path) => {
                let stream = UnixStream::connect(path).ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                Box::new(stream)
            }
        };
        if let Some((user, password)) = &self.auth {
            let token = format!("{user} {password}");
            write!(stream, "set auth 0 0 {}\r\n{token}\r\n", token.len()).ok()?;
            let mut reply = [0u8; 8];
            stream.read_exact(&mut reply).ok()?;
            if &reply != b"STORED\r\n" {
                return None;
            }
        }
        Some(stream)
    }

    /// One `stats` value, read over a direct TCP connection.
    pub fn stat(&self, name: &str) -> u64 {
        let reply = self.stats_then_quit().expect("memcached answers stats");
        let prefix = format!("STAT {name} ");
        let line = reply
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no stat {name}"));
        line[prefix.len()..].trim().parse().unwrap()
    }

    /// `stats` over a connection of its own that memcached has closed by the time this
    /// returns (`quit`, then read to the end): a connection merely dropped here stays in
    /// memcached's `curr_connections` until its worker thread notices, which under CPU load
    /// made the next count one too high. None if memcached did not answer in full.
    fn stats_then_quit(&self) -> Option<String> {
        let mut stream = self.control_connection()?;
        stream.write_all(b"stats\r\nquit\r\n").ok()?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).ok()?;
        let reply = String::from_utf8(reply).ok()?;
        reply.ends_with("END\r\n").then_some(reply)
    }

    /// Sends `request` straight to memcached and reads until the reply ends with `until`.
    pub fn direct(&self, request: &[u8], until: &[u8]) -> Vec<u8> {
        let mut stream = self
            .control_connection()
            .expect("memcached accepts a connection");
        stream.write_all(request).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 65536];
        while !reply.ends_with(until) {
            let n = stream.read(&mut buf).expect("memcached answers");
            assert!(n > 0, "memcached closed early");
            reply.extend_from_slice(&buf[..n]);
        }
        reply
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A path for this test binary's files, under Cargo's temporary directory for tests.
pub fn temp_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A throwaway CA and the certificates the tests use, made with openssl once per test
/// binary: a server certificate for 127.0.0.1, ::1 and localhost, a client certificate, and
/// another CA that signed neither.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let path = |name: &str| temp_path(&format!("pki-{name}"));
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl").args(args).output().expect("run openssl");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca = |name: &str| {
            let (cert, key) = (path(&format!("{name}.pem")), path(&format!("{name}.key")));
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            let (cert_s, key_s) = (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string());
            let subject = format!("/CN={name}");
            args.extend([
                "-keyout", &key_s, "-out", &cert_s, "-days", "2", "-subj", &subject,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ]);
            openssl(&args);
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("test-ca");
        let (other_ca, _) = ca("other-ca");
        let leaf = |name: &str, extensions: &str| {
            let (cert, key, csr, ext) = (
                path(&format!("{name}.pem")),
                path(&format!("{name}.key")),
                path(&format!("{name}.csr")),
                path(&format!("{name}.ext")),
            );
            std::fs::write(&ext, extensions).unwrap();
            let s = |p: &PathBuf| p.to_str().unwrap().to_string();
            let subject = format!("/CN={name}");
            let mut args = vec!["req"];
            args.extend(ec);
            let (key_s, csr_s) = (s(&key), s(&csr));
            args.extend(["-keyout", &key_s, "-out", &csr_s, "-subj", &subject]);
            openssl(&args);
            openssl(&[
                "x509", "-req", "-in", &s(&csr), "-CA", &s(&ca_cert), "-CAkey", &s(&ca_key),
                "-CAcreateserial", "-out", &s(&cert), "-days", "2", "-extfile", &s(&ext),
            ]);
            (cert, key)
        };
        let (server_cert, server_key) = leaf(
            "server",
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        let (client_cert, client_key) = leaf(
            "client",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        );
        Pki {
            ca: ca_cert,
            server_cert,
            server_key,
            client_cert,
            client_key,
            other_ca,
        }
    })
}

/// A rustls client configuration that trusts `ca` (and no one else).
pub fn client_tls(ca: &Path) -> Arc<tokio_rustls::rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    Arc::new(
        tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Bridge {
    pub addr: String,
    /// The bridge serves https:// and wss:// (--tls-cert).
    pub tls: bool,
    child: Child,
}

impl Bridge {
    /// Starts the bridge binary on a free port with these extra flags.
    pub fn start(flags: &[&str]) -> Bridge {
        Bridge::start_logging(flags, "memcache_bridge=warn", None)
    }

    /// Starts the bridge with `RUST_LOG=filter`, its log going to `log` (else to our stderr).
    pub fn start_logging(flags: &[&str], filter: &str, log: Option<&std::path::Path>) -> Bridge {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_memcache-bridge"))
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start memcache-bridge");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let line = line
            .trim()
            .strip_prefix("memcache-bridge listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let (tls, addr) = match line.split_once("://") {
            Some(("https", addr)) => (true, addr.to_string()),
            Some(("http", addr)) => (false, addr.to_string()),
            _ => panic!("unexpected address {line:?}"),
        };
        Bridge { addr, tls, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, upstream: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/memcached/{upstream}", self.addr)
    }

    /// Resident memory of the bridge process in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// A GET with extra request headers: (status, response head in lower case, body bytes).
    pub fn request(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        let split = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        (status, head, reply[split + 4..].to_vec())
    }

    /// A plain HTTP GET: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        let status = reply[9..12].parse().unwrap();
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// One counter of /metrics, e.g. `memcache_bridge_refusals_total{reason="read_only"}`.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, body) = self.get("/metrics");
        let line = body
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no metric {name}"));
        line[name.len()..].trim().parse().unwrap()
    }

    pub fn terminate(&self) {
        send_signal(self.pid(), "-TERM");
    }

    /// Waits for the process to exit; true if it did within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a WebSocket with extra request headers; Err carries the HTTP status of a refusal.
pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("handshake failed without an HTTP status: {other}"),
    }
}

/// Reads binary messages until the bytes received end with `until`.
pub async fn read_until<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    until: &[u8],
) -> Vec<u8> {
    let mut received = Vec::new();
    while !received.ends_with(until) {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => received.extend_from_slice(&data),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!(
                "expected data ending {:?}, got {other:?} after {:?}",
                String::from_utf8_lossy(until),
                String::from_utf8_lossy(&received)
            ),
        }
    }
    received
}

/// Reads until the bridge closes; returns the close code and reason, and the data before it.
pub async fn read_close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> (CloseCode, String, Vec<u8>) {
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => received.extend_from_slice(&data),
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code, frame.reason.to_string(), received)
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, bytes: &[u8]) {
    ws.send(Message::Binary(bytes.to_vec().into()))
        .await
        .unwrap();
}

/// A WebSocket client on a raw socket, for what a library client would not do: never read.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    pub fn connect(bridge: &Bridge, upstream: &str) -> RawClient {
        RawClient::connect_to(&bridge.addr, upstream)
    }

    /// The same, given the bridge's address alone (for use off the test's thread).
    pub fn connect_to(bridge_addr: &str, upstream: &str) -> RawClient {
        let mut stream = TcpStream::connect(bridge_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET /memcached/{upstream} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            bridge_addr
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        RawClient { stream }
    }

    /// Sends one masked binary frame.
    pub fn send(&mut self, payload: &[u8]) {
        self.stream.write_all(&frame(0x2, payload)).unwrap();
    }
}

/// A masked, final client frame of `opcode` (0x2 binary, 0x9 ping, ...).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_start(opcode, payload.len(), payload)
}

/// The start of a masked, final client frame that announces `len` payload bytes but holds
/// only `payload` (a prefix of them): the rest is never sent.
pub fn frame_start(opcode: u8, len: usize, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode];
    match len {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
