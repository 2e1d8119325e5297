//! The engine behind the JavaScript Client. It owns every rule: which server a key goes
//! to, what each reply means for each op and each key, when a request is overdue, when a
//! failed server is tried again. JavaScript owns the sockets and the timer: it hands the
//! engine a batch of ops, bytes that arrived, and news of its sockets, always with the
//! current time, and gets back one output buffer of what to do and what happened (the
//! sans-IO shape of quinn-proto: time is an input, and the output says when to wake).
//!
//! Calls: `submit(now, batch)` (ops: [`command`]), `receive(now, server, chunk)`,
//! `connected(now, server)`, `connection_lost(now, server, kind, message)`,
//! `handle_timeout(now)`. Times are milliseconds on the caller's monotonic clock.
//!
//! **Output** (every call): `wake:f64` (when to call `handle_timeout` next; -1: no need),
//! then entries until the end:
//! ```text
//! OUTCOME     id:u32 record:u8 body     what happened to op `id` (records below)
//! WRITE       server:u16 bytes:str      write these bytes to the server's socket
//! CONNECT     server:u16                open a socket to the server, then `connected`
//! CLOSE       server:u16                close the server's socket (the engine gave up on it)
//! SERVER_DOWN server:u16 error          the server went down (failover skips it)
//! SERVER_UP   server:u16                a down server answered a probe again
//! ```
//! Records; the first group settles the op, the second adds to a multi op's result:
//! ```text
//! MISS    VALUE kind:u8 str    CAS_VALUE cas:u64 kind:u8 str    TRUE    FALSE
//! NUMBER digits:str            ITEM flags:u32 size:u32 cas:u64 server:u16 kind:u8 str
//! LINES count:u32 str*count    DONE (a multi op is complete)    ERROR error
//!
//! KEY_VALUES count:u32 (index:u32 kind:u8 str)*count   multi-get hits; index into the op's keys
//! KEY_ERROR index:u32 error         a key of a multi op that failed (not read, not stored)
//! SERVER_STATS server:u16 count:u32 (name:str value:str)*count
//! SERVER_TEXT server:u16 str        one server's version
//! ```
//! `error` is `code:u8 server:u16 key:str message:str` ([`crate::wire::put_error`]). Every
//! op gets exactly one settling record. Value kinds read back: 0 bytes, 1 text, 2 int
//! (decimal ASCII), 3 long (decimal ASCII), 4 JSON text (JSON values and pickles), 5
//! serialized bytes for the caller's deserializer.

pub mod auth;
pub mod command;
pub mod get_line;
pub mod meta_ops;
pub mod quiet;
pub mod routing;
pub mod server;

#[cfg(test)]
mod tests;

use crate::codec::{self, CodecOptions, Decoded};
use crate::distribution::{Distribution, HashFunction, Ketama, Modula};
use crate::error::{Error, Result};
use crate::keys;
use crate::request::{MetadumpScope, Request, StorageVerb};
use crate::response::{Item, Response};
use crate::wire::{
    entry, kind, link_failure, patch_u32, put_error, put_f64, put_field, put_u16, put_u32, put_u64,
    put_u8, record, NO_WAKE,
};

use command::{Command, KeyRef, Op, Read, ValueRef};
use get_line::GetLine;
use routing::{Health, Router};
use server::{Awaiting, Link, Reply, Server};

pub use get_line::MAX_COALESCED_KEYS;

/// Which distribution picks a key's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionKind {
    Modula,
    Ketama,
}

/// The clock rules, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A request not answered this long after it was made fails with TIMEOUT, and its
    /// connection is dropped (python-memcached's socket_timeout).
    pub timeout_ms: u64,
    /// A connection not made this long after it was asked for fails.
    pub connect_timeout_ms: u64,
    /// The longest wait between probes of a down server (python-memcached's dead_retry).
    pub dead_retry_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            timeout_ms: 3_000,
            connect_timeout_ms: 1_000,
            dead_retry_ms: 30_000,
        }
    }
}

/// How the client was configured; the binding builds it from the JavaScript options.
pub struct EngineConfig {
    /// (address, weight) in the caller's order; the index is the server id in the formats.
    pub servers: Vec<(String, u32)>,
    pub distribution: DistributionKind,
    /// The modula hash. With `Custom`, JavaScript sends every key's hash in the batch and
    /// the function is only called for python-memcached's re-hash past a down server.
    pub hash: HashFunction,
    /// Whether JavaScript hashes keys itself (hashed ops are required then).
    pub caller_hashes: bool,
    /// What this client writes (`max_value_size` bounds stored values).
    pub codec: CodecOptions,
    /// The largest value read back; a larger item fails its key alone (VALUE_TOO_LARGE).
    pub max_item_size: usize,
    /// When a key's server is down: re-hash to another (python-memcached) or NO_SERVER.
    pub failover: bool,
    pub timing: Timing,
    /// The client talks to a proxy (twemproxy): the commands it does not relay are refused
    /// with NOT_RELAYED before they are sent.
    pub behind_proxy: bool,
}

/// A multi op whose parts are still out.
#[derive(Debug)]
struct MultiOp {
    parts: u32,
    /// Every part succeeded (delete_multi, flush_all answer with it).
    all_ok: bool,
    settle: Settle,
    /// The first error memcached answered to a stats or version part: the op fails with it.
    error: Option<(usize, Error)>,
    /// Servers that answered a per-server op, and the first failure of one that did not.
    answered: u32,
    failure: Option<(usize, Error)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// DONE: the result is what the partial records built.
    Done,
    /// TRUE when every part succeeded, FALSE otherwise.
    AllOk,
    /// DONE with what the servers that answered said (stats, version: python-memcached
    /// leaves out the servers it cannot reach); when none could answer, the first failure.
    PerServer,
}

/// The output buffer of one call.
struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn outcome(&mut self, id: u32, rec: u8) {
        put_u8(self.0, entry::OUTCOME);
        put_u32(self.0, id);
        put_u8(self.0, rec);
    }

    fn error(&mut self, id: u32, server: Option<usize>, error: &Error) {
        self.outcome(id, record::ERROR);
        put_error(self.0, server, error);
    }

    fn key_error(&mut self, id: u32, index: u32, server: Option<usize>, error: &Error) {
        self.outcome(id, record::KEY_ERROR);
        put_u32(self.0, index);
        put_error(self.0, server, error);
    }

    fn server_entry(&mut self, kind: u8, server: usize) {
        put_u8(self.0, kind);
        put_u16(self.0, server as u16);
    }
}

pub struct Engine {
    servers: Vec<Server>,
    router: Router,
    codec: CodecOptions,
    max_item_size: usize,
    timing: Timing,
    multi: MultiOps,
    spare: Spare,
    now: u64,
    leases: meta_ops::Leases,
    /// Set while a noreply op is queued: its requests are pushed quietly.
    quiet: bool,
    behind_proxy: bool,
}

/// Buffers kept between calls so that steady traffic allocates little per call: get lines
/// that were answered, the item lists of replies to hand back to their connection's parser,
/// and the scratch list that pairs values with keys.
#[derive(Debug, Default)]
struct Spare {
    lines: Vec<GetLine>,
    items: Vec<Vec<Item>>,
    hits: Vec<Option<usize>>,
}

/// Answered get lines kept for reuse: at most this many, each holding at most this many
/// bytes of keys (a line grown by a huge multi-get is dropped), so the spares stay under
/// about 1 MiB per client.
const MAX_SPARE_LINES: usize = 64;
const MAX_SPARE_LINE_BYTES: usize = 16 * 1024;

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Self> {
        if config.servers.is_empty() {
            return Err(Error::BadArgument(
                "the client needs at least one server".into(),
            ));
        }
        if config.servers.len() >= usize::from(u16::MAX) {
            return Err(Error::BadArgument("at most 65534 servers".into()));
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
        let max_item_size = config.max_item_size;
        let members = (0..config.servers.len()).collect();
        let servers = config
            .servers
            .into_iter()
            .map(|(address, _)| Server::new(address, max_item_size))
            .collect();
        Ok(Engine {
            servers,
            router: Router {
                distribution,
                failover: config.failover,
                caller_hashes: config.caller_hashes,
                members,
            },
            codec: config.codec,
            max_item_size,
            timing: config.timing,
            multi: MultiOps::default(),
            spare: Spare::default(),
            now: 0,
            leases: meta_ops::Leases::default(),
            quiet: false,
            behind_proxy: config.behind_proxy,
        })
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// The credentials the server's new connections authenticate with (memcached -Y), or
    /// none; an open connection keeps the authentication it made.
    pub fn set_auth(
        &mut self,
        server: usize,
        credentials: Option<auth::Credentials>,
    ) -> Result<()> {
        self.check_server(server)?;
        self.servers[server].auth = credentials;
        Ok(())
    }

    /// Whether the server's socket is TLS (a stalled reply is nudged, see
    /// [`server::STALL_NUDGE_MS`]).
    pub fn set_tls(&mut self, server: usize, tls: bool) -> Result<()> {
        self.check_server(server)?;
        self.servers[server].tls = tls;
        Ok(())
    }

    /// The engine's index of each server of the current list, in the list's order.
    pub fn members(&self) -> &[usize] {
        &self.router.members
    }

    /// Replaces the server list (python-memcached's `set_servers`): keys are placed by the
    /// distribution over the new list from now on (under ketama about 1/n of them move
    /// when one server is added). A server kept (same address) keeps its connection and
    /// health; requests already sent to a server finish there, also to one that left the
    /// list, which is closed once its last reply is in. A bad list changes nothing.
    pub fn set_servers(
        &mut self,
        now: u64,
        servers: Vec<(String, u32)>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if servers.is_empty() {
            return Err(Error::BadArgument(
                "setServers needs at least one server".into(),
            ));
        }
        let weights: Vec<u32> = servers.iter().map(|(_, w)| *w).collect();
        // Build the new distribution first: an error leaves the old one in place.
        let distribution = match &self.router.distribution {
            Distribution::Modula(_) => {
                if weights.iter().all(|&w| w == 0) {
                    return Err(Error::BadArgument(
                        "modula distribution needs at least one server with a weight above 0"
                            .into(),
                    ));
                }
                None
            }
            Distribution::Ketama(_) => Some(Distribution::Ketama(Ketama::new(&servers)?)),
        };
        let mut members = Vec::with_capacity(servers.len());
        for (address, _) in &servers {
            let index = match self.servers.iter().position(|s| &s.address == address) {
                Some(i) => i,
                None => {
                    if self.servers.len() + 1 >= usize::from(u16::MAX) {
                        return Err(Error::BadArgument("at most 65534 servers".into()));
                    }
                    self.servers
                        .push(Server::new(address.clone(), self.max_item_size));
                    self.servers.len() - 1
                }
            };
            if members.contains(&index) {
                return Err(Error::BadArgument(format!(
                    "server {address} is listed twice"
                )));
            }
            members.push(index);
        }
        self.begin(now, out);
        let distribution = match distribution {
            Some(d) => d,
            None => {
                let placeholder = Distribution::Modula(Modula::new(&[1], HashFunction::Cmemcache)?);
                match std::mem::replace(&mut self.router.distribution, placeholder) {
                    Distribution::Modula(m) => Distribution::Modula(m.with_weights(&weights)?),
                    ketama => ketama,
                }
            }
        };
        self.router.distribution = distribution;
        for (index, s) in self.servers.iter_mut().enumerate() {
            let member = members.contains(&index);
            if s.member && !member {
                // A server that left is no longer probed or reported down.
                s.health = Health::Up;
            }
            s.member = member;
            s.dirty = true;
        }
        self.router.members = members;
        self.finish(out);
        Ok(())
    }

    /// Whether routing sends keys to the server now.
    pub fn is_up(&self, server: usize) -> bool {
        self.servers.get(server).is_some_and(|s| s.health.is_up())
    }

    /// When the engine next needs `handle_timeout`: the earliest connect or reply deadline,
    /// or probe due.
    pub fn poll_timeout(&self) -> Option<u64> {
        let timeout = self.timing.timeout_ms;
        self.servers
            .iter()
            .filter_map(Server::next_wake)
            .chain(self.servers.iter().filter_map(|s| s.nudge_due(timeout)))
            .chain(self.leases.next_retry())
            .min()
    }

    /// Queues one batch of ops (see [`command`]). A malformed batch is an error and queues
    /// nothing; an op that cannot be sent gets its ERROR outcome and the others go on.
    pub fn submit(&mut self, now: u64, batch: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let ops = command::decode_batch(batch, self.router.caller_hashes)?;
        self.begin(now, out);
        let mut o = Out(out);
        for op in &ops {
            if let Err((server, error)) = self.queue(op, &mut o) {
                o.error(op.id, server, &error);
            }
        }
        self.finish(o.0);
        Ok(())
    }

    /// Bytes that arrived from `server`.
    pub fn receive(
        &mut self,
        now: u64,
        server: usize,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.check_server(server)?;
        self.begin(now, out);
        if self.servers[server].link == Link::Closed {
            // Bytes from a socket the engine already gave up on (JavaScript is closing it).
            self.finish(out);
            return Ok(());
        }
        let mut o = Out(out);
        let mut chunk = chunk;
        if let Link::Authenticating { .. } = self.servers[server].link {
            match self.authenticate(server, chunk, &mut o) {
                Some(rest) => chunk = rest,
                None => {
                    self.finish(o.0);
                    return Ok(());
                }
            }
        }
        let Engine {
            servers,
            codec,
            multi,
            max_item_size,
            spare,
            leases,
            now,
            ..
        } = self;
        let s = &mut servers[server];
        let mut metadump_finished = false;
        let mut nudged = false;
        if !chunk.is_empty() {
            s.last_read = *now;
        }
        let mut probe: Option<bool> = None;
        let mut ctx = Ctx {
            codec,
            multi,
            max_item_size: *max_item_size,
            server,
            spare,
            leases,
            now: *now,
        };
        let received =
            s.connection
                .receive_tagged(chunk, |waiting, response| match waiting.awaiting {
                    Awaiting::Probe => probe = Some(matches!(response, Response::Version(_))),
                    Awaiting::Nudge => nudged = true,
                    Awaiting::Single {
                        reply: Reply::Metadump,
                        ..
                    } => {
                        metadump_finished = true;
                        ctx.complete(waiting.awaiting, response, &mut o);
                    }
                    awaiting => ctx.complete(awaiting, response, &mut o),
                });
        if metadump_finished {
            s.metadump_done();
        }
        if nudged {
            s.nudge_out = false;
        }
        // A dump streams for as long as the cache is large: while its lines keep coming, its
        // deadline moves (as python-memcached's socket_timeout counts per read); a dump that
        // stalls still times out.
        if !chunk.is_empty() {
            if let Some(w) = s.connection.oldest_mut() {
                if matches!(
                    w.awaiting,
                    Awaiting::Single {
                        reply: Reply::Metadump,
                        ..
                    }
                ) {
                    w.deadline = w
                        .deadline
                        .max(self.now.saturating_add(self.timing.timeout_ms));
                }
            }
        }
        for items in ctx.spare.items.drain(..) {
            s.connection.recycle(items);
        }
        s.dirty = true;
        match (received, probe) {
            (Err(error), _) => {
                let address = &self.servers[server].address;
                let error = match error {
                    Error::Protocol(text) => Error::Protocol(format!("{address}: {text}")),
                    other => Error::Protocol(format!("{address}: {other}")),
                };
                self.fail_server(server, error, true, &mut o);
            }
            (Ok(()), Some(true)) => {
                if !self.servers[server].health.is_up() {
                    self.servers[server].health = Health::Up;
                    o.server_entry(entry::SERVER_UP, server);
                }
            }
            (Ok(()), Some(false)) => {
                let address = &self.servers[server].address;
                let error = Error::Connection(format!(
                    "{address}: the probe after a reconnect was not answered with VERSION"
                ));
                self.fail_server(server, error, true, &mut o);
            }
            (Ok(()), None) => {}
        }
        self.finish(o.0);
        Ok(())
    }

    /// The socket CONNECT asked for is open.
    pub fn connected(&mut self, now: u64, server: usize, out: &mut Vec<u8>) -> Result<()> {
        self.check_server(server)?;
        self.begin(now, out);
        let timeout = self.timing.timeout_ms;
        let s = &mut self.servers[server];
        if matches!(s.link, Link::Connecting { .. }) {
            match &s.auth {
                // The authentication goes out alone: what waits is written once memcached
                // has accepted it (it answers a request pipelined behind a failed
                // authentication in place of the failure).
                Some(credentials) => {
                    s.link = Link::Authenticating {
                        deadline: self.now.saturating_add(timeout),
                    };
                    put_u8(out, entry::WRITE);
                    put_u16(out, server as u16);
                    put_field(out, &credentials.request());
                }
                None => {
                    s.link = Link::Open;
                    s.dirty = true;
                }
            }
        }
        self.finish(out);
        Ok(())
    }

    /// Reads the reply to authentication from `chunk`: the rest of the chunk when the
    /// server accepted it (the link is open then), None while the reply is incomplete or
    /// after a refusal (everything waiting on the server fails with AUTH_FAILED, and the
    /// server is retried with the dead-server backoff, not at once).
    fn authenticate<'c>(
        &mut self,
        server: usize,
        chunk: &'c [u8],
        o: &mut Out,
    ) -> Option<&'c [u8]> {
        let s = &mut self.servers[server];
        match auth::read_reply(&mut s.auth_reply, chunk) {
            Ok(auth::AuthReply::Partial) => None,
            Ok(auth::AuthReply::Accepted { rest }) => {
                s.link = Link::Open;
                s.dirty = true;
                Some(&chunk[chunk.len() - rest..])
            }
            Ok(auth::AuthReply::Refused(line)) => {
                let error =
                    Error::AuthFailed(format!("{} refused the credentials: {line}", s.address));
                self.fail_server(server, error, true, o);
                None
            }
            Err(error) => {
                let error = Error::Protocol(format!("{}: {error}", s.address));
                self.fail_server(server, error, true, o);
                None
            }
        }
    }

    /// The server's socket failed or closed (`kind`: [`link_failure`]); `message` says how.
    pub fn connection_lost(
        &mut self,
        now: u64,
        server: usize,
        kind: u8,
        message: &str,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.check_server(server)?;
        self.begin(now, out);
        let mut o = Out(out);
        let s = &mut self.servers[server];
        if s.link == Link::Closed {
            // A socket the engine already gave up on: nothing waits on it.
        } else if kind == link_failure::BRIDGE_REFUSED {
            // Policy, not a dead server: the calls fail, the next one asks again. A refused
            // probe counts, so the server is probed again later (never left waiting).
            let failure = !s.health.is_up();
            let error = Error::BridgeRefused(message.to_string());
            self.fail_server(server, error, failure, &mut o);
        } else if s.link == Link::Open && !s.is_busy() {
            // A socket that closes while idle is no failure (memcached restarts, idle
            // timeouts): the next request reconnects.
            s.drop_link();
        } else {
            self.fail_server(server, Error::Connection(message.to_string()), true, &mut o);
        }
        self.finish(o.0);
        Ok(())
    }

    /// Fails what is overdue and starts the probes that are due.
    pub fn handle_timeout(&mut self, now: u64, out: &mut Vec<u8>) {
        self.begin(now, out);
        let mut o = Out(out);
        let now = self.now;
        for server in 0..self.servers.len() {
            let s = &self.servers[server];
            let request_overdue = s.connection.oldest().is_some_and(|w| w.deadline <= now);
            // A connection not made in time is a connection failure (also when a request's
            // shorter timeout ends the wait first); a request not answered in time on an
            // open connection is a timeout.
            let overdue = match s.link {
                Link::Connecting { deadline } if deadline <= now => {
                    Some(Error::Connection(format!(
                        "{}: the connection was not made within connectTimeout ({} ms)",
                        s.address, self.timing.connect_timeout_ms
                    )))
                }
                Link::Authenticating { deadline } if deadline <= now || request_overdue => {
                    Some(Error::Timeout(format!(
                        "{} did not answer the authentication within {} ms",
                        s.address, self.timing.timeout_ms
                    )))
                }
                Link::Connecting { .. } if request_overdue => Some(Error::Connection(format!(
                    "{}: the connection was not made within the request timeout ({} ms)",
                    s.address, self.timing.timeout_ms
                ))),
                _ if request_overdue => Some(Error::Timeout(format!(
                    "{} did not answer within {} ms",
                    s.address, self.timing.timeout_ms
                ))),
                _ => None,
            };
            if let Some(error) = overdue {
                self.fail_server(server, error, true, &mut o);
            }
            if let Some(at) = self.servers[server].health.probe_due() {
                if at <= now {
                    self.start_probe(server, &mut o);
                }
            }
            let timeout = self.timing.timeout_ms;
            let s = &mut self.servers[server];
            if s.nudge_due(timeout).is_some_and(|at| at <= now) {
                // `version` always encodes.
                let _ = s.push(
                    &Request::Version,
                    Awaiting::Nudge,
                    now.saturating_add(timeout),
                );
                s.nudge_out = true;
            }
        }
        self.retry_leases(&mut o);
        self.finish(o.0);
    }

    /// The server a key's requests go to now, with the routing `submit` applies (down
    /// servers re-hashed past or refused); `hash` is the caller's, given exactly when the
    /// configuration has the caller hash keys.
    pub fn server_for_key(&self, key: &[u8], hash: Option<u32>) -> Result<usize> {
        if hash.is_some() != self.router.caller_hashes {
            return Err(Error::BadArgument(format!(
                "server_for_key {} an explicit hash",
                if hash.is_some() { "has" } else { "lacks" }
            )));
        }
        self.route(&KeyRef { hash, key }, key)
    }

    // ---- the frame of every call ---------------------------------------------------

    fn check_server(&self, server: usize) -> Result<()> {
        if server < self.servers.len() {
            Ok(())
        } else {
            Err(Error::BadArgument(format!("no server {server}")))
        }
    }

    fn begin(&mut self, now: u64, out: &mut Vec<u8>) {
        // The caller's clock never runs backwards for us.
        self.now = self.now.max(now);
        out.clear();
        put_f64(out, NO_WAKE);
    }

    /// Sends what can be sent, asks for the sockets that are needed, and writes `wake`.
    fn finish(&mut self, out: &mut Vec<u8>) {
        let mut o = Out(out);
        let deadline = self.deadline();
        for index in 0..self.servers.len() {
            self.close_get(index);
            let now = self.now;
            let connect_timeout = self.timing.connect_timeout_ms;
            let s = &mut self.servers[index];
            if !s.dirty {
                continue;
            }
            s.dirty = false;
            s.close_quiet(deadline);
            if !s.member {
                // A server that left the list: its connection closes with its last reply.
                if s.link != Link::Closed && !s.is_busy() {
                    s.drop_link();
                    o.server_entry(entry::CLOSE, index);
                }
                if s.link == Link::Closed {
                    continue;
                }
            }
            if s.link == Link::Closed && s.is_busy() {
                s.link = Link::Connecting {
                    deadline: now.saturating_add(connect_timeout),
                };
                o.server_entry(entry::CONNECT, index);
            }
            s.write_into(index, o.0);
        }
        let wake = self.poll_timeout().map_or(NO_WAKE, |t| t as f64);
        out[..8].copy_from_slice(&wake.to_le_bytes());
    }

    // ---- failures and probes -------------------------------------------------------

    /// Fails everything waiting on the server's link with `error`; a `failure` also counts
    /// against its health (it may go down).
    fn fail_server(&mut self, server: usize, error: Error, failure: bool, o: &mut Out) {
        if self.servers[server].link != Link::Closed {
            // The engine gives up on this socket: JavaScript closes it (after a loss it
            // reported itself, it already has and the entry changes nothing).
            o.server_entry(entry::CLOSE, server);
        }
        let waiting = self.servers[server].drop_link();
        let mut ctx = Ctx {
            codec: &self.codec,
            multi: &mut self.multi,
            max_item_size: self.max_item_size,
            server,
            spare: &mut self.spare,
            leases: &mut self.leases,
            now: self.now,
        };
        for w in waiting {
            ctx.fail(w.awaiting, &error, o);
        }
        if failure && self.servers[server].member {
            let s = &mut self.servers[server];
            let (health, went_down) = s.health.after_failure(self.now, self.timing.dead_retry_ms);
            s.health = health;
            if went_down {
                o.server_entry(entry::SERVER_DOWN, server);
                put_error(o.0, Some(server), &error);
            }
        }
    }

    /// A down server's retry: a new connection and a `version` on it.
    fn start_probe(&mut self, server: usize, o: &mut Out) {
        let deadline = self.now.saturating_add(self.timing.timeout_ms);
        let s = &mut self.servers[server];
        if let Health::Down {
            failures, retry_at, ..
        } = s.health
        {
            s.health = Health::Down {
                failures,
                retry_at,
                probing: true,
            };
        }
        if s.link != Link::Closed {
            o.server_entry(entry::CLOSE, server);
            s.drop_link();
        }
        // `version` always encodes.
        let _ = s.push(&Request::Version, Awaiting::Probe, deadline);
    }

    // ---- submit: queueing one op ---------------------------------------------------

    fn deadline(&self) -> u64 {
        self.now.saturating_add(self.timing.timeout_ms)
    }

    fn route(&self, key: &KeyRef, full_key: &[u8]) -> Result<usize> {
        let servers = &self.servers;
        self.router
            .server_for(key, full_key, |i| servers[i].health.is_up())
    }

    /// Queues one op; on error nothing of it was queued (and the error says which server,
    /// if one).
    fn queue(&mut self, op: &Op, o: &mut Out) -> Result<(), (Option<usize>, Error)> {
        self.quiet = op.noreply;
        let queued = self.queue_command(op, o);
        self.quiet = false;
        queued
    }

    fn queue_command(&mut self, op: &Op, o: &mut Out) -> Result<(), (Option<usize>, Error)> {
        let id = op.id;
        let plain = |e: Error| (None, e);
        if self.behind_proxy {
            let refused = if op.noreply {
                Some("a noreply write (sent as a quiet meta command)")
            } else {
                not_relayed(&op.command)
            };
            if let Some(command) = refused {
                return Err(plain(Error::NotRelayed(format!(
                    "{command} is not relayed by twemproxy (it closes the connection on it), and this client was made with behindProxy: true; send it to the memcached servers themselves"
                ))));
            }
        }
        match &op.command {
            Command::Get(k, read) => {
                let server = self.route(k, k.key).map_err(plain)?;
                match read {
                    Read::Value => {
                        self.join_get(server, id, false, &[(k.key, 0)]);
                        Ok(())
                    }
                    Read::WithCas | Read::Inspect => self.push(
                        server,
                        &Request::Gets { keys: &[k.key] },
                        Awaiting::Single {
                            id,
                            reply: Reply::Read(*read),
                        },
                    ),
                }
            }
            Command::Delete(k) => {
                let server = self.route(k, k.key).map_err(plain)?;
                let request = Request::Delete {
                    key: k.key,
                    noreply: false,
                };
                self.push_single(server, &request, id, Reply::Delete)
            }
            Command::Touch(k, expiry) => {
                let server = self.route(k, k.key).map_err(plain)?;
                let request = Request::Touch {
                    key: k.key,
                    exptime: i64::from(*expiry),
                    noreply: false,
                };
                self.push_single(server, &request, id, Reply::Touch)
            }
            Command::Counter { key, delta, incr } => {
                let server = self.route(key, key.key).map_err(plain)?;
                let (k, delta) = (key.key, *delta);
                let request = if *incr {
                    Request::Incr {
                        key: k,
                        delta,
                        noreply: false,
                    }
                } else {
                    Request::Decr {
                        key: k,
                        delta,
                        noreply: false,
                    }
                };
                let reply = if op.noreply {
                    Reply::Applied
                } else {
                    Reply::Counter
                };
                self.push_single(server, &request, id, reply)
            }
            Command::Store {
                verb,
                key,
                expiry,
                min_compress_len,
                cas,
                value,
            } => {
                keys::check_key(key.key).map_err(plain)?;
                let (flags, data) = self
                    .encode(key.key, value, *min_compress_len)
                    .map_err(plain)?;
                let servers = &self.servers;
                let server = self
                    .router
                    .server_for_checked(key, key.key, |i| servers[i].health.is_up())
                    .map_err(plain)?;
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
                        verb: *verb,
                        key: key.key,
                        flags,
                        exptime,
                        data: &data,
                        noreply: false,
                    },
                };
                self.push_single(server, &request, id, Reply::Store)
            }
            Command::GetMulti { prefix, keys } => {
                let full = FullKeys::new(prefix, keys).map_err(plain)?;
                let (groups, _) = self.group_where(id, keys, &full, |_| true, o);
                let parts = groups.len() as u32;
                for (server, indices) in groups {
                    let entries: Vec<(&[u8], u32)> =
                        indices.iter().map(|&i| (full.get(i as usize), i)).collect();
                    self.join_get(server, id, true, &entries);
                }
                self.start_multi(id, parts, Settle::Done, true, o);
                Ok(())
            }
            Command::DeleteMulti { prefix, keys } => {
                let full = FullKeys::new(prefix, keys).map_err(plain)?;
                let (groups, unroutable) = self.group_where(id, keys, &full, |_| true, o);
                let mut parts = 0;
                for (server, indices) in groups {
                    for index in indices {
                        let request = Request::Delete {
                            key: full.get(index as usize),
                            noreply: false,
                        };
                        self.push_part(server, &request, id, index, Reply::Delete)?;
                        parts += 1;
                    }
                }
                // A key no server could take was not deleted: the op answers false. Its
                // KEY_ERROR records say which.
                self.start_multi(id, parts, Settle::AllOk, unroutable == 0, o);
                Ok(())
            }
            Command::SetMulti {
                prefix,
                expiry,
                min_compress_len,
                entries,
            } => {
                let keys: Vec<KeyRef> = entries.iter().map(|(k, _)| *k).collect();
                let full = FullKeys::new(prefix, &keys).map_err(plain)?;
                // Every value is encoded before anything is queued: a value that cannot be
                // serialized fails the op; one over the size limit fails its key alone.
                let mut encoded = Vec::with_capacity(entries.len());
                for (index, (_, value)) in entries.iter().enumerate() {
                    match self.encode(full.get(index), value, *min_compress_len) {
                        Ok(e) => encoded.push(Some(e)),
                        Err(error @ Error::ValueTooLarge { .. }) => {
                            o.key_error(id, index as u32, None, &error);
                            encoded.push(None);
                        }
                        Err(error) => return Err((None, error)),
                    }
                }
                let usable: Vec<bool> = encoded.iter().map(Option::is_some).collect();
                let (groups, _) = self.group_where(id, &keys, &full, |i| usable[i], o);
                let exptime = i64::from(*expiry);
                let mut parts = 0;
                for (server, indices) in groups {
                    for index in indices {
                        let Some((flags, data)) = &encoded[index as usize] else {
                            continue;
                        };
                        let request = Request::Store {
                            verb: StorageVerb::Set,
                            key: full.get(index as usize),
                            flags: *flags,
                            exptime,
                            data,
                            noreply: false,
                        };
                        self.push_part(server, &request, id, index, Reply::Store)?;
                        parts += 1;
                    }
                }
                self.start_multi(id, parts, Settle::Done, true, o);
                Ok(())
            }
            Command::FlushAll(delay) => {
                let delay = if *delay == 0 { None } else { Some(*delay) };
                let request = Request::FlushAll {
                    delay,
                    noreply: false,
                };
                self.queue_on_every_server(&request, id, Reply::Flush, Settle::AllOk, o)
            }
            Command::Stats(args) => {
                let args = if args.is_empty() { None } else { Some(*args) };
                let request = Request::Stats { args };
                self.queue_on_every_server(&request, id, Reply::Stats, Settle::PerServer, o)
            }
            Command::Version => self.queue_on_every_server(
                &Request::Version,
                id,
                Reply::Version,
                Settle::PerServer,
                o,
            ),
            Command::Metadump { server, scope } => self.queue_metadump(id, *server, *scope),
            Command::Meta(k, command) => self.queue_meta(id, k, command),
        }
    }

    fn queue_metadump(
        &mut self,
        id: u32,
        server: usize,
        scope: MetadumpScope,
    ) -> Result<(), (Option<usize>, Error)> {
        let Some(s) = self.servers.get(server) else {
            return Err((
                None,
                Error::BadArgument(format!(
                    "metadump of server {server}: the client has {} servers",
                    self.servers.len()
                )),
            ));
        };
        if !s.health.is_up() || !s.member {
            return Err((Some(server), Error::NoServer { key: String::new() }));
        }
        let deadline = self.deadline();
        self.close_get(server);
        self.servers[server]
            .push_metadump(&Request::Metadump { scope }, id, deadline)
            .map_err(|e| (Some(server), e))
    }

    /// Places each key of a multi op that `include` keeps on its server, grouped by server
    /// in the order servers first appear; a key no server can take gets its KEY_ERROR, and
    /// their number is returned beside the groups.
    fn group_where(
        &self,
        id: u32,
        keys: &[KeyRef],
        full: &FullKeys,
        include: impl Fn(usize) -> bool,
        o: &mut Out,
    ) -> (Vec<KeyGroup>, usize) {
        let mut groups: Vec<KeyGroup> = Vec::new();
        let mut unroutable = 0;
        let servers = &self.servers;
        for (index, k) in keys.iter().enumerate() {
            if !include(index) {
                continue;
            }
            // FullKeys checked every key.
            let routed = self
                .router
                .server_for_checked(k, full.get(index), |i| servers[i].health.is_up());
            match routed {
                Ok(server) => match groups.iter_mut().find(|(s, _)| *s == server) {
                    Some((_, indices)) => indices.push(index as u32),
                    None => groups.push((server, vec![index as u32])),
                },
                Err(error) => {
                    o.key_error(id, index as u32, None, &error);
                    unroutable += 1;
                }
            }
        }
        (groups, unroutable)
    }

    /// Registers a multi op with `parts` requests out; `all_ok` is false when some of it
    /// already failed at submit.
    fn start_multi(&mut self, id: u32, parts: u32, settle: Settle, all_ok: bool, o: &mut Out) {
        if parts == 0 {
            // Nothing went out (an empty multi op, or every key failed at once).
            o.outcome(
                id,
                match (settle, all_ok) {
                    (Settle::Done | Settle::PerServer, _) => record::DONE,
                    (Settle::AllOk, true) => record::TRUE,
                    (Settle::AllOk, false) => record::FALSE,
                },
            );
            return;
        }
        self.multi.0.push((
            id,
            MultiOp {
                parts,
                all_ok,
                settle,
                error: None,
                answered: 0,
                failure: None,
            },
        ));
    }

    fn encode<'v>(
        &mut self,
        key: &[u8],
        value: &'v ValueRef,
        min_compress_len: u32,
    ) -> Result<(u32, std::borrow::Cow<'v, [u8]>)> {
        let payload = value.payload()?;
        self.codec.min_compress_len = min_compress_len as usize;
        codec::encode_value(key, payload, &self.codec)
    }

    /// Adds keys to the server's open get line (opening one if needed).
    fn join_get(&mut self, server: usize, id: u32, multi: bool, entries: &[(&[u8], u32)]) {
        let fits = self.servers[server]
            .open_get
            .as_ref()
            .map_or(true, |line| line.has_room(entries.len()));
        if !fits {
            self.close_get(server);
        }
        let s = &mut self.servers[server];
        let spare = &mut self.spare.lines;
        s.open_get
            .get_or_insert_with(|| spare.pop().unwrap_or_default())
            .join(id, multi, entries.iter().copied());
        s.dirty = true;
    }

    /// Sends the server's open get line, if any: nothing may overtake it.
    fn close_get(&mut self, server: usize) {
        let deadline = self.deadline();
        let s = &mut self.servers[server];
        if let Some(line) = s.open_get.take() {
            s.push_get_line(line, deadline);
        }
    }

    fn push(
        &mut self,
        server: usize,
        request: &Request,
        awaiting: Awaiting,
    ) -> Result<(), (Option<usize>, Error)> {
        self.close_get(server);
        let deadline = self.deadline();
        let s = &mut self.servers[server];
        let pushed = if self.quiet {
            s.push_quiet(request, awaiting, deadline)
        } else {
            s.push(request, awaiting, deadline)
        };
        pushed.map_err(|e| (Some(server), e))
    }

    fn push_single(
        &mut self,
        server: usize,
        request: &Request,
        id: u32,
        reply: Reply,
    ) -> Result<(), (Option<usize>, Error)> {
        self.push(server, request, Awaiting::Single { id, reply })
    }

    fn push_part(
        &mut self,
        server: usize,
        request: &Request,
        id: u32,
        index: u32,
        reply: Reply,
    ) -> Result<(), (Option<usize>, Error)> {
        self.push(server, request, Awaiting::Part { id, index, reply })
    }

    fn queue_on_every_server(
        &mut self,
        request: &Request,
        id: u32,
        reply: Reply,
        settle: Settle,
        o: &mut Out,
    ) -> Result<(), (Option<usize>, Error)> {
        let up: Vec<usize> = (self.router.members.iter().copied())
            .filter(|&i| self.servers[i].health.is_up())
            .collect();
        if up.is_empty() {
            return Err((None, Error::NoServer { key: String::new() }));
        }
        // Refuse a request that cannot be encoded (stats arguments) before any server has
        // it queued: the op must be on all of them or on none.
        request.encode(&mut Vec::new()).map_err(|e| (None, e))?;
        for &server in &up {
            self.push_part(server, request, id, server as u32, reply)?;
        }
        self.start_multi(id, up.len() as u32, settle, true, o);
        Ok(())
    }
}

/// One server's share of a multi op: the indices of its keys among the op's keys.
type KeyGroup = (usize, Vec<u32>);

/// The full keys (prefix included) of a multi op, every one checked: a bad key fails the
/// whole op before anything is queued. Without a prefix they are the batch's own bytes;
/// with one they lie end to end in one buffer (no allocation per key).
struct FullKeys<'a> {
    keys: &'a [KeyRef<'a>],
    prefixed: Option<(Vec<u8>, Vec<usize>)>,
}

impl<'a> FullKeys<'a> {
    fn new(prefix: &[u8], keys: &'a [KeyRef<'a>]) -> Result<Self> {
        if prefix.is_empty() {
            for k in keys {
                keys::check_key(k.key)?;
            }
            return Ok(FullKeys {
                keys,
                prefixed: None,
            });
        }
        let mut bytes = Vec::with_capacity(keys.len() * (prefix.len() + 16));
        let mut ends = Vec::with_capacity(keys.len());
        for k in keys {
            let start = bytes.len();
            bytes.extend_from_slice(prefix);
            bytes.extend_from_slice(k.key);
            keys::check_key(&bytes[start..])?;
            ends.push(bytes.len());
        }
        Ok(FullKeys {
            keys,
            prefixed: Some((bytes, ends)),
        })
    }

    fn get(&self, i: usize) -> &[u8] {
        match &self.prefixed {
            None => self.keys[i].key,
            Some((bytes, ends)) => {
                let start = if i == 0 { 0 } else { ends[i - 1] };
                &bytes[start..ends[i]]
            }
        }
    }
}

/// What completing or failing a request needs: the codec, the multi ops, and which server.
struct Ctx<'a> {
    codec: &'a CodecOptions,
    multi: &'a mut MultiOps,
    max_item_size: usize,
    server: usize,
    spare: &'a mut Spare,
    leases: &'a mut meta_ops::Leases,
    now: u64,
}

impl Ctx<'_> {
    /// A reply arrived for `awaiting`.
    fn complete(&mut self, awaiting: Awaiting, response: Response, o: &mut Out) {
        let server = Some(self.server);
        // A quiet write's meta reply reads as the text reply of its op.
        let response = match (&awaiting, response) {
            (
                Awaiting::Single { reply, .. } | Awaiting::Part { reply, .. },
                Response::Meta(meta),
            ) if quiet::reads_as_text(*reply) => quiet::as_text(*reply, meta),
            (_, response) => response,
        };
        match awaiting {
            Awaiting::Get(mut line) => match response {
                Response::Values(items) => {
                    self.split_values(&line, &items, o);
                    self.spare.items.push(items);
                    if self.spare.lines.len() < MAX_SPARE_LINES
                        && line.capacity_bytes() <= MAX_SPARE_LINE_BYTES
                    {
                        line.clear();
                        self.spare.lines.push(line);
                    }
                }
                other => {
                    let error = reply_error(other, "VALUE/END");
                    self.fail(Awaiting::Get(line), &error, o);
                }
            },
            Awaiting::Single { id, reply } => self.single(id, reply, response, o),
            Awaiting::Part { id, index, reply } => {
                let ok = match (reply, response) {
                    (Reply::Store, Response::Stored) => true,
                    (
                        Reply::Store,
                        r @ (Response::NotStored | Response::Exists | Response::NotFound),
                    ) => {
                        let error = Error::NotStored {
                            reply: reply_name(&r),
                        };
                        o.key_error(id, index, server, &error);
                        false
                    }
                    (Reply::Store, other) => {
                        o.key_error(id, index, server, &reply_error(other, "STORED"));
                        false
                    }
                    (Reply::Delete, Response::Deleted | Response::NotFound) => true,
                    (Reply::Flush, Response::Ok) => true,
                    (Reply::Stats, Response::Stats(lines)) => {
                        self.answered(id);
                        o.outcome(id, record::SERVER_STATS);
                        put_u16(o.0, self.server as u16);
                        put_u32(o.0, lines.len() as u32);
                        for (name, value) in &lines {
                            put_field(o.0, name.as_bytes());
                            put_field(o.0, value.as_bytes());
                        }
                        true
                    }
                    (Reply::Version, Response::Version(text)) => {
                        self.answered(id);
                        o.outcome(id, record::SERVER_TEXT);
                        put_u16(o.0, self.server as u16);
                        put_field(o.0, text.as_bytes());
                        true
                    }
                    (Reply::Stats | Reply::Version, other) => {
                        let error = reply_error(other, "STAT lines / VERSION");
                        if let Some(m) = self.multi.get_mut(id) {
                            m.error.get_or_insert((self.server, error));
                        }
                        false
                    }
                    _ => false,
                };
                self.part_done(id, ok, o);
            }
            Awaiting::Probe | Awaiting::Noop | Awaiting::Nudge => {}
        }
    }

    /// The reply to a single-request op settles it.
    fn single(&mut self, id: u32, reply: Reply, response: Response, o: &mut Out) {
        if let Reply::Meta(read) = reply {
            return self.meta(id, read, response, o);
        }
        let server = Some(self.server);
        match (reply, response) {
            (Reply::Read(read), Response::Values(items)) => match items.first() {
                None => o.outcome(id, record::MISS),
                Some(item) => {
                    let at = o.0.len();
                    match read {
                        Read::Value => o.outcome(id, record::VALUE),
                        Read::WithCas => {
                            o.outcome(id, record::CAS_VALUE);
                            put_u64(o.0, item.cas.unwrap_or(0));
                        }
                        Read::Inspect => {
                            o.outcome(id, record::ITEM);
                            put_u32(o.0, item.flags);
                            put_u32(o.0, item.skipped.unwrap_or(item.data.len()) as u32);
                            put_u64(o.0, item.cas.unwrap_or(0));
                            put_u16(o.0, self.server as u16);
                        }
                    }
                    if let Err(error) = self.put_value(o.0, item) {
                        o.0.truncate(at);
                        o.error(id, server, &error);
                    }
                }
            },
            (Reply::Store, Response::Stored)
            | (Reply::Delete, Response::Deleted)
            | (Reply::Touch, Response::Touched) => o.outcome(id, record::TRUE),
            (Reply::Store, Response::NotStored | Response::Exists | Response::NotFound)
            | (Reply::Delete, Response::NotFound)
            | (Reply::Touch, Response::NotFound) => o.outcome(id, record::FALSE),
            (Reply::Counter, Response::NotFound) => o.outcome(id, record::MISS),
            (Reply::Applied, Response::Touched) => o.outcome(id, record::TRUE),
            (Reply::Applied, Response::NotFound) => o.outcome(id, record::FALSE),
            (Reply::Counter, Response::Number(n)) => {
                o.outcome(id, record::NUMBER);
                put_field(o.0, n.to_string().as_bytes());
            }
            (Reply::Metadump, Response::Metadump(lines)) => {
                // `lru_crawler metadump all` walks the LRUs while items move between them,
                // so an item can be listed twice: each key is reported once.
                let unique = unique_by_key(&lines);
                o.outcome(id, record::LINES);
                put_u32(o.0, unique.len() as u32);
                for line in unique {
                    put_field(o.0, line.as_bytes());
                }
            }
            (Reply::Metadump, Response::MetadumpRefused(line)) => {
                o.error(id, server, &Error::MetadumpRefused(line))
            }
            (reply, other) => o.error(id, server, &reply_error(other, expected(reply))),
        }
    }

    /// Splits one get line's values among the ops that share it.
    fn split_values(&mut self, line: &GetLine, items: &[Item], o: &mut Out) {
        let server = Some(self.server);
        let mut hits = std::mem::take(&mut self.spare.hits);
        line.match_items(items, &mut hits);
        for part in &line.parts {
            if part.multi {
                // One KEY_VALUES record for the part's hits; a value that cannot be decoded
                // fails its key alone, in a KEY_ERROR after it.
                let at = o.0.len();
                o.outcome(part.id, record::KEY_VALUES);
                let count_at = o.0.len();
                put_u32(o.0, 0);
                let mut count = 0u32;
                let mut failed = Vec::new();
                for k in part.keys.clone() {
                    let Some(item) = hits[k].map(|i| &items[i]) else {
                        continue;
                    };
                    let index = line.indices[k];
                    let entry_at = o.0.len();
                    put_u32(o.0, index);
                    match self.put_value(o.0, item) {
                        Ok(()) => count += 1,
                        Err(error) => {
                            o.0.truncate(entry_at);
                            failed.push((index, error));
                        }
                    }
                }
                if count == 0 {
                    o.0.truncate(at);
                } else {
                    patch_u32(o.0, count_at, count);
                }
                for (index, error) in failed {
                    o.key_error(part.id, index, server, &error);
                }
                self.part_done(part.id, true, o);
            } else {
                match hits[part.keys.start].map(|i| &items[i]) {
                    None => o.outcome(part.id, record::MISS),
                    Some(item) => {
                        let at = o.0.len();
                        o.outcome(part.id, record::VALUE);
                        if let Err(error) = self.put_value(o.0, item) {
                            o.0.truncate(at);
                            o.error(part.id, server, &error);
                        }
                    }
                }
            }
        }
        self.spare.hits = hits;
    }

    /// A request will never be answered (its connection failed): its op learns why.
    fn fail(&mut self, awaiting: Awaiting, error: &Error, o: &mut Out) {
        let server = Some(self.server);
        match awaiting {
            Awaiting::Get(line) => {
                for part in &line.parts {
                    if part.multi {
                        for k in part.keys.clone() {
                            o.key_error(part.id, line.indices[k], server, error);
                        }
                        self.part_done(part.id, true, o);
                    } else {
                        o.error(part.id, server, error);
                    }
                }
            }
            Awaiting::Single { id, reply } => {
                if reply == Reply::Meta(meta_ops::MetaRead::Lease) {
                    self.forget_lease(id);
                }
                o.error(id, server, error)
            }
            Awaiting::Part { id, index, reply } => {
                if reply == Reply::Store {
                    o.key_error(id, index, server, error);
                }
                // A stats or version part of a server that failed is left out of the result,
                // as python-memcached leaves out the servers it cannot reach.
                let per_server = matches!(reply, Reply::Stats | Reply::Version);
                if per_server {
                    if let Some(m) = self.multi.get_mut(id) {
                        m.failure.get_or_insert((self.server, error.clone()));
                    }
                }
                self.part_done(id, per_server, o);
            }
            Awaiting::Probe | Awaiting::Noop | Awaiting::Nudge => {}
        }
    }

    fn answered(&mut self, id: u32) {
        if let Some(m) = self.multi.get_mut(id) {
            m.answered += 1;
        }
    }

    fn part_done(&mut self, id: u32, ok: bool, o: &mut Out) {
        let Some(m) = self.multi.get_mut(id) else {
            return;
        };
        m.all_ok &= ok;
        m.parts -= 1;
        if m.parts > 0 {
            return;
        }
        if let Some(m) = self.multi.remove(id) {
            match (m.settle, m.error) {
                (_, Some((server, error))) => o.error(id, Some(server), &error),
                (Settle::PerServer, None) => match m.failure {
                    Some((server, error)) if m.answered == 0 => o.error(id, Some(server), &error),
                    _ => o.outcome(id, record::DONE),
                },
                (Settle::Done, None) => o.outcome(id, record::DONE),
                (Settle::AllOk, None) => o.outcome(
                    id,
                    if m.all_ok {
                        record::TRUE
                    } else {
                        record::FALSE
                    },
                ),
            }
        }
    }

    /// `kind:u8 str` of a stored value, decoded by its flags.
    fn put_value(&self, out: &mut Vec<u8>, item: &Item) -> Result<()> {
        if let Some(size) = item.skipped {
            return Err(Error::ValueTooLarge {
                key: Error::key_text(&item.key),
                size,
                limit: self.max_item_size,
            });
        }
        match codec::decode_value(item.flags, &item.data, self.codec)? {
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

/// The multi ops with parts still out. Few are out at once (one per concurrent multi call),
/// so a list searched by id is as fast as a hash map here and keeps the .wasm smaller.
#[derive(Debug, Default)]
struct MultiOps(Vec<(u32, MultiOp)>);

impl MultiOps {
    fn get_mut(&mut self, id: u32) -> Option<&mut MultiOp> {
        self.0.iter_mut().find(|(i, _)| *i == id).map(|(_, m)| m)
    }

    fn remove(&mut self, id: u32) -> Option<MultiOp> {
        let at = self.0.iter().position(|(i, _)| *i == id)?;
        Some(self.0.swap_remove(at).1)
    }
}

/// The metadump lines with each key's first line only, in memcached's order.
fn unique_by_key(lines: &[String]) -> Vec<&String> {
    let mut seen = std::collections::HashSet::with_capacity(lines.len());
    lines
        .iter()
        .filter(|line| seen.insert(metadump_key(line)))
        .collect()
}

/// The `key=` field of a metadump line (the whole line when it has none).
fn metadump_key(line: &str) -> &str {
    line.split(' ')
        .find(|field| field.starts_with("key="))
        .unwrap_or(line)
}

/// The commands twemproxy (nutcracker 0.5) does not relay, by the name a person knows:
/// it closes the client's connection on stats, flush_all, lru_crawler and every meta
/// command, which would fail every other request in flight on it.
fn not_relayed(command: &Command) -> Option<&'static str> {
    match command {
        Command::Stats(_) => Some("stats"),
        Command::FlushAll(_) => Some("flush_all"),
        Command::Metadump { .. } => Some("lru_crawler metadump"),
        Command::Meta(..) => Some("the meta protocol (getOrSet, getWithTtl, getAndTouch, invalidate, incr/decr with options)"),
        _ => None,
    }
}

/// What memcached should have answered, for error messages.
fn expected(reply: Reply) -> &'static str {
    match reply {
        Reply::Read(_) => "VALUE/END",
        Reply::Store => "STORED/NOT_STORED/EXISTS/NOT_FOUND",
        Reply::Delete => "DELETED/NOT_FOUND",
        Reply::Touch => "TOUCHED/NOT_FOUND",
        Reply::Counter => "a number or NOT_FOUND",
        Reply::Applied => "HD/NF",
        Reply::Flush => "OK",
        Reply::Stats => "STAT lines",
        Reply::Version => "VERSION",
        Reply::Metadump => "item lines and END",
        Reply::Meta(_) => "a meta reply",
    }
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
        Response::Meta(_) => "a meta reply",
    }
}
