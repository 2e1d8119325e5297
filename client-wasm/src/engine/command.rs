//! The batch JavaScript hands to `submit`, decoded once into typed commands (mini-redis's
//! `Command::from_frame`): every later step matches on a `Command`, never on an opcode.
//! The whole batch is decoded before anything is queued, so a malformed batch queues
//! nothing.
//!
//! ```text
//! op    = opcode:u8 id:u32 opflags:u8 body      opflags bit 0 (OP_HASHED): every `key`
//! key   = [hash:u32 if OP_HASHED] str             carries the caller's server hash;
//!                                                 bit 1 (OP_NOREPLY): a quiet write
//! value = kind:u8 str    kind: 0 bytes, 1 text (UTF-8), 2 int (8 bytes: f64 holding a safe
//!                        integer), 3 long (decimal ASCII), 4 JSON text (stored as JSON or,
//!                        with the pickle serializer, as a pickle), 5 a caller's serialized bytes
//!  GET GETS INSPECT DELETE  key          TOUCH  key expiry:u32     INCR DECR  key delta:u64
//!  GET_MULTI DELETE_MULTI   prefix:str count:u32 key*count
//!  SET ADD REPLACE APPEND PREPEND  key expiry:u32 min_compress_len:u32 value
//!  CAS          key expiry:u32 min_compress_len:u32 cas:u64 value
//!  SET_MULTI    prefix:str expiry:u32 min_compress_len:u32 count:u32 (key value)*count
//!  FLUSH_ALL delay:u32    STATS args:str (empty: none)    VERSION      (every live server)
//!  METADUMP server:u16 scope:u8 class:u32   scope 0 all, 1 hash, 2 the slab class `class`
//!  LEASE_GET    key lock_ttl:u32 recache:u32 wait_ms:u32   (getOrSet's read; recache 0: none)
//!  META_SET     key ttl:u32 min_compress_len:u32 value     META_DELETE  key mode:u8
//!  GET_WITH_TTL key     GET_AND_TOUCH  key ttl:u32
//!  META_COUNTER key delta:u64 initial:u64 ttl:u32 incr:u8   (creates a missing counter)
//! ```
//! Keys of multi ops are given without the prefix; hashes are of the full key.

use crate::error::{Error, Result};
use crate::request::{MetadumpScope, StorageVerb};
use crate::wire::{self, kind, opcode, Reader};

/// One key as the batch names it.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    /// The caller's server hash of the full key (prefix included), with a custom hash.
    pub hash: Option<u32>,
    pub key: &'a [u8],
}

/// A value to store as the batch carries it.
#[derive(Debug, Clone, Copy)]
pub struct ValueRef<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// What a single-key read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `get`: the value.
    Value,
    /// `gets`: the value and its cas.
    WithCas,
    /// `gets`, answered with the raw flags, size and the server (the dashboard's inspect).
    Inspect,
}

/// One typed command of a batch.
#[derive(Debug)]
pub enum Command<'a> {
    Get(KeyRef<'a>, Read),
    Delete(KeyRef<'a>),
    Touch(KeyRef<'a>, u32),
    Counter {
        key: KeyRef<'a>,
        delta: u64,
        incr: bool,
    },
    Store {
        verb: StorageVerb,
        key: KeyRef<'a>,
        expiry: u32,
        min_compress_len: u32,
        /// Present for `cas`.
        cas: Option<u64>,
        value: ValueRef<'a>,
    },
    GetMulti {
        prefix: &'a [u8],
        keys: Vec<KeyRef<'a>>,
    },
    DeleteMulti {
        prefix: &'a [u8],
        keys: Vec<KeyRef<'a>>,
    },
    SetMulti {
        prefix: &'a [u8],
        expiry: u32,
        min_compress_len: u32,
        entries: Vec<(KeyRef<'a>, ValueRef<'a>)>,
    },
    FlushAll(u32),
    Stats(&'a str),
    Version,
    Metadump {
        server: usize,
        scope: MetadumpScope,
    },
    /// The meta protocol's commands ([`crate::engine::meta_ops`]).
    Meta(KeyRef<'a>, MetaCommand<'a>),
}

/// A command sent with the meta protocol, on one key.
#[derive(Debug)]
pub enum MetaCommand<'a> {
    /// getOrSet's read: `mg <key> v f t N<lock_ttl> [R<recache>]`, re-read while another
    /// caller loads, until `wait_ms` has passed.
    Lease {
        lock_ttl: u32,
        recache: u32,
        wait_ms: u32,
    },
    Store {
        ttl: u32,
        min_compress_len: u32,
        value: ValueRef<'a>,
    },
    Delete {
        invalidate: bool,
    },
    GetWithTtl,
    GetAndTouch {
        ttl: u32,
    },
    Counter {
        delta: u64,
        initial: u64,
        ttl: u32,
        incr: bool,
    },
}

/// A decoded op: the caller's id and its command.
#[derive(Debug)]
pub struct Op<'a> {
    pub id: u32,
    pub command: Command<'a>,
    /// Sent quietly ([`crate::engine::quiet`]): memcached answers only what did not
    /// succeed. Only writes may be quiet.
    pub noreply: bool,
}

/// Decodes every op of `batch`; `caller_hashes` says whether keys carry hashes.
pub fn decode_batch(batch: &[u8], caller_hashes: bool) -> Result<Vec<Op<'_>>> {
    let mut r = Reader::new(batch);
    let mut ops = Vec::new();
    while !r.is_done() {
        ops.push(decode_op(&mut r, caller_hashes)?);
    }
    Ok(ops)
}

fn decode_op<'a>(r: &mut Reader<'a>, caller_hashes: bool) -> Result<Op<'a>> {
    let code = r.u8()?;
    let id = r.u32()?;
    let op_flags = r.u8()?;
    if op_flags & !(wire::OP_HASHED | wire::OP_NOREPLY) != 0 {
        return Err(Error::BadArgument(format!(
            "malformed batch: op {id} has unknown flags {op_flags:#04x}"
        )));
    }
    let hashed = op_flags & wire::OP_HASHED != 0;
    let noreply = op_flags & wire::OP_NOREPLY != 0;
    if hashed != caller_hashes {
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
    let keys = |r: &mut Reader<'a>| -> Result<Vec<KeyRef<'a>>> {
        let n = r.count(4)?;
        (0..n).map(|_| key(r)).collect()
    };
    let command = match code {
        opcode::GET => Command::Get(key(r)?, Read::Value),
        opcode::GETS => Command::Get(key(r)?, Read::WithCas),
        opcode::INSPECT => Command::Get(key(r)?, Read::Inspect),
        opcode::DELETE => Command::Delete(key(r)?),
        opcode::TOUCH => Command::Touch(key(r)?, r.u32()?),
        opcode::INCR | opcode::DECR => Command::Counter {
            key: key(r)?,
            delta: r.u64()?,
            incr: code == opcode::INCR,
        },
        opcode::SET
        | opcode::ADD
        | opcode::REPLACE
        | opcode::APPEND
        | opcode::PREPEND
        | opcode::CAS => {
            let k = key(r)?;
            let expiry = r.u32()?;
            let min_compress_len = r.u32()?;
            let cas = if code == opcode::CAS {
                Some(r.u64()?)
            } else {
                None
            };
            Command::Store {
                verb: match code {
                    opcode::ADD => StorageVerb::Add,
                    opcode::REPLACE => StorageVerb::Replace,
                    opcode::APPEND => StorageVerb::Append,
                    opcode::PREPEND => StorageVerb::Prepend,
                    _ => StorageVerb::Set,
                },
                key: k,
                expiry,
                min_compress_len,
                cas,
                value: value(r)?,
            }
        }
        opcode::GET_MULTI => Command::GetMulti {
            prefix: r.field()?,
            keys: keys(r)?,
        },
        opcode::DELETE_MULTI => Command::DeleteMulti {
            prefix: r.field()?,
            keys: keys(r)?,
        },
        opcode::SET_MULTI => {
            let prefix = r.field()?;
            let expiry = r.u32()?;
            let min_compress_len = r.u32()?;
            let n = r.count(9)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let k = key(r)?;
                entries.push((k, value(r)?));
            }
            Command::SetMulti {
                prefix,
                expiry,
                min_compress_len,
                entries,
            }
        }
        opcode::FLUSH_ALL => Command::FlushAll(r.u32()?),
        opcode::STATS => Command::Stats(
            std::str::from_utf8(r.field()?)
                .map_err(|_| Error::BadArgument("stats arguments must be UTF-8".into()))?,
        ),
        opcode::VERSION => Command::Version,
        opcode::METADUMP => {
            let server = usize::from(r.u16()?);
            let scope = match (r.u8()?, r.u32()?) {
                (wire::metadump_scope::ALL, _) => MetadumpScope::All,
                (wire::metadump_scope::HASH, _) => MetadumpScope::Hash,
                (wire::metadump_scope::CLASS, class) => MetadumpScope::ClassId(class),
                (other, _) => {
                    return Err(Error::BadArgument(format!(
                        "malformed batch: unknown metadump scope {other}"
                    )))
                }
            };
            Command::Metadump { server, scope }
        }
        opcode::LEASE_GET => Command::Meta(
            key(r)?,
            MetaCommand::Lease {
                lock_ttl: r.u32()?,
                recache: r.u32()?,
                wait_ms: r.u32()?,
            },
        ),
        opcode::META_SET => Command::Meta(
            key(r)?,
            MetaCommand::Store {
                ttl: r.u32()?,
                min_compress_len: r.u32()?,
                value: value(r)?,
            },
        ),
        opcode::META_DELETE => {
            let k = key(r)?;
            let invalidate = match r.u8()? {
                wire::meta_delete::DELETE => false,
                wire::meta_delete::INVALIDATE => true,
                other => {
                    return Err(Error::BadArgument(format!(
                        "malformed batch: unknown meta delete mode {other}"
                    )))
                }
            };
            Command::Meta(k, MetaCommand::Delete { invalidate })
        }
        opcode::GET_WITH_TTL => Command::Meta(key(r)?, MetaCommand::GetWithTtl),
        opcode::GET_AND_TOUCH => Command::Meta(key(r)?, MetaCommand::GetAndTouch { ttl: r.u32()? }),
        opcode::META_COUNTER => Command::Meta(
            key(r)?,
            MetaCommand::Counter {
                delta: r.u64()?,
                initial: r.u64()?,
                ttl: r.u32()?,
                incr: r.u8()? != 0,
            },
        ),
        other => {
            return Err(Error::BadArgument(format!(
                "malformed batch: unknown opcode {other}"
            )))
        }
    };
    let quiet_capable = matches!(
        command,
        Command::Store { .. }
            | Command::Delete(_)
            | Command::Touch(..)
            | Command::Counter { .. }
            | Command::SetMulti { .. }
            | Command::DeleteMulti { .. }
    );
    if noreply && !quiet_capable {
        return Err(Error::BadArgument(format!(
            "malformed batch: op {id} (opcode {code}) cannot be noreply: only writes can"
        )));
    }
    Ok(Op {
        id,
        command,
        noreply,
    })
}

impl ValueRef<'_> {
    /// The value as the codec's payload.
    pub fn payload(&self) -> Result<crate::codec::Payload<'_>> {
        use crate::codec::Payload;
        let data = self.data;
        Ok(match self.kind {
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
                    return Err(Error::BadArgument(
                        "malformed batch: an int value is not a safe integer".into(),
                    ));
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
}
