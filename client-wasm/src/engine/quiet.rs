//! noreply writes, sent quietly: a write the caller marked `noreply` goes out as its meta
//! twin with `q` and an opaque (`ms` for the storage commands and cas, `md` for delete,
//! `mg ... T` for touch, `ma` for incr and decr), one `mn` closing each run of them. The
//! connection settles each one by memcached's silence or by the reply naming its opaque
//! ([`crate::connection::Connection::push_quiet`]); here the meta reply is turned back into
//! the text reply the op's usual handling reads, so a quiet write settles exactly like a
//! loud one and a refused one is never taken for a success.

use crate::error::{Error, Result};
use crate::meta::{Flag, MetaReply, MetaRequest, MetaStatus, MetaVerb};
use crate::request::{Request, StorageVerb};
use crate::response::Response;

use super::server::Reply;

const ONLY_WRITES: &str =
    "only writes (set, add, replace, append, prepend, cas, delete, touch, incr, decr) can be noreply";

/// A quiet request's flags, at most five (T F M|C, then q and O): no allocation per write.
struct Flags<'a> {
    buf: [Flag<'a>; 5],
    len: usize,
}

impl Default for Flags<'_> {
    fn default() -> Self {
        Flags {
            buf: [Flag::bare(b'q'); 5],
            len: 0,
        }
    }
}

impl<'a> Flags<'a> {
    fn push(&mut self, flag: Flag<'a>) {
        self.buf[self.len] = flag;
        self.len += 1;
    }

    fn extend<const N: usize>(&mut self, flags: [Flag<'a>; N]) {
        for flag in flags {
            self.push(flag);
        }
    }

    fn as_slice(&self) -> &[Flag<'a>] {
        &self.buf[..self.len]
    }
}

/// What memcached's silence about `request` means when it is sent quietly.
pub fn silence(request: &Request) -> MetaStatus {
    match request {
        // A quiet mg hides EN (a miss) and answers HD on a hit.
        Request::Touch { .. } => MetaStatus::Miss,
        _ => MetaStatus::Stored,
    }
}

/// Appends the quiet meta twin of the text write `request` with `opaque`; anything but a
/// storage command, cas, delete, touch, incr or decr is refused.
pub fn encode(request: &Request, opaque: u32, out: &mut Vec<u8>) -> Result<()> {
    let opaque = Flag::number(b'O', i64::from(opaque));
    let quiet = Flag::bare(b'q');
    let mut flags = Flags::default();
    let (verb, key, data) = match request {
        Request::Store {
            verb,
            key,
            flags: client_flags,
            exptime,
            data,
            ..
        } => {
            let mode: &[u8] = match verb {
                StorageVerb::Set => b"S",
                StorageVerb::Add => b"E",
                StorageVerb::Replace => b"R",
                StorageVerb::Append => b"A",
                StorageVerb::Prepend => b"P",
            };
            flags.extend([
                Flag::number(b'T', *exptime),
                Flag::number(b'F', i64::from(*client_flags)),
                Flag::word(b'M', mode),
            ]);
            (MetaVerb::Set, *key, Some(*data))
        }
        Request::Cas {
            key,
            flags: client_flags,
            exptime,
            data,
            cas,
            ..
        } => {
            let cas = i64::try_from(*cas).map_err(|_| {
                let text = format!("a noreply cas takes a cas unique below 2^63, got {cas}");
                Error::BadArgument(text)
            })?;
            flags.extend([
                Flag::number(b'T', *exptime),
                Flag::number(b'F', i64::from(*client_flags)),
                Flag::number(b'C', cas),
            ]);
            (MetaVerb::Set, *key, Some(*data))
        }
        Request::Delete { key, .. } => (MetaVerb::Delete, *key, None),
        Request::Touch { key, exptime, .. } => {
            flags.push(Flag::number(b'T', *exptime));
            (MetaVerb::Get, *key, None)
        }
        Request::Incr { key, delta, .. } | Request::Decr { key, delta, .. } => {
            let delta = i64::try_from(*delta).map_err(|_| {
                let text = format!("a noreply incr or decr takes a delta below 2^63, got {delta}");
                Error::BadArgument(text)
            })?;
            flags.push(Flag::number(b'D', delta));
            if matches!(request, Request::Decr { .. }) {
                flags.push(Flag::word(b'M', b"D"));
            }
            (MetaVerb::Arithmetic, *key, None)
        }
        _ => {
            return Err(Error::BadArgument(ONLY_WRITES.into()));
        }
    };
    flags.extend([quiet, opaque]);
    MetaRequest {
        verb,
        key,
        flags: flags.as_slice(),
        data,
    }
    .encode(out)
}

/// Whether an op expecting `reply` reads a quiet write's meta reply as text.
pub fn reads_as_text(reply: Reply) -> bool {
    matches!(
        reply,
        Reply::Store | Reply::Delete | Reply::Touch | Reply::Applied
    )
}

/// A quiet write's meta reply as the text reply its op's handling reads; anything else
/// is left as it is (and read as the wrong reply it is).
pub fn as_text(reply: Reply, meta: MetaReply) -> Response {
    match (reply, meta.status) {
        (Reply::Store, MetaStatus::Stored) => Response::Stored,
        (Reply::Delete, MetaStatus::Stored) => Response::Deleted,
        (Reply::Touch | Reply::Applied, MetaStatus::Stored) => Response::Touched,
        (_, MetaStatus::NotStored) => Response::NotStored,
        (_, MetaStatus::Exists) => Response::Exists,
        (_, MetaStatus::NotFound | MetaStatus::Miss) => Response::NotFound,
        _ => Response::Meta(meta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(request: &Request) -> String {
        let mut out = Vec::new();
        encode(request, 7, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_write_has_its_quiet_twin() {
        let store = |verb| Request::Store {
            verb,
            key: b"k",
            flags: 16,
            exptime: 60,
            data: b"abc",
            noreply: false,
        };
        assert_eq!(
            encoded(&store(StorageVerb::Set)),
            "ms k 3 T60 F16 MS q O7\r\nabc\r\n"
        );
        assert_eq!(
            encoded(&store(StorageVerb::Add)),
            "ms k 3 T60 F16 ME q O7\r\nabc\r\n"
        );
        assert_eq!(
            encoded(&store(StorageVerb::Prepend)),
            "ms k 3 T60 F16 MP q O7\r\nabc\r\n"
        );
        let cas = Request::Cas {
            key: b"k",
            flags: 0,
            exptime: 0,
            data: b"x",
            cas: 42,
            noreply: false,
        };
        assert_eq!(encoded(&cas), "ms k 1 T0 F0 C42 q O7\r\nx\r\n");
        let delete = Request::Delete {
            key: b"k",
            noreply: false,
        };
        assert_eq!(encoded(&delete), "md k q O7\r\n");
        let touch = Request::Touch {
            key: b"k",
            exptime: 5,
            noreply: false,
        };
        assert_eq!(encoded(&touch), "mg k T5 q O7\r\n");
        assert_eq!(silence(&touch), MetaStatus::Miss);
        let decr = Request::Decr {
            key: b"k",
            delta: 3,
            noreply: false,
        };
        assert_eq!(encoded(&decr), "ma k D3 MD q O7\r\n");
        assert_eq!(silence(&decr), MetaStatus::Stored);
        assert!(encode(&Request::Version, 1, &mut Vec::new()).is_err());
    }

    #[test]
    fn meta_replies_read_as_the_text_replies_of_their_ops() {
        let reply = MetaReply::new;
        assert_eq!(
            as_text(Reply::Store, reply(MetaStatus::Stored)),
            Response::Stored
        );
        assert_eq!(
            as_text(Reply::Store, reply(MetaStatus::NotStored)),
            Response::NotStored
        );
        assert_eq!(
            as_text(Reply::Store, reply(MetaStatus::Exists)),
            Response::Exists
        );
        assert_eq!(
            as_text(Reply::Delete, reply(MetaStatus::Stored)),
            Response::Deleted
        );
        assert_eq!(
            as_text(Reply::Delete, reply(MetaStatus::NotFound)),
            Response::NotFound
        );
        assert_eq!(
            as_text(Reply::Touch, reply(MetaStatus::Miss)),
            Response::NotFound
        );
        assert_eq!(
            as_text(Reply::Applied, reply(MetaStatus::Stored)),
            Response::Touched
        );
        assert!(matches!(
            as_text(Reply::Store, reply(MetaStatus::Value)),
            Response::Meta(_)
        ));
    }
}
