//! The state of one server connection, without the socket (sans-IO, like h11 and
//! quinn-proto): requests go in and come out as one buffer to write, bytes that arrived go
//! in and come out as whole responses, matched to requests by a FIFO because memcached
//! answers in order.
//!
//! A noreply request waits for nothing, so any line it drew would be taken for the next
//! request's reply. memcached 1.6 stays silent for noreply requests that fail (a value
//! over the item limit, incr of a non-number: both checked against 1.6.18); what does
//! draw a reply is a request whose framing is broken (a bad key, a data block of the
//! wrong length), and encoding never writes one.
//!
//! A quiet request (meta `q`, [`Connection::push_quiet`]) is the noreply that still says
//! when it failed: memcached hides its success (`HD`; `EN` for `mg`) but answers `NS`,
//! `NF`, `EX` with the request's opaque, and a run of quiet requests is closed by one `mn`
//! whose `MN` comes after every earlier reply. So a quiet request is settled by the first
//! reply after it was sent: its own (the opaque says so), a later one's, or `MN`; silence
//! means what its `silence` status says. memcached answers `SERVER_ERROR` and
//! `CLIENT_ERROR` without the opaque (checked against 1.6.18: a value over `-I`, incr of a
//! non-number), so such an error is given to every quiet request it could be the answer
//! to: those settled by the next reply that names one. None is taken for a success.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::meta::{MetaReply, MetaStatus};
use crate::request::{Expect, Request};
use crate::response::{parse_decimal, Response, ResponseParser};

/// memcached's default item size limit (`-I 1m`), for callers that do not know better.
pub const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;

/// One request that is waiting for its reply, with the caller's tag for it.
#[derive(Debug)]
struct Pending<T> {
    expect: Expect,
    max_values: usize,
    tag: T,
    quiet: Option<Quiet>,
}

/// What a quiet request was sent with: its opaque, and what its silence means.
#[derive(Debug, Clone, Copy)]
struct Quiet {
    opaque: u32,
    silence: MetaStatus,
}

/// Per-server connection state. `T` is what the caller needs back with each reply (the
/// engine's record of which op a request serves and when it is due): the one queue of a
/// connection, so replies and their callers cannot drift apart.
#[derive(Debug)]
pub struct Connection<T = ()> {
    outbound: Vec<u8>,
    pending: VecDeque<Pending<T>>,
    parser: ResponseParser,
    /// Completed replies for callers of the untagged API ([`Connection::receive`]).
    ready: VecDeque<Response>,
    /// Set by the first malformed reply: after it the byte stream cannot be trusted, so
    /// every later `receive` fails the same way until `reset`.
    broken: Option<Error>,
    /// The opaque of the next quiet request.
    next_opaque: u32,
    /// The last request pushed was quiet: an `mn` must close the run
    /// ([`Connection::close_quiet`]) before anything else is pushed or written.
    quiet_open: bool,
    /// An error memcached sent without an opaque while quiet requests wait: each of them
    /// settled before the next reply naming one gets it.
    ambiguous: Option<Response>,
}

impl Connection {
    /// A connection whose callers match replies to requests themselves (no tags).
    /// `max_item_size` is the largest value kept from a reply; larger ones are read past
    /// and marked ([`crate::response::Item::skipped`]).
    pub fn new(max_item_size: usize) -> Self {
        Connection::tagged(max_item_size)
    }
}

impl<T> Connection<T> {
    /// A connection whose pending requests carry the caller's tags.
    pub fn tagged(max_item_size: usize) -> Self {
        Connection {
            outbound: Vec::new(),
            pending: VecDeque::new(),
            parser: ResponseParser::new(max_item_size),
            ready: VecDeque::new(),
            broken: None,
            next_opaque: 1,
            quiet_open: false,
            ambiguous: None,
        }
    }

    /// Encodes `request` after the requests already waiting to be written and, unless it
    /// is noreply or quit, queues the reply it expects with `tag`. A request that cannot
    /// be encoded (bad key, bad stats arguments, a get without keys) is refused and leaves
    /// the connection as it was.
    pub fn push_tagged(&mut self, request: &Request, tag: T) -> Result<()> {
        self.push_encoded(
            request.expects(),
            request.max_values(),
            |out| request.encode(out),
            tag,
        )
    }

    /// Like [`Connection::push_tagged`] for bytes `encode` appends (a request written
    /// without a [`Request`] value, such as a get line straight from its key buffer);
    /// `expect` and `max_values` describe its reply. On error the bytes are taken back.
    pub fn push_encoded(
        &mut self,
        expect: Expect,
        max_values: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<()>,
        tag: T,
    ) -> Result<()> {
        debug_assert!(!self.quiet_open, "a quiet run must be closed first");
        let start = self.outbound.len();
        if let Err(error) = encode(&mut self.outbound) {
            self.outbound.truncate(start);
            return Err(error);
        }
        if expect != Expect::Nothing {
            self.pending.push_back(Pending {
                expect,
                max_values,
                tag,
                quiet: None,
            });
        }
        Ok(())
    }

    /// Encodes a quiet meta request: `encode` appends it given its opaque (it must carry
    /// `q` and `O<opaque>`); `silence` is what it means when memcached says nothing about
    /// it (`Stored` for `ms`/`md`/`ma`, `Miss` for `mg`). Until [`Connection::close_quiet`]
    /// only more quiet requests may follow.
    pub fn push_quiet(
        &mut self,
        silence: MetaStatus,
        encode: impl FnOnce(&mut Vec<u8>, u32) -> Result<()>,
        tag: T,
    ) -> Result<()> {
        let opaque = self.next_opaque;
        let start = self.outbound.len();
        if let Err(error) = encode(&mut self.outbound, opaque) {
            self.outbound.truncate(start);
            return Err(error);
        }
        self.next_opaque = opaque.checked_add(1).unwrap_or(1);
        self.pending.push_back(Pending {
            expect: Expect::Meta,
            max_values: 1,
            tag,
            quiet: Some(Quiet { opaque, silence }),
        });
        self.quiet_open = true;
        Ok(())
    }

    /// Whether the last request pushed was quiet (an `mn` must follow it).
    pub fn quiet_open(&self) -> bool {
        self.quiet_open
    }

    /// Ends a run of quiet requests with `mn`, whose `MN` settles those memcached said
    /// nothing about; `tag` is the `mn`'s own. Nothing happens when no run is open.
    pub fn close_quiet(&mut self, tag: T) {
        if !self.quiet_open {
            return;
        }
        self.quiet_open = false;
        self.outbound.extend_from_slice(b"mn\r\n");
        self.pending.push_back(Pending {
            expect: Expect::Meta,
            max_values: 1,
            tag,
            quiet: None,
        });
    }

    /// Every request pushed since the last call, as one write (pipelining).
    pub fn take_outbound(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbound)
    }

    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// The requests pushed since the last take, as they will be written; with
    /// [`Connection::clear_outbound`] a caller copies them out and keeps the buffer.
    pub fn outbound(&self) -> &[u8] {
        &self.outbound
    }

    pub fn clear_outbound(&mut self) {
        self.outbound.clear();
    }

    /// Takes bytes that arrived, in any chunking down to one byte, and hands each
    /// completed reply to `deliver` with its request's tag, in request order. Whole replies
    /// in the chunk are parsed where they lie; only an unfinished line is kept (values are
    /// copied once, into their `Item`). A malformed reply, or bytes when no request waits,
    /// is [`Error::Protocol`]: the connection must then be closed and reset. Replies
    /// completed before the malformed bytes are still delivered.
    pub fn receive_tagged(
        &mut self,
        chunk: &[u8],
        mut deliver: impl FnMut(T, Response),
    ) -> Result<()> {
        if let Some(error) = &self.broken {
            return Err(error.clone());
        }
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(front) = self.pending.front() else {
                // Only the first byte is named: the message must not depend on how
                // the bytes were chunked.
                return Err(self.break_with(Error::Protocol(format!(
                    "bytes arrived while no request waits for a reply, starting with {:?}",
                    chunk[pos..=pos].escape_ascii().to_string()
                ))));
            };
            let quiet = front.quiet.is_some();
            match self
                .parser
                .parse(front.expect, front.max_values, &chunk[pos..])
            {
                Ok((used, reply)) => {
                    pos += used;
                    match reply {
                        Some(reply) if quiet => {
                            if let Err(error) = self.settle_quiet(reply, &mut deliver) {
                                return Err(self.break_with(error));
                            }
                        }
                        Some(reply) => {
                            if let Some(done) = self.pending.pop_front() {
                                deliver(done.tag, reply);
                            }
                        }
                        None => {}
                    }
                }
                Err(error) => return Err(self.break_with(error)),
            }
        }
        Ok(())
    }

    /// A reply while the oldest waiting request is quiet: it settles that request and the
    /// quiet ones up to the request it answers (see the module's notes).
    fn settle_quiet(
        &mut self,
        reply: Response,
        deliver: &mut impl FnMut(T, Response),
    ) -> Result<()> {
        let answers = match &reply {
            Response::Meta(m) if m.status == MetaStatus::Noop => None,
            Response::Meta(m) => {
                let opaque = m
                    .flags
                    .opaque
                    .as_deref()
                    .and_then(parse_decimal)
                    .and_then(|o| u32::try_from(o).ok())
                    .ok_or_else(|| {
                        Error::Protocol(format!(
                            "a reply {:?} to a quiet request came back without its opaque",
                            m.status
                        ))
                    })?;
                let at = self
                    .pending
                    .iter()
                    .take_while(|p| p.quiet.is_some())
                    .position(|p| p.quiet.is_some_and(|q| q.opaque == opaque))
                    .ok_or_else(|| {
                        Error::Protocol(format!(
                            "a reply with opaque {opaque} matches no quiet request waiting"
                        ))
                    })?;
                Some(at)
            }
            Response::ServerError(_) | Response::ClientError(_) | Response::Error => {
                if self.ambiguous.is_none() {
                    self.ambiguous = Some(reply);
                }
                return Ok(());
            }
            other => {
                return Err(Error::Protocol(format!(
                    "a reply {other:?} where only meta replies to quiet requests can come"
                )))
            }
        };
        // The quiet requests before the one answered were settled by memcached's silence.
        let silent = answers.unwrap_or_else(|| {
            self.pending
                .iter()
                .take_while(|p| p.quiet.is_some())
                .count()
        });
        for _ in 0..silent {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            let outcome = match &self.ambiguous {
                Some(error) => unattributed(error),
                None => Response::Meta(MetaReply::new(
                    p.quiet.map_or(MetaStatus::Stored, |q| q.silence),
                )),
            };
            deliver(p.tag, outcome);
        }
        self.ambiguous = None;
        // The request the reply answers: a quiet one by its opaque, or the run's `mn`.
        match self.pending.pop_front() {
            Some(p) => deliver(p.tag, reply),
            None => {
                return Err(Error::Protocol(
                    "an MN arrived while no mn waits for it".into(),
                ))
            }
        }
        Ok(())
    }

    /// Hands back the items of a `Values` reply the caller is done with, so the parser
    /// reuses their buffers (see [`ResponseParser::recycle`]).
    pub fn recycle(&mut self, items: Vec<crate::response::Item>) {
        self.parser.recycle(items);
    }

    /// Requests still waiting for their reply (noreply requests never wait).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The tag of the oldest request waiting for its reply: the next one answered.
    pub fn oldest(&self) -> Option<&T> {
        self.pending.front().map(|p| &p.tag)
    }

    /// The oldest waiting request's tag, to change.
    pub fn oldest_mut(&mut self) -> Option<&mut T> {
        self.pending.front_mut().map(|p| &mut p.tag)
    }

    /// The tag of the request pushed last, while it waits.
    pub fn newest_mut(&mut self) -> Option<&mut T> {
        self.pending.back_mut().map(|p| &mut p.tag)
    }

    /// The tags of every request waiting, oldest first.
    pub fn waiting(&self) -> impl Iterator<Item = &T> {
        self.pending.iter().map(|p| &p.tag)
    }

    /// The socket died: forget the partial reply, the requests not yet written and the
    /// requests waiting for a reply, whose tags are returned oldest first: they will never
    /// be answered and their callers must be told. Responses already completed for the
    /// untagged API stay available from [`Connection::next_response`]. noreply requests
    /// whose bytes were not yet taken are dropped with the buffer, like any noreply write
    /// on a connection that dies.
    pub fn reset_tagged(&mut self) -> Vec<T> {
        self.outbound = Vec::new();
        self.parser.reset();
        self.broken = None;
        self.quiet_open = false;
        self.ambiguous = None;
        self.pending.drain(..).map(|p| p.tag).collect()
    }

    fn break_with(&mut self, error: Error) -> Error {
        self.broken = Some(error.clone());
        error
    }
}

/// An error memcached sent without saying which quiet request it answers, as given to
/// each request it may belong to.
fn unattributed(error: &Response) -> Response {
    const NOTE: &str = "(memcached sent this to one of the quiet writes since its last reply without saying which: this one may not have been applied)";
    match error {
        Response::ServerError(text) => Response::ServerError(format!("{text} {NOTE}")),
        Response::ClientError(text) => Response::ClientError(format!("{text} {NOTE}")),
        _ => Response::ClientError(format!("ERROR {NOTE}")),
    }
}

/// The untagged API, for callers that match replies to requests themselves.
impl<T: Default> Connection<T> {
    pub fn push(&mut self, request: &Request) -> Result<()> {
        self.push_tagged(request, T::default())
    }

    /// Like [`Connection::receive_tagged`]; completed responses wait in
    /// [`Connection::next_response`].
    pub fn receive(&mut self, chunk: &[u8]) -> Result<()> {
        let mut ready = std::mem::take(&mut self.ready);
        let received = self.receive_tagged(chunk, |_, response| ready.push_back(response));
        self.ready = ready;
        received
    }

    /// Hands each completed response to `deliver` at once, in request order.
    pub fn receive_each(&mut self, chunk: &[u8], mut deliver: impl FnMut(Response)) -> Result<()> {
        self.receive_tagged(chunk, |_, response| deliver(response))
    }

    /// The oldest completed response, if any.
    pub fn next_response(&mut self) -> Option<Response> {
        self.ready.pop_front()
    }

    /// [`Connection::reset_tagged`], returning how many requests were waiting.
    pub fn reset(&mut self) -> usize {
        self.reset_tagged().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::StorageVerb;
    use crate::response::Item;

    fn set<'a>(key: &'a [u8], data: &'a [u8], noreply: bool) -> Request<'a> {
        Request::Store {
            verb: StorageVerb::Set,
            key,
            flags: 0,
            exptime: 0,
            data,
            noreply,
        }
    }

    fn drain(connection: &mut Connection) -> Vec<Response> {
        std::iter::from_fn(|| connection.next_response()).collect()
    }

    #[test]
    fn pushed_requests_go_out_as_one_write_and_replies_match_in_order() {
        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        assert!(!connection.has_outbound());
        connection.push(&set(b"a", b"1", false)).unwrap();
        connection.push(&set(b"q", b"2", true)).unwrap();
        connection
            .push(&Request::Get {
                keys: &[b"a", b"b"],
            })
            .unwrap();
        connection
            .push(&Request::Delete {
                key: b"a",
                noreply: false,
            })
            .unwrap();
        assert!(connection.has_outbound());
        assert_eq!(connection.pending(), 3, "the noreply set waits for nothing");
        assert_eq!(
            connection.take_outbound(),
            b"set a 0 0 1\r\n1\r\nset q 0 0 1 noreply\r\n2\r\nget a b\r\ndelete a\r\n"
        );
        assert!(!connection.has_outbound());
        assert!(connection.take_outbound().is_empty());

        connection
            .receive(b"STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\nDELETED\r\n")
            .unwrap();
        assert_eq!(connection.pending(), 0);
        assert_eq!(
            drain(&mut connection),
            vec![
                Response::Stored,
                Response::Values(vec![Item {
                    key: b"a".to_vec(),
                    flags: 0,
                    cas: None,
                    data: b"1".to_vec(),
                    skipped: None,
                }]),
                Response::Deleted,
            ]
        );
    }

    #[test]
    fn replies_split_anywhere_come_out_whole() {
        let reply = b"STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\nDELETED\r\n";
        for split in 0..=reply.len() {
            let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
            connection.push(&set(b"a", b"1", false)).unwrap();
            connection.push(&Request::Get { keys: &[b"a"] }).unwrap();
            connection
                .push(&Request::Delete {
                    key: b"a",
                    noreply: false,
                })
                .unwrap();
            connection.receive(&reply[..split]).unwrap();
            connection.receive(&reply[split..]).unwrap();
            assert_eq!(drain(&mut connection).len(), 3, "split at {split}");
            assert_eq!(connection.pending(), 0);
        }
    }

    #[test]
    fn receive_each_delivers_at_once() {
        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        connection.push(&Request::Version).unwrap();
        connection
            .push(&Request::FlushAll {
                delay: None,
                noreply: false,
            })
            .unwrap();
        let mut got = Vec::new();
        connection
            .receive_each(b"VERSION 1.6.18\r\nOK\r\n", |response| got.push(response))
            .unwrap();
        assert_eq!(got, vec![Response::Version("1.6.18".into()), Response::Ok]);
        assert_eq!(connection.next_response(), None);
    }

    #[test]
    fn bytes_with_nothing_pending_are_a_protocol_error() {
        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        let error = connection.receive(b"STORED\r\n").unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");

        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        connection.push(&set(b"k", b"v", true)).unwrap();
        connection.push(&Request::Quit).unwrap();
        assert_eq!(connection.pending(), 0);
        assert!(matches!(connection.receive(b"S"), Err(Error::Protocol(_))));

        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        connection.push(&Request::Version).unwrap();
        let error = connection.receive(b"VERSION 1\r\nSTORED\r\n").unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");
        assert_eq!(drain(&mut connection), vec![Response::Version("1".into())]);
    }

    #[test]
    fn a_broken_connection_stays_broken_until_reset() {
        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        connection.push(&Request::Version).unwrap();
        connection.push(&Request::Version).unwrap();
        connection.push(&Request::Version).unwrap();
        let first = connection.receive(b"VERSION 1\r\nBOGUS\r\n").unwrap_err();
        assert_eq!(connection.receive(b"VERSION 2\r\n"), Err(first));
        assert_eq!(connection.reset(), 2);
        assert_eq!(connection.pending(), 0);
        assert_eq!(drain(&mut connection), vec![Response::Version("1".into())]);
        connection.push(&Request::Version).unwrap();
        connection.receive(b"VERSION 3\r\n").unwrap();
        assert_eq!(
            connection.next_response(),
            Some(Response::Version("3".into()))
        );
    }

    #[test]
    fn reset_drops_partial_replies_and_unsent_requests() {
        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        connection.push(&Request::Get { keys: &[b"a"] }).unwrap();
        connection.receive(b"VALUE a 0 10\r\nhalf").unwrap();
        connection.push(&Request::Version).unwrap();
        assert_eq!(connection.reset(), 2);
        assert!(!connection.has_outbound());
        connection.push(&Request::Version).unwrap();
        connection.receive(b"VERSION x\r\n").unwrap();
        assert_eq!(drain(&mut connection), vec![Response::Version("x".into())]);
    }

    #[test]
    fn a_refused_request_leaves_nothing_behind() {
        let mut connection: Connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
        connection.push(&Request::Version).unwrap();
        let error = connection
            .push(&Request::Get {
                keys: &[b"bad key"],
            })
            .unwrap_err();
        assert!(matches!(error, Error::BadKey { .. }), "{error:?}");
        assert_eq!(connection.pending(), 1);
        assert_eq!(connection.take_outbound(), b"version\r\n");
    }

    #[test]
    fn a_value_over_the_item_limit_fails_alone_and_the_next_reply_is_in_step() {
        let mut connection: Connection = Connection::new(4);
        connection.push(&Request::Get { keys: &[b"a"] }).unwrap();
        connection.push(&Request::Version).unwrap();
        connection
            .receive(b"VALUE a 0 5\r\n12345\r\nEND\r\nVERSION 1.6\r\n")
            .unwrap();
        let Some(Response::Values(items)) = connection.next_response() else {
            panic!("values first")
        };
        assert_eq!(items[0].skipped, Some(5));
        assert_eq!(
            connection.next_response(),
            Some(Response::Version("1.6".into()))
        );
    }

    #[test]
    fn replies_come_back_with_their_tags_and_reset_returns_the_waiting_ones() {
        let mut connection: Connection<u32> = Connection::tagged(DEFAULT_MAX_ITEM_SIZE);
        connection.push_tagged(&Request::Version, 1).unwrap();
        connection.push_tagged(&Request::Version, 2).unwrap();
        connection.push_tagged(&Request::Version, 3).unwrap();
        assert_eq!(connection.oldest(), Some(&1));
        let mut got = Vec::new();
        connection
            .receive_tagged(b"VERSION a\r\n", |tag, r| got.push((tag, r)))
            .unwrap();
        assert_eq!(got, vec![(1, Response::Version("a".into()))]);
        assert_eq!(
            connection.waiting().copied().collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(connection.reset_tagged(), vec![2, 3]);
        assert_eq!(connection.pending(), 0);
    }
}
