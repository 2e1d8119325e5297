//! The engine behind the JavaScript Client: the servers with their connection state, the
//! distribution and the codec, driven through two compact binary formats so that one
//! tick of calls crosses into wasm once (`submit`) and each received chunk once (`receive`).
//!
//! All integers are little-endian; `str` is a u32 byte length and the bytes.
//!
//! **Batch** (JavaScript to `submit`): ops until the end of the buffer.
//! ```text
//! op    = opcode:u8 id:u32 opflags:u8 body      opflags bit 0 (HASHED): every `key` below
//! key   = [hash:u32 if HASHED] str                 carries the caller's server hash
//! value = kind:u8 str    kind: 0 bytes, 1 text (UTF-8), 2 int (8 bytes: f64 holding a safe
//!                        integer), 3 long (decimal ASCII), 4 JSON text (stored as JSON or,
//!                        with the pickle serializer, as a pickle), 5 a caller's serialized bytes
//!  1 GET key    2 GETS key    11 DELETE key    15 TOUCH key expiry:u32
//!  3 GET_MULTI  12 DELETE_MULTI          prefix:str count:u32 key*count
//!  4 SET 5 ADD 6 REPLACE 7 APPEND 8 PREPEND  key expiry:u32 min_compress_len:u32 value
//!  9 CAS        key expiry:u32 min_compress_len:u32 cas:u64 value
//! 10 SET_MULTI  prefix:str expiry:u32 min_compress_len:u32 count:u32 (key value)*count
//! 13 INCR 14 DECR  key delta:u64
//! 16 FLUSH_ALL delay:u32    17 STATS args:str (empty: none)    18 VERSION   (every live server)
//! 19 INSPECT key              sent as `gets key`; answered by ITEM (the raw flags and size too)
//! 20 METADUMP server:u16 scope:u8 class:u32   `lru_crawler metadump` on that one server;
//!                        scope 0 `all`, 1 `hash`, 2 the slab class `class` (else 0)
//! ```
//! Keys of multi ops are given without the prefix; hashes are of the full key.
//! A METADUMP must be the only op of its batch, so its write holds that line alone:
//! memcached refuses a metadump while replies to earlier requests on the connection are
//! pending (`ERROR cannot pipeline other commands before metadump`), and leaves unread
//! the requests that arrived in the same read as the metadump line until more bytes come.
//! The caller writes it once the server's earlier replies are in, and holds later writes
//! to that server until its LINES (or ERROR) record.
//!
//! **Submit result**: for each op in batch order `id:u32 status:u8`, then status 0 (QUEUED)
//! `n:u16 server:u16*n` (the op owes one record from each of these servers, in each
//! server's FIFO order; n may be 0, e.g. an empty multi-get) or status 1 (FAILED)
//! `code:u8 message:str` (nothing was sent for the op). Then, until the end, the writes:
//! `server:u16 bytes:str`, one per server with bytes to send.
//!
//! **Receive result**: records until the end, `id:u32 record:u8 body`, one per (op, server)
//! in the order the ops were queued on that server:
//! ```text
//!  0 MISS                   get/gets miss, incr/decr on a missing key
//!  1 VALUE kind:u8 str      3 TRUE    4 FALSE    (stored, deleted, touched, flushed / not)
//!  2 CAS_VALUE cas:u64 kind:u8 str               5 NUMBER digits:str (incr/decr)
//!  6 VALUES count:u32 (index:u32 kind:u8 str)*count   a multi-get part; index into the op's keys
//!  7 KEYS count:u32 index:u32*count   set_multi: keys not stored; delete_multi: keys failed
//!  8 STATS count:u32 (name:str value:str)*count        9 TEXT str (version)
//! 10 ERROR code:u8 message:str        this op failed on this server (memcached's error text)
//! 11 ITEM flags:u32 size:u32 cas:u64 kind:u8 str   an INSPECT hit: the flags and the byte
//!                        length memcached holds (before decompression), then the decoded value
//! 12 LINES count:u32 str*count        metadump item lines as memcached sent them
//! ```
//! A metadump the server refuses (`BUSY ...`, `BADCLASS ...`, `NOTSTARTED ...`, or `ERROR
//! <why>`) is an ERROR record with METADUMP_REFUSED and the server's whole line.
//! Value kinds read back: 0 bytes, 1 text, 2 int (decimal ASCII), 3 long (decimal ASCII),
//! 4 JSON text (JSON values and pickles), 5 serialized bytes for the caller's deserializer.
//! A record with id 0xFFFFFFFF is `code:u8 message:str` after ERROR: the connection broke
//! (malformed bytes); records before it are valid, the caller drops the connection and
//! calls `reset`. Error codes are the order of [`error_code`] (BAD_KEY = 0 ... BAD_ARGUMENT = 9,
//! METADUMP_REFUSED = 10).

mod wire;

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::codec::{self, CodecOptions, Decoded, Payload};
use crate::connection::Connection;
use crate::distribution::{Distribution, HashFunction, Ketama, Modula};
use crate::error::{Error, Result};
use crate::keys;
use crate::request::{MetadumpScope, Request, StorageVerb};
use crate::response::{Item, Response};

use wire::{patch_u32, put_field, put_u16, put_u32, put_u64, put_u8, Reader};

/// Plain gets issued in one batch to one server share one `get k1 k2 ...` line up to this
/// many keys: memcached answers a multi-key get much faster than as many single gets,
/// and the bound keeps the line well inside what memcached reads in one go.
pub const MAX_COALESCED_KEYS: usize = 256;

/// The record id that says "this connection broke".
pub const CONNECTION_BROKEN_ID: u32 = u32::MAX;

pub mod opcode {
    pub const GET: u8 = 1;
    pub const GETS: u8 = 2;
    pub const GET_MULTI: u8 = 3;
    pub const SET: u8 = 4;
    pub const ADD: u8 = 5;
    pub const REPLACE: u8 = 6;
    pub const APPEND: u8 = 7;
    pub const PREPEND: u8 = 8;
    pub const CAS: u8 = 9;
    pub const SET_MULTI: u8 = 10;
    pub const DELETE: u8 = 11;
    pub const DELETE_MULTI: u8 = 12;
    pub const INCR: u8 = 13;
    pub const DECR: u8 = 14;
    pub const TOUCH: u8 = 15;
    pub const FLUSH_ALL: u8 = 16;
    pub const STATS: u8 = 17;
    pub const VERSION: u8 = 18;
    pub const INSPECT: u8 = 19;
    pub const METADUMP: u8 = 20;
}

pub mod record {
    pub const MISS: u8 = 0;
    pub const VALUE: u8 = 1;
    pub const CAS_VALUE: u8 = 2;
    pub const TRUE: u8 = 3;
    pub const FALSE: u8 = 4;
    pub const NUMBER: u8 = 5;
    pub const VALUES: u8 = 6;
    pub const KEYS: u8 = 7;
    pub const STATS: u8 = 8;
    pub const TEXT: u8 = 9;
    pub const ERROR: u8 = 10;
    pub const ITEM: u8 = 11;
    pub const LINES: u8 = 12;
}

/// Value kinds, the same numbers in and out.
pub mod kind {
    pub const BYTES: u8 = 0;
    pub const TEXT: u8 = 1;
    pub const INT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const JSON: u8 = 4;
    pub const SERIALIZED: u8 = 5;
}

const OP_HASHED: u8 = 1;
const STATUS_QUEUED: u8 = 0;
const STATUS_FAILED: u8 = 1;

/// The error's number in the formats: its position in the JavaScript error table.
pub fn error_code(error: &Error) -> u8 {
    match error {
        Error::BadKey { .. } => 0,
        Error::ValueTooLarge { .. } => 1,
        Error::NotSerializable(_) => 2,
        Error::Decode { .. } => 3,
        Error::Protocol(_) => 4,
        Error::UnknownCommand => 5,
        Error::ClientError(_) => 6,
        Error::ServerError(_) => 7,
        Error::NoServer { .. } => 8,
        Error::BadArgument(_) => 9,
        Error::MetadumpRefused(_) => 10,
    }
}

/// Which distribution picks a key's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionKind {
    Modula,
    Ketama,
}

/// How the client was configured; the binding builds it from the JavaScript options.
pub struct EngineConfig {
    /// (address, weight) in the caller's order; the index is the server id in the formats.
    pub servers: Vec<(String, u32)>,
    pub distribution: DistributionKind,
    /// The modula hash. With `Custom`, JavaScript sends every key's hash in the batch and
    /// the function is only called for python-memcached's re-hash past a dead server.
    pub hash: HashFunction,
    /// Whether JavaScript hashes keys itself (HASHED ops are required then).
    pub caller_hashes: bool,
    pub codec: CodecOptions,
    /// When a key's server is dead: re-hash to another (python-memcached) or fail with NO_SERVER.
    pub failover: bool,
}

/// What the next reply on a server's connection completes.
#[derive(Debug)]
enum Awaiting {
    /// One `get` line serving several ops (coalesced gets and multi-get parts).
    Values(GetLine),
    /// A gets of one key; `inspect` asks for an ITEM record rather than CAS_VALUE.
    Gets { id: u32, inspect: bool },
    /// A reply that maps to TRUE / FALSE / MISS / NUMBER / STATS / TEXT.
    Reply { id: u32, reply: ReplyKind },
    /// One request of a set_multi or delete_multi part; `last` closes the part.
    MultiPart {
        id: u32,
        index: u32,
        last: bool,
        reply: ReplyKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    Store,
    Delete,
    Touch,
    Counter,
    Flush,
    Stats,
    Version,
    Metadump,
}

impl ReplyKind {
    /// What memcached should have answered, for error messages.
    fn expected(self) -> &'static str {
        match self {
            ReplyKind::Store => "STORED/NOT_STORED/EXISTS/NOT_FOUND",
            ReplyKind::Delete => "DELETED/NOT_FOUND",
            ReplyKind::Touch => "TOUCHED/NOT_FOUND",
            ReplyKind::Counter => "a number or NOT_FOUND",
            ReplyKind::Flush => "OK",
            ReplyKind::Stats => "STAT lines",
            ReplyKind::Version => "VERSION",
            ReplyKind::Metadump => "item lines and END",
        }
    }
}

/// A get line being built during `submit` (or sent and awaiting its values).
#[derive(Debug, Default)]
struct GetLine {
    keys: Vec<Vec<u8>>,
    /// For each key, its index among the keys of the op that asked for it.
    indices: Vec<u32>,
    parts: Vec<GetPart>,
}

#[derive(Debug)]
struct GetPart {
    id: u32,
    /// A multi-get part (VALUES record) rather than a single get (VALUE / MISS).
    multi: bool,
    keys: std::ops::Range<usize>,
}

struct Server {
    address: String,
    alive: bool,
    connection: Connection,
    awaiting: VecDeque<Awaiting>,
    /// The get line that later gets of this batch may still join.
    open_get: Option<GetLine>,
    /// Indices that failed so far in the set_multi / delete_multi part being answered.
    multi_failed: Vec<u32>,
    /// Touched in the current `submit`: has bytes to write.
    dirty: bool,
}

/// One key of an op as read from the batch.
#[derive(Clone, Copy)]
struct KeyRef<'a> {
    hash: Option<u32>,
    key: &'a [u8],
}

/// A value as read from the batch.
#[derive(Clone, Copy)]
struct ValueRef<'a> {
    kind: u8,
    data: &'a [u8],
}

/// One op of the batch, parsed (the whole batch is parsed before anything is queued, so a
/// malformed batch queues nothing).
enum Body<'a> {
    Key(KeyRef<'a>),
    Touch(KeyRef<'a>, u32),
    Counter(KeyRef<'a>, u64),
    Store {
        key: KeyRef<'a>,
        expiry: u32,
        min_compress_len: u32,
        cas: Option<u64>,
        value: ValueRef<'a>,
    },
    Keys {
        prefix: &'a [u8],
        keys: Vec<KeyRef<'a>>,
    },
    SetMulti {
        prefix: &'a [u8],
        expiry: u32,
        min_compress_len: u32,
        entries: Vec<(KeyRef<'a>, ValueRef<'a>)>,
    },
    Flush(u32),
    Stats(&'a [u8]),
    Version,
    Metadump {
        server: u16,
        scope: MetadumpScope,
    },
}

struct Op<'a> {
    opcode: u8,
    id: u32,
    body: Body<'a>,
}

pub struct Engine {
    servers: Vec<Server>,
    distribution: Distribution,
    codec: CodecOptions,
    caller_hashes: bool,
    failover: bool,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Self> {
        if config.servers.is_empty() {
            return Err(Error::BadArgument(
                "the client needs at least one server".into(),
            ));
        }
        if config.servers.len() > usize::from(u16::MAX) {
            return Err(Error::BadArgument("at most 65535 servers".into()));
        }
        let distribution = match config.distribution {
            DistributionKind::Modula => {
                let weights: Vec<u32> = config.servers.iter().map(|(_, w)| *w).collect();
                Distribution::Modula(Modula::new(&weights, config.hash)?)
            }
            DistributionKind::Ketama => {
                if !matches!(config.hash, HashFunction::Cmemcache) || config.caller_hashes {
                    return Err(Error::BadArgument(
                        "ketama hashes keys with md5 as libmemcached does; hashFunction applies to modula only".into(),
                    ));
                }
                Distribution::Ketama(Ketama::new(&config.servers)?)
            }
        };
        let max_item = config.codec.max_value_size;
        let servers = config
            .servers
            .into_iter()
            .map(|(address, _)| Server {
                address,
                alive: true,
                connection: Connection::new(max_item),
                awaiting: VecDeque::new(),
                open_get: None,
                multi_failed: Vec::new(),
                dirty: false,
            })
            .collect();
        Ok(Engine {
            servers,
            distribution,
            codec: config.codec,
            caller_hashes: config.caller_hashes,
            failover: config.failover,
        })
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// The server is skipped (or, with failover, re-hashed past) until `mark_alive`.
    pub fn mark_dead(&mut self, server: usize) {
        if let Some(s) = self.servers.get_mut(server) {
            s.alive = false;
        }
    }

    pub fn mark_alive(&mut self, server: usize) {
        if let Some(s) = self.servers.get_mut(server) {
            s.alive = true;
        }
    }

    /// The socket died: forget everything pending on it (the caller has failed those ops).
    pub fn reset(&mut self, server: usize) {
        if let Some(s) = self.servers.get_mut(server) {
            s.connection.reset();
            while s.connection.next_response().is_some() {}
            s.awaiting.clear();
            s.open_get = None;
            s.multi_failed.clear();
        }
    }

    /// Queues one batch of ops and returns the submit result (see the module docs). A
    /// malformed batch is an error and queues nothing.
    pub fn submit(&mut self, batch: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.submit_into(batch, &mut out)?;
        Ok(out)
    }

    /// [`Engine::submit`] into a buffer the caller reuses (cleared first).
    pub fn submit_into(&mut self, batch: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let ops = self.parse_batch(batch)?;
        out.reserve(ops.len() * 8 + 64);
        let mut targets: Vec<u16> = Vec::new();
        for op in &ops {
            let out = &mut *out;
            targets.clear();
            put_u32(out, op.id);
            match self.queue(op, &mut targets) {
                Ok(()) => {
                    put_u8(out, STATUS_QUEUED);
                    put_u16(out, targets.len() as u16);
                    for &t in &targets {
                        put_u16(out, t);
                    }
                }
                Err(error) => {
                    put_u8(out, STATUS_FAILED);
                    put_u8(out, error_code(&error));
                    put_field(out, error.to_string().as_bytes());
                }
            }
        }
        for index in 0..self.servers.len() {
            self.close_get(index);
            let server = &mut self.servers[index];
            if server.dirty {
                server.dirty = false;
                let bytes = server.connection.take_outbound();
                if !bytes.is_empty() {
                    put_u16(out, index as u16);
                    put_field(out, &bytes);
                }
            }
        }
        Ok(())
    }

    /// Feeds bytes that arrived from `server` and returns the records of every reply they
    /// completed (see the module docs).
    pub fn receive(&mut self, server: usize, chunk: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.receive_into(server, chunk, &mut out)?;
        Ok(out)
    }

    /// [`Engine::receive`] into a buffer the caller reuses (cleared first).
    pub fn receive_into(&mut self, server: usize, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let Some(s) = self.servers.get_mut(server) else {
            return Err(Error::BadArgument(format!("no server {server}")));
        };
        let received = s.connection.receive(chunk);
        // Records are about as large as the replies they come from: one reservation, not
        // a doubling series per chunk.
        out.reserve(chunk.len() + 64);
        while let Some(response) = self.servers[server].connection.next_response() {
            self.complete(server, response, out)?;
        }
        if let Err(error) = received {
            put_u32(out, CONNECTION_BROKEN_ID);
            put_u8(out, record::ERROR);
            put_u8(out, error_code(&error));
            put_field(out, error.to_string().as_bytes());
        }
        Ok(())
    }

    // ---- submit: parsing the batch ------------------------------------------------

    fn parse_batch<'a>(&self, batch: &'a [u8]) -> Result<Vec<Op<'a>>> {
        let mut r = Reader::new(batch);
        let mut ops = Vec::new();
        while !r.is_done() {
            let opcode = r.u8()?;
            let id = r.u32()?;
            let hashed = r.u8()? & OP_HASHED != 0;
            if hashed != self.caller_hashes {
                return Err(Error::BadArgument(format!(
                    "malformed batch: op {id} {} explicit hashes",
                    if hashed { "has" } else { "lacks" }
                )));
            }
            let key = |r: &mut Reader<'a>| -> Result<KeyRef<'a>> {
                let hash = if hashed { Some(r.u32()?) } else { None };
                Ok(KeyRef {
                    hash,
                    key: r.field()?,
                })
            };
            let value = |r: &mut Reader<'a>| -> Result<ValueRef<'a>> {
                Ok(ValueRef {
                    kind: r.u8()?,
                    data: r.field()?,
                })
            };
            let body = match opcode {
                opcode::GET | opcode::GETS | opcode::INSPECT | opcode::DELETE => {
                    Body::Key(key(&mut r)?)
                }
                opcode::TOUCH => {
                    let k = key(&mut r)?;
                    Body::Touch(k, r.u32()?)
                }
                opcode::INCR | opcode::DECR => {
                    let k = key(&mut r)?;
                    Body::Counter(k, r.u64()?)
                }
                opcode::SET
                | opcode::ADD
                | opcode::REPLACE
                | opcode::APPEND
                | opcode::PREPEND
                | opcode::CAS => {
                    let k = key(&mut r)?;
                    let expiry = r.u32()?;
                    let min_compress_len = r.u32()?;
                    let cas = if opcode == opcode::CAS {
                        Some(r.u64()?)
                    } else {
                        None
                    };
                    Body::Store {
                        key: k,
                        expiry,
                        min_compress_len,
                        cas,
                        value: value(&mut r)?,
                    }
                }
                opcode::GET_MULTI | opcode::DELETE_MULTI => {
                    let prefix = r.field()?;
                    let n = r.count(4)?;
                    let mut keys = Vec::with_capacity(n);
                    for _ in 0..n {
                        keys.push(key(&mut r)?);
                    }
                    Body::Keys { prefix, keys }
                }
                opcode::SET_MULTI => {
                    let prefix = r.field()?;
                    let expiry = r.u32()?;
                    let min_compress_len = r.u32()?;
                    let n = r.count(9)?;
                    let mut entries = Vec::with_capacity(n);
                    for _ in 0..n {
                        let k = key(&mut r)?;
                        entries.push((k, value(&mut r)?));
                    }
                    Body::SetMulti {
                        prefix,
                        expiry,
                        min_compress_len,
                        entries,
                    }
                }
                opcode::FLUSH_ALL => Body::Flush(r.u32()?),
                opcode::STATS => Body::Stats(r.field()?),
                opcode::VERSION => Body::Version,
                opcode::METADUMP => {
                    let server = r.u16()?;
                    let scope = match (r.u8()?, r.u32()?) {
                        (0, _) => MetadumpScope::All,
                        (1, _) => MetadumpScope::Hash,
                        (2, class) => MetadumpScope::ClassId(class),
                        (other, _) => {
                            return Err(Error::BadArgument(format!(
                                "malformed batch: unknown metadump scope {other}"
                            )))
                        }
                    };
                    Body::Metadump { server, scope }
                }
                other => {
                    return Err(Error::BadArgument(format!(
                        "malformed batch: unknown opcode {other}"
                    )))
                }
            };
            ops.push(Op { opcode, id, body });
        }
        if ops.len() > 1 && ops.iter().any(|op| op.opcode == opcode::METADUMP) {
            return Err(Error::BadArgument(
                "malformed batch: a metadump must be the only op of its batch".into(),
            ));
        }
        Ok(ops)
    }

    // ---- submit: queueing one op --------------------------------------------------

    /// Queues one op; on error nothing of it was queued.
    fn queue(&mut self, op: &Op, targets: &mut Vec<u16>) -> Result<()> {
        match &op.body {
            Body::Key(k) => {
                let server = self.server_for(k, k.key)?;
                targets.push(server as u16);
                match op.opcode {
                    opcode::GET => self.join_get(server, op.id, false, vec![(k.key.to_vec(), 0)]),
                    opcode::GETS | opcode::INSPECT => self.push(
                        server,
                        &Request::Gets { keys: &[k.key] },
                        Awaiting::Gets {
                            id: op.id,
                            inspect: op.opcode == opcode::INSPECT,
                        },
                    ),
                    _ => self.push(
                        server,
                        &Request::Delete {
                            key: k.key,
                            noreply: false,
                        },
                        Awaiting::Reply {
                            id: op.id,
                            reply: ReplyKind::Delete,
                        },
                    ),
                }
            }
            Body::Touch(k, expiry) => {
                let server = self.server_for(k, k.key)?;
                targets.push(server as u16);
                self.push(
                    server,
                    &Request::Touch {
                        key: k.key,
                        exptime: i64::from(*expiry),
                        noreply: false,
                    },
                    Awaiting::Reply {
                        id: op.id,
                        reply: ReplyKind::Touch,
                    },
                )
            }
            Body::Counter(k, delta) => {
                let server = self.server_for(k, k.key)?;
                targets.push(server as u16);
                let request = if op.opcode == opcode::INCR {
                    Request::Incr {
                        key: k.key,
                        delta: *delta,
                        noreply: false,
                    }
                } else {
                    Request::Decr {
                        key: k.key,
                        delta: *delta,
                        noreply: false,
                    }
                };
                self.push(
                    server,
                    &request,
                    Awaiting::Reply {
                        id: op.id,
                        reply: ReplyKind::Counter,
                    },
                )
            }
            Body::Store {
                key,
                expiry,
                min_compress_len,
                cas,
                value,
            } => {
                let (flags, data) = self.encode(key.key, value, *min_compress_len)?;
                let server = self.server_for(key, key.key)?;
                targets.push(server as u16);
                let exptime = i64::from(*expiry);
                let request = match cas {
                    Some(cas) => Request::Cas {
                        key: key.key,
                        flags,
                        exptime,
                        data: &data,
                        cas: *cas,
                        noreply: false,
                    },
                    None => Request::Store {
                        verb: verb(op.opcode),
                        key: key.key,
                        flags,
                        exptime,
                        data: &data,
                        noreply: false,
                    },
                };
                self.push(
                    server,
                    &request,
                    Awaiting::Reply {
                        id: op.id,
                        reply: ReplyKind::Store,
                    },
                )
            }
            Body::Keys { prefix, keys } => {
                // Every key is checked and placed before anything is queued.
                let mut placed: Vec<(usize, Vec<u8>, u32)> = Vec::with_capacity(keys.len());
                for (index, k) in keys.iter().enumerate() {
                    let full = self.full_key(prefix, k.key)?;
                    let server = self.server_for(k, &full)?;
                    placed.push((server, full, index as u32));
                }
                let per_server = group_by_server(&mut placed, targets);
                if op.opcode == opcode::GET_MULTI {
                    for (server, entries) in per_server {
                        self.join_get(server, op.id, true, entries)?;
                    }
                } else {
                    for (server, entries) in per_server {
                        let n = entries.len();
                        for (j, (key, index)) in entries.into_iter().enumerate() {
                            self.push(
                                server,
                                &Request::Delete {
                                    key: &key,
                                    noreply: false,
                                },
                                Awaiting::MultiPart {
                                    id: op.id,
                                    index,
                                    last: j + 1 == n,
                                    reply: ReplyKind::Delete,
                                },
                            )?;
                        }
                    }
                }
                Ok(())
            }
            Body::SetMulti {
                prefix,
                expiry,
                min_compress_len,
                entries,
            } => {
                let mut placed: Vec<(usize, Vec<u8>, u32)> = Vec::with_capacity(entries.len());
                let mut encoded: Vec<(u32, Cow<[u8]>)> = Vec::with_capacity(entries.len());
                for (index, (k, v)) in entries.iter().enumerate() {
                    let full = self.full_key(prefix, k.key)?;
                    encoded.push(self.encode(&full, v, *min_compress_len)?);
                    let server = self.server_for(k, &full)?;
                    placed.push((server, full, index as u32));
                }
                let exptime = i64::from(*expiry);
                for (server, items) in group_by_server(&mut placed, targets) {
                    let n = items.len();
                    for (j, (key, index)) in items.into_iter().enumerate() {
                        let (flags, data) = &encoded[index as usize];
                        self.push(
                            server,
                            &Request::Store {
                                verb: StorageVerb::Set,
                                key: &key,
                                flags: *flags,
                                exptime,
                                data,
                                noreply: false,
                            },
                            Awaiting::MultiPart {
                                id: op.id,
                                index,
                                last: j + 1 == n,
                                reply: ReplyKind::Store,
                            },
                        )?;
                    }
                }
                Ok(())
            }
            Body::Flush(delay) => {
                let delay = if *delay == 0 { None } else { Some(*delay) };
                self.queue_on_every_server(
                    targets,
                    &Request::FlushAll {
                        delay,
                        noreply: false,
                    },
                    op.id,
                    ReplyKind::Flush,
                )
            }
            Body::Stats(args) => {
                let args = std::str::from_utf8(args)
                    .map_err(|_| Error::BadArgument("stats arguments must be UTF-8".into()))?;
                let args = if args.is_empty() { None } else { Some(args) };
                self.queue_on_every_server(
                    targets,
                    &Request::Stats { args },
                    op.id,
                    ReplyKind::Stats,
                )
            }
            Body::Version => {
                self.queue_on_every_server(targets, &Request::Version, op.id, ReplyKind::Version)
            }
            Body::Metadump { server, scope } => {
                let index = usize::from(*server);
                let Some(s) = self.servers.get(index) else {
                    return Err(Error::BadArgument(format!(
                        "metadump of server {index}: the client has {} servers",
                        self.servers.len()
                    )));
                };
                if !s.alive {
                    return Err(Error::NoServer { key: String::new() });
                }
                self.push(
                    index,
                    &Request::Metadump { scope: *scope },
                    Awaiting::Reply {
                        id: op.id,
                        reply: ReplyKind::Metadump,
                    },
                )?;
                targets.push(*server);
                Ok(())
            }
        }
    }

    /// The server a key's requests go to now, with the routing `submit` applies (dead
    /// servers re-hashed past or refused); `hash` is the caller's, given exactly when the
    /// configuration has the caller hash keys.
    pub fn server_for_key(&self, key: &[u8], hash: Option<u32>) -> Result<usize> {
        if hash.is_some() != self.caller_hashes {
            return Err(Error::BadArgument(format!(
                "server_for_key {} an explicit hash",
                if hash.is_some() { "has" } else { "lacks" }
            )));
        }
        self.server_for(&KeyRef { hash, key }, key)
    }

    fn full_key(&self, prefix: &[u8], key: &[u8]) -> Result<Vec<u8>> {
        keys::prefixed_key(prefix, key)
    }

    /// The live server for a key (python-memcached's re-hash past dead ones with
    /// failover; NO_SERVER when its server is dead without failover, or none is alive).
    fn server_for(&self, k: &KeyRef, full_key: &[u8]) -> Result<usize> {
        keys::check_key(full_key)?;
        let chosen = if self.failover {
            self.pick(k.hash, full_key, |i| self.servers[i].alive)?
        } else {
            self.pick(k.hash, full_key, |_| true)?
                .filter(|&i| self.servers[i].alive)
        };
        chosen.ok_or_else(|| Error::NoServer {
            key: Error::key_text(full_key),
        })
    }

    fn pick(
        &self,
        hash: Option<u32>,
        key: &[u8],
        alive: impl Fn(usize) -> bool,
    ) -> Result<Option<usize>> {
        match (&self.distribution, hash) {
            (Distribution::Modula(m), Some(hash)) => m.server_for_hash(hash, alive),
            (d, _) => d.server_for_key(key, alive),
        }
    }

    fn encode<'a>(
        &mut self,
        key: &[u8],
        value: &ValueRef<'a>,
        min_compress_len: u32,
    ) -> Result<(u32, Cow<'a, [u8]>)> {
        let payload = payload(value)?;
        self.codec.min_compress_len = min_compress_len as usize;
        codec::encode_value(key, payload, &self.codec)
    }

    /// Adds keys to the server's open get line (opening one if needed).
    fn join_get(
        &mut self,
        server: usize,
        id: u32,
        multi: bool,
        entries: Vec<(Vec<u8>, u32)>,
    ) -> Result<()> {
        let s = &mut self.servers[server];
        if let Some(line) = &s.open_get {
            if line.keys.len() + entries.len() > MAX_COALESCED_KEYS {
                self.close_get(server);
            }
        }
        let s = &mut self.servers[server];
        let line = s.open_get.get_or_insert_with(GetLine::default);
        let start = line.keys.len();
        for (key, index) in entries {
            line.keys.push(key);
            line.indices.push(index);
        }
        line.parts.push(GetPart {
            id,
            multi,
            keys: start..line.keys.len(),
        });
        s.dirty = true;
        Ok(())
    }

    /// Sends the server's open get line, if any: nothing may overtake it.
    fn close_get(&mut self, server: usize) {
        let s = &mut self.servers[server];
        let Some(line) = s.open_get.take() else {
            return;
        };
        let refs: Vec<&[u8]> = line.keys.iter().map(Vec::as_slice).collect();
        s.connection
            .push(&Request::Get { keys: &refs })
            .expect("every key was checked with keys::check_key when it joined the line");
        s.awaiting.push_back(Awaiting::Values(line));
    }

    fn push(&mut self, server: usize, request: &Request, awaiting: Awaiting) -> Result<()> {
        self.close_get(server);
        let s = &mut self.servers[server];
        s.connection.push(request)?;
        s.awaiting.push_back(awaiting);
        s.dirty = true;
        Ok(())
    }

    fn queue_on_every_server(
        &mut self,
        targets: &mut Vec<u16>,
        request: &Request,
        id: u32,
        reply: ReplyKind,
    ) -> Result<()> {
        let live: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].alive)
            .collect();
        if live.is_empty() {
            return Err(Error::NoServer { key: String::new() });
        }
        // Refuse a request that cannot be encoded (stats arguments) before any server has
        // it queued: the op must be on all of them or on none.
        request.encode(&mut Vec::new())?;
        for server in live {
            self.push(server, request, Awaiting::Reply { id, reply })?;
            targets.push(server as u16);
        }
        Ok(())
    }
}

impl Engine {
    // ---- receive: turning replies into records ------------------------------------

    fn complete(&mut self, server: usize, response: Response, out: &mut Vec<u8>) -> Result<()> {
        let s = &mut self.servers[server];
        let Some(awaiting) = s.awaiting.pop_front() else {
            // The connection only yields replies to requests it queued, and every queued
            // request has its entry here; a mismatch is a bug to surface, not to hide.
            return Err(Error::Protocol(format!(
                "{}: a reply with no request waiting for it",
                s.address
            )));
        };
        match awaiting {
            Awaiting::Values(line) => match response {
                Response::Values(items) => self.values_records(&line, &items, out),
                other => {
                    let error = reply_error(other, "VALUE/END");
                    for part in &line.parts {
                        error_record(out, part.id, &error);
                    }
                }
            },
            Awaiting::Gets { id, inspect } => match response {
                Response::Values(items) => match items.first() {
                    None => record_head(out, id, record::MISS),
                    Some(item) => {
                        let at = out.len();
                        if inspect {
                            record_head(out, id, record::ITEM);
                            put_u32(out, item.flags);
                            put_u32(out, item.data.len() as u32);
                        } else {
                            record_head(out, id, record::CAS_VALUE);
                        }
                        put_u64(out, item.cas.unwrap_or(0));
                        if let Err(error) = self.put_value(out, item) {
                            out.truncate(at);
                            error_record(out, id, &error);
                        }
                    }
                },
                other => error_record(out, id, &reply_error(other, "VALUE/END")),
            },
            Awaiting::Reply { id, reply } => reply_record(out, id, reply, response),
            Awaiting::MultiPart {
                id,
                index,
                last,
                reply,
            } => {
                let ok = matches!(
                    (reply, &response),
                    (ReplyKind::Store, Response::Stored)
                        | (ReplyKind::Delete, Response::Deleted)
                        | (ReplyKind::Delete, Response::NotFound)
                );
                let s = &mut self.servers[server];
                if !ok {
                    s.multi_failed.push(index);
                }
                if last {
                    record_head(out, id, record::KEYS);
                    put_u32(out, s.multi_failed.len() as u32);
                    for &i in &s.multi_failed {
                        put_u32(out, i);
                    }
                    s.multi_failed.clear();
                }
            }
        }
        Ok(())
    }

    /// Splits one get line's values among the ops that share it.
    fn values_records(&self, line: &GetLine, items: &[Item], out: &mut Vec<u8>) {
        let hits = match_items(&line.keys, items);
        for part in &line.parts {
            let start = out.len();
            if part.multi {
                record_head(out, part.id, record::VALUES);
                let count_at = out.len();
                put_u32(out, 0);
                let mut count = 0u32;
                for k in part.keys.clone() {
                    if let Some(item) = hits[k].map(|i| &items[i]) {
                        put_u32(out, line.indices[k]);
                        if let Err(error) = self.put_value(out, item) {
                            out.truncate(start);
                            error_record(out, part.id, &error);
                            count = u32::MAX;
                            break;
                        }
                        count += 1;
                    }
                }
                if count != u32::MAX {
                    patch_u32(out, count_at, count);
                }
            } else {
                match hits[part.keys.start].map(|i| &items[i]) {
                    None => record_head(out, part.id, record::MISS),
                    Some(item) => {
                        record_head(out, part.id, record::VALUE);
                        if let Err(error) = self.put_value(out, item) {
                            out.truncate(start);
                            error_record(out, part.id, &error);
                        }
                    }
                }
            }
        }
    }

    /// `kind:u8 str` of a stored value, decoded by its flags.
    fn put_value(&self, out: &mut Vec<u8>, item: &Item) -> Result<()> {
        match codec::decode_value(item.flags, &item.data, &self.codec)? {
            Decoded::Bytes(b) => {
                put_u8(out, kind::BYTES);
                put_field(out, &b);
            }
            Decoded::Text(t) => {
                put_u8(out, kind::TEXT);
                put_field(out, t.as_bytes());
            }
            Decoded::Int(n) => {
                put_u8(out, kind::INT);
                put_field(out, n.to_string().as_bytes());
            }
            Decoded::Long(digits) => {
                put_u8(out, kind::LONG);
                put_field(out, digits.as_bytes());
            }
            Decoded::Json(j) => {
                put_u8(out, kind::JSON);
                put_field(out, &j);
            }
            Decoded::Serialized(b) => {
                put_u8(out, kind::SERIALIZED);
                put_field(out, &b);
            }
        }
        Ok(())
    }
}

/// For each key of a get line, the index of its item. memcached answers in the order the
/// keys were asked (a key asked twice is answered twice), so one walk pairs them; should
/// a server ever answer out of order, a search pairs what the walk could not.
fn match_items(keys: &[Vec<u8>], items: &[Item]) -> Vec<Option<usize>> {
    let mut hits = vec![None; keys.len()];
    let mut next = 0;
    for (k, key) in keys.iter().enumerate() {
        if next < items.len() && items[next].key == *key {
            hits[k] = Some(next);
            next += 1;
        }
    }
    if next < items.len() {
        let mut used = vec![false; items.len()];
        for h in hits.iter().flatten() {
            used[*h] = true;
        }
        for (k, key) in keys.iter().enumerate() {
            if hits[k].is_none() {
                if let Some(i) = (0..items.len()).find(|&i| !used[i] && items[i].key == *key) {
                    used[i] = true;
                    hits[k] = Some(i);
                }
            }
        }
    }
    hits
}

fn record_head(out: &mut Vec<u8>, id: u32, record: u8) {
    put_u32(out, id);
    put_u8(out, record);
}

fn error_record(out: &mut Vec<u8>, id: u32, error: &Error) {
    record_head(out, id, record::ERROR);
    put_u8(out, error_code(error));
    put_field(out, error.to_string().as_bytes());
}

/// memcached's error replies as errors; any other reply where `expected` belonged is a
/// protocol error (the parser only builds replies of the expected shape, so this is a
/// guard, not a path).
fn reply_error(response: Response, expected: &str) -> Error {
    match response {
        Response::Error => Error::UnknownCommand,
        Response::ClientError(text) => Error::ClientError(text),
        Response::ServerError(text) => Error::ServerError(text),
        other => Error::Protocol(format!("expected {expected}, got {}", reply_name(&other))),
    }
}

fn reply_record(out: &mut Vec<u8>, id: u32, reply: ReplyKind, response: Response) {
    use ReplyKind as K;
    match (reply, response) {
        (K::Store, Response::Stored)
        | (K::Delete, Response::Deleted)
        | (K::Touch, Response::Touched) => record_head(out, id, record::TRUE),
        (K::Flush, Response::Ok) => record_head(out, id, record::TRUE),
        (K::Store, Response::NotStored | Response::Exists | Response::NotFound)
        | (K::Delete, Response::NotFound)
        | (K::Touch, Response::NotFound) => record_head(out, id, record::FALSE),
        (K::Counter, Response::NotFound) => record_head(out, id, record::MISS),
        (K::Counter, Response::Number(n)) => {
            record_head(out, id, record::NUMBER);
            put_field(out, n.to_string().as_bytes());
        }
        (K::Stats, Response::Stats(lines)) => {
            record_head(out, id, record::STATS);
            put_u32(out, lines.len() as u32);
            for (name, value) in &lines {
                put_field(out, name.as_bytes());
                put_field(out, value.as_bytes());
            }
        }
        (K::Version, Response::Version(text)) => {
            record_head(out, id, record::TEXT);
            put_field(out, text.as_bytes());
        }
        (K::Metadump, Response::Metadump(lines)) => {
            record_head(out, id, record::LINES);
            put_u32(out, lines.len() as u32);
            for line in &lines {
                put_field(out, line.as_bytes());
            }
        }
        (K::Metadump, Response::MetadumpRefused(line)) => {
            error_record(out, id, &Error::MetadumpRefused(line))
        }
        (reply, other) => error_record(out, id, &reply_error(other, reply.expected())),
    }
}

/// The reply's name for error messages (without its contents: no Debug of server data).
fn reply_name(response: &Response) -> &'static str {
    match response {
        Response::Values(_) => "VALUE/END",
        Response::Stored => "STORED",
        Response::NotStored => "NOT_STORED",
        Response::Exists => "EXISTS",
        Response::NotFound => "NOT_FOUND",
        Response::Deleted => "DELETED",
        Response::Touched => "TOUCHED",
        Response::Ok => "OK",
        Response::Number(_) => "a number",
        Response::Stats(_) => "STAT lines",
        Response::Reset => "RESET",
        Response::Version(_) => "VERSION",
        Response::Metadump(_) | Response::MetadumpRefused(_) => "metadump lines",
        Response::Error => "ERROR",
        Response::ClientError(_) => "CLIENT_ERROR",
        Response::ServerError(_) => "SERVER_ERROR",
    }
}

fn verb(opcode: u8) -> StorageVerb {
    match opcode {
        opcode::ADD => StorageVerb::Add,
        opcode::REPLACE => StorageVerb::Replace,
        opcode::APPEND => StorageVerb::Append,
        opcode::PREPEND => StorageVerb::Prepend,
        _ => StorageVerb::Set,
    }
}

/// A batch value as the codec's payload.
fn payload<'a>(value: &ValueRef<'a>) -> Result<Payload<'a>> {
    let data = value.data;
    Ok(match value.kind {
        kind::BYTES => Payload::Bytes(data),
        kind::TEXT => Payload::Text(
            std::str::from_utf8(data)
                .map_err(|e| Error::NotSerializable(format!("text is not UTF-8: {e}")))?,
        ),
        kind::INT => {
            let bits: [u8; 8] = data.try_into().map_err(|_| {
                Error::BadArgument(format!("an int value takes 8 bytes, got {}", data.len()))
            })?;
            let n = f64::from_le_bytes(bits);
            // JavaScript sends only safe integers here; anything else is a malformed batch.
            if n.fract() != 0.0 || n.abs() > 9_007_199_254_740_991.0 {
                return Err(Error::BadArgument(format!("{n} is not a safe integer")));
            }
            Payload::Int(n as i64)
        }
        kind::LONG => Payload::Long(
            std::str::from_utf8(data)
                .map_err(|_| Error::NotSerializable("a long must be decimal digits".into()))?,
        ),
        kind::JSON => Payload::Json(data),
        kind::SERIALIZED => Payload::Serialized(data),
        other => return Err(Error::BadArgument(format!("unknown value kind {other}"))),
    })
}

/// One server's share of a multi op: (full key, index among the op's keys).
type KeyGroup = Vec<(Vec<u8>, u32)>;

/// Groups (server, key, index) by server, in the order servers first appear, and records
/// each server once in `targets`.
fn group_by_server(
    placed: &mut Vec<(usize, Vec<u8>, u32)>,
    targets: &mut Vec<u16>,
) -> Vec<(usize, KeyGroup)> {
    let mut groups: Vec<(usize, KeyGroup)> = Vec::new();
    for (server, key, index) in placed.drain(..) {
        match groups.iter_mut().find(|(s, _)| *s == server) {
            Some((_, entries)) => entries.push((key, index)),
            None => {
                targets.push(server as u16);
                groups.push((server, vec![(key, index)]));
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds batches the way client-wasm/js/batch.js does.
    #[derive(Default)]
    struct Batch(Vec<u8>);

    impl Batch {
        fn op(mut self, opcode: u8, id: u32) -> Self {
            put_u8(&mut self.0, opcode);
            put_u32(&mut self.0, id);
            put_u8(&mut self.0, 0);
            self
        }
        fn hashed_op(mut self, opcode: u8, id: u32) -> Self {
            put_u8(&mut self.0, opcode);
            put_u32(&mut self.0, id);
            put_u8(&mut self.0, OP_HASHED);
            self
        }
        fn u32(mut self, v: u32) -> Self {
            put_u32(&mut self.0, v);
            self
        }
        fn u64(mut self, v: u64) -> Self {
            put_u64(&mut self.0, v);
            self
        }
        fn str(mut self, s: &[u8]) -> Self {
            put_field(&mut self.0, s);
            self
        }
        fn value(mut self, kind: u8, data: &[u8]) -> Self {
            put_u8(&mut self.0, kind);
            put_field(&mut self.0, data);
            self
        }
        fn get(self, id: u32, key: &[u8]) -> Self {
            self.op(opcode::GET, id).str(key)
        }
        fn set(self, id: u32, key: &[u8], kind: u8, data: &[u8]) -> Self {
            self.op(opcode::SET, id)
                .str(key)
                .u32(0)
                .u32(0)
                .value(kind, data)
        }
    }

    /// An op's status: the servers it was queued on, or (error code, message).
    type Outcome = std::result::Result<Vec<u16>, (u8, String)>;

    /// What `submit` returned, decoded.
    #[derive(Debug, PartialEq)]
    struct Submitted {
        ops: Vec<(u32, Outcome)>,
        writes: Vec<(u16, Vec<u8>)>,
    }

    fn decode_submit(out: &[u8], n_ops: usize) -> Submitted {
        let mut r = Reader::new(out);
        let mut ops = Vec::new();
        for _ in 0..n_ops {
            let id = r.u32().unwrap();
            if r.u8().unwrap() == STATUS_QUEUED {
                let n = u16_at(&mut r);
                ops.push((id, Ok((0..n).map(|_| u16_at(&mut r)).collect())));
            } else {
                let code = r.u8().unwrap();
                ops.push((
                    id,
                    Err((
                        code,
                        String::from_utf8(r.field().unwrap().to_vec()).unwrap(),
                    )),
                ));
            }
        }
        let mut writes = Vec::new();
        while !r.is_done() {
            let server = u16_at(&mut r);
            writes.push((server, r.field().unwrap().to_vec()));
        }
        Submitted { ops, writes }
    }

    fn u16_at(r: &mut Reader) -> u16 {
        u16::from(r.u8().unwrap()) | (u16::from(r.u8().unwrap()) << 8)
    }

    /// One record of a receive result, decoded far enough to compare.
    #[derive(Debug, PartialEq)]
    enum Rec {
        Miss(u32),
        Value(u32, u8, Vec<u8>),
        CasValue(u32, u64, u8, Vec<u8>),
        True(u32),
        False(u32),
        Number(u32, String),
        Values(u32, Vec<(u32, u8, Vec<u8>)>),
        Keys(u32, Vec<u32>),
        Stats(u32, usize),
        Text(u32, String),
        Error(u32, u8),
        /// id, flags, size, cas, kind, decoded bytes
        Item(u32, u32, u32, u64, u8, Vec<u8>),
        Lines(u32, Vec<String>),
    }

    fn decode_records(out: &[u8]) -> Vec<Rec> {
        let mut r = Reader::new(out);
        let mut recs = Vec::new();
        while !r.is_done() {
            let id = r.u32().unwrap();
            let rec = match r.u8().unwrap() {
                record::MISS => Rec::Miss(id),
                record::VALUE => Rec::Value(id, r.u8().unwrap(), r.field().unwrap().to_vec()),
                record::CAS_VALUE => {
                    let cas = r.u64().unwrap();
                    Rec::CasValue(id, cas, r.u8().unwrap(), r.field().unwrap().to_vec())
                }
                record::TRUE => Rec::True(id),
                record::FALSE => Rec::False(id),
                record::NUMBER => {
                    Rec::Number(id, String::from_utf8(r.field().unwrap().to_vec()).unwrap())
                }
                record::VALUES => {
                    let n = r.u32().unwrap();
                    let items = (0..n)
                        .map(|_| {
                            (
                                r.u32().unwrap(),
                                r.u8().unwrap(),
                                r.field().unwrap().to_vec(),
                            )
                        })
                        .collect();
                    Rec::Values(id, items)
                }
                record::KEYS => {
                    let n = r.u32().unwrap();
                    Rec::Keys(id, (0..n).map(|_| r.u32().unwrap()).collect())
                }
                record::STATS => {
                    let n = r.u32().unwrap();
                    for _ in 0..n {
                        r.field().unwrap();
                        r.field().unwrap();
                    }
                    Rec::Stats(id, n as usize)
                }
                record::TEXT => {
                    Rec::Text(id, String::from_utf8(r.field().unwrap().to_vec()).unwrap())
                }
                record::ERROR => {
                    let code = r.u8().unwrap();
                    r.field().unwrap();
                    Rec::Error(id, code)
                }
                record::ITEM => {
                    let flags = r.u32().unwrap();
                    let size = r.u32().unwrap();
                    let cas = r.u64().unwrap();
                    let kind = r.u8().unwrap();
                    Rec::Item(id, flags, size, cas, kind, r.field().unwrap().to_vec())
                }
                record::LINES => {
                    let n = r.u32().unwrap();
                    let lines = (0..n)
                        .map(|_| String::from_utf8(r.field().unwrap().to_vec()).unwrap())
                        .collect();
                    Rec::Lines(id, lines)
                }
                other => panic!("unknown record {other}"),
            };
            recs.push(rec);
        }
        recs
    }

    fn engine(servers: usize) -> Engine {
        engine_with(servers, true)
    }

    fn engine_with(servers: usize, failover: bool) -> Engine {
        Engine::new(EngineConfig {
            servers: (0..servers)
                .map(|i| (format!("127.0.0.1:{}", 11211 + i), 1))
                .collect(),
            distribution: DistributionKind::Modula,
            hash: HashFunction::Cmemcache,
            caller_hashes: false,
            codec: CodecOptions::default(),
            failover,
        })
        .unwrap()
    }

    #[test]
    fn gets_of_one_batch_share_one_get_line_and_split_the_values() {
        let mut e = engine(1);
        let batch = Batch::default().get(1, b"a").get(2, b"b").get(3, b"a");
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 3);
        assert_eq!(
            sub.ops,
            vec![(1, Ok(vec![0])), (2, Ok(vec![0])), (3, Ok(vec![0]))]
        );
        assert_eq!(sub.writes, vec![(0, b"get a b a\r\n".to_vec())]);
        let reply = b"VALUE a 16 2\r\nhi\r\nVALUE a 16 2\r\nhi\r\nEND\r\n";
        let recs = decode_records(&e.receive(0, reply).unwrap());
        assert_eq!(
            recs,
            vec![
                Rec::Value(1, kind::TEXT, b"hi".to_vec()),
                Rec::Miss(2),
                Rec::Value(3, kind::TEXT, b"hi".to_vec())
            ]
        );
    }

    #[test]
    fn a_write_between_gets_keeps_the_order_on_the_wire() {
        let mut e = engine(1);
        let batch = Batch::default()
            .get(1, b"k")
            .set(2, b"k", kind::TEXT, b"v")
            .get(3, b"k");
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 3);
        assert_eq!(
            sub.writes,
            vec![(0, b"get k\r\nset k 16 0 1\r\nv\r\nget k\r\n".to_vec())]
        );
        // The replies arrive one byte at a time: the records come out all the same.
        let reply = b"END\r\nSTORED\r\nVALUE k 16 1\r\nv\r\nEND\r\n";
        let mut recs = Vec::new();
        for byte in reply {
            recs.extend(decode_records(&e.receive(0, &[*byte]).unwrap()));
        }
        assert_eq!(
            recs,
            vec![
                Rec::Miss(1),
                Rec::True(2),
                Rec::Value(3, kind::TEXT, b"v".to_vec())
            ]
        );
    }

    #[test]
    fn a_bad_key_fails_only_its_op_and_sends_nothing_for_it() {
        let mut e = engine(1);
        let batch = Batch::default().get(1, b"bad key").get(2, b"").set(
            3,
            b"ok",
            kind::INT,
            &42f64.to_le_bytes(),
        );
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 3);
        assert!(matches!(&sub.ops[0], (1, Err((0, msg))) if msg.contains("bad key")));
        assert!(matches!(&sub.ops[1], (2, Err((0, _)))));
        assert_eq!(sub.ops[2], (3, Ok(vec![0])));
        assert_eq!(sub.writes, vec![(0, b"set ok 2 0 2\r\n42\r\n".to_vec())]);
    }

    #[test]
    fn a_value_over_the_limit_is_value_too_large() {
        let mut e = Engine::new(EngineConfig {
            servers: vec![("a:1".into(), 1)],
            distribution: DistributionKind::Modula,
            hash: HashFunction::Cmemcache,
            caller_hashes: false,
            codec: CodecOptions {
                max_value_size: 4,
                ..CodecOptions::default()
            },
            failover: true,
        })
        .unwrap();
        let batch = Batch::default().set(1, b"k", kind::BYTES, b"12345");
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 1);
        assert!(matches!(&sub.ops[0], (1, Err((1, _)))));
        assert!(sub.writes.is_empty());
    }

    #[test]
    fn multi_get_sends_one_line_per_server_and_answers_by_key_index() {
        let mut e = engine(3);
        let keys: Vec<Vec<u8>> = (0..30).map(|i| format!("key{i}").into_bytes()).collect();
        let mut batch = Batch::default()
            .op(opcode::GET_MULTI, 7)
            .str(b"p:")
            .u32(keys.len() as u32);
        for k in &keys {
            batch = batch.str(k);
        }
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 1);
        let Ok(targets) = &sub.ops[0].1 else {
            panic!("{:?}", sub.ops)
        };
        assert_eq!(targets.len(), 3);
        assert_eq!(sub.writes.len(), 3);
        for (server, bytes) in &sub.writes {
            let line = std::str::from_utf8(bytes).unwrap();
            assert!(
                line.starts_with("get p:key")
                    && line.ends_with("\r\n")
                    && line.matches("\r\n").count() == 1
            );
            // Answer the first key of each line; the record names its index among the 30.
            let first = line[4..].split(' ').next().unwrap().trim_end().to_string();
            let reply = format!("VALUE {first} 2 1\r\n5\r\nEND\r\n");
            let recs = decode_records(&e.receive(*server as usize, reply.as_bytes()).unwrap());
            let index = keys
                .iter()
                .position(|k| format!("p:{}", String::from_utf8_lossy(k)) == first)
                .unwrap();
            assert_eq!(
                recs,
                vec![Rec::Values(
                    7,
                    vec![(index as u32, kind::INT, b"5".to_vec())]
                )]
            );
        }
    }

    #[test]
    fn set_multi_reports_the_keys_not_stored_per_server() {
        let mut e = engine(1);
        let batch = Batch::default()
            .op(opcode::SET_MULTI, 4)
            .str(b"")
            .u32(0)
            .u32(0)
            .u32(3)
            .str(b"a")
            .value(kind::TEXT, b"1")
            .str(b"b")
            .value(kind::TEXT, b"2")
            .str(b"c")
            .value(kind::JSON, b"[1]");
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 1);
        assert_eq!(
            sub.writes[0].1,
            b"set a 16 0 1\r\n1\r\nset b 16 0 1\r\n2\r\nset c 1 0 3\r\n[1]\r\n".to_vec()
        );
        let recs = decode_records(
            &e.receive(0, b"STORED\r\nSERVER_ERROR out of memory\r\nNOT_STORED\r\n")
                .unwrap(),
        );
        assert_eq!(recs, vec![Rec::Keys(4, vec![1, 2])]);
    }

    #[test]
    fn counters_cas_touch_delete_and_server_errors_map_to_records() {
        let mut e = engine(1);
        let batch = Batch::default()
            .op(opcode::INCR, 1)
            .str(b"n")
            .u64(5)
            .op(opcode::DECR, 2)
            .str(b"missing")
            .u64(1)
            .op(opcode::GETS, 3)
            .str(b"n")
            .op(opcode::CAS, 4)
            .str(b"n")
            .u32(0)
            .u32(0)
            .u64(99)
            .value(kind::TEXT, b"x")
            .op(opcode::TOUCH, 5)
            .str(b"n")
            .u32(10)
            .op(opcode::DELETE, 6)
            .str(b"n")
            .op(opcode::INCR, 7)
            .str(b"t")
            .u64(1);
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 7);
        assert_eq!(
            sub.writes[0].1,
            b"incr n 5\r\ndecr missing 1\r\ngets n\r\ncas n 16 0 1 99\r\nx\r\ntouch n 10\r\ndelete n\r\nincr t 1\r\n".to_vec()
        );
        let reply = b"15\r\nNOT_FOUND\r\nVALUE n 2 2 99\r\n15\r\nEND\r\nEXISTS\r\nTOUCHED\r\nDELETED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        let recs = decode_records(&e.receive(0, reply).unwrap());
        assert_eq!(
            recs,
            vec![
                Rec::Number(1, "15".into()),
                Rec::Miss(2),
                Rec::CasValue(3, 99, kind::INT, b"15".to_vec()),
                Rec::False(4),
                Rec::True(5),
                Rec::True(6),
                Rec::Error(7, 6),
            ]
        );
    }

    #[test]
    fn flush_stats_and_version_go_to_every_live_server() {
        let mut e = engine(3);
        e.mark_dead(1);
        let batch = Batch::default()
            .op(opcode::FLUSH_ALL, 1)
            .u32(0)
            .op(opcode::STATS, 2)
            .str(b"items")
            .op(opcode::VERSION, 3);
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 3);
        assert_eq!(
            sub.ops,
            vec![
                (1, Ok(vec![0, 2])),
                (2, Ok(vec![0, 2])),
                (3, Ok(vec![0, 2]))
            ]
        );
        assert_eq!(
            sub.writes[1],
            (2, b"flush_all\r\nstats items\r\nversion\r\n".to_vec())
        );
        let recs = decode_records(
            &e.receive(
                2,
                b"OK\r\nSTAT items:1:number 3\r\nEND\r\nVERSION 1.6.9\r\n",
            )
            .unwrap(),
        );
        assert_eq!(
            recs,
            vec![Rec::True(1), Rec::Stats(2, 1), Rec::Text(3, "1.6.9".into())]
        );
        // Arguments that would break the line are refused for every server at once.
        let bad = Batch::default()
            .op(opcode::STATS, 5)
            .str(b"items\r\nflush_all");
        let sub = decode_submit(&e.submit(&bad.0).unwrap(), 1);
        assert!(matches!(&sub.ops[0], (5, Err((9, _)))));
        assert!(sub.writes.is_empty());
        e.mark_dead(0);
        e.mark_dead(2);
        let sub = decode_submit(
            &e.submit(&Batch::default().op(opcode::VERSION, 4).0)
                .unwrap(),
            1,
        );
        assert!(matches!(&sub.ops[0], (4, Err((8, _)))));
    }

    #[test]
    fn dead_servers_are_re_hashed_past_with_failover_and_refused_without() {
        let key = b"some-key";
        let mut e = engine(2);
        let home = e.pick(None, key, |_| true).unwrap().unwrap();
        e.mark_dead(home);
        let sub = decode_submit(&e.submit(&Batch::default().get(1, key).0).unwrap(), 1);
        assert_eq!(sub.ops[0], (1, Ok(vec![1 - home as u16])));
        let mut strict = engine_with(2, false);
        strict.mark_dead(home);
        let sub = decode_submit(&strict.submit(&Batch::default().get(1, key).0).unwrap(), 1);
        assert!(matches!(&sub.ops[0], (1, Err((8, _)))));
        strict.mark_alive(home);
        let sub = decode_submit(&strict.submit(&Batch::default().get(2, key).0).unwrap(), 1);
        assert_eq!(sub.ops[0], (2, Ok(vec![home as u16])));
    }

    #[test]
    fn explicit_hashes_choose_the_bucket() {
        let mut e = Engine::new(EngineConfig {
            servers: vec![("a:1".into(), 1), ("b:1".into(), 1), ("c:1".into(), 1)],
            distribution: DistributionKind::Modula,
            hash: HashFunction::Custom(Box::new(|_| Ok(0))),
            caller_hashes: true,
            codec: CodecOptions::default(),
            failover: true,
        })
        .unwrap();
        let batch = Batch::default().hashed_op(opcode::GET, 1).u32(5).str(b"k");
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 1);
        assert_eq!(sub.ops[0], (1, Ok(vec![2])));
        // A batch without the hash the configuration asks for is malformed.
        assert!(e.submit(&Batch::default().get(2, b"k").0).is_err());
    }

    #[test]
    fn a_malformed_batch_queues_nothing() {
        let mut e = engine(1);
        let mut bytes = Batch::default().get(1, b"fine").0;
        bytes.extend_from_slice(&[opcode::GET, 2, 0, 0, 0, 0, 200, 0]);
        assert_eq!(e.submit(&bytes).unwrap_err().code(), "BAD_ARGUMENT");
        assert!(e.submit(&[99, 1, 0, 0, 0, 0]).is_err());
        let sub = decode_submit(&e.submit(&Batch::default().get(3, b"x").0).unwrap(), 1);
        assert_eq!(sub.writes, vec![(0, b"get x\r\n".to_vec())]);
    }

    #[test]
    fn garbage_from_the_server_breaks_the_connection_after_the_good_records() {
        let mut e = engine(1);
        decode_submit(
            &e.submit(&Batch::default().get(1, b"a").get(2, b"b").0)
                .unwrap(),
            2,
        );
        decode_submit(&e.submit(&Batch::default().get(3, b"c").0).unwrap(), 1);
        let out = e.receive(0, b"END\r\nHELLO?\r\n").unwrap();
        let mut r = Reader::new(&out);
        assert_eq!((r.u32().unwrap(), r.u8().unwrap()), (1, record::MISS));
        assert_eq!((r.u32().unwrap(), r.u8().unwrap()), (2, record::MISS));
        assert_eq!(
            (r.u32().unwrap(), r.u8().unwrap()),
            (CONNECTION_BROKEN_ID, record::ERROR)
        );
        assert_eq!(r.u8().unwrap(), 4);
        // After reset the server takes new requests on a clean state.
        e.reset(0);
        let sub = decode_submit(&e.submit(&Batch::default().get(4, b"d").0).unwrap(), 1);
        assert_eq!(sub.writes, vec![(0, b"get d\r\n".to_vec())]);
        assert_eq!(
            decode_records(&e.receive(0, b"END\r\n").unwrap()),
            vec![Rec::Miss(4)]
        );
    }

    #[test]
    fn pickles_and_compressed_values_decode_to_json_text() {
        let mut e = engine(1);
        decode_submit(&e.submit(&Batch::default().get(1, b"p").0).unwrap(), 1);
        // python-memcached's default: pickle protocol 0 of {'a': 1}
        let pickle = b"(dp0\nVa\np1\nI1\ns.";
        let mut reply = format!("VALUE p 1 {}\r\n", pickle.len()).into_bytes();
        reply.extend_from_slice(pickle);
        reply.extend_from_slice(b"\r\nEND\r\n");
        let recs = decode_records(&e.receive(0, &reply).unwrap());
        let Rec::Value(1, kind::JSON, json) = &recs[0] else {
            panic!("{recs:?}")
        };
        let parsed: serde_json::Value = serde_json::from_slice(json).unwrap();
        assert_eq!(parsed, serde_json::json!({"a": 1}));
    }

    #[test]
    fn coalescing_stops_at_the_key_bound() {
        let mut e = engine(1);
        let mut batch = Batch::default();
        for i in 0..(MAX_COALESCED_KEYS as u32 + 1) {
            batch = batch.get(i + 1, format!("k{i}").as_bytes());
        }
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), MAX_COALESCED_KEYS + 1);
        let wire = String::from_utf8(sub.writes[0].1.clone()).unwrap();
        assert_eq!(wire.matches("get ").count(), 2);
    }
    fn metadump_op(batch: Batch, id: u32, server: u16, scope: u8, class: u32) -> Batch {
        let mut batch = batch.op(opcode::METADUMP, id);
        put_u16(&mut batch.0, server);
        put_u8(&mut batch.0, scope);
        batch.u32(class)
    }

    #[test]
    fn inspect_sends_gets_and_answers_with_the_raw_flags_and_size() {
        let mut e = engine(1);
        let options = CodecOptions {
            min_compress_len: 10,
            ..CodecOptions::default()
        };
        let text = "compressible ".repeat(40);
        let (flags, stored) = codec::encode_value(b"c", Payload::Text(&text), &options).unwrap();
        assert_eq!(flags, 16 | 8, "the value went out compressed");
        let batch = Batch::default()
            .op(opcode::INSPECT, 1)
            .str(b"c")
            .op(opcode::INSPECT, 2)
            .str(b"n")
            .op(opcode::INSPECT, 3)
            .str(b"gone");
        let sub = decode_submit(&e.submit(&batch.0).unwrap(), 3);
        assert_eq!(
            sub.writes,
            vec![(0, b"gets c\r\ngets n\r\ngets gone\r\n".to_vec())]
        );
        let mut reply = format!("VALUE c {flags} {} 7\r\n", stored.len()).into_bytes();
        reply.extend_from_slice(&stored);
        reply.extend_from_slice(b"\r\nEND\r\nVALUE n 2 3 8\r\n-42\r\nEND\r\nEND\r\n");
        // Split at every byte: the records are the same whatever the chunking.
        let mut recs = Vec::new();
        for byte in &reply {
            recs.extend(decode_records(&e.receive(0, &[*byte]).unwrap()));
        }
        assert_eq!(
            recs,
            vec![
                Rec::Item(
                    1,
                    24,
                    stored.len() as u32,
                    7,
                    kind::TEXT,
                    text.as_bytes().to_vec()
                ),
                Rec::Item(2, 2, 3, 8, kind::INT, b"-42".to_vec()),
                Rec::Miss(3),
            ]
        );
        assert!(stored.len() < text.len());
    }

    #[test]
    fn an_inspected_value_that_cannot_be_decoded_is_an_error_record() {
        let mut e = engine(1);
        decode_submit(
            &e.submit(&Batch::default().op(opcode::INSPECT, 1).str(b"z").0)
                .unwrap(),
            1,
        );
        // Flag 8 (zlib) over bytes that are not zlib.
        let recs = decode_records(&e.receive(0, b"VALUE z 8 3 1\r\nabc\r\nEND\r\n").unwrap());
        assert_eq!(recs, vec![Rec::Error(1, 3)]);
    }

    #[test]
    fn server_for_key_is_where_submit_sends_the_key() {
        for distribution in [DistributionKind::Modula, DistributionKind::Ketama] {
            for failover in [true, false] {
                let mut e = Engine::new(EngineConfig {
                    servers: (0..4).map(|i| (format!("10.0.0.{i}:11211"), 1)).collect(),
                    distribution,
                    hash: HashFunction::Cmemcache,
                    caller_hashes: false,
                    codec: CodecOptions::default(),
                    failover,
                })
                .unwrap();
                e.mark_dead(2);
                for i in 0..200u32 {
                    let key = format!("key:{i}");
                    let batch = Batch::default().get(i + 1, key.as_bytes());
                    let sub = decode_submit(&e.submit(&batch.0).unwrap(), 1);
                    match (&sub.ops[0].1, e.server_for_key(key.as_bytes(), None)) {
                        (Ok(targets), Ok(server)) => assert_eq!(targets, &vec![server as u16]),
                        (Err((8, _)), Err(error)) => {
                            assert!(!failover);
                            assert_eq!(error.code(), "NO_SERVER");
                        }
                        other => panic!("{distribution:?} failover={failover} {key}: {other:?}"),
                    }
                }
            }
        }
        let e = engine(2);
        assert_eq!(
            e.server_for_key(b"bad key", None).unwrap_err().code(),
            "BAD_KEY"
        );
        assert_eq!(e.server_for_key(b"", None).unwrap_err().code(), "BAD_KEY");
        // A hash is given exactly when the caller hashes keys.
        assert_eq!(
            e.server_for_key(b"k", Some(1)).unwrap_err().code(),
            "BAD_ARGUMENT"
        );
        let mut all_dead = engine(2);
        all_dead.mark_dead(0);
        all_dead.mark_dead(1);
        assert_eq!(
            all_dead.server_for_key(b"k", None).unwrap_err().code(),
            "NO_SERVER"
        );
    }

    #[test]
    fn server_for_key_takes_the_callers_hash() {
        let e = Engine::new(EngineConfig {
            servers: vec![("a:1".into(), 1), ("b:1".into(), 1), ("c:1".into(), 1)],
            distribution: DistributionKind::Modula,
            hash: HashFunction::Custom(Box::new(|_| Ok(0))),
            caller_hashes: true,
            codec: CodecOptions::default(),
            failover: true,
        })
        .unwrap();
        assert_eq!(e.server_for_key(b"k", Some(5)).unwrap(), 2);
        assert_eq!(e.server_for_key(b"k", Some(3)).unwrap(), 0);
        assert_eq!(
            e.server_for_key(b"k", None).unwrap_err().code(),
            "BAD_ARGUMENT"
        );
    }

    #[test]
    fn metadump_goes_to_the_named_server_and_answers_its_lines() {
        let mut e = engine(3);
        let sub = decode_submit(
            &e.submit(&metadump_op(Batch::default(), 1, 2, 1, 0).0)
                .unwrap(),
            1,
        );
        assert_eq!(sub.ops, vec![(1, Ok(vec![2]))]);
        assert_eq!(
            sub.writes,
            vec![(2, b"lru_crawler metadump hash\r\n".to_vec())]
        );
        let reply = b"key=a exp=-1 la=1 cas=1 fetch=no cls=1 size=61\nkey=b%2520c exp=-1 la=1 cas=2 fetch=no cls=1 size=70\nEND\r\n";
        let mut recs = Vec::new();
        for part in reply.chunks(7) {
            recs.extend(decode_records(&e.receive(2, part).unwrap()));
        }
        assert_eq!(
            recs,
            vec![Rec::Lines(
                1,
                vec![
                    "key=a exp=-1 la=1 cas=1 fetch=no cls=1 size=61".into(),
                    "key=b%2520c exp=-1 la=1 cas=2 fetch=no cls=1 size=70".into(),
                ]
            )]
        );
        // Scopes all and a slab class; the refusals are METADUMP_REFUSED with their line.
        for (scope, class, line) in [(0, 0, "all"), (2, 5, "5")] {
            let sub = decode_submit(
                &e.submit(&metadump_op(Batch::default(), 2, 0, scope, class).0)
                    .unwrap(),
                1,
            );
            let want = format!("lru_crawler metadump {line}\r\n");
            assert_eq!(sub.writes, vec![(0, want.into_bytes())]);
        }
        let out = e
            .receive(0, b"BUSY currently processing crawler request\r\nERROR cannot pipeline other commands before metadump\r\n")
            .unwrap();
        assert_eq!(
            decode_records(&out),
            vec![Rec::Error(2, 10), Rec::Error(2, 10)]
        );
        let mut r = Reader::new(&out);
        r.u32().unwrap();
        r.u8().unwrap();
        r.u8().unwrap();
        let message = String::from_utf8(r.field().unwrap().to_vec()).unwrap();
        assert!(
            message.contains("BUSY currently processing crawler request"),
            "{message}"
        );
    }

    #[test]
    fn metadump_is_refused_for_a_bad_or_dead_server_and_beside_other_ops() {
        let mut e = engine(2);
        let sub = decode_submit(
            &e.submit(&metadump_op(Batch::default(), 1, 7, 0, 0).0)
                .unwrap(),
            1,
        );
        assert!(matches!(&sub.ops[0], (1, Err((9, _)))));
        e.mark_dead(1);
        let sub = decode_submit(
            &e.submit(&metadump_op(Batch::default(), 2, 1, 0, 0).0)
                .unwrap(),
            1,
        );
        assert!(matches!(&sub.ops[0], (2, Err((8, _)))));
        assert!(sub.writes.is_empty());
        // Alone in its batch, or the batch is malformed and nothing is queued.
        let mixed = metadump_op(Batch::default().get(3, b"k"), 4, 0, 0, 0);
        assert_eq!(e.submit(&mixed.0).unwrap_err().code(), "BAD_ARGUMENT");
        let bad_scope = metadump_op(Batch::default(), 5, 0, 9, 0);
        assert_eq!(e.submit(&bad_scope.0).unwrap_err().code(), "BAD_ARGUMENT");
        let sub = decode_submit(&e.submit(&Batch::default().get(6, b"x").0).unwrap(), 1);
        assert_eq!(sub.writes, vec![(0, b"get x\r\n".to_vec())]);
    }
}
