//! One server as the engine drives it: its connection (one pending queue whose tags say
//! which op each reply serves and when it is due), the state of its link, its health, and
//! the bytes waiting to be written. Writes wait while the link is not open, and around a
//! metadump: memcached refuses `lru_crawler metadump` while replies to earlier requests
//! are pending (`ERROR cannot pipeline other commands before metadump`) and leaves unread
//! the requests that arrive in the same read as the metadump line until more bytes come,
//! so its line goes out alone once the earlier replies are in, and later writes wait for
//! the end of the dump.

use std::collections::VecDeque;

use crate::connection::Connection;
use crate::error::Result;
use crate::request::{Expect, Request};
use crate::wire::{entry, put_field, put_u16, put_u8};

use super::auth::Credentials;
use super::command::Read;
use super::get_line::GetLine;
use super::routing::Health;

/// The socket, as the engine asked JavaScript to keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// No socket: the next request (or probe) asks for one.
    Closed,
    /// CONNECT was asked for; the connection must be made by `deadline`.
    Connecting {
        deadline: u64,
    },
    /// Open, and the authentication request written: nothing else is written until
    /// memcached answers it, by `deadline`.
    Authenticating {
        deadline: u64,
    },
    Open,
}

/// What a reply means to the op it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Read(Read),
    Store,
    Delete,
    Touch,
    Counter,
    /// A noreply incr or decr: applied (true) or the key is missing (false).
    Applied,
    Flush,
    Stats,
    Version,
    Metadump,
    /// A meta protocol op ([`super::meta_ops`]).
    Meta(super::meta_ops::MetaRead),
}

/// What a request is waiting for: the tag in the connection's pending queue.
#[derive(Debug)]
pub enum Awaiting {
    /// One get line serving several ops.
    Get(GetLine),
    /// The only request of a single-key op (or a metadump): its reply settles the op.
    Single { id: u32, reply: Reply },
    /// One request of a multi op: a key of set_multi / delete_multi (`index`), or one
    /// server's share of flush_all / stats / version.
    Part { id: u32, index: u32, reply: Reply },
    /// The engine's own `version` on a new connection to a server that is down.
    Probe,
    /// The `mn` closing a run of quiet writes ([`super::quiet`]): its `MN` settles them.
    Noop,
    /// The engine's own `version` on a stalled TLS connection ([`STALL_NUDGE_MS`]); its
    /// reply is read past.
    Nudge,
}

/// How long a TLS connection may wait for a reply with no byte arriving before the engine
/// sends a `version` behind what is pending. memcached 1.6.18's TLS leaves the last request
/// of a burst unread until more bytes arrive (`bench/tls-stall.mjs` shows it with a raw
/// socket), which would be a TIMEOUT and a down server. 20 ms is far above a reply's first
/// byte on a LAN or within a region (under a millisecond) and is what a stall costs: with
/// 200 ms, 10 KB sets at 64 in flight over TLS ran at 0.28x-0.43x of TCP, with 20 ms 0.48x
/// (`node bench/tls.mjs --size 10240`). One nudge at a time, so a farther server whose replies
/// take longer gets at most one `version` per wait.
pub const STALL_NUDGE_MS: u64 = 20;

/// A pending request's tag.
#[derive(Debug)]
pub struct Waiting {
    pub awaiting: Awaiting,
    /// When the request is overdue (its push time plus the client's timeout).
    pub deadline: u64,
}

/// Bytes not yet handed to JavaScript, in write order.
#[derive(Debug)]
enum Segment {
    Bytes(Vec<u8>),
    /// A metadump line: written once every earlier reply is in.
    Metadump(Vec<u8>),
}

pub struct Server {
    pub address: String,
    pub health: Health,
    pub link: Link,
    pub connection: Connection<Waiting>,
    /// The get line that later gets of this submit may still join.
    pub open_get: Option<GetLine>,
    /// Bytes that cannot be written yet (link not open, or a metadump's turn).
    held: VecDeque<Segment>,
    /// A metadump line was written and its reply is not complete: nothing else goes out.
    metadump_running: bool,
    /// Set when requests were pushed in the current call: the writes need looking at.
    pub dirty: bool,
    /// memcached -Y's credentials, sent first on every new connection.
    pub auth: Option<Credentials>,
    /// The part of the reply to authentication that has arrived.
    pub auth_reply: Vec<u8>,
    /// The socket is TLS: a stalled reply gets a nudge ([`STALL_NUDGE_MS`]).
    pub tls: bool,
    /// When bytes last arrived on this connection.
    pub last_read: u64,
    /// A nudge is out and not answered.
    pub nudge_out: bool,
    /// In the client's current server list. A server `setServers` removed answers what
    /// was already sent to it, takes nothing new, and is closed once idle.
    pub member: bool,
}

impl Server {
    pub fn new(address: String, max_item_size: usize) -> Self {
        Server {
            address,
            health: Health::Up,
            link: Link::Closed,
            connection: Connection::tagged(max_item_size),
            open_get: None,
            held: VecDeque::new(),
            metadump_running: false,
            dirty: false,
            auth: None,
            auth_reply: Vec::new(),
            member: true,
            tls: false,
            last_read: 0,
            nudge_out: false,
        }
    }

    /// Encodes a request after everything queued before it.
    pub fn push(&mut self, request: &Request, awaiting: Awaiting, deadline: u64) -> Result<()> {
        self.close_quiet(deadline);
        self.connection
            .push_tagged(request, Waiting { awaiting, deadline })?;
        self.dirty = true;
        Ok(())
    }

    /// Encodes a write quietly (noreply): memcached answers it only if it did not succeed.
    pub fn push_quiet(
        &mut self,
        request: &Request,
        awaiting: Awaiting,
        deadline: u64,
    ) -> Result<()> {
        self.connection.push_quiet(
            super::quiet::silence(request),
            |out, opaque| super::quiet::encode(request, opaque, out),
            Waiting { awaiting, deadline },
        )?;
        self.dirty = true;
        Ok(())
    }

    /// Encodes bytes `encode` appends, whose reply is read as `expect` says.
    pub fn push_encoded(
        &mut self,
        expect: Expect,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<()>,
        waiting: Waiting,
    ) -> Result<()> {
        self.close_quiet(waiting.deadline);
        let pushed = self.connection.push_encoded(expect, 1, encode, waiting);
        self.dirty = true;
        pushed
    }

    /// Closes a run of quiet writes with its `mn` (before anything else is queued, and
    /// before the bytes are written).
    pub fn close_quiet(&mut self, deadline: u64) {
        if self.connection.quiet_open() {
            self.connection.close_quiet(Waiting {
                awaiting: Awaiting::Noop,
                deadline,
            });
        }
    }

    /// Encodes a get line; the line itself is the tag its values are split by.
    pub fn push_get_line(&mut self, line: GetLine, deadline: u64) {
        self.close_quiet(deadline);
        let placeholder = Waiting {
            awaiting: Awaiting::Get(GetLine::default()),
            deadline,
        };
        // Every key was checked by routing (keys::check_key) when it joined the line, so
        // the line always encodes.
        let pushed = self.connection.push_encoded(
            Expect::Values,
            line.len(),
            |out| crate::request::write_get_line(out, line.keys()),
            placeholder,
        );
        debug_assert!(pushed.is_ok());
        if let Some(waiting) = self.connection.newest_mut() {
            waiting.awaiting = Awaiting::Get(line);
        }
        self.dirty = true;
    }

    /// Encodes a metadump: its line becomes a segment of its own.
    pub fn push_metadump(&mut self, request: &Request, id: u32, deadline: u64) -> Result<()> {
        self.close_quiet(deadline);
        self.hold_outbound();
        let awaiting = Awaiting::Single {
            id,
            reply: Reply::Metadump,
        };
        self.connection
            .push_tagged(request, Waiting { awaiting, deadline })?;
        let line = self.connection.take_outbound();
        self.held.push_back(Segment::Metadump(line));
        self.dirty = true;
        Ok(())
    }

    /// Moves what the connection encoded into the held segments.
    fn hold_outbound(&mut self) {
        if !self.connection.has_outbound() {
            return;
        }
        let bytes = self.connection.take_outbound();
        match self.held.back_mut() {
            Some(Segment::Bytes(tail)) => tail.extend_from_slice(&bytes),
            _ => self.held.push_back(Segment::Bytes(bytes)),
        }
    }

    /// Appends a WRITE entry for server `index` to `out` with the bytes that may be written
    /// now, if any.
    pub fn write_into(&mut self, index: usize, out: &mut Vec<u8>) {
        if self.link == Link::Open && self.held.is_empty() && !self.metadump_running {
            // The hot path: nothing waits, the connection's buffer is copied out and kept.
            if self.connection.has_outbound() {
                put_u8(out, entry::WRITE);
                put_u16(out, index as u16);
                put_field(out, self.connection.outbound());
                self.connection.clear_outbound();
            }
            return;
        }
        if let Some(bytes) = self.writable() {
            put_u8(out, entry::WRITE);
            put_u16(out, index as u16);
            put_field(out, &bytes);
        }
    }

    /// The bytes that may be written now, as one write (or nothing).
    fn writable(&mut self) -> Option<Vec<u8>> {
        if self.link != Link::Open {
            self.hold_outbound();
            return None;
        }
        self.hold_outbound();
        let mut out: Option<Vec<u8>> = None;
        while !self.metadump_running {
            match self.held.front() {
                Some(Segment::Bytes(_)) => {
                    if let Some(Segment::Bytes(bytes)) = self.held.pop_front() {
                        match &mut out {
                            Some(out) => out.extend_from_slice(&bytes),
                            None => out = Some(bytes),
                        }
                    }
                }
                Some(Segment::Metadump(_)) => {
                    // Its turn comes when it is the oldest request waiting: every earlier
                    // reply is in (and nothing else may share its write).
                    let first = matches!(
                        self.connection.oldest(),
                        Some(Waiting {
                            awaiting: Awaiting::Single {
                                reply: Reply::Metadump,
                                ..
                            },
                            ..
                        })
                    );
                    if !first || out.is_some() {
                        break;
                    }
                    if let Some(Segment::Metadump(line)) = self.held.pop_front() {
                        out = Some(line);
                        self.metadump_running = true;
                    }
                }
                None => break,
            }
        }
        out
    }

    /// A metadump's reply is complete: later writes may go.
    pub fn metadump_done(&mut self) {
        self.metadump_running = false;
    }

    /// The link is gone: everything waiting or unwritten is returned (oldest first) for
    /// its callers to be told.
    pub fn drop_link(&mut self) -> Vec<Waiting> {
        self.link = Link::Closed;
        self.auth_reply.clear();
        self.nudge_out = false;
        self.held.clear();
        self.metadump_running = false;
        self.open_get = None;
        self.connection.reset_tagged()
    }

    /// Whether anything waits on this server (a reply, or bytes to write).
    pub fn is_busy(&self) -> bool {
        self.connection.pending() > 0 || !self.held.is_empty() || self.connection.has_outbound()
    }

    /// When a stalled TLS connection is due a nudge: [`STALL_NUDGE_MS`] after the later of
    /// the last bytes read and the oldest pending request (`timeout_ms` is what its
    /// deadline adds to its push time).
    pub fn nudge_due(&self, timeout_ms: u64) -> Option<u64> {
        if !self.tls || self.nudge_out || self.link != Link::Open {
            return None;
        }
        let oldest = self.connection.oldest()?;
        let pushed = oldest.deadline.saturating_sub(timeout_ms);
        Some(self.last_read.max(pushed).saturating_add(STALL_NUDGE_MS))
    }

    /// The earliest time this server needs the engine woken: a connect or reply deadline,
    /// or a probe that is due.
    pub fn next_wake(&self) -> Option<u64> {
        let connect = match self.link {
            Link::Connecting { deadline } | Link::Authenticating { deadline } => Some(deadline),
            _ => None,
        };
        let reply = self.connection.oldest().map(|w| w.deadline);
        [connect, reply, self.health.probe_due()]
            .into_iter()
            .flatten()
            .min()
    }
}
