//! What the compatibility tests share: finding the Python interpreters that hold the
//! reference clients (python-memcached in the workspace virtualenv, libmemcached via
//! Debian's pylibmc), running the scripts in tests/python/, and a raw `get`/`set` over
//! std::net that shows exactly the flags and bytes on the server.

// Each compat_* file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one raw request may take on a loaded 2-core machine.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// python-memcached 1.62's interpreter: `MEMCACHE_WASM_PYTHON`, or the virtualenv that
/// scripts/setup.sh creates. Missing is a failure, never a skip.
pub fn python_memcached_interpreter() -> PathBuf {
    let path = std::env::var_os("MEMCACHE_WASM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    assert!(
        path.exists(),
        "Python interpreter {} with python-memcached 1.62 not found: run scripts/setup.sh \
         (it creates the virtualenv) or set MEMCACHE_WASM_PYTHON",
        path.display()
    );
    path
}

/// The interpreter that has Debian's python3-pylibmc (libmemcached):
/// `MEMCACHE_WASM_PYLIBMC_PYTHON`, default /usr/bin/python3.
pub fn pylibmc_interpreter() -> PathBuf {
    let path = std::env::var_os("MEMCACHE_WASM_PYLIBMC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"));
    let probe = Command::new(&path).args(["-c", "import pylibmc"]).output();
    assert!(
        matches!(&probe, Ok(out) if out.status.success()),
        "{} cannot import pylibmc: install Debian's python3-pylibmc (scripts/setup.sh does) \
         or set MEMCACHE_WASM_PYLIBMC_PYTHON",
        path.display()
    );
    path
}

/// Runs tests/python/<script> with `args`, feeding `stdin`; returns stdout and fails the
/// test with Python's stderr if the script fails.
pub fn run_script(interpreter: &PathBuf, script: &str, args: &[String], stdin: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut child = Command::new(interpreter)
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", interpreter.display()));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let output = child.wait_with_output().expect("python runs to the end");
    writer
        .join()
        .expect("stdin writer")
        .expect("python reads its stdin");
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to memcached");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// `set <key> <flags> 0 <len>` with the bytes as given; panics unless STORED.
pub fn raw_set(addr: SocketAddr, key: &[u8], flags: u32, data: &[u8]) {
    let mut stream = connect(addr);
    let mut request = Vec::with_capacity(data.len() + key.len() + 40);
    request.extend_from_slice(b"set ");
    request.extend_from_slice(key);
    request.extend_from_slice(format!(" {flags} 0 {}\r\n", data.len()).as_bytes());
    request.extend_from_slice(data);
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).unwrap();
    assert_eq!(reply, "STORED\r\n", "set {}", String::from_utf8_lossy(key));
}

/// Raw `get <key>`: Some((flags, bytes)) on a hit, None on a miss.
pub fn raw_get(addr: SocketAddr, key: &[u8]) -> Option<(u32, Vec<u8>)> {
    let mut stream = connect(addr);
    let mut request = b"get ".to_vec();
    request.extend_from_slice(key);
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).unwrap();
    let mut reader = BufReader::new(stream);
    // The VALUE line repeats the key, which need not be UTF-8.
    let mut header = Vec::new();
    reader.read_until(b'\n', &mut header).unwrap();
    if header == b"END\r\n" {
        return None;
    }
    let header = header.strip_suffix(b"\r\n").expect("a whole line");
    let parts: Vec<&[u8]> = header.split(|&b| b == b' ').collect();
    assert!(
        parts.len() == 4 && parts[0] == b"VALUE" && parts[1] == key,
        "unexpected reply {:?}",
        String::from_utf8_lossy(header)
    );
    let number = |field: &[u8]| {
        std::str::from_utf8(field)
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let flags = number(parts[2]) as u32;
    let len = number(parts[3]);
    let mut data = vec![0u8; len + 2];
    reader.read_exact(&mut data).unwrap();
    assert_eq!(&data[len..], b"\r\n");
    data.truncate(len);
    let mut end = String::new();
    reader.read_line(&mut end).unwrap();
    assert_eq!(end, "END\r\n");
    Some((flags, data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A deterministic key set: plain ASCII, path-like, UTF-8, and pseudo-random bytes of
/// every allowed kind and length 1..=250.
pub fn sample_keys(count: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| match i % 4 {
            0 => format!("key:{i}").into_bytes(),
            1 => format!("user/{i}/profile?v={}", next() % 1000).into_bytes(),
            2 => format!("clé-{i}-日本-🙂").into_bytes(),
            _ => {
                let len = 1 + (next() % 250) as usize;
                (0..len)
                    .map(|_| loop {
                        let b = (next() % 256) as u8;
                        if (0x21..=0x7e).contains(&b) || b >= 0x80 {
                            break b;
                        }
                    })
                    .collect()
            }
        })
        .collect()
}
