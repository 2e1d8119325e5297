//! Test support: a real memcached and the real bridge binary on free loopback ports, each
//! stopped when dropped (also when a test fails), and small clients to talk to them.

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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
    pub port: u16,
    child: Child,
}

impl Memcached {
    /// Starts memcached on a free port. Another test may take the same port between
    /// free_port() and memcached's bind; then this memcached exits and another port is tried.
    pub fn start() -> Memcached {
        Memcached::start_with(&[])
    }

    /// Starts memcached with extra flags (they come last, so they win: `-c 64`).
    pub fn start_with(extra: &[&str]) -> Memcached {
        for _ in 0..5 {
            if let Some(memcached) = Memcached::try_start_on(free_port(), extra) {
                return memcached;
            }
        }
        panic!("memcached did not start after 5 tries");
    }

    pub fn start_on(port: u16) -> Memcached {
        Memcached::try_start_on(port, &[])
            .unwrap_or_else(|| panic!("memcached did not start on port {port}"))
    }

    fn try_start_on(port: u16, extra: &[&str]) -> Option<Memcached> {
        let mut command = Command::new("/usr/bin/memcached");
        command.args([
            "-U",
            "0",
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "4096",
            "-m",
            "64",
        ]);
        command.args(extra);
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
        let mut memcached = Memcached { port, child };
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

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(b"stats\r\nquit\r\n").ok()?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).ok()?;
        let reply = String::from_utf8(reply).ok()?;
        reply.ends_with("END\r\n").then_some(reply)
    }

    /// Sends `request` straight to memcached and reads until the reply ends with `until`.
    pub fn direct(&self, request: &[u8], until: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
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

impl Drop for Memcached {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Bridge {
    pub addr: String,
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
        let addr = line
            .trim()
            .strip_prefix("memcache-bridge listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Bridge { addr, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, upstream: &str) -> String {
        format!("ws://{}/memcached/{upstream}", self.addr)
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
pub async fn read_until(ws: &mut Ws, until: &[u8]) -> Vec<u8> {
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
pub async fn read_close(ws: &mut Ws) -> (CloseCode, String, Vec<u8>) {
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

pub async fn send(ws: &mut Ws, bytes: &[u8]) {
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
