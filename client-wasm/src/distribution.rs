//! Which server holds a key. `Modula` is python-memcached's choice exactly (weighted
//! buckets, `hash % buckets`, its re-hash walk past dead servers); `Ketama` is
//! libmemcached's weighted consistent hashing, for fleets that add and remove servers.

use crate::error::{Error, Result};

/// python-memcached's `Client._SERVER_RETRIES`: how many buckets it tries for one key
/// before it gives up on finding a live server.
pub const SERVER_RETRIES: usize = 10;

/// libmemcached's `MEMCACHED_POINTS_PER_SERVER_KETAMA`: continuum points of a server of
/// average weight; each md5 digest of a server string yields 4 of them.
pub const KETAMA_POINTS_PER_SERVER: u32 = 160;

/// libmemcached's `MEMCACHED_DEFAULT_PORT`: a server on this port is named without it on
/// the continuum ("host-N" instead of "host:port-N").
pub const DEFAULT_PORT: u16 = 11211;

/// A caller's key hash: bytes of the full key in, a 32-bit hash out, or why it failed
/// (a JavaScript function that threw or returned something that is not a u32).
pub type KeyHasher = dyn Fn(&[u8]) -> std::result::Result<u32, String>;

/// The key hash of the modula distribution, python-memcached's `serverHashFunction`.
#[derive(Default)]
pub enum HashFunction {
    /// python-memcached's default `cmemcache_hash`: `((crc32(key) & 0xffffffff) >> 16) & 0x7fff`.
    #[default]
    Cmemcache,
    /// The plain crc32 that `memcache.useOldServerHashFunction()` switches to
    /// (unsigned, as `binascii.crc32` is on Python 3).
    Crc32,
    /// A caller's own function.
    Custom(Box<KeyHasher>),
}

impl HashFunction {
    /// The hash of `key`; only a caller's function can fail, and its failure is the
    /// caller's error (BAD_ARGUMENT naming the input), never a made-up hash.
    pub fn hash(&self, key: &[u8]) -> Result<u32> {
        match self {
            HashFunction::Cmemcache => Ok((crc32(key) >> 16) & 0x7fff),
            HashFunction::Crc32 => Ok(crc32(key)),
            HashFunction::Custom(f) => f(key).map_err(|reason| {
                Error::BadArgument(format!(
                    "the hash function failed on {:?}: {reason}",
                    Error::key_text(key)
                ))
            }),
        }
    }
}

impl std::fmt::Debug for HashFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HashFunction::Cmemcache => "Cmemcache",
            HashFunction::Crc32 => "Crc32",
            HashFunction::Custom(_) => "Custom(..)",
        })
    }
}

/// The IEEE crc32 of zlib and Python's `binascii.crc32`, a byte at a time from one
/// 256-entry table built at compile time. Keys are short, so the slice-by-16 tables of a
/// general crc32 crate (16 KiB in the .wasm) buy nothing here.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        CRC32_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// python-memcached's server choice. Its bucket list (server i repeated weight_i times)
/// is kept as the running total of weights, so a weight of 1000 costs one number, not
/// a thousand buckets.
#[derive(Debug)]
pub struct Modula {
    /// `bucket_ends[i]` is one past the last bucket of server i.
    bucket_ends: Vec<u64>,
    hash: HashFunction,
}

impl Modula {
    /// `weights[i]` is the weight of server i; a weight of 0 gives the server no bucket
    /// (python-memcached does the same). At least one weight must be above 0.
    pub fn new(weights: &[u32], hash: HashFunction) -> Result<Self> {
        let mut total = 0u64;
        let bucket_ends: Vec<u64> = weights
            .iter()
            .map(|&w| {
                total += u64::from(w);
                total
            })
            .collect();
        if total == 0 {
            return Err(Error::BadArgument(
                "modula distribution needs at least one server with a weight above 0".into(),
            ));
        }
        Ok(Modula { bucket_ends, hash })
    }

    pub fn server_count(&self) -> usize {
        self.bucket_ends.len()
    }

    /// The same hash over a new list of weights (a fleet change).
    pub fn with_weights(self, weights: &[u32]) -> Result<Self> {
        Modula::new(weights, self.hash)
    }

    pub fn hash_function(&self) -> &HashFunction {
        &self.hash
    }

    /// The server for a key (the full key, prefix included), or None when the re-hash
    /// walk meets only dead servers. Err only when a caller's hash function fails.
    pub fn server_for_key(
        &self,
        key: &[u8],
        alive: impl Fn(usize) -> bool,
    ) -> Result<Option<usize>> {
        if self.bucket_ends.len() == 1 && !matches!(self.hash, HashFunction::Custom(_)) {
            // One server: every hash and every re-hash lands on it, so the hash is not
            // worth computing (python-memcached's answer is the same).
            return Ok(alive(0).then_some(0));
        }
        self.server_for_hash(self.hash.hash(key)?, alive)
    }

    /// The server for a hash the caller computed (python-memcached's `(hash, key)`
    /// tuple keys). A dead server sends the walk on to `hash(str(hash) + str(i))`.
    pub fn server_for_hash(
        &self,
        hash: u32,
        alive: impl Fn(usize) -> bool,
    ) -> Result<Option<usize>> {
        let mut hash = hash;
        for attempt in 0..SERVER_RETRIES {
            let server = self.bucket_server(hash);
            if alive(server) {
                return Ok(Some(server));
            }
            hash = self.hash.hash(&rehash_input(hash, attempt))?;
        }
        Ok(None)
    }

    fn bucket_server(&self, hash: u32) -> usize {
        let total = *self
            .bucket_ends
            .last()
            .expect("new() refuses an empty list");
        let bucket = u64::from(hash) % total;
        self.bucket_ends.partition_point(|&end| end <= bucket)
    }
}

/// `str(hash) + str(i)` as ASCII bytes, without an allocation per retry.
fn rehash_input(hash: u32, attempt: usize) -> RehashBytes {
    use std::io::Write;
    let mut out = RehashBytes {
        buf: [0; 32],
        len: 0,
    };
    let mut cursor = std::io::Cursor::new(&mut out.buf[..]);
    write!(cursor, "{hash}{attempt}").expect("two numbers fit in 32 bytes");
    out.len = cursor.position() as usize;
    out
}

struct RehashBytes {
    buf: [u8; 32],
    len: usize,
}

impl std::ops::Deref for RehashBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// libmemcached's weighted ketama (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`): each server
/// gets points on a 32-bit circle in proportion to its weight, a key goes to the first
/// point at or after md5(key), so adding an 11th server moves about 1/11 of the keys.
#[derive(Debug, Clone)]
pub struct Ketama {
    /// (point, server index), sorted as libmemcached sorts its continuum.
    continuum: Vec<(u32, u32)>,
    servers: usize,
}

impl Ketama {
    /// `servers` are ("host:port", weight) in the order the client lists them. A server
    /// without a port is on 11211. The host is hashed as written, as libmemcached does
    /// with the name it was given (no DNS lookup).
    pub fn new(servers: &[(String, u32)]) -> Result<Self> {
        if servers.is_empty() {
            return Err(Error::BadArgument(
                "ketama distribution needs at least one server".into(),
            ));
        }
        let total_weight: u64 = servers.iter().map(|(_, w)| u64::from(*w)).sum();
        if total_weight == 0 {
            return Err(Error::BadArgument(
                "ketama distribution needs at least one server with a weight above 0".into(),
            ));
        }
        let live_servers = servers.len() as f32;
        let mut continuum = Vec::new();
        for (index, (address, weight)) in servers.iter().enumerate() {
            let (host, port) = split_host_port(address)?;
            // libmemcached's arithmetic, in single precision as it does it, so rounding
            // gives the same point count (floor(pct * 160 / 4 * servers) * 4).
            let pct = *weight as f32 / total_weight as f32;
            let digests = (pct * KETAMA_POINTS_PER_SERVER as f32 / 4.0 * live_servers
                + 0.000_000_000_1f32)
                .floor() as u32;
            for n in 0..digests {
                let name = if port == DEFAULT_PORT {
                    format!("{host}-{n}")
                } else {
                    format!("{host}:{port}-{n}")
                };
                let digest = md5::compute(name.as_bytes()).0;
                for four in digest.chunks_exact(4) {
                    let point = u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
                    continuum.push((point, index as u32));
                }
            }
        }
        continuum.sort_unstable();
        Ok(Ketama {
            continuum,
            servers: servers.len(),
        })
    }

    pub fn server_count(&self) -> usize {
        self.servers
    }

    /// The number of points on the circle (160 per server of average weight).
    pub fn point_count(&self) -> usize {
        self.continuum.len()
    }

    /// libmemcached's key hash under weighted ketama: the first 4 bytes of md5(key),
    /// little-endian.
    pub fn hash(key: &[u8]) -> u32 {
        let digest = md5::compute(key).0;
        u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
    }

    /// The server for a key: the first point at or after the key's hash (wrapping
    /// around). When that server is dead, the next point clockwise whose server is
    /// alive; None when every server is dead.
    ///
    /// libmemcached itself, with auto-eject, rebuilds the circle without the dead
    /// servers; for equal weights that is the same choice, for unequal weights its
    /// re-rounded point counts can differ for a few keys.
    pub fn server_for_key(&self, key: &[u8], alive: impl Fn(usize) -> bool) -> Option<usize> {
        if self.continuum.is_empty() {
            return None;
        }
        let hash = Self::hash(key);
        let start = self.continuum.partition_point(|&(point, _)| point < hash);
        let len = self.continuum.len();
        let first = self.continuum[start % len].1 as usize;
        if alive(first) {
            return Some(first);
        }
        let mut checked = vec![false; self.servers];
        let mut remaining = self.servers;
        for step in 0..len {
            let server = self.continuum[(start + step) % len].1 as usize;
            if checked[server] {
                continue;
            }
            if alive(server) {
                return Some(server);
            }
            checked[server] = true;
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
        None
    }
}

/// Splits "host:port", "[v6]:port", "host" (port 11211), with python-memcached's optional
/// "inet:" / "inet6:" prefix, into libmemcached's hostname and port; "unix:/path" is the
/// path with port 0, as libmemcached names a unix socket server on its continuum.
fn split_host_port(address: &str) -> Result<(&str, u16)> {
    let bad = || {
        Error::BadArgument(format!(
            "bad server address {address:?}: expected host:port, [v6]:port or unix:/path"
        ))
    };
    if let Some(path) = address.strip_prefix("unix:") {
        return if path.is_empty() {
            Err(bad())
        } else {
            Ok((path, 0))
        };
    }
    let address = address
        .strip_prefix("inet6:")
        .or_else(|| address.strip_prefix("inet:"))
        .unwrap_or(address);
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match address.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            Some(_) => (address, None), // a bare IPv6 address
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        None => DEFAULT_PORT,
    };
    Ok((host, port))
}

/// The distribution a client uses, chosen by option.
#[derive(Debug)]
pub enum Distribution {
    Modula(Modula),
    Ketama(Ketama),
}

impl Distribution {
    /// The server for a key; Err only when a caller's hash function fails.
    pub fn server_for_key(
        &self,
        key: &[u8],
        alive: impl Fn(usize) -> bool,
    ) -> Result<Option<usize>> {
        match self {
            Distribution::Modula(m) => m.server_for_key(key, alive),
            Distribution::Ketama(k) => Ok(k.server_for_key(key, alive)),
        }
    }

    pub fn server_count(&self) -> usize {
        match self {
            Distribution::Modula(m) => m.server_count(),
            Distribution::Ketama(k) => k.server_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_alive(_: usize) -> bool {
        true
    }

    #[test]
    fn cmemcache_hash_matches_its_formula() {
        // crc32("hello") = 0x3610a686 is the well-known check value.
        assert_eq!(HashFunction::Crc32.hash(b"hello").unwrap(), 0x3610_a686);
        assert_eq!(
            HashFunction::Cmemcache.hash(b"hello").unwrap(),
            (0x3610_a686 >> 16) & 0x7fff
        );
        assert!((0..1000).all(|i| HashFunction::Cmemcache
            .hash(format!("k{i}").as_bytes())
            .unwrap()
            <= 0x7fff));
    }

    #[test]
    fn custom_hash_is_used() {
        let m = Modula::new(
            &[1, 1, 1],
            HashFunction::Custom(Box::new(|k| Ok(k.len() as u32))),
        )
        .unwrap();
        assert_eq!(m.server_for_key(b"ab", all_alive).unwrap(), Some(2));
        assert_eq!(m.server_for_key(b"abc", all_alive).unwrap(), Some(0));
    }

    #[test]
    fn a_failing_custom_hash_is_an_error_not_a_made_up_hash() {
        let m = Modula::new(
            &[1, 1],
            HashFunction::Custom(Box::new(|k| {
                if k == b"key" {
                    Ok(0)
                } else {
                    Err("it threw TypeError".into())
                }
            })),
        )
        .unwrap();
        assert_eq!(m.server_for_key(b"key", all_alive).unwrap(), Some(0));
        // Server 0 dead: the re-hash of "00" fails, and so does the lookup.
        let err = m.server_for_key(b"key", |s| s != 0).unwrap_err();
        assert_eq!(err.code(), "BAD_ARGUMENT");
        assert!(err.to_string().contains("it threw TypeError"), "{err}");
    }

    #[test]
    fn weights_repeat_servers_in_buckets() {
        // buckets: [0, 1, 1, 1, 2, 2]
        let m = Modula::new(&[1, 3, 2], HashFunction::Cmemcache).unwrap();
        let expect = [0, 1, 1, 1, 2, 2];
        for hash in 0..60u32 {
            assert_eq!(
                m.server_for_hash(hash, all_alive).unwrap(),
                Some(expect[hash as usize % 6])
            );
        }
    }

    #[test]
    fn zero_weight_server_gets_no_bucket() {
        let m = Modula::new(&[0, 2, 0, 1], HashFunction::Cmemcache).unwrap();
        let got: Vec<_> = (0..3)
            .map(|h| m.server_for_hash(h, all_alive).unwrap().unwrap())
            .collect();
        assert_eq!(got, vec![1, 1, 3]);
        assert!(Modula::new(&[0, 0], HashFunction::Cmemcache).is_err());
        assert!(Modula::new(&[], HashFunction::Cmemcache).is_err());
    }

    #[test]
    fn dead_server_rehashes_like_python() {
        let m = Modula::new(&[1, 1, 1], HashFunction::Cmemcache).unwrap();
        let hash = HashFunction::Cmemcache.hash(b"some-key").unwrap();
        let first = (hash % 3) as usize;
        let next_hash = HashFunction::Cmemcache
            .hash(format!("{hash}0").as_bytes())
            .unwrap();
        let dead = first;
        let got = m.server_for_key(b"some-key", |s| s != dead).unwrap();
        // Either the re-hash lands on a live server right away, or it walks on.
        if (next_hash % 3) as usize != dead {
            assert_eq!(got, Some((next_hash % 3) as usize));
        } else {
            assert!(got.is_some() && got != Some(dead));
        }
    }

    #[test]
    fn all_dead_gives_none_after_ten_tries() {
        let m = Modula::new(&[1, 1], HashFunction::Cmemcache).unwrap();
        let tries = std::cell::Cell::new(0);
        let got = m
            .server_for_key(b"k", |_| {
                tries.set(tries.get() + 1);
                false
            })
            .unwrap();
        assert_eq!(got, None);
        assert_eq!(tries.get(), SERVER_RETRIES);
    }

    #[test]
    fn rehash_input_is_decimal_text() {
        assert_eq!(&*rehash_input(4_294_967_295, 9), b"42949672959");
        assert_eq!(&*rehash_input(0, 0), b"00");
    }

    #[test]
    fn ketama_point_counts_follow_weights() {
        let k = Ketama::new(&[("a:1".into(), 1), ("b:1".into(), 1), ("c:1".into(), 1)]).unwrap();
        assert_eq!(k.point_count(), 3 * 160);
        // weights 1,2,3 of 6: 80, 160 and 240 points.
        let k = Ketama::new(&[("a:1".into(), 1), ("b:1".into(), 2), ("c:1".into(), 3)]).unwrap();
        let count = |s: u32| k.continuum.iter().filter(|p| p.1 == s).count();
        assert_eq!((count(0), count(1), count(2)), (80, 160, 240));
    }

    #[test]
    fn ketama_names_default_port_without_it() {
        let with_default =
            Ketama::new(&[("10.0.0.1:11211".into(), 1), ("10.0.0.2".into(), 1)]).unwrap();
        let digest = md5::compute(b"10.0.0.1-0").0;
        let point = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        assert!(with_default.continuum.contains(&(point, 0)));
        let other = Ketama::new(&[("10.0.0.1:11212".into(), 1)]).unwrap();
        let digest = md5::compute(b"10.0.0.1:11212-0").0;
        let point = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        assert!(other.continuum.contains(&(point, 0)));
    }

    #[test]
    fn ketama_dead_server_goes_clockwise() {
        let servers: Vec<(String, u32)> = (0..4).map(|i| (format!("h{i}:1"), 1)).collect();
        let k = Ketama::new(&servers).unwrap();
        for i in 0..500 {
            let key = format!("key{i}");
            let first = k.server_for_key(key.as_bytes(), all_alive).unwrap();
            let hash = Ketama::hash(key.as_bytes());
            let start = k.continuum.partition_point(|p| p.0 < hash);
            let next_other = (0..k.continuum.len())
                .map(|s| k.continuum[(start + s) % k.continuum.len()].1 as usize)
                .find(|&s| s != first)
                .unwrap();
            assert_eq!(
                k.server_for_key(key.as_bytes(), |s| s != first),
                Some(next_other)
            );
        }
        assert_eq!(k.server_for_key(b"x", |_| false), None);
    }

    #[test]
    fn ketama_refuses_bad_lists() {
        assert!(Ketama::new(&[]).is_err());
        assert!(Ketama::new(&[("a:1".into(), 0)]).is_err());
        assert!(Ketama::new(&[("a:notaport".into(), 1)]).is_err());
        assert!(Ketama::new(&[(":11211".into(), 1)]).is_err());
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("h:1").unwrap(), ("h", 1));
        assert_eq!(split_host_port("h").unwrap(), ("h", 11211));
        assert_eq!(split_host_port("[::1]:5").unwrap(), ("::1", 5));
        assert_eq!(split_host_port("::1").unwrap(), ("::1", 11211));
        assert_eq!(split_host_port("inet6:[::1]:5").unwrap(), ("::1", 5));
        assert_eq!(split_host_port("inet:h:7").unwrap(), ("h", 7));
        assert_eq!(
            split_host_port("unix:/run/mc.sock").unwrap(),
            ("/run/mc.sock", 0)
        );
        assert!(split_host_port("unix:").is_err());
    }

    #[test]
    fn ketama_takes_unix_and_inet6_servers_as_libmemcached_names_them() {
        // A unix socket is "<path>:0-<n>" on the circle; "inet6:[::1]:5" is "::1:5-<n>",
        // the same points as "[::1]:5".
        let unix = Ketama::new(&[
            ("unix:/tmp/a.sock".into(), 1),
            ("unix:/tmp/b.sock".into(), 1),
        ])
        .unwrap();
        assert_eq!(unix.point_count(), 2 * KETAMA_POINTS_PER_SERVER as usize);
        let first = md5::compute(b"/tmp/a.sock:0-0").0;
        let point = u32::from_le_bytes([first[0], first[1], first[2], first[3]]);
        assert!(unix.continuum.contains(&(point, 0)));
        let plain = Ketama::new(&[("[::1]:5".into(), 1), ("[::1]:6".into(), 1)]).unwrap();
        let prefixed =
            Ketama::new(&[("inet6:[::1]:5".into(), 1), ("inet6:[::1]:6".into(), 1)]).unwrap();
        assert_eq!(plain.continuum, prefixed.continuum);
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        for key in [&b"a"[..], b"abc", b"users:42", &[0xff; 250]] {
            assert_eq!(crc32(key), crc32fast::hash(key));
        }
    }

    #[test]
    fn distribution_delegates() {
        let d = Distribution::Modula(Modula::new(&[1, 1], HashFunction::Crc32).unwrap());
        let crc = crc32fast::hash(b"abc");
        assert_eq!(
            d.server_for_key(b"abc", all_alive).unwrap(),
            Some((crc % 2) as usize)
        );
        let k = Ketama::new(&[("a:1".into(), 1), ("b:1".into(), 1)]).unwrap();
        let expect = k.server_for_key(b"abc", all_alive);
        let d = Distribution::Ketama(k);
        assert_eq!(d.server_for_key(b"abc", all_alive).unwrap(), expect);
        assert_eq!(d.server_count(), 2);
    }
}
