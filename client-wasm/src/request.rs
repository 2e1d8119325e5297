//! Requests in memcached's text protocol: what each command looks like on the wire, and
//! which reply shape follows it. Encoding appends to the caller's buffer and refuses any
//! request that would break the line framing, so a bad key can never desynchronise the
//! connection.

use crate::error::{Error, KeyRule, Result};

/// memcached's own key limit (KEY_MAX_LENGTH). A longer key is answered with CLIENT_ERROR,
/// and for a storage command the data block that follows is then read as a command, so
/// the replies stop matching the requests: such a key must never be sent.
pub const MAX_KEY_LENGTH: usize = 250;

/// Longest argument text we send after `stats`. memcached's real subcommands are short
/// words (`items`, `slabs`, `cachedump 1 100`); the bound keeps a caller's string from
/// turning into a line memcached refuses as too long.
pub const MAX_STATS_ARGS_LENGTH: usize = 256;

/// Longest `gat`/`gats` line, `\r\n` included. When memcached has read more than 2048
/// bytes of a line without its newline it closes the connection unless the line starts
/// with `get ` or `gets ` (its large-multiget exception), so a longer gat line works or
/// kills the connection depending on how TCP splits it; at 2048 bytes no partial read can
/// pass that mark. Use [`gat_key_batches`] to split the keys.
pub const MAX_GAT_LINE_LENGTH: usize = 2048;

/// The five storage commands that share the `<verb> <key> <flags> <exptime> <bytes>` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageVerb {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
}

impl StorageVerb {
    /// The command word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageVerb::Set => "set",
            StorageVerb::Add => "add",
            StorageVerb::Replace => "replace",
            StorageVerb::Append => "append",
            StorageVerb::Prepend => "prepend",
        }
    }
}

/// Which items `lru_crawler metadump` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadumpScope {
    /// `all`: every slab class.
    All,
    /// `hash`: walk the hash table instead of the LRUs (sees every item exactly once).
    Hash,
    /// One slab class by number; memcached answers `BADCLASS` for a class it does not have.
    ClassId(u32),
}

/// One memcached request. Keys and data are borrowed: encoding copies them straight into
/// the outbound buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Get {
        keys: &'a [&'a [u8]],
    },
    Gets {
        keys: &'a [&'a [u8]],
    },
    Gat {
        exptime: i64,
        keys: &'a [&'a [u8]],
    },
    Gats {
        exptime: i64,
        keys: &'a [&'a [u8]],
    },
    Store {
        verb: StorageVerb,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        noreply: bool,
    },
    Cas {
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        cas: u64,
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    Incr {
        key: &'a [u8],
        delta: u64,
        noreply: bool,
    },
    Decr {
        key: &'a [u8],
        delta: u64,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    FlushAll {
        delay: Option<u32>,
        noreply: bool,
    },
    /// `stats` or `stats <args>` ("items", "slabs", "settings", "sizes", "conns", ...).
    Stats {
        args: Option<&'a str>,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Metadump {
        scope: MetadumpScope,
    },
    Quit,
}

/// The shape of the reply a request gets, which is all the response parser needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `VALUE` blocks then `END` (get, gets, gat, gats).
    Values,
    /// STORED, NOT_STORED, EXISTS or NOT_FOUND (storage commands and cas).
    Stored,
    /// DELETED or NOT_FOUND.
    Deleted,
    /// A decimal number or NOT_FOUND (incr, decr).
    Arith,
    /// TOUCHED or NOT_FOUND.
    Touched,
    /// OK (flush_all, verbosity).
    Ok,
    /// `STAT` lines then `END`.
    Stats,
    /// `VERSION <text>`.
    Version,
    /// Item lines then `END` (lru_crawler metadump).
    Metadump,
    /// No reply at all: noreply requests and quit.
    Nothing,
    /// One meta reply (`HD`, `VA` and its value, `EN`, ...; see [`crate::meta`]).
    Meta,
}

impl Request<'_> {
    /// Appends this request's bytes to `out`. A key that is empty, longer than
    /// [`MAX_KEY_LENGTH`] or holds a space or control byte is refused with
    /// [`Error::BadKey`], and `stats` arguments with control bytes with
    /// [`Error::BadArgument`]; on error `out` is left as it was. The key check is one pass
    /// over bytes that are about to be copied anyway, so it stays on even after
    /// `keys::check_key`: it is what guarantees every line we write is well formed.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let written = self.write(out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    /// What reply follows this request on the wire.
    pub fn expects(&self) -> Expect {
        match *self {
            Request::Get { .. }
            | Request::Gets { .. }
            | Request::Gat { .. }
            | Request::Gats { .. } => Expect::Values,
            Request::Store { noreply, .. } | Request::Cas { noreply, .. } => {
                reply(noreply, Expect::Stored)
            }
            Request::Delete { noreply, .. } => reply(noreply, Expect::Deleted),
            Request::Incr { noreply, .. } | Request::Decr { noreply, .. } => {
                reply(noreply, Expect::Arith)
            }
            Request::Touch { noreply, .. } => reply(noreply, Expect::Touched),
            Request::FlushAll { noreply, .. } | Request::Verbosity { noreply, .. } => {
                reply(noreply, Expect::Ok)
            }
            Request::Stats { .. } => Expect::Stats,
            Request::Version => Expect::Version,
            Request::Metadump { .. } => Expect::Metadump,
            Request::Quit => Expect::Nothing,
        }
    }

    /// How many `VALUE` blocks the reply may hold: the number of keys asked for (a key
    /// named twice is answered twice), 0 for every other request. The parser refuses a
    /// reply with more, which bounds what a broken server can make us buffer.
    pub fn max_values(&self) -> usize {
        match *self {
            Request::Get { keys }
            | Request::Gets { keys }
            | Request::Gat { keys, .. }
            | Request::Gats { keys, .. } => keys.len(),
            _ => 0,
        }
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        match *self {
            Request::Get { keys } => write_retrieval(out, b"get", None, keys),
            Request::Gets { keys } => write_retrieval(out, b"gets", None, keys),
            Request::Gat { exptime, keys } => write_retrieval(out, b"gat", Some(exptime), keys),
            Request::Gats { exptime, keys } => write_retrieval(out, b"gats", Some(exptime), keys),
            Request::Store {
                verb,
                key,
                flags,
                exptime,
                data,
                noreply,
            } => {
                out.extend_from_slice(verb.as_str().as_bytes());
                write_storage(out, key, flags, exptime, data, None, noreply)
            }
            Request::Cas {
                key,
                flags,
                exptime,
                data,
                cas,
                noreply,
            } => {
                out.extend_from_slice(b"cas");
                write_storage(out, key, flags, exptime, data, Some(cas), noreply)
            }
            Request::Delete { key, noreply } => {
                out.extend_from_slice(b"delete");
                write_key(out, key)?;
                end_line(out, noreply);
                Ok(())
            }
            Request::Incr {
                key,
                delta,
                noreply,
            } => write_arith(out, b"incr", key, delta, noreply),
            Request::Decr {
                key,
                delta,
                noreply,
            } => write_arith(out, b"decr", key, delta, noreply),
            Request::Touch {
                key,
                exptime,
                noreply,
            } => {
                out.extend_from_slice(b"touch");
                write_key(out, key)?;
                out.push(b' ');
                push_i64(out, exptime);
                end_line(out, noreply);
                Ok(())
            }
            Request::FlushAll { delay, noreply } => {
                out.extend_from_slice(b"flush_all");
                if let Some(delay) = delay {
                    out.push(b' ');
                    push_u64(out, delay.into());
                }
                end_line(out, noreply);
                Ok(())
            }
            Request::Stats { args } => {
                out.extend_from_slice(b"stats");
                if let Some(args) = args {
                    check_stats_args(args)?;
                    out.push(b' ');
                    out.extend_from_slice(args.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            Request::Version => {
                out.extend_from_slice(b"version\r\n");
                Ok(())
            }
            Request::Verbosity { level, noreply } => {
                out.extend_from_slice(b"verbosity ");
                push_u64(out, level.into());
                end_line(out, noreply);
                Ok(())
            }
            Request::Metadump { scope } => {
                out.extend_from_slice(b"lru_crawler metadump ");
                match scope {
                    MetadumpScope::All => out.extend_from_slice(b"all"),
                    MetadumpScope::Hash => out.extend_from_slice(b"hash"),
                    MetadumpScope::ClassId(id) => push_u64(out, id.into()),
                }
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            Request::Quit => {
                out.extend_from_slice(b"quit\r\n");
                Ok(())
            }
        }
    }
}

fn reply(noreply: bool, expect: Expect) -> Expect {
    if noreply {
        Expect::Nothing
    } else {
        expect
    }
}

/// `get k1 k2 ...\r\n` for keys given one by one (a get line the engine keeps in one
/// buffer), with the same checks as [`Request::Get`]; on error `out` may hold a part of the
/// line, which the caller takes back.
pub fn write_get_line<'k>(out: &mut Vec<u8>, keys: impl Iterator<Item = &'k [u8]>) -> Result<()> {
    out.extend_from_slice(b"get");
    let mut any = false;
    for key in keys {
        write_key(out, key)?;
        any = true;
    }
    if !any {
        return Err(Error::BadArgument("get needs at least one key".into()));
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn write_retrieval(
    out: &mut Vec<u8>,
    command: &[u8],
    exptime: Option<i64>,
    keys: &[&[u8]],
) -> Result<()> {
    if keys.is_empty() {
        // `get` with no key is answered with ERROR: refuse it here with a clear message.
        return Err(Error::BadArgument(format!(
            "{} needs at least one key",
            String::from_utf8_lossy(command)
        )));
    }
    let start = out.len();
    out.extend_from_slice(command);
    if let Some(exptime) = exptime {
        out.push(b' ');
        push_i64(out, exptime);
    }
    for key in keys {
        write_key(out, key)?;
    }
    out.extend_from_slice(b"\r\n");
    let length = out.len() - start;
    if exptime.is_some() && length > MAX_GAT_LINE_LENGTH {
        return Err(Error::BadArgument(format!(
            "a {} line for {} keys is {length} bytes, over memcached's {MAX_GAT_LINE_LENGTH}; \
             split the keys with gat_key_batches",
            String::from_utf8_lossy(command),
            keys.len()
        )));
    }
    Ok(())
}

/// Splits `keys` into consecutive runs that each fit one `gat` or `gats` line of at most
/// [`MAX_GAT_LINE_LENGTH`] bytes with this `exptime`, keeping their order. Every valid
/// key fits a line on its own; an invalid key is refused later, by `encode`.
pub fn gat_key_batches<'k>(exptime: i64, keys: &'k [&'k [u8]]) -> Vec<&'k [&'k [u8]]> {
    let mut digits = Vec::with_capacity(20);
    push_i64(&mut digits, exptime);
    // "gats <exptime>" and the final "\r\n"; gat is one byte shorter.
    let fixed = "gats ".len() + digits.len() + 2;
    let mut batches = Vec::new();
    let mut start = 0;
    let mut length = fixed;
    for (index, key) in keys.iter().enumerate() {
        let cost = 1 + key.len();
        if index > start && length + cost > MAX_GAT_LINE_LENGTH {
            batches.push(&keys[start..index]);
            start = index;
            length = fixed;
        }
        length += cost;
    }
    if start < keys.len() {
        batches.push(&keys[start..]);
    }
    batches
}

fn write_storage(
    out: &mut Vec<u8>,
    key: &[u8],
    flags: u32,
    exptime: i64,
    data: &[u8],
    cas: Option<u64>,
    noreply: bool,
) -> Result<()> {
    write_key(out, key)?;
    out.reserve(48 + data.len());
    out.push(b' ');
    push_u64(out, flags.into());
    out.push(b' ');
    push_i64(out, exptime);
    out.push(b' ');
    push_u64(out, data.len() as u64);
    if let Some(cas) = cas {
        out.push(b' ');
        push_u64(out, cas);
    }
    end_line(out, noreply);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn write_arith(
    out: &mut Vec<u8>,
    command: &[u8],
    key: &[u8],
    delta: u64,
    noreply: bool,
) -> Result<()> {
    out.extend_from_slice(command);
    write_key(out, key)?;
    out.push(b' ');
    push_u64(out, delta);
    end_line(out, noreply);
    Ok(())
}

/// Writes ` <key>` after checking that the key cannot break the line.
pub(crate) fn write_key(out: &mut Vec<u8>, key: &[u8]) -> Result<()> {
    let rule = if key.is_empty() {
        Some(KeyRule::Empty)
    } else if key.len() > MAX_KEY_LENGTH {
        Some(KeyRule::TooLong)
    } else if key.iter().any(|&b| b <= b' ' || b == 0x7f) {
        Some(KeyRule::ControlOrSpace)
    } else {
        None
    };
    if let Some(rule) = rule {
        return Err(Error::BadKey {
            key: Error::key_text(key),
            rule,
        });
    }
    out.push(b' ');
    out.extend_from_slice(key);
    Ok(())
}

fn check_stats_args(args: &str) -> Result<()> {
    if args.trim().is_empty() {
        return Err(Error::BadArgument(
            "stats arguments must not be empty (omit them to ask for general stats)".into(),
        ));
    }
    if args.len() > MAX_STATS_ARGS_LENGTH {
        return Err(Error::BadArgument(format!(
            "stats arguments are {} bytes, over the limit of {MAX_STATS_ARGS_LENGTH}",
            args.len()
        )));
    }
    if args.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Err(Error::BadArgument(format!(
            "stats arguments {args:?} contain a control character"
        )));
    }
    Ok(())
}

fn end_line(out: &mut Vec<u8>, noreply: bool) {
    if noreply {
        out.extend_from_slice(b" noreply\r\n");
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// Decimal digits without going through `format!`, which would allocate a String.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

pub(crate) fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    push_u64(out, value.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(request: Request) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(&mut out).expect("request encodes");
        out
    }

    fn text(request: Request) -> String {
        String::from_utf8(encoded(request)).expect("ascii request")
    }

    #[test]
    fn retrieval_commands_list_every_key_on_one_line() {
        let keys: &[&[u8]] = &[b"a", b"b", b"c"];
        assert_eq!(text(Request::Get { keys }), "get a b c\r\n");
        assert_eq!(text(Request::Gets { keys: &keys[..1] }), "gets a\r\n");
        assert_eq!(
            text(Request::Gat { exptime: 300, keys }),
            "gat 300 a b c\r\n"
        );
        assert_eq!(
            text(Request::Gats { exptime: -1, keys }),
            "gats -1 a b c\r\n"
        );
    }

    #[test]
    fn storage_commands_carry_flags_exptime_length_and_data() {
        for (verb, word) in [
            (StorageVerb::Set, "set"),
            (StorageVerb::Add, "add"),
            (StorageVerb::Replace, "replace"),
            (StorageVerb::Append, "append"),
            (StorageVerb::Prepend, "prepend"),
        ] {
            let request = Request::Store {
                verb,
                key: b"k",
                flags: 4_294_967_295,
                exptime: 60,
                data: b"hello\r\nworld",
                noreply: false,
            };
            assert_eq!(
                text(request),
                format!("{word} k 4294967295 60 12\r\nhello\r\nworld\r\n")
            );
            assert_eq!(request.expects(), Expect::Stored);
        }
        let quiet = Request::Store {
            verb: StorageVerb::Set,
            key: b"k",
            flags: 0,
            exptime: 0,
            data: b"",
            noreply: true,
        };
        assert_eq!(text(quiet), "set k 0 0 0 noreply\r\n\r\n");
        assert_eq!(quiet.expects(), Expect::Nothing);
    }

    #[test]
    fn cas_adds_the_unique_after_the_length() {
        let request = Request::Cas {
            key: b"k",
            flags: 2,
            exptime: 0,
            data: b"12",
            cas: u64::MAX,
            noreply: false,
        };
        assert_eq!(text(request), "cas k 2 0 2 18446744073709551615\r\n12\r\n");
        assert_eq!(request.expects(), Expect::Stored);
        let quiet = Request::Cas {
            key: b"k",
            flags: 2,
            exptime: 0,
            data: b"12",
            cas: u64::MAX,
            noreply: true,
        };
        assert_eq!(
            text(quiet),
            "cas k 2 0 2 18446744073709551615 noreply\r\n12\r\n"
        );
    }

    #[test]
    fn key_commands_and_their_noreply_forms() {
        assert_eq!(
            text(Request::Delete {
                key: b"k",
                noreply: false
            }),
            "delete k\r\n"
        );
        assert_eq!(
            text(Request::Delete {
                key: b"k",
                noreply: true
            }),
            "delete k noreply\r\n"
        );
        assert_eq!(
            text(Request::Incr {
                key: b"n",
                delta: u64::MAX,
                noreply: false
            }),
            "incr n 18446744073709551615\r\n"
        );
        assert_eq!(
            text(Request::Decr {
                key: b"n",
                delta: 0,
                noreply: true
            }),
            "decr n 0 noreply\r\n"
        );
        assert_eq!(
            text(Request::Touch {
                key: b"k",
                exptime: i64::MIN,
                noreply: false
            }),
            "touch k -9223372036854775808\r\n"
        );
        assert_eq!(
            text(Request::Touch {
                key: b"k",
                exptime: 5,
                noreply: true
            }),
            "touch k 5 noreply\r\n"
        );
    }

    #[test]
    fn admin_commands() {
        assert_eq!(
            text(Request::FlushAll {
                delay: None,
                noreply: false
            }),
            "flush_all\r\n"
        );
        assert_eq!(
            text(Request::FlushAll {
                delay: Some(10),
                noreply: true
            }),
            "flush_all 10 noreply\r\n"
        );
        assert_eq!(text(Request::Stats { args: None }), "stats\r\n");
        assert_eq!(
            text(Request::Stats {
                args: Some("cachedump 1 10")
            }),
            "stats cachedump 1 10\r\n"
        );
        assert_eq!(text(Request::Version), "version\r\n");
        assert_eq!(
            text(Request::Verbosity {
                level: 1,
                noreply: false
            }),
            "verbosity 1\r\n"
        );
        assert_eq!(
            text(Request::Verbosity {
                level: 0,
                noreply: true
            }),
            "verbosity 0 noreply\r\n"
        );
        assert_eq!(
            text(Request::Metadump {
                scope: MetadumpScope::All
            }),
            "lru_crawler metadump all\r\n"
        );
        assert_eq!(
            text(Request::Metadump {
                scope: MetadumpScope::Hash
            }),
            "lru_crawler metadump hash\r\n"
        );
        assert_eq!(
            text(Request::Metadump {
                scope: MetadumpScope::ClassId(12)
            }),
            "lru_crawler metadump 12\r\n"
        );
        assert_eq!(text(Request::Quit), "quit\r\n");
    }

    #[test]
    fn every_request_names_the_reply_it_expects() {
        let keys: &[&[u8]] = &[b"a", b"a"];
        let cases = [
            (Request::Get { keys }, Expect::Values, 2),
            (Request::Gets { keys }, Expect::Values, 2),
            (Request::Gat { exptime: 0, keys }, Expect::Values, 2),
            (Request::Gats { exptime: 0, keys }, Expect::Values, 2),
            (
                Request::Delete {
                    key: b"k",
                    noreply: false,
                },
                Expect::Deleted,
                0,
            ),
            (
                Request::Incr {
                    key: b"k",
                    delta: 1,
                    noreply: false,
                },
                Expect::Arith,
                0,
            ),
            (
                Request::Decr {
                    key: b"k",
                    delta: 1,
                    noreply: false,
                },
                Expect::Arith,
                0,
            ),
            (
                Request::Decr {
                    key: b"k",
                    delta: 1,
                    noreply: true,
                },
                Expect::Nothing,
                0,
            ),
            (
                Request::Touch {
                    key: b"k",
                    exptime: 1,
                    noreply: false,
                },
                Expect::Touched,
                0,
            ),
            (
                Request::Touch {
                    key: b"k",
                    exptime: 1,
                    noreply: true,
                },
                Expect::Nothing,
                0,
            ),
            (
                Request::FlushAll {
                    delay: None,
                    noreply: false,
                },
                Expect::Ok,
                0,
            ),
            (
                Request::FlushAll {
                    delay: None,
                    noreply: true,
                },
                Expect::Nothing,
                0,
            ),
            (
                Request::Verbosity {
                    level: 1,
                    noreply: false,
                },
                Expect::Ok,
                0,
            ),
            (
                Request::Verbosity {
                    level: 1,
                    noreply: true,
                },
                Expect::Nothing,
                0,
            ),
            (
                Request::Stats {
                    args: Some("items"),
                },
                Expect::Stats,
                0,
            ),
            (Request::Version, Expect::Version, 0),
            (
                Request::Metadump {
                    scope: MetadumpScope::All,
                },
                Expect::Metadump,
                0,
            ),
            (Request::Quit, Expect::Nothing, 0),
        ];
        for (request, expect, max_values) in cases {
            assert_eq!(request.expects(), expect, "{request:?}");
            assert_eq!(request.max_values(), max_values, "{request:?}");
        }
    }

    #[test]
    fn keys_that_would_break_the_line_are_refused_and_nothing_is_written() {
        let long = vec![b'k'; MAX_KEY_LENGTH + 1];
        let cases: [(&[u8], KeyRule); 7] = [
            (b"", KeyRule::Empty),
            (&long, KeyRule::TooLong),
            (b"two words", KeyRule::ControlOrSpace),
            (b"line\r\nbreak", KeyRule::ControlOrSpace),
            (b"tab\t", KeyRule::ControlOrSpace),
            (b"nul\0", KeyRule::ControlOrSpace),
            (b"del\x7f", KeyRule::ControlOrSpace),
        ];
        for (key, rule) in cases {
            let keys: &[&[u8]] = &[b"fine", key];
            let mut out = b"earlier\r\n".to_vec();
            for request in [
                Request::Get { keys },
                Request::Store {
                    verb: StorageVerb::Set,
                    key,
                    flags: 0,
                    exptime: 0,
                    data: b"x",
                    noreply: false,
                },
                Request::Delete { key, noreply: true },
                Request::Incr {
                    key,
                    delta: 1,
                    noreply: false,
                },
                Request::Touch {
                    key,
                    exptime: 1,
                    noreply: false,
                },
            ] {
                let err = request.encode(&mut out).expect_err("bad key refused");
                assert_eq!(
                    err,
                    Error::BadKey {
                        key: Error::key_text(key),
                        rule
                    },
                    "{request:?}"
                );
                assert_eq!(out, b"earlier\r\n", "nothing written for {request:?}");
            }
        }
    }

    #[test]
    fn keys_at_the_limit_and_high_bytes_are_sent() {
        let longest = vec![b'k'; MAX_KEY_LENGTH];
        let mut out = Vec::new();
        Request::Delete {
            key: &longest,
            noreply: false,
        }
        .encode(&mut out)
        .expect("250-byte key is fine");
        assert_eq!(out.len(), "delete ".len() + MAX_KEY_LENGTH + 2);
        let utf8 = "clé".as_bytes();
        assert_eq!(
            encoded(Request::Delete {
                key: utf8,
                noreply: false
            }),
            [b"delete ".as_slice(), utf8, b"\r\n"].concat()
        );
    }

    #[test]
    fn get_without_keys_is_refused() {
        let mut out = Vec::new();
        let err = Request::Get { keys: &[] }
            .encode(&mut out)
            .expect_err("no keys");
        assert!(matches!(err, Error::BadArgument(_)), "{err:?}");
        assert!(out.is_empty());
    }

    #[test]
    fn gat_lines_stay_within_memcached_line_limit() {
        let names: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("{i:03}{}", "k".repeat(197)).into_bytes())
            .collect();
        let keys: Vec<&[u8]> = names.iter().map(|k| k.as_slice()).collect();
        for exptime in [0, -1, i64::MIN, 100] {
            let mut out = Vec::new();
            let err = Request::Gats {
                exptime,
                keys: &keys,
            }
            .encode(&mut out)
            .unwrap_err();
            assert!(matches!(err, Error::BadArgument(_)), "{err:?}");
            assert!(out.is_empty());

            let batches = gat_key_batches(exptime, &keys);
            assert_eq!(batches.concat(), keys, "every key once, in order");
            for (n, batch) in batches.iter().enumerate() {
                for request in [
                    Request::Gat {
                        exptime,
                        keys: batch,
                    },
                    Request::Gats {
                        exptime,
                        keys: batch,
                    },
                ] {
                    let mut line = Vec::new();
                    request.encode(&mut line).expect("a batch fits one line");
                    assert!(line.len() <= MAX_GAT_LINE_LENGTH);
                    if let Some(next) = batches.get(n + 1) {
                        // Batches are as full as they can be: one more key would not fit.
                        assert!(line.len() + 1 + next[0].len() > MAX_GAT_LINE_LENGTH - 1);
                    }
                }
            }
        }
        assert!(gat_key_batches(0, &[]).is_empty());
        let long = vec![b'k'; MAX_KEY_LENGTH];
        assert_eq!(
            gat_key_batches(i64::MIN, &[&long]),
            vec![&[long.as_slice()][..]]
        );
        // get and gets have no such limit: memcached reads long multigets whole.
        let mut out = Vec::new();
        Request::Gets { keys: &keys }.encode(&mut out).unwrap();
        assert!(out.len() > MAX_GAT_LINE_LENGTH);
    }

    #[test]
    fn stats_arguments_that_would_break_the_line_are_refused() {
        let long = "x".repeat(MAX_STATS_ARGS_LENGTH + 1);
        for args in [
            "items\r\nflush_all",
            "a\nb",
            "bell\x07",
            "del\x7f",
            "",
            "  ",
            long.as_str(),
        ] {
            let mut out = Vec::new();
            let err = Request::Stats { args: Some(args) }
                .encode(&mut out)
                .expect_err("bad stats args refused");
            assert!(matches!(err, Error::BadArgument(_)), "{args:?}: {err:?}");
            assert!(out.is_empty(), "nothing written for {args:?}");
        }
    }

    #[test]
    fn encoding_appends_after_what_is_already_there() {
        let mut out = Vec::new();
        Request::Version.encode(&mut out).unwrap();
        Request::Get { keys: &[b"k"] }.encode(&mut out).unwrap();
        assert_eq!(out, b"version\r\nget k\r\n");
    }
}
