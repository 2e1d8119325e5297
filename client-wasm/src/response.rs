//! Replies in memcached's text protocol, and the parser that builds them from bytes in any
//! chunking. Like mini-redis's `Frame::check`, "not enough data yet" is a normal outcome;
//! unlike a check-then-parse over one growing buffer, the parser keeps its progress (the
//! VALUE blocks already read, the data copied so far), so no byte is ever looked at twice.

use crate::error::{Error, Result};
use crate::request::{Expect, MAX_KEY_LENGTH};

/// Longest reply line we wait for without seeing its end. memcached's longest lines are
/// metadump lines (a key URL-encoded to at most 750 bytes plus a dozen short fields) and
/// STAT lines of a few hundred bytes; 8 KiB is far above both and bounds what a server
/// that never sends a newline can make us buffer.
pub const MAX_LINE_LENGTH: usize = 8 * 1024;

/// Most text one `stats` reply may hold (the sum of its line lengths). The largest real
/// ones (`stats conns` with memcached's default 1024 connections, `stats items` over 63
/// slab classes) stay under 1 MiB; the bound stops a server that never says END.
pub const MAX_STATS_BYTES: usize = 16 * 1024 * 1024;

/// Most text one `lru_crawler metadump` reply may hold, about a million items' lines. A
/// cache with more items should be dumped one slab class at a time
/// ([`crate::request::MetadumpScope::ClassId`]) so that one reply fits in memory.
pub const MAX_METADUMP_BYTES: usize = 128 * 1024 * 1024;

/// Most `VALUE` blocks we reserve room for before they arrive; a larger multi-get grows
/// its vector as blocks come in rather than reserving for keys that may all miss.
const VALUES_RESERVED_UP_FRONT: usize = 1024;

/// Items handed back with [`ResponseParser::recycle`] are kept for the next replies (their
/// key and data buffers reused) up to this many, and only when their data buffer is at most
/// [`MAX_RECYCLED_VALUE`] bytes: the spare set stays under a few MiB whatever the traffic.
const MAX_SPARE_ITEMS: usize = 256;
const MAX_RECYCLED_VALUE: usize = 16 * 1024;

/// One value from a get-family reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: Vec<u8>,
    pub flags: u32,
    /// The cas unique, present in replies to gets and gats.
    pub cas: Option<u64>,
    pub data: Vec<u8>,
    /// The announced length of a value over the reader's item limit: its bytes were read
    /// past and not kept (`data` is empty), so the connection stays in step and only
    /// this key fails.
    pub skipped: Option<usize>,
}

/// One whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `VALUE ... END`, in the order memcached sent them; an empty vector means every key
    /// missed.
    Values(Vec<Item>),
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    /// The new value after incr or decr.
    Number(u64),
    /// `STAT <name> <value>` lines in order. Replies to `stats cachedump` (`ITEM <key>
    /// <info>`) and `stats detail dump` (`PREFIX <prefix> <counts>`) land here too, as
    /// (key or prefix, rest of line).
    Stats(Vec<(String, String)>),
    /// `RESET`, the reply to `stats reset`.
    Reset,
    Version(String),
    /// The item lines of `lru_crawler metadump`, raw (`key=... exp=... la=... ...`).
    Metadump(Vec<String>),
    /// The crawler would not run the metadump: the whole line, such as
    /// `BUSY currently processing crawler request` or `BADCLASS invalid class id`.
    MetadumpRefused(String),
    /// `ERROR`: memcached did not know the command.
    Error,
    /// `CLIENT_ERROR <text>`.
    ClientError(String),
    /// `SERVER_ERROR <text>`.
    ServerError(String),
    /// A meta protocol reply ([`crate::meta`]).
    Meta(crate::meta::MetaReply),
}

/// Parses the one reply at the start of `buf`, mini-redis style: `Ok(None)` when the
/// reply is not all there yet, otherwise the reply and how many bytes it took.
/// `max_values` is how many VALUE blocks the request allows (its number of keys).
pub fn parse_response(
    buf: &[u8],
    expect: Expect,
    max_values: usize,
    max_item_size: usize,
) -> Result<Option<(Response, usize)>> {
    let mut parser = ResponseParser::new(max_item_size);
    let (used, response) = parser.parse(expect, max_values, buf)?;
    Ok(response.map(|response| (response, used)))
}

/// The incremental parser for one connection's replies, one reply at a time.
#[derive(Debug)]
pub struct ResponseParser {
    max_item_size: usize,
    /// [`MAX_STATS_BYTES`] and [`MAX_METADUMP_BYTES`], lowered by tests.
    max_stats_bytes: usize,
    max_metadump_bytes: usize,
    /// The start of a line whose end has not arrived (at most [`MAX_LINE_LENGTH`]).
    carry: Vec<u8>,
    state: State,
    /// What the reply being read answers; a caller that switches mid-reply is refused.
    reading: Option<Expect>,
    spare: Spare,
    meta: crate::meta::MetaParser,
}

/// Buffers of items that were read and handed back, for the next VALUE blocks: a steady
/// stream of gets then allocates nothing per value.
#[derive(Debug, Default)]
struct Spare {
    items: Vec<Item>,
    list: Option<Vec<Item>>,
}

impl Spare {
    fn item(&mut self, key: &[u8], flags: u32, cas: Option<u64>, data_len: Option<usize>) -> Item {
        let mut item = self.items.pop().unwrap_or(Item {
            key: Vec::new(),
            flags: 0,
            cas: None,
            data: Vec::new(),
            skipped: None,
        });
        item.key.clear();
        item.key.extend_from_slice(key);
        item.flags = flags;
        item.cas = cas;
        item.data.clear();
        match data_len {
            Some(len) => {
                item.data.reserve(len);
                item.skipped = None;
            }
            None => item.skipped = Some(0),
        }
        item
    }

    fn list(&mut self, max_values: usize) -> Vec<Item> {
        match self.list.take() {
            Some(list) => list,
            None => Vec::with_capacity(max_values.min(VALUES_RESERVED_UP_FRONT)),
        }
    }
}

/// How far into the current reply we are.
#[derive(Debug)]
enum State {
    /// No line of the reply read yet.
    Start,
    /// Inside `VALUE ... END`: the blocks done, and the one whose data is arriving.
    Values {
        items: Vec<Item>,
        block: Option<Block>,
    },
    /// The STAT lines so far and their total length.
    Stats(Vec<(String, String)>, usize),
    /// The item lines so far and their total length.
    Metadump(Vec<String>, usize),
}

/// A VALUE block whose header is read and whose data is being copied (or, over the
/// item limit, counted and dropped).
#[derive(Debug)]
struct Block {
    item: Item,
    len: usize,
    /// Bytes of the data seen so far.
    seen: usize,
    /// How many bytes of the `\r\n` after the data have been seen.
    trailer: usize,
}

impl ResponseParser {
    /// `max_item_size` is the largest value kept from a VALUE block; a larger one is read
    /// past without keeping its bytes ([`Item::skipped`]), so a large item stored by
    /// another client fails that key alone and no length can make us reserve gigabytes.
    pub fn new(max_item_size: usize) -> Self {
        ResponseParser {
            max_item_size,
            max_stats_bytes: MAX_STATS_BYTES,
            max_metadump_bytes: MAX_METADUMP_BYTES,
            carry: Vec::new(),
            state: State::Start,
            reading: None,
            spare: Spare::default(),
            meta: crate::meta::MetaParser::default(),
        }
    }

    /// Hands back the items of a `Values` reply once the caller is done with them: their
    /// buffers serve the next VALUE blocks (bounded, see [`MAX_SPARE_ITEMS`]).
    pub fn recycle(&mut self, mut items: Vec<Item>) {
        for item in items.drain(..) {
            if self.spare.items.len() >= MAX_SPARE_ITEMS {
                break;
            }
            if item.data.capacity() <= MAX_RECYCLED_VALUE && item.key.capacity() <= 512 {
                self.spare.items.push(item);
            }
        }
        if items.capacity() <= VALUES_RESERVED_UP_FRONT {
            self.spare.list = Some(items);
        }
    }

    /// Reads the reply to a request expecting `expect` from `input`. Returns how many
    /// bytes it used and the reply if it is now whole. When no reply is returned every
    /// byte was used and remembered, so the next call continues with the next bytes.
    /// Pass the same `expect` until a reply comes out. After an error the byte stream
    /// cannot be trusted: close the connection and [`ResponseParser::reset`].
    pub fn parse(
        &mut self,
        expect: Expect,
        max_values: usize,
        input: &[u8],
    ) -> Result<(usize, Option<Response>)> {
        if expect == Expect::Nothing {
            return Err(Error::Protocol(
                "bytes arrived for a request that expects no reply".into(),
            ));
        }
        if !self.is_idle() && self.reading != Some(expect) {
            return Err(Error::BadArgument(format!(
                "asked to parse a reply to {expect:?} while a reply to {:?} is half read",
                self.reading
            )));
        }
        self.reading = Some(expect);
        if expect == Expect::Meta {
            let (used, reply) = self
                .meta
                .parse(&mut self.carry, input, self.max_item_size)?;
            if reply.is_some() {
                self.reading = None;
            }
            return Ok((used, reply));
        }
        let mut pos = 0;
        loop {
            if let State::Values { items, block } = &mut self.state {
                if let Some(open) = block {
                    pos += open.fill(&input[pos..])?;
                    if open.trailer < 2 {
                        return Ok((pos, None));
                    }
                    if let Some(done) = block.take() {
                        items.push(done.item);
                    }
                }
            }
            let rest = &input[pos..];
            let Some((line, used)) = next_line(&mut self.carry, rest, expect == Expect::Metadump)?
            else {
                return Ok((input.len(), None));
            };
            let limits = Limits {
                max_values,
                max_item_size: self.max_item_size,
                max_stats_bytes: self.max_stats_bytes,
                max_metadump_bytes: self.max_metadump_bytes,
            };
            let reply = on_line(&mut self.state, expect, line, &limits, &mut self.spare)?;
            self.carry.clear();
            pos += used;
            if let Some(reply) = reply {
                self.state = State::Start;
                self.reading = None;
                return Ok((pos, Some(reply)));
            }
        }
    }

    /// Whether no part of a reply is held (nothing between two replies).
    pub fn is_idle(&self) -> bool {
        self.carry.is_empty() && matches!(self.state, State::Start) && self.meta.is_idle()
    }

    /// Forgets any partial reply, for a connection that was closed.
    pub fn reset(&mut self) {
        self.carry = Vec::new();
        self.state = State::Start;
        self.reading = None;
        self.meta.reset();
    }
}

impl Block {
    /// Copies what `input` holds of the data and checks the `\r\n` after it; returns how
    /// many bytes it used.
    fn fill(&mut self, input: &[u8]) -> Result<usize> {
        let missing = self.len - self.seen;
        let take = missing.min(input.len());
        if self.item.skipped.is_none() {
            self.item.data.extend_from_slice(&input[..take]);
        }
        self.seen += take;
        let mut used = take;
        while self.seen == self.len && self.trailer < 2 && used < input.len() {
            let want = b"\r\n"[self.trailer];
            if input[used] != want {
                return Err(Error::Protocol(format!(
                    "the {}-byte data block of key {:?} is not followed by \\r\\n (found {:?})",
                    self.len,
                    Error::key_text(&self.item.key),
                    excerpt(&input[used..=used]),
                )));
            }
            self.trailer += 1;
            used += 1;
        }
        Ok(used)
    }
}

/// Finds the end of the next line. A line wholly inside `input` is returned in place;
/// only a line split across chunks is copied, into `carry`. Returns the line without its
/// terminator and how many bytes of `input` it used, or `None` when the line has not
/// ended yet (then all of `input` is in `carry`). memcached ends lines with `\r\n`, except
/// metadump item lines, which end with a bare `\n` (`bare_newline`).
pub(crate) fn next_line<'a>(
    carry: &'a mut Vec<u8>,
    input: &'a [u8],
    bare_newline: bool,
) -> Result<Option<(&'a [u8], usize)>> {
    let Some(end) = memchr::memchr(b'\n', input) else {
        if carry.len() + input.len() > MAX_LINE_LENGTH {
            return Err(line_too_long(carry, input));
        }
        carry.extend_from_slice(input);
        return Ok(None);
    };
    let line: &[u8] = if carry.is_empty() {
        &input[..end]
    } else {
        if carry.len() + end > MAX_LINE_LENGTH {
            return Err(line_too_long(carry, input));
        }
        carry.extend_from_slice(&input[..end]);
        carry
    };
    if line.len() > MAX_LINE_LENGTH {
        return Err(line_too_long(line, b""));
    }
    let line = match line.split_last() {
        Some((b'\r', text)) => text,
        _ if bare_newline => line,
        _ => {
            return Err(Error::Protocol(format!(
                "reply line {:?} ends with \\n without \\r",
                excerpt(line)
            )))
        }
    };
    Ok(Some((line, end + 1)))
}

fn line_too_long(start: &[u8], more: &[u8]) -> Error {
    let mut head = start.to_vec();
    head.extend_from_slice(&more[..more.len().min(64)]);
    Error::Protocol(format!(
        "reply line longer than {MAX_LINE_LENGTH} bytes without an end, starting {:?}",
        excerpt(&head)
    ))
}

/// Applies one reply line to the reply in progress; returns the reply once it is whole.
/// The bounds one reply is parsed under.
struct Limits {
    /// VALUE blocks allowed: the number of keys asked for.
    max_values: usize,
    max_item_size: usize,
    max_stats_bytes: usize,
    max_metadump_bytes: usize,
}

fn on_line(
    state: &mut State,
    expect: Expect,
    line: &[u8],
    limits: &Limits,
    spare: &mut Spare,
) -> Result<Option<Response>> {
    if expect == Expect::Metadump && matches!(state, State::Start) && line.starts_with(b"ERROR ") {
        // memcached refuses a metadump it knows with words after ERROR (`cannot pipeline
        // other commands before metadump`, `metadump not allowed`): a refusal to show with
        // its reason, not the bare ERROR of an unknown command.
        return Ok(Some(Response::MetadumpRefused(text(line))));
    }
    if let Some(error) = error_reply(line) {
        // ERROR, CLIENT_ERROR and SERVER_ERROR may answer any request, even after part
        // of a multi-get was sent: the request failed, and what came before is dropped.
        return Ok(Some(error));
    }
    let reply = match expect {
        Expect::Values => return on_values_line(state, line, limits, spare),
        Expect::Stats => return on_stats_line(state, line, limits.max_stats_bytes),
        Expect::Metadump => return on_metadump_line(state, line, limits.max_metadump_bytes),
        Expect::Stored => match line {
            b"STORED" => Response::Stored,
            b"NOT_STORED" => Response::NotStored,
            b"EXISTS" => Response::Exists,
            b"NOT_FOUND" => Response::NotFound,
            _ => return Err(unexpected(expect, line)),
        },
        Expect::Deleted => match line {
            b"DELETED" => Response::Deleted,
            b"NOT_FOUND" => Response::NotFound,
            _ => return Err(unexpected(expect, line)),
        },
        Expect::Arith => match line {
            b"NOT_FOUND" => Response::NotFound,
            _ => match parse_decimal(line) {
                Some(number) => Response::Number(number),
                None => return Err(unexpected(expect, line)),
            },
        },
        Expect::Touched => match line {
            b"TOUCHED" => Response::Touched,
            b"NOT_FOUND" => Response::NotFound,
            _ => return Err(unexpected(expect, line)),
        },
        Expect::Ok => match line {
            b"OK" => Response::Ok,
            _ => return Err(unexpected(expect, line)),
        },
        Expect::Version => match line.strip_prefix(b"VERSION ") {
            Some(version) => Response::Version(text(version)),
            None => return Err(unexpected(expect, line)),
        },
        Expect::Nothing | Expect::Meta => return Err(unexpected(expect, line)),
    };
    Ok(Some(reply))
}

fn on_values_line(
    state: &mut State,
    line: &[u8],
    limits: &Limits,
    spare: &mut Spare,
) -> Result<Option<Response>> {
    if line == b"END" {
        return Ok(Some(match std::mem::replace(state, State::Start) {
            State::Values { items, .. } => Response::Values(items),
            _ => Response::Values(Vec::new()),
        }));
    }
    let Some(header) = line.strip_prefix(b"VALUE ") else {
        return Err(unexpected(Expect::Values, line));
    };
    let (item, len) = parse_value_header(header, limits.max_item_size, spare)?;
    if !matches!(state, State::Values { .. }) {
        *state = State::Values {
            items: spare.list(limits.max_values),
            block: None,
        };
    }
    let State::Values { items, block } = state else {
        return Ok(None); // not reached: the state was made Values just above
    };
    if items.len() >= limits.max_values {
        return Err(Error::Protocol(format!(
            "more VALUE blocks than the {} keys asked for (at key {:?})",
            limits.max_values,
            Error::key_text(&item.key)
        )));
    }
    *block = Some(Block {
        item,
        len,
        seen: 0,
        trailer: 0,
    });
    Ok(None)
}

/// `<key> <flags> <bytes> [<cas>]`, the rest of a `VALUE` line.
fn parse_value_header(
    header: &[u8],
    max_item_size: usize,
    spare: &mut Spare,
) -> Result<(Item, usize)> {
    let malformed = || Error::Protocol(format!("malformed VALUE line {:?}", excerpt(header)));
    let mut fields = header.split(|&b| b == b' ');
    let key = fields
        .next()
        .filter(|key| !key.is_empty() && key.len() <= MAX_KEY_LENGTH);
    let flags = fields
        .next()
        .and_then(parse_decimal)
        .and_then(|f| u32::try_from(f).ok());
    let len = fields.next().and_then(parse_decimal);
    let cas = match fields.next() {
        None => None,
        Some(cas) => Some(parse_decimal(cas).ok_or_else(malformed)?),
    };
    let (Some(key), Some(flags), Some(len), None) = (key, flags, len, fields.next()) else {
        return Err(malformed());
    };
    let len = usize::try_from(len).map_err(|_| malformed())?;
    let mut item = spare.item(key, flags, cas, (len <= max_item_size).then_some(len));
    if item.skipped.is_some() {
        item.skipped = Some(len);
    }
    Ok((item, len))
}

fn on_stats_line(state: &mut State, line: &[u8], max_bytes: usize) -> Result<Option<Response>> {
    let first = matches!(state, State::Start);
    match line {
        b"END" => {
            return Ok(Some(match std::mem::replace(state, State::Start) {
                State::Stats(stats, _) => Response::Stats(stats),
                _ => Response::Stats(Vec::new()),
            }))
        }
        // `stats reset` and `stats detail on|off` answer with one word instead.
        b"RESET" if first => return Ok(Some(Response::Reset)),
        b"OK" if first => return Ok(Some(Response::Ok)),
        _ => {}
    }
    let entry = [b"STAT ".as_slice(), b"ITEM ", b"PREFIX "]
        .iter()
        .find_map(|tag| line.strip_prefix(*tag))
        .ok_or_else(|| unexpected(Expect::Stats, line))?;
    let (name, value) = match entry.iter().position(|&b| b == b' ') {
        Some(space) => (&entry[..space], &entry[space + 1..]),
        None => (entry, &b""[..]),
    };
    if !matches!(state, State::Stats(..)) {
        *state = State::Stats(Vec::new(), 0);
    }
    let State::Stats(stats, bytes) = state else {
        return Ok(None); // not reached: the state was made Stats just above
    };
    *bytes += line.len();
    if *bytes > max_bytes {
        return Err(Error::Protocol(format!(
            "stats reply longer than {max_bytes} bytes without END"
        )));
    }
    stats.push((text(name), text(value)));
    Ok(None)
}

fn on_metadump_line(state: &mut State, line: &[u8], max_bytes: usize) -> Result<Option<Response>> {
    let first = matches!(state, State::Start);
    if line == b"END" {
        return Ok(Some(match std::mem::replace(state, State::Start) {
            State::Metadump(lines, _) => Response::Metadump(lines),
            _ => Response::Metadump(Vec::new()),
        }));
    }
    if first {
        let word = line.split(|&b| b == b' ').next().unwrap_or_default();
        if matches!(word, b"BUSY" | b"BADCLASS" | b"NOTSTARTED") {
            return Ok(Some(Response::MetadumpRefused(text(line))));
        }
    }
    if !line.starts_with(b"key=") {
        return Err(unexpected(Expect::Metadump, line));
    }
    if !matches!(state, State::Metadump(..)) {
        *state = State::Metadump(Vec::new(), 0);
    }
    let State::Metadump(lines, bytes) = state else {
        return Ok(None); // not reached: the state was made Metadump just above
    };
    *bytes += line.len();
    if *bytes > max_bytes {
        return Err(Error::Protocol(format!(
            "metadump reply longer than {max_bytes} bytes; dump one slab class at a time"
        )));
    }
    lines.push(text(line));
    Ok(None)
}

/// `ERROR`, `CLIENT_ERROR <text>` and `SERVER_ERROR <text>`, which answer any request.
pub(crate) fn error_reply(line: &[u8]) -> Option<Response> {
    fn after<'a>(line: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
        let rest = line.strip_prefix(word)?;
        match rest {
            [] => Some(rest),
            [b' ', message @ ..] => Some(message),
            _ => None,
        }
    }
    match line.first()? {
        b'E' => after(line, b"ERROR").map(|_| Response::Error),
        b'C' => after(line, b"CLIENT_ERROR").map(|message| Response::ClientError(text(message))),
        b'S' => after(line, b"SERVER_ERROR").map(|message| Response::ServerError(text(message))),
        _ => None,
    }
}

fn unexpected(expect: Expect, line: &[u8]) -> Error {
    Error::Protocol(format!(
        "unexpected reply line {:?} to a request expecting {expect:?}",
        excerpt(line)
    ))
}

/// An unsigned decimal with no sign, space or leading `+`; `None` on overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u64, |value, &b| value * 10 + u64::from(b - b'0'))
    };
    // Nineteen digits always fit in a u64; only a twentieth needs the checked (and, on
    // wasm32, 128-bit) multiply.
    if digits.len() < 20 {
        return Some(value(digits));
    }
    value(&digits[..19])
        .checked_mul(10)?
        .checked_add(u64::from(digits[19] - b'0'))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The start of some bytes, escaped, for error messages.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const SHOWN: usize = 64;
    let shown = bytes[..bytes.len().min(SHOWN)].escape_ascii().to_string();
    if bytes.len() > SHOWN {
        format!("{shown}...")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024 * 1024;

    fn whole(bytes: &[u8], expect: Expect, max_values: usize) -> Result<Response> {
        match parse_response(bytes, expect, max_values, LIMIT)? {
            Some((response, used)) => {
                assert_eq!(
                    used,
                    bytes.len(),
                    "the reply uses every byte of {:?}",
                    excerpt(bytes)
                );
                Ok(response)
            }
            None => panic!("incomplete reply {:?}", excerpt(bytes)),
        }
    }

    fn ok(bytes: &[u8], expect: Expect) -> Response {
        whole(bytes, expect, 10).expect("valid reply")
    }

    fn protocol_error(bytes: &[u8], expect: Expect, max_values: usize) -> String {
        match parse_response(bytes, expect, max_values, LIMIT) {
            Err(Error::Protocol(message)) => message,
            other => panic!(
                "expected a protocol error for {:?}, got {other:?}",
                excerpt(bytes)
            ),
        }
    }

    fn item(key: &str, flags: u32, cas: Option<u64>, data: &[u8]) -> Item {
        Item {
            key: key.into(),
            flags,
            cas,
            data: data.to_vec(),
            skipped: None,
        }
    }

    #[test]
    fn values_with_and_without_cas() {
        assert_eq!(ok(b"END\r\n", Expect::Values), Response::Values(vec![]));
        assert_eq!(
            ok(
                b"VALUE a 5 3\r\nabc\r\nVALUE b 0 0\r\n\r\nEND\r\n",
                Expect::Values
            ),
            Response::Values(vec![item("a", 5, None, b"abc"), item("b", 0, None, b"")])
        );
        assert_eq!(
            ok(
                b"VALUE k 4294967295 5 18446744073709551615\r\n\r\nEND\r\nEND\r\n",
                Expect::Values
            ),
            Response::Values(vec![item("k", u32::MAX, Some(u64::MAX), b"\r\nEND")])
        );
    }

    #[test]
    fn data_may_hold_anything_including_reply_words() {
        let data = b"END\r\nVALUE x 0 1\r\n\0\xff";
        let mut reply = format!("VALUE k 0 {}\r\n", data.len()).into_bytes();
        reply.extend_from_slice(data);
        reply.extend_from_slice(b"\r\nEND\r\n");
        assert_eq!(
            ok(&reply, Expect::Values),
            Response::Values(vec![item("k", 0, None, data)])
        );
    }

    #[test]
    fn every_single_line_reply() {
        let cases: &[(&[u8], Expect, Response)] = &[
            (b"STORED\r\n", Expect::Stored, Response::Stored),
            (b"NOT_STORED\r\n", Expect::Stored, Response::NotStored),
            (b"EXISTS\r\n", Expect::Stored, Response::Exists),
            (b"NOT_FOUND\r\n", Expect::Stored, Response::NotFound),
            (b"DELETED\r\n", Expect::Deleted, Response::Deleted),
            (b"NOT_FOUND\r\n", Expect::Deleted, Response::NotFound),
            (b"0\r\n", Expect::Arith, Response::Number(0)),
            (
                b"18446744073709551615\r\n",
                Expect::Arith,
                Response::Number(u64::MAX),
            ),
            (b"NOT_FOUND\r\n", Expect::Arith, Response::NotFound),
            (b"TOUCHED\r\n", Expect::Touched, Response::Touched),
            (b"NOT_FOUND\r\n", Expect::Touched, Response::NotFound),
            (b"OK\r\n", Expect::Ok, Response::Ok),
            (
                b"VERSION 1.6.18\r\n",
                Expect::Version,
                Response::Version("1.6.18".into()),
            ),
            (b"RESET\r\n", Expect::Stats, Response::Reset),
            (b"OK\r\n", Expect::Stats, Response::Ok),
        ];
        for (bytes, expect, response) in cases {
            assert_eq!(&ok(bytes, *expect), response, "{:?}", excerpt(bytes));
        }
    }

    #[test]
    fn error_lines_answer_any_request() {
        for expect in [
            Expect::Values,
            Expect::Stored,
            Expect::Deleted,
            Expect::Arith,
            Expect::Touched,
            Expect::Ok,
            Expect::Stats,
            Expect::Version,
            Expect::Metadump,
        ] {
            assert_eq!(ok(b"ERROR\r\n", expect), Response::Error);
            // After a metadump, ERROR with words is memcached's refusal of it, kept whole.
            let with_words = if expect == Expect::Metadump {
                Response::MetadumpRefused("ERROR too many tokens".into())
            } else {
                Response::Error
            };
            assert_eq!(ok(b"ERROR too many tokens\r\n", expect), with_words);
            assert_eq!(
                ok(b"CLIENT_ERROR bad data chunk\r\n", expect),
                Response::ClientError("bad data chunk".into())
            );
            assert_eq!(
                ok(b"CLIENT_ERROR\r\n", expect),
                Response::ClientError(String::new())
            );
            assert_eq!(
                ok(b"SERVER_ERROR out of memory storing object\r\n", expect),
                Response::ServerError("out of memory storing object".into())
            );
        }
    }

    #[test]
    fn an_error_in_the_middle_of_a_multi_get_ends_it() {
        assert_eq!(
            ok(
                b"VALUE a 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n",
                Expect::Values
            ),
            Response::ServerError("out of memory writing get response".into())
        );
    }

    #[test]
    fn stats_lines_in_order() {
        assert_eq!(
            ok(b"STAT pid 42\r\nSTAT version 1.6.18\r\nSTAT libevent 2.1.12-stable\r\nSTAT empty\r\nEND\r\n", Expect::Stats),
            Response::Stats(vec![
                ("pid".into(), "42".into()),
                ("version".into(), "1.6.18".into()),
                ("libevent".into(), "2.1.12-stable".into()),
                ("empty".into(), String::new()),
            ])
        );
        assert_eq!(ok(b"END\r\n", Expect::Stats), Response::Stats(vec![]));
        assert_eq!(
            ok(b"ITEM a [1 b; 0 s]\r\nEND\r\n", Expect::Stats),
            Response::Stats(vec![("a".into(), "[1 b; 0 s]".into())])
        );
        assert_eq!(
            ok(
                b"PREFIX p get 1 hit 0 set 0 del 0\r\nEND\r\n",
                Expect::Stats
            ),
            Response::Stats(vec![("p".into(), "get 1 hit 0 set 0 del 0".into())])
        );
    }

    #[test]
    fn metadump_lines_end_with_a_bare_newline() {
        let reply = b"key=a exp=-1 la=1795554765 cas=1 fetch=no cls=1 size=65\nkey=b%20c exp=3 la=1 cas=2 fetch=yes cls=1 size=66\nEND\r\n";
        assert_eq!(
            ok(reply, Expect::Metadump),
            Response::Metadump(vec![
                "key=a exp=-1 la=1795554765 cas=1 fetch=no cls=1 size=65".into(),
                "key=b%20c exp=3 la=1 cas=2 fetch=yes cls=1 size=66".into(),
            ])
        );
        assert_eq!(ok(b"END\r\n", Expect::Metadump), Response::Metadump(vec![]));
        for refusal in [
            "BUSY currently processing crawler request",
            "BADCLASS invalid class id",
            "NOTSTARTED no items to crawl",
            "ERROR cannot pipeline other commands before metadump",
        ] {
            assert_eq!(
                ok(format!("{refusal}\r\n").as_bytes(), Expect::Metadump),
                Response::MetadumpRefused(refusal.into())
            );
        }
        // A bare ERROR is still memcached not knowing the command (lru_crawler absent).
        assert_eq!(ok(b"ERROR\r\n", Expect::Metadump), Response::Error);
    }

    #[test]
    fn incomplete_replies_are_not_errors() {
        let cases: &[(&[u8], Expect)] = &[
            (b"", Expect::Values),
            (b"VALUE a 0 3\r\nab", Expect::Values),
            (b"VALUE a 0 3\r\nabc", Expect::Values),
            (b"VALUE a 0 3\r\nabc\r", Expect::Values),
            (b"VALUE a 0 3\r\nabc\r\n", Expect::Values),
            (b"VALUE a 0 3\r\nabc\r\nEND\r", Expect::Values),
            (b"STORED", Expect::Stored),
            (b"STAT pid 1\r\n", Expect::Stats),
            (b"key=a\nEND", Expect::Metadump),
        ];
        for (bytes, expect) in cases {
            assert_eq!(
                parse_response(bytes, *expect, 10, LIMIT),
                Ok(None),
                "{:?}",
                excerpt(bytes)
            );
        }
    }

    #[test]
    fn a_reply_is_parsed_only_as_far_as_it_goes() {
        let (response, used) = parse_response(b"STORED\r\nDELETED\r\n", Expect::Stored, 0, LIMIT)
            .unwrap()
            .unwrap();
        assert_eq!((response, used), (Response::Stored, 8));
    }

    #[test]
    fn malformed_value_headers_are_protocol_errors() {
        for header in [
            "VALUE\r\n",
            "VALUE \r\n",
            "VALUE k\r\n",
            "VALUE k 0\r\n",
            "VALUE k x 1\r\n",
            "VALUE k 0 x\r\n",
            "VALUE k 0 -1\r\n",
            "VALUE k 0 +1\r\n",
            "VALUE k 4294967296 1\r\n",
            "VALUE k 0 1 x\r\n",
            "VALUE k 0 1 18446744073709551616\r\n",
            "VALUE k 0 1 2 3\r\n",
            "VALUE  k 0 1\r\n",
            "VALUE k  0 1\r\n",
            "VALUE k 0 1 \r\n",
            "VALUES k 0 1\r\n",
        ] {
            protocol_error(header.as_bytes(), Expect::Values, 10);
        }
        let long_key = format!("VALUE {} 0 1\r\n", "k".repeat(MAX_KEY_LENGTH + 1));
        protocol_error(long_key.as_bytes(), Expect::Values, 10);
    }

    #[test]
    fn a_value_over_the_item_limit_is_read_past_and_marked_skipped() {
        let mut reply = format!("VALUE big 0 {}\r\n", LIMIT + 1).into_bytes();
        reply.extend(std::iter::repeat(b'x').take(LIMIT + 1));
        reply.extend_from_slice(b"\r\nVALUE small 0 2\r\nok\r\nEND\r\n");
        // Fed a byte at a time too: the skipping keeps its count between chunks.
        for chunk in [reply.len(), 7] {
            let mut parser = ResponseParser::new(LIMIT);
            let mut got = None;
            for piece in reply.chunks(chunk) {
                let mut at = 0;
                while at < piece.len() {
                    let (used, response) = parser.parse(Expect::Values, 2, &piece[at..]).unwrap();
                    at += used;
                    if response.is_some() {
                        got = response;
                    }
                }
            }
            let Some(Response::Values(items)) = got else {
                panic!("no values")
            };
            assert_eq!(items.len(), 2);
            assert_eq!(items[0].skipped, Some(LIMIT + 1));
            assert!(items[0].data.is_empty(), "nothing of it is kept");
            assert_eq!(items[1].data, b"ok");
            assert_eq!(items[1].skipped, None);
        }
        protocol_error(b"VALUE k 0 99999999999999999999\r\n", Expect::Values, 1);
    }

    #[test]
    fn a_data_block_must_end_with_crlf() {
        for reply in [
            &b"VALUE k 0 1\r\nxyEND\r\n"[..],
            b"VALUE k 0 1\r\nx\rXEND\r\n",
            b"VALUE k 0 1\r\nx\n\r",
        ] {
            let message = protocol_error(reply, Expect::Values, 1);
            assert!(message.contains("not followed by"), "{message}");
        }
    }

    #[test]
    fn more_values_than_keys_asked_for_is_refused() {
        let reply = b"VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n";
        assert!(whole(reply, Expect::Values, 2).is_ok());
        let message = protocol_error(reply, Expect::Values, 1);
        assert!(message.contains("more VALUE blocks"), "{message}");
    }

    #[test]
    fn replies_that_do_not_fit_the_request_are_protocol_errors() {
        let cases: &[(&[u8], Expect)] = &[
            (b"STORED\r\n", Expect::Values),
            (b"DELETED\r\n", Expect::Stored),
            (b"STORED\r\n", Expect::Deleted),
            (b"-1\r\n", Expect::Arith),
            (b"1 \r\n", Expect::Arith),
            (b"\r\n", Expect::Arith),
            (b"18446744073709551616\r\n", Expect::Arith),
            (b"DELETED\r\n", Expect::Touched),
            (b"STORED\r\n", Expect::Ok),
            (b"VERSION\r\n", Expect::Version),
            (b"1.6.18\r\n", Expect::Version),
            (b"STAT\r\n", Expect::Stats),
            (b"STAT a 1\r\nRESET\r\n", Expect::Stats),
            (b"VALUE a 0 1\r\n", Expect::Stats),
            (b"nokey\nEND\r\n", Expect::Metadump),
            (b"key=a\nBUSY x\r\n", Expect::Metadump),
            (b"ERRORS\r\n", Expect::Ok),
            (b"CLIENT_ERRORx\r\n", Expect::Ok),
            (b"OK\r\n", Expect::Nothing),
        ];
        for (bytes, expect) in cases {
            protocol_error(bytes, *expect, 1);
        }
    }

    #[test]
    fn lines_must_end_with_crlf_except_metadump_items() {
        protocol_error(b"STORED\n", Expect::Stored, 0);
        protocol_error(b"VALUE k 0 1\nx\r\nEND\r\n", Expect::Values, 1);
        protocol_error(b"END\n", Expect::Values, 1);
        protocol_error(b"STAT a b\nEND\r\n", Expect::Stats, 0);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused_even_before_it_ends() {
        let endless = vec![b'S'; MAX_LINE_LENGTH + 1];
        let message = protocol_error(&endless, Expect::Stored, 0);
        assert!(message.contains("longer than"), "{message}");
        let mut long = vec![b'S'; MAX_LINE_LENGTH + 1];
        long.extend_from_slice(b"\r\n");
        protocol_error(&long, Expect::Stored, 0);
        // At the limit the parser still waits.
        assert_eq!(
            parse_response(&endless[..MAX_LINE_LENGTH], Expect::Stored, 0, LIMIT),
            Ok(None)
        );
    }

    #[test]
    fn a_split_line_is_refused_at_the_same_length() {
        let mut parser = ResponseParser::new(LIMIT);
        let half = vec![b'S'; MAX_LINE_LENGTH / 2 + 1];
        assert_eq!(
            parser.parse(Expect::Stored, 0, &half),
            Ok((half.len(), None))
        );
        assert!(matches!(
            parser.parse(Expect::Stored, 0, &half),
            Err(Error::Protocol(_))
        ));
    }

    /// Feeds `unit` over and over to a parser whose listing budgets are `budget` bytes;
    /// returns the error once the reply outgrows it.
    fn outgrow(expect: Expect, unit: &[u8], budget: usize) -> Error {
        let mut parser = ResponseParser::new(LIMIT);
        parser.max_stats_bytes = budget;
        parser.max_metadump_bytes = budget;
        let text_per_unit = unit.len() - if unit.ends_with(b"\r\n") { 2 } else { 1 };
        let units_that_fit = budget / text_per_unit;
        for _ in 0..units_that_fit {
            assert_eq!(parser.parse(expect, 0, unit), Ok((unit.len(), None)));
        }
        parser.parse(expect, 0, unit).unwrap_err()
    }

    #[test]
    fn stats_and_metadump_replies_without_end_are_bounded() {
        let error = outgrow(Expect::Stats, b"STAT name value\r\n", 1000);
        assert!(
            matches!(&error, Error::Protocol(m) if m.contains("stats reply longer")),
            "{error:?}"
        );
        let error = outgrow(Expect::Metadump, b"key=a exp=-1\n", 1000);
        assert!(
            matches!(&error, Error::Protocol(m) if m.contains("metadump reply longer")),
            "{error:?}"
        );
        assert_eq!(ResponseParser::new(LIMIT).max_stats_bytes, MAX_STATS_BYTES);
        assert_eq!(
            ResponseParser::new(LIMIT).max_metadump_bytes,
            MAX_METADUMP_BYTES
        );
    }

    #[test]
    fn the_parser_keeps_its_progress_between_calls() {
        let mut parser = ResponseParser::new(LIMIT);
        let reply = b"VALUE a 0 5\r\nhello\r\nVALUE b 1 2 7\r\nhi\r\nEND\r\nSTORED\r\n";
        let mut responses = Vec::new();
        let mut expects = vec![Expect::Values, Expect::Stored].into_iter();
        let mut expect = expects.next().unwrap();
        for byte in reply.chunks(1) {
            let (used, response) = parser.parse(expect, 2, byte).unwrap();
            assert_eq!(used, 1);
            if let Some(response) = response {
                responses.push(response);
                assert!(parser.is_idle());
                if let Some(next) = expects.next() {
                    expect = next;
                }
            }
        }
        assert_eq!(
            responses,
            vec![
                Response::Values(vec![
                    item("a", 0, None, b"hello"),
                    item("b", 1, Some(7), b"hi")
                ]),
                Response::Stored
            ]
        );
    }

    #[test]
    fn switching_the_expected_reply_mid_reply_is_refused_not_a_panic() {
        let mut parser = ResponseParser::new(LIMIT);
        assert_eq!(
            parser.parse(Expect::Values, 1, b"VALUE a 0 1\r\nx\r\n"),
            Ok((16, None))
        );
        for expect in [Expect::Stats, Expect::Metadump, Expect::Stored] {
            let error = parser.parse(expect, 0, b"STAT a b\r\n").unwrap_err();
            assert!(matches!(error, Error::BadArgument(_)), "{error:?}");
        }
        assert_eq!(
            parser.parse(Expect::Values, 1, b"END\r\n"),
            Ok((5, Some(Response::Values(vec![item("a", 0, None, b"x")]))))
        );
        // Between replies any expectation is fine.
        assert_eq!(
            parser.parse(Expect::Ok, 0, b"OK\r\n"),
            Ok((4, Some(Response::Ok)))
        );
    }

    #[test]
    fn after_reset_the_parser_starts_a_fresh_reply() {
        let mut parser = ResponseParser::new(LIMIT);
        assert!(parser
            .parse(Expect::Values, 1, b"VALUE a 0 1\r\nxx")
            .is_err());
        assert!(!parser.is_idle());
        parser.reset();
        assert!(parser.is_idle());
        assert_eq!(
            parser.parse(Expect::Stored, 0, b"STORED\r\n"),
            Ok((8, Some(Response::Stored)))
        );
    }

    #[test]
    fn parse_decimal_is_strict() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"0042"), Some(42));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"99999999999999999999",
            b"1a",
            b"-1",
            b" 1",
            b"000000000000000000001",
        ] {
            assert_eq!(parse_decimal(bad), None, "{:?}", excerpt(bad));
        }
    }
}
