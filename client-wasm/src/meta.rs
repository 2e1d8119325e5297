//! memcached 1.6's meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`), beside the text
//! protocol of `request`/`response`: request encoding, and the streaming parser of its
//! replies (`HD`, `VA`, `EN`, `NS`, `EX`, `NF`, `MN`, `ME`, with return flags and opaque).
//! Meta and text replies come back in order on one connection; the connection's pending
//! entry says which parser reads the next reply ([`crate::request::Expect::Meta`]).
//!
//! Behaviour pinned on memcached 1.6.18 with a raw socket (see `tests/meta_server.rs`):
//! a miss with `N<ttl>` creates an empty item (flags 0) and answers `VA 0 W` to the first
//! caller and `VA 0 Z` to the others until it is replaced; `md <key> I` marks an item stale
//! and the next `mg` gets `X W` (the others `X Z`); invalidating again grants a new `W`;
//! `R<secs>` grants `W` once the remaining TTL is below `secs`; quiet mode (`q`) hides
//! `HD` (and `EN` of `mg`) but never `NS`, `EX` or `NF`.

use crate::error::{Error, Result};
use crate::request::{push_i64, push_u64, write_key};
use crate::response::{excerpt, next_line, parse_decimal, Response};

/// Longest opaque token memcached echoes (its `MFLAG_MAX_OPAQUE_LENGTH`).
pub const MAX_OPAQUE_LENGTH: usize = 32;

/// The meta commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaVerb {
    Get,
    Set,
    Delete,
    Arithmetic,
    Noop,
    Debug,
}

impl MetaVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            MetaVerb::Get => "mg",
            MetaVerb::Set => "ms",
            MetaVerb::Delete => "md",
            MetaVerb::Arithmetic => "ma",
            MetaVerb::Noop => "mn",
            MetaVerb::Debug => "me",
        }
    }
}

/// A flag's token: none (`v`), a number (`T60`, `N30`), or a word (`MD`, `O<opaque>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    None,
    Number(i64),
    Word(&'a [u8]),
}

/// One request flag: a letter and its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag<'a> {
    pub letter: u8,
    pub token: Token<'a>,
}

impl<'a> Flag<'a> {
    pub fn bare(letter: u8) -> Self {
        Flag {
            letter,
            token: Token::None,
        }
    }

    pub fn number(letter: u8, n: i64) -> Self {
        Flag {
            letter,
            token: Token::Number(n),
        }
    }

    pub fn word(letter: u8, word: &'a [u8]) -> Self {
        Flag {
            letter,
            token: Token::Word(word),
        }
    }
}

/// One meta request. `data` is the value of `ms` (its length goes on the line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaRequest<'a> {
    pub verb: MetaVerb,
    /// Empty for `mn`, required by every other verb.
    pub key: &'a [u8],
    pub flags: &'a [Flag<'a>],
    pub data: Option<&'a [u8]>,
}

impl MetaRequest<'_> {
    /// Appends the request to `out`; a bad key, a flag that is not a letter, a word token
    /// with a space or control byte, an opaque over [`MAX_OPAQUE_LENGTH`], or `ms` without
    /// data is refused with `out` left as it was (so no request can break the framing).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let written = self.write(out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(self.verb.as_str().as_bytes());
        if self.verb == MetaVerb::Noop {
            if !self.key.is_empty() || !self.flags.is_empty() || self.data.is_some() {
                return Err(Error::BadArgument("mn takes no key, flags or data".into()));
            }
            out.extend_from_slice(b"\r\n");
            return Ok(());
        }
        write_key(out, self.key)?;
        match (self.verb, self.data) {
            (MetaVerb::Set, Some(data)) => {
                out.push(b' ');
                push_u64(out, data.len() as u64);
            }
            (MetaVerb::Set, None) => {
                return Err(Error::BadArgument("ms needs a value".into()));
            }
            (_, Some(_)) => {
                return Err(Error::BadArgument(format!(
                    "{} takes no value",
                    self.verb.as_str()
                )));
            }
            (_, None) => {}
        }
        for flag in self.flags {
            if !flag.letter.is_ascii_alphabetic() {
                return Err(Error::BadArgument(format!(
                    "meta flag {:?} is not a letter",
                    char::from(flag.letter)
                )));
            }
            out.push(b' ');
            out.push(flag.letter);
            match flag.token {
                Token::None => {}
                Token::Number(n) => push_i64(out, n),
                Token::Word(word) => {
                    if word.is_empty() || word.iter().any(|&b| b <= b' ' || b == 0x7f) {
                        return Err(Error::BadArgument(format!(
                            "the token of meta flag {} must be a word without spaces",
                            char::from(flag.letter)
                        )));
                    }
                    if flag.letter == b'O' && word.len() > MAX_OPAQUE_LENGTH {
                        return Err(Error::BadArgument(format!(
                            "an opaque is at most {MAX_OPAQUE_LENGTH} bytes"
                        )));
                    }
                    out.extend_from_slice(word);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        if let Some(data) = self.data {
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }
}

/// A meta reply's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStatus {
    /// `HD`: success, no value.
    Stored,
    /// `VA <size>`: a value follows.
    Value,
    /// `EN`: miss (mg, me).
    Miss,
    /// `NS`: not stored (ms).
    NotStored,
    /// `EX`: the cas did not match.
    Exists,
    /// `NF`: not found (md, ma, ms in append/prepend/replace mode).
    NotFound,
    /// `MN`: the answer to `mn`, after every earlier quiet reply.
    Noop,
    /// `ME <key> <text>`: the debug line of `me`.
    Debug,
}

/// The return flags of a reply, as memcached sent them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaFlags {
    /// `t`: seconds left; -1 when the item never expires.
    pub ttl: Option<i64>,
    /// `c`: the cas unique.
    pub cas: Option<u64>,
    /// `f`: the client flags (python-memcached's value kind bits).
    pub client_flags: Option<u32>,
    /// `s`: the item's size.
    pub size: Option<u64>,
    /// `k`: the key.
    pub key: Option<Vec<u8>>,
    /// `O`: the opaque the request carried.
    pub opaque: Option<Vec<u8>>,
    /// `W`: this caller won the right to recache the item.
    pub win: bool,
    /// `Z`: a win was already handed to another caller.
    pub won_elsewhere: bool,
    /// `X`: the item is stale (invalidated).
    pub stale: bool,
    /// `h`: whether the item was fetched before.
    pub hit_before: Option<bool>,
    /// `l`: seconds since the item was last accessed.
    pub last_access: Option<u64>,
}

/// One whole meta reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaReply {
    pub status: MetaStatus,
    pub flags: MetaFlags,
    /// The value of a `VA` reply (empty when it was over the item limit, see `skipped`).
    pub data: Vec<u8>,
    /// The announced size of a value over the reader's item limit: read past, not kept.
    pub skipped: Option<usize>,
    /// The text after the key of an `ME` line (`exp=... la=... cas=... ...`).
    pub debug: Option<String>,
}

impl MetaReply {
    /// A reply of `status` without flags or value (what a quiet request's silence means).
    pub fn new(status: MetaStatus) -> Self {
        MetaReply {
            status,
            flags: MetaFlags::default(),
            data: Vec::new(),
            skipped: None,
            debug: None,
        }
    }
}

/// The parser of meta replies for one connection; it keeps its progress between chunks.
#[derive(Debug, Default)]
pub struct MetaParser {
    /// A `VA` reply whose header is read and whose value is arriving.
    block: Option<ValueBlock>,
}

#[derive(Debug)]
struct ValueBlock {
    reply: MetaReply,
    len: usize,
    seen: usize,
    /// Bytes of the `\r\n` after the value seen so far.
    trailer: usize,
}

impl MetaParser {
    pub fn is_idle(&self) -> bool {
        self.block.is_none()
    }

    pub fn reset(&mut self) {
        self.block = None;
    }

    /// Reads one meta reply (or an `ERROR`/`CLIENT_ERROR`/`SERVER_ERROR` line) from
    /// `input`, with `carry` holding the start of a line split across chunks; returns the
    /// bytes used and the reply once it is whole.
    pub fn parse(
        &mut self,
        carry: &mut Vec<u8>,
        input: &[u8],
        max_item_size: usize,
    ) -> Result<(usize, Option<Response>)> {
        let mut pos = 0;
        if self.block.is_none() {
            let Some((line, used)) = next_line(carry, input, false)? else {
                return Ok((input.len(), None));
            };
            let header = parse_line(line, max_item_size)?;
            carry.clear();
            pos = used;
            match header {
                Line::Done(response) => return Ok((pos, Some(response))),
                Line::Value(reply, len) => {
                    self.block = Some(ValueBlock {
                        reply,
                        len,
                        seen: 0,
                        trailer: 0,
                    })
                }
            }
        }
        let Some(block) = &mut self.block else {
            return Ok((pos, None));
        };
        pos += block.fill(&input[pos..])?;
        if block.trailer < 2 {
            return Ok((pos, None));
        }
        let done = self.block.take().map(|b| b.reply);
        Ok((pos, done.map(Response::Meta)))
    }
}

impl ValueBlock {
    fn fill(&mut self, input: &[u8]) -> Result<usize> {
        let take = (self.len - self.seen).min(input.len());
        if self.reply.skipped.is_none() {
            self.reply.data.extend_from_slice(&input[..take]);
        }
        self.seen += take;
        let mut used = take;
        while self.seen == self.len && self.trailer < 2 && used < input.len() {
            if input[used] != b"\r\n"[self.trailer] {
                return Err(Error::Protocol(format!(
                    "the {}-byte value of a VA reply is not followed by \\r\\n",
                    self.len
                )));
            }
            self.trailer += 1;
            used += 1;
        }
        Ok(used)
    }
}

enum Line {
    Done(Response),
    /// A `VA` header: the reply and the value's length.
    Value(MetaReply, usize),
}

fn parse_line(line: &[u8], max_item_size: usize) -> Result<Line> {
    if let Some(error) = crate::response::error_reply(line) {
        return Ok(Line::Done(error));
    }
    let mut words = line.split(|&b| b == b' ');
    let code = words.next().unwrap_or_default();
    let status = match code {
        b"HD" => MetaStatus::Stored,
        b"VA" => MetaStatus::Value,
        b"EN" => MetaStatus::Miss,
        b"NS" => MetaStatus::NotStored,
        b"EX" => MetaStatus::Exists,
        b"NF" => MetaStatus::NotFound,
        b"MN" => MetaStatus::Noop,
        b"ME" => MetaStatus::Debug,
        _ => return Err(malformed(line)),
    };
    let mut reply = MetaReply::new(status);
    match status {
        MetaStatus::Noop => {
            return match words.next() {
                None => Ok(Line::Done(Response::Meta(reply))),
                Some(_) => Err(malformed(line)),
            };
        }
        MetaStatus::Debug => {
            // `ME <key> <k=v ...>`: kept as text for the caller to show.
            let key = words
                .next()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| malformed(line))?;
            reply.flags.key = Some(key.to_vec());
            let rest = &line[(3 + key.len() + 1).min(line.len())..];
            reply.debug = Some(String::from_utf8_lossy(rest).into_owned());
            return Ok(Line::Done(Response::Meta(reply)));
        }
        _ => {}
    }
    let len = if status == MetaStatus::Value {
        let size = words
            .next()
            .and_then(parse_decimal)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| malformed(line))?;
        Some(size)
    } else {
        None
    };
    for word in words {
        read_flag(&mut reply.flags, word).ok_or_else(|| malformed(line))?;
    }
    match len {
        None => Ok(Line::Done(Response::Meta(reply))),
        Some(len) => {
            if len > max_item_size {
                reply.skipped = Some(len);
            } else {
                reply.data.reserve(len);
            }
            Ok(Line::Value(reply, len))
        }
    }
}

/// One return flag into `flags`; `None` when its token is malformed. Flags this client
/// does not know are passed over: a newer memcached may add some.
fn read_flag(flags: &mut MetaFlags, word: &[u8]) -> Option<()> {
    let (&letter, token) = word.split_first()?;
    match letter {
        b't' => flags.ttl = Some(signed(token)?),
        b'c' => flags.cas = Some(parse_decimal(token)?),
        b'f' => flags.client_flags = Some(u32::try_from(parse_decimal(token)?).ok()?),
        b's' => flags.size = Some(parse_decimal(token)?),
        b'k' if !token.is_empty() => flags.key = Some(token.to_vec()),
        b'O' if !token.is_empty() && token.len() <= MAX_OPAQUE_LENGTH => {
            flags.opaque = Some(token.to_vec())
        }
        b'W' if token.is_empty() => flags.win = true,
        b'Z' if token.is_empty() => flags.won_elsewhere = true,
        b'X' if token.is_empty() => flags.stale = true,
        b'h' => flags.hit_before = Some(parse_decimal(token)? != 0),
        b'l' => flags.last_access = Some(parse_decimal(token)?),
        b'k' | b'O' | b'W' | b'Z' | b'X' => return None,
        _ if letter.is_ascii_alphabetic() => {}
        _ => return None,
    }
    Some(())
}

fn signed(digits: &[u8]) -> Option<i64> {
    match digits.strip_prefix(b"-") {
        Some(rest) => i64::try_from(parse_decimal(rest)?).ok().map(|n| -n),
        None => i64::try_from(parse_decimal(digits)?).ok(),
    }
}

fn malformed(line: &[u8]) -> Error {
    Error::Protocol(format!("malformed meta reply line {:?}", excerpt(line)))
}

/// What a lease read (`mg <key> v f t N<lock> [R<secs>]`) means for the caller of
/// `getOrSet`: the rule behind the stampede protection, kept here so that every client
/// reads memcached's W/Z/X flags the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// A value no one is refreshing: return it.
    Hit,
    /// A miss, and this caller won: run the loader, store its result, return it.
    WonMiss,
    /// A value past its freshness (invalidated, or within `R` of expiring), and this
    /// caller won: return the value now and refresh it in the background.
    WonStale,
    /// A value another caller is refreshing: return it (stale-while-revalidate).
    ServeStale,
    /// Another caller is loading a missing value: read again after a backoff.
    Wait,
}

/// Reads a lease reply. The item `N` creates on a miss is empty with flags 0: a `W` or `Z`
/// on such an item (not stale) is a load in progress, not a value. (An empty raw value
/// that someone stored with flags 0 reads the same way: its caller loads it again.)
pub fn lease(reply: &MetaReply) -> Result<Lease> {
    let f = &reply.flags;
    let placeholder = !f.stale
        && reply.data.is_empty()
        && reply.skipped.is_none()
        && f.client_flags.unwrap_or(0) == 0;
    Ok(match reply.status {
        // Only without `N` (or with N0): nothing is loading and no one won; read again.
        MetaStatus::Miss => Lease::Wait,
        MetaStatus::Value if f.win && placeholder => Lease::WonMiss,
        MetaStatus::Value if f.win => Lease::WonStale,
        MetaStatus::Value if f.won_elsewhere && placeholder => Lease::Wait,
        MetaStatus::Value if f.won_elsewhere || f.stale => Lease::ServeStale,
        MetaStatus::Value => Lease::Hit,
        other => {
            return Err(Error::Protocol(format!(
                "a lease read was answered with {other:?}"
            )))
        }
    })
}

/// How long a waiter sleeps before its `attempt`-th re-read (0-based), in ms: 5 ms doubling
/// to [`MAX_WAIT_STEP_MS`]. The first re-reads come quickly (most loaders are fast); the cap
/// keeps a herd of waiters at a few reads per second each while a slow loader runs.
pub fn wait_step_ms(attempt: u32) -> u64 {
    (FIRST_WAIT_STEP_MS << attempt.min(16)).min(MAX_WAIT_STEP_MS)
}

/// The first re-read of a waiter comes this soon.
pub const FIRST_WAIT_STEP_MS: u64 = 5;
/// Waiters re-read at least this often: a loader's value is seen at most this late.
pub const MAX_WAIT_STEP_MS: u64 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(request: MetaRequest) -> Result<Vec<u8>> {
        let mut out = b"x".to_vec();
        let result = request.encode(&mut out);
        if result.is_err() {
            assert_eq!(out, b"x", "a refused request leaves the buffer as it was");
        }
        result.map(|()| out[1..].to_vec())
    }

    fn parse_all(bytes: &[u8]) -> Vec<Response> {
        let mut parser = MetaParser::default();
        let mut carry = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let (used, reply) = parser.parse(&mut carry, &bytes[pos..], 1024).unwrap();
            pos += used;
            out.extend(reply);
        }
        out
    }

    #[test]
    fn requests_encode_as_memcached_reads_them() {
        let flags = [
            Flag::bare(b'v'),
            Flag::bare(b'f'),
            Flag::number(b'N', 30),
            Flag::word(b'O', b"op1"),
        ];
        let get = MetaRequest {
            verb: MetaVerb::Get,
            key: b"top5films",
            flags: &flags,
            data: None,
        };
        assert_eq!(encode(get).unwrap(), b"mg top5films v f N30 Oop1\r\n");
        let set = MetaRequest {
            verb: MetaVerb::Set,
            key: b"k",
            flags: &[Flag::number(b'T', 60), Flag::number(b'F', 16)],
            data: Some(b"hello"),
        };
        assert_eq!(encode(set).unwrap(), b"ms k 5 T60 F16\r\nhello\r\n");
        let noop = MetaRequest {
            verb: MetaVerb::Noop,
            key: b"",
            flags: &[],
            data: None,
        };
        assert_eq!(encode(noop).unwrap(), b"mn\r\n");
        let arith = MetaRequest {
            verb: MetaVerb::Arithmetic,
            key: b"n",
            flags: &[Flag::word(b'M', b"D"), Flag::number(b'D', 2)],
            data: None,
        };
        assert_eq!(encode(arith).unwrap(), b"ma n MD D2\r\n");
    }

    #[test]
    fn requests_that_would_break_the_framing_are_refused() {
        let bad = [
            MetaRequest {
                verb: MetaVerb::Get,
                key: b"a b",
                flags: &[],
                data: None,
            },
            MetaRequest {
                verb: MetaVerb::Get,
                key: b"k",
                flags: &[Flag::bare(b'1')],
                data: None,
            },
            MetaRequest {
                verb: MetaVerb::Get,
                key: b"k",
                flags: &[Flag::word(b'O', b"a b")],
                data: None,
            },
            MetaRequest {
                verb: MetaVerb::Get,
                key: b"k",
                flags: &[Flag::word(b'O', &[b'o'; 33])],
                data: None,
            },
            MetaRequest {
                verb: MetaVerb::Set,
                key: b"k",
                flags: &[],
                data: None,
            },
            MetaRequest {
                verb: MetaVerb::Delete,
                key: b"k",
                flags: &[],
                data: Some(b"x"),
            },
            MetaRequest {
                verb: MetaVerb::Noop,
                key: b"k",
                flags: &[],
                data: None,
            },
        ];
        for request in bad {
            assert!(encode(request).is_err(), "{request:?}");
        }
    }

    #[test]
    fn replies_parse_with_their_flags() {
        let got = parse_all(
            b"VA 5 t30 c4 f16 X W Oop\r\nhello\r\nHD\r\nEN\r\nNS\r\nEX\r\nNF\r\nMN\r\nHD t-1 s3 kfoo h1 l7 Z\r\nME foo exp=-1 la=3 cas=2\r\nCLIENT_ERROR bad\r\n",
        );
        let Response::Meta(va) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(va.status, MetaStatus::Value);
        assert_eq!(va.data, b"hello");
        assert_eq!(va.flags.ttl, Some(30));
        assert_eq!(va.flags.cas, Some(4));
        assert_eq!(va.flags.client_flags, Some(16));
        assert_eq!(va.flags.opaque.as_deref(), Some(&b"op"[..]));
        assert!(va.flags.stale && va.flags.win && !va.flags.won_elsewhere);
        let statuses: Vec<MetaStatus> = got[1..8]
            .iter()
            .map(|r| match r {
                Response::Meta(m) => m.status,
                other => panic!("{other:?}"),
            })
            .collect();
        use MetaStatus::*;
        assert_eq!(
            statuses,
            [Stored, Miss, NotStored, Exists, NotFound, Noop, Stored]
        );
        let Response::Meta(hd) = &got[7] else {
            panic!()
        };
        assert_eq!(hd.flags.ttl, Some(-1));
        assert_eq!(hd.flags.size, Some(3));
        assert_eq!(hd.flags.key.as_deref(), Some(&b"foo"[..]));
        assert_eq!(hd.flags.hit_before, Some(true));
        assert_eq!(hd.flags.last_access, Some(7));
        assert!(hd.flags.won_elsewhere);
        let Response::Meta(me) = &got[8] else {
            panic!()
        };
        assert_eq!(me.debug.as_deref(), Some("exp=-1 la=3 cas=2"));
        assert_eq!(got[9], Response::ClientError("bad".into()));
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        for bad in [
            &b"VB 1\r\n"[..],
            b"VA x\r\n",
            b"VA\r\n",
            b"HD tX\r\n",
            b"HD W1\r\n",
            b"MN extra\r\n",
            b"HD \x01\r\n",
        ] {
            let mut parser = MetaParser::default();
            let error = parser.parse(&mut Vec::new(), bad, 1024).unwrap_err();
            assert_eq!(error.code(), "PROTOCOL_ERROR", "{bad:?}");
        }
        let mut parser = MetaParser::default();
        let error = parser
            .parse(&mut Vec::new(), b"VA 2\r\nabXY", 1024)
            .unwrap_err();
        assert_eq!(error.code(), "PROTOCOL_ERROR");
    }

    #[test]
    fn a_value_over_the_item_limit_is_read_past() {
        let mut parser = MetaParser::default();
        let (used, reply) = parser
            .parse(&mut Vec::new(), b"VA 5 f0\r\n12345\r\nHD\r\n", 4)
            .unwrap();
        let Some(Response::Meta(reply)) = reply else {
            panic!()
        };
        assert_eq!(used, 16);
        assert_eq!(reply.skipped, Some(5));
        assert!(reply.data.is_empty());
    }

    fn va(data: &[u8], flags: u32, win: bool, z: bool, x: bool) -> MetaReply {
        let mut reply = MetaReply::new(MetaStatus::Value);
        reply.data = data.to_vec();
        reply.flags.client_flags = Some(flags);
        reply.flags.win = win;
        reply.flags.won_elsewhere = z;
        reply.flags.stale = x;
        reply
    }

    #[test]
    fn lease_replies_mean_what_memcached_1_6_18_says() {
        // Replies as 1.6.18 sends them (see the module header).
        assert_eq!(lease(&va(b"", 0, true, false, false)), Ok(Lease::WonMiss));
        assert_eq!(lease(&va(b"", 0, false, true, false)), Ok(Lease::Wait));
        assert_eq!(
            lease(&va(b"old", 16, true, false, true)),
            Ok(Lease::WonStale)
        );
        assert_eq!(
            lease(&va(b"old", 16, false, true, true)),
            Ok(Lease::ServeStale)
        );
        assert_eq!(
            lease(&va(b"abc", 0, true, false, false)),
            Ok(Lease::WonStale)
        );
        assert_eq!(
            lease(&va(b"abc", 0, false, true, false)),
            Ok(Lease::ServeStale)
        );
        assert_eq!(lease(&va(b"", 16, false, false, false)), Ok(Lease::Hit));
        assert_eq!(lease(&va(b"v", 0, false, false, false)), Ok(Lease::Hit));
        // A stale empty item is a stale value, not a load in progress.
        assert_eq!(lease(&va(b"", 0, false, true, true)), Ok(Lease::ServeStale));
        assert_eq!(lease(&MetaReply::new(MetaStatus::Miss)), Ok(Lease::Wait));
        assert!(lease(&MetaReply::new(MetaStatus::NotStored)).is_err());
    }

    #[test]
    fn waiters_back_off_to_a_cap() {
        let steps: Vec<u64> = (0..8).map(wait_step_ms).collect();
        assert_eq!(steps, [5, 10, 20, 40, 50, 50, 50, 50]);
        assert_eq!(wait_step_ms(u32::MAX), MAX_WAIT_STEP_MS);
    }
}
