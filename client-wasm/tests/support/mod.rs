//! A real memcached for tests (started on a free loopback port, killed on drop) and a tiny
//! blocking client that drives the sans-IO core over a `std::net::TcpStream`. The core never
//! owns a socket; this is the socket owner for tests and the example.

// Each test file and the example include this module and use a different part of it.
#![allow(dead_code)]

use std::error::Error as StdError;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memcache_wasm::connection::{Connection, DEFAULT_MAX_ITEM_SIZE};
use memcache_wasm::request::Request;
use memcache_wasm::response::Response;

pub type Failure = Box<dyn StdError + Send + Sync>;

/// How long a test waits for memcached to accept connections, and for any one read.
/// Both are generous for a loopback server on a loaded 2-core machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Tries with a fresh port if another process takes the one we picked before memcached
/// binds it.
const START_ATTEMPTS: usize = 5;

/// Size of each socket read; tests set it small to exercise the parser's chunking.
const DEFAULT_READ_SIZE: usize = 64 * 1024;

/// A memcached process of our own on 127.0.0.1, stopped when dropped (also when a test
/// fails and unwinds).
pub struct Memcached {
    child: Child,
    addr: SocketAddr,
}

impl Memcached {
    /// `memcached -U 0 -l 127.0.0.1 -p PORT -m 64`, plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Memcached {
        let binary = std::env::var("MEMCACHED").unwrap_or_else(|_| "memcached".to_string());
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut command = Command::new(&binary);
            command
                .args([
                    "-U",
                    "0",
                    "-l",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-m",
                    "64",
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if running_as_root() {
                // memcached refuses to run as root without naming the user to run as.
                command.args(["-u", "root"]);
            }
            let child = command
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
            let mut server = Memcached {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("memcached did not start: {last_failure}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn client(&self) -> BlockingClient {
        BlockingClient::connect(self.addr).expect("connect to the test memcached")
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("memcached exited with {status}"));
            }
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not listening on {} after {STARTUP_TIMEOUT:?}",
                    self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|meta| meta.uid() == 0)
        .unwrap_or(false)
}

/// A blocking client: pushes requests into a [`Connection`], writes its outbound buffer in
/// one write, and reads until every reply is in.
pub struct BlockingClient {
    stream: TcpStream,
    connection: Connection,
    read_size: usize,
}

impl BlockingClient {
    pub fn connect(addr: SocketAddr) -> std::io::Result<BlockingClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(BlockingClient {
            stream,
            connection: Connection::new(DEFAULT_MAX_ITEM_SIZE),
            read_size: DEFAULT_READ_SIZE,
        })
    }

    /// Reads at most `bytes` per socket read, so replies reach the parser in small chunks.
    pub fn with_read_size(mut self, bytes: usize) -> BlockingClient {
        self.read_size = bytes.max(1);
        self
    }

    /// Sends every request in one write (pipelined) and returns the replies in order; a
    /// noreply request has no reply in the list.
    pub fn send(&mut self, requests: &[Request]) -> Result<Vec<Response>, Failure> {
        for request in requests {
            self.connection.push(request)?;
        }
        self.stream.write_all(&self.connection.take_outbound())?;
        let mut replies = Vec::new();
        let mut buffer = vec![0u8; self.read_size];
        while self.connection.pending() > 0 {
            let read = match self.stream.read(&mut buffer) {
                Ok(0) => {
                    let waiting = self.connection.reset();
                    return Err(format!(
                        "memcached closed the connection with {waiting} replies missing"
                    )
                    .into());
                }
                Ok(read) => read,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            self.connection
                .receive_each(&buffer[..read], |reply| replies.push(reply))?;
        }
        Ok(replies)
    }

    /// One request that expects a reply.
    pub fn call(&mut self, request: &Request) -> Result<Response, Failure> {
        let mut replies = self.send(std::slice::from_ref(request))?;
        match (replies.pop(), replies.is_empty()) {
            (Some(reply), true) => Ok(reply),
            _ => Err(format!("{request:?} expects exactly one reply").into()),
        }
    }

    /// Whether the server has closed its end (what `quit` does): a read sees end of file.
    pub fn server_closed(&mut self) -> Result<bool, Failure> {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => Ok(true),
            Ok(_) => Err("memcached sent bytes instead of closing".into()),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => Ok(true),
            Err(error) => Err(error.into()),
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}
