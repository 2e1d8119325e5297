//! The engine's meta protocol ops: getOrSet's lease read and the waits it makes, and the
//! reads and writes the meta protocol makes cheap (get with TTL, get-and-touch, counters
//! that create themselves, invalidation). What a reply's W/Z/X flags mean is
//! [`crate::meta::lease`]; here a caller told to wait is parked and read again after
//! [`crate::meta::wait_step_ms`], on the engine's clock, until its `wait_ms` runs out. The
//! loader runs in JavaScript between a LEASE record and the META_SET (or META_DELETE that
//! releases the win) it answers with.

use crate::error::Error;
use crate::meta::{self, Flag, Lease, MetaReply, MetaRequest, MetaStatus, MetaVerb};
use crate::request::Expect;
use crate::response::{Item, Response};
use crate::wire::{lease, put_f64, put_field, put_u8, record};

use super::command::{KeyRef, MetaCommand};
use super::server::{Awaiting, Reply, Waiting};
use super::{reply_error, Ctx, Engine, Out};

/// Which meta op a reply answers (the tag's part that says how to read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaRead {
    Lease,
    Store,
    Delete,
    WithTtl,
    Touch,
    Counter,
}

/// A getOrSet read whose op is still out: in flight, or parked until `retry_at`.
#[derive(Debug)]
pub struct LeaseWait {
    id: u32,
    key: Vec<u8>,
    hash: Option<u32>,
    lock_ttl: u32,
    recache: u32,
    /// When waiting for another caller's loader ends with TIMEOUT.
    give_up_at: u64,
    wait_ms: u32,
    attempt: u32,
    /// Set while parked: when to read again.
    retry_at: Option<u64>,
}

/// The lease reads that are out, searched by id (few at once per client: one per
/// concurrent getOrSet call that has not settled).
#[derive(Debug, Default)]
pub struct Leases(Vec<LeaseWait>);

impl Leases {
    fn position(&self, id: u32) -> Option<usize> {
        self.0.iter().position(|l| l.id == id)
    }

    fn remove(&mut self, id: u32) -> Option<LeaseWait> {
        let at = self.position(id)?;
        Some(self.0.swap_remove(at))
    }

    /// The earliest parked read's time.
    pub fn next_retry(&self) -> Option<u64> {
        self.0.iter().filter_map(|l| l.retry_at).min()
    }
}

/// The `mg` of a lease read: value, client flags, TTL and key back; `N` makes a missing
/// item (and the win) that expires after `lock_ttl`; `R` hands out a win once the TTL left
/// is below `recache`.
fn lease_request(key: &[u8], lock_ttl: u32, recache: u32, out: &mut Vec<u8>) -> crate::Result<()> {
    let mut flags = vec![
        Flag::bare(b'v'),
        Flag::bare(b'f'),
        Flag::bare(b't'),
        Flag::bare(b'k'),
        Flag::number(b'N', i64::from(lock_ttl)),
    ];
    if recache > 0 {
        flags.push(Flag::number(b'R', i64::from(recache)));
    }
    MetaRequest {
        verb: MetaVerb::Get,
        key,
        flags: &flags,
        data: None,
    }
    .encode(out)
}

impl Engine {
    /// Queues one meta op; on error nothing of it was queued.
    pub(super) fn queue_meta(
        &mut self,
        id: u32,
        k: &KeyRef,
        command: &MetaCommand,
    ) -> Result<(), (Option<usize>, Error)> {
        let plain = |e: Error| (None, e);
        crate::keys::check_key(k.key).map_err(plain)?;
        let server = self.route(k, k.key).map_err(plain)?;
        let key = k.key;
        let mut bytes = Vec::new();
        let read = match command {
            MetaCommand::Lease {
                lock_ttl,
                recache,
                wait_ms,
            } => {
                if *lock_ttl == 0 {
                    return Err(plain(Error::BadArgument(
                        "lockTtl must be at least 1 second: a win that never expires would block every other caller for good".into(),
                    )));
                }
                lease_request(key, *lock_ttl, *recache, &mut bytes).map_err(plain)?;
                self.leases.0.push(LeaseWait {
                    id,
                    key: key.to_vec(),
                    hash: k.hash,
                    lock_ttl: *lock_ttl,
                    recache: *recache,
                    give_up_at: self.now.saturating_add(u64::from(*wait_ms)),
                    wait_ms: *wait_ms,
                    attempt: 0,
                    retry_at: None,
                });
                MetaRead::Lease
            }
            MetaCommand::Store {
                ttl,
                min_compress_len,
                value,
            } => {
                let (flags, data) = self.encode(key, value, *min_compress_len).map_err(plain)?;
                MetaRequest {
                    verb: MetaVerb::Set,
                    key,
                    flags: &[
                        Flag::number(b'T', i64::from(*ttl)),
                        Flag::number(b'F', i64::from(flags)),
                    ],
                    data: Some(&data),
                }
                .encode(&mut bytes)
                .map_err(plain)?;
                MetaRead::Store
            }
            MetaCommand::Delete { invalidate } => {
                let flags: &[Flag] = if *invalidate {
                    &[Flag::bare(b'I')]
                } else {
                    &[]
                };
                MetaRequest {
                    verb: MetaVerb::Delete,
                    key,
                    flags,
                    data: None,
                }
                .encode(&mut bytes)
                .map_err(plain)?;
                MetaRead::Delete
            }
            MetaCommand::GetWithTtl | MetaCommand::GetAndTouch { .. } => {
                let mut flags = vec![
                    Flag::bare(b'v'),
                    Flag::bare(b'f'),
                    Flag::bare(b't'),
                    Flag::bare(b'k'),
                ];
                let read = match command {
                    MetaCommand::GetAndTouch { ttl } => {
                        flags.push(Flag::number(b'T', i64::from(*ttl)));
                        MetaRead::Touch
                    }
                    _ => MetaRead::WithTtl,
                };
                MetaRequest {
                    verb: MetaVerb::Get,
                    key,
                    flags: &flags,
                    data: None,
                }
                .encode(&mut bytes)
                .map_err(plain)?;
                read
            }
            MetaCommand::Counter {
                delta,
                initial,
                ttl,
                incr,
            } => {
                let delta = i64::try_from(*delta).ok();
                let initial = i64::try_from(*initial).ok();
                let (Some(delta), Some(initial)) = (delta, initial) else {
                    return Err(plain(Error::BadArgument(
                        "a self-creating counter's delta and initial value are at most 2^63-1"
                            .into(),
                    )));
                };
                let mut flags = vec![
                    Flag::bare(b'v'),
                    Flag::number(b'N', i64::from(*ttl)),
                    Flag::number(b'J', initial),
                    Flag::number(b'D', delta),
                ];
                if !*incr {
                    flags.push(Flag::word(b'M', b"D"));
                }
                MetaRequest {
                    verb: MetaVerb::Arithmetic,
                    key,
                    flags: &flags,
                    data: None,
                }
                .encode(&mut bytes)
                .map_err(plain)?;
                MetaRead::Counter
            }
        };
        self.push_meta(server, id, read, &bytes)
    }

    fn push_meta(
        &mut self,
        server: usize,
        id: u32,
        read: MetaRead,
        bytes: &[u8],
    ) -> Result<(), (Option<usize>, Error)> {
        self.close_get(server);
        let deadline = self.deadline();
        let s = &mut self.servers[server];
        let waiting = Waiting {
            awaiting: Awaiting::Single {
                id,
                reply: Reply::Meta(read),
            },
            deadline,
        };
        let pushed = s.push_encoded(
            Expect::Meta,
            |out| {
                out.extend_from_slice(bytes);
                Ok(())
            },
            waiting,
        );
        if pushed.is_err() && read == MetaRead::Lease {
            self.leases.remove(id);
        }
        pushed.map_err(|e| (Some(server), e))
    }

    /// Sends the parked lease reads that are due again (from `handle_timeout`).
    pub(super) fn retry_leases(&mut self, o: &mut Out) {
        let now = self.now;
        let due: Vec<u32> = self
            .leases
            .0
            .iter()
            .filter(|l| l.retry_at.is_some_and(|at| at <= now))
            .map(|l| l.id)
            .collect();
        for id in due {
            let Some(at) = self.leases.position(id) else {
                continue;
            };
            let l = &mut self.leases.0[at];
            l.retry_at = None;
            let (key, hash, lock_ttl, recache) = (l.key.clone(), l.hash, l.lock_ttl, l.recache);
            let k = KeyRef { hash, key: &key };
            let mut bytes = Vec::new();
            let queued = self
                .route(&k, &key)
                .map_err(|e| (None, e))
                .and_then(|server| {
                    lease_request(&key, lock_ttl, recache, &mut bytes).map_err(|e| (None, e))?;
                    self.push_meta(server, id, MetaRead::Lease, &bytes)
                });
            if let Err((server, error)) = queued {
                self.leases.remove(id);
                o.error(id, server, &error);
            }
        }
    }
}

impl Ctx<'_> {
    /// A meta reply settles its op (or parks a lease read that must wait).
    pub(super) fn meta(&mut self, id: u32, read: MetaRead, response: Response, o: &mut Out) {
        let server = Some(self.server);
        let reply = match response {
            Response::Meta(reply) => reply,
            other => {
                if read == MetaRead::Lease {
                    self.leases.remove(id);
                }
                o.error(id, server, &reply_error(other, "a meta reply"));
                return;
            }
        };
        match (read, reply.status) {
            (MetaRead::Lease, _) => self.lease(id, reply, o),
            (MetaRead::Store | MetaRead::Delete, MetaStatus::Stored) => o.outcome(id, record::TRUE),
            (
                MetaRead::Store | MetaRead::Delete,
                MetaStatus::NotStored | MetaStatus::NotFound | MetaStatus::Exists,
            ) => o.outcome(id, record::FALSE),
            (MetaRead::WithTtl | MetaRead::Touch | MetaRead::Counter, MetaStatus::Miss)
            | (MetaRead::Counter, MetaStatus::NotFound) => o.outcome(id, record::MISS),
            (MetaRead::WithTtl, MetaStatus::Value) => {
                let at = o.0.len();
                o.outcome(id, record::TTL_VALUE);
                put_f64(o.0, reply.flags.ttl.unwrap_or(-1) as f64);
                if let Err(error) = self.put_value(o.0, &as_item(reply)) {
                    o.0.truncate(at);
                    o.error(id, server, &error);
                }
            }
            (MetaRead::Touch, MetaStatus::Value) => {
                let at = o.0.len();
                o.outcome(id, record::VALUE);
                if let Err(error) = self.put_value(o.0, &as_item(reply)) {
                    o.0.truncate(at);
                    o.error(id, server, &error);
                }
            }
            (MetaRead::Counter, MetaStatus::Value) => {
                o.outcome(id, record::NUMBER);
                put_field(o.0, &reply.data);
            }
            (_, status) => o.error(
                id,
                server,
                &Error::Protocol(format!("unexpected meta reply {status:?} to {read:?}")),
            ),
        }
    }

    fn lease(&mut self, id: u32, reply: MetaReply, o: &mut Out) {
        let server = Some(self.server);
        let decision = match meta::lease(&reply) {
            Ok(d) => d,
            Err(error) => {
                self.leases.remove(id);
                o.error(id, server, &error);
                return;
            }
        };
        if decision == Lease::Wait {
            let now = self.now;
            let Some(at) = self.leases.position(id) else {
                return;
            };
            let l = &mut self.leases.0[at];
            let retry_at = now.saturating_add(meta::wait_step_ms(l.attempt));
            if retry_at > l.give_up_at {
                let error = Error::Timeout(format!(
                    "getOrSet of {:?}: another caller's loader did not store a value within {} ms",
                    Error::key_text(&l.key),
                    l.wait_ms
                ));
                self.leases.remove(id);
                o.error(id, server, &error);
            } else {
                l.attempt += 1;
                l.retry_at = Some(retry_at);
            }
            return;
        }
        self.leases.remove(id);
        let code = match decision {
            Lease::Hit => lease::HIT,
            Lease::WonMiss => lease::WON_MISS,
            Lease::WonStale => lease::WON_STALE,
            Lease::ServeStale | Lease::Wait => lease::SERVE_STALE,
        };
        let at = o.0.len();
        o.outcome(id, record::LEASE);
        put_u8(o.0, code);
        if decision != Lease::WonMiss {
            if let Err(error) = self.put_value(o.0, &as_item(reply)) {
                o.0.truncate(at);
                o.error(id, server, &error);
            }
        }
    }

    /// A lease read that will never be answered: its entry goes with it.
    pub(super) fn forget_lease(&mut self, id: u32) {
        self.leases.remove(id);
    }
}

/// A meta value as the codec reads items.
fn as_item(reply: MetaReply) -> Item {
    Item {
        key: reply.flags.key.unwrap_or_default(),
        flags: reply.flags.client_flags.unwrap_or(0),
        cas: reply.flags.cas,
        data: reply.data,
        skipped: reply.skipped,
    }
}
