//! Which server a key goes to now: the distribution (python-memcached's modula or ketama),
//! failover past servers that are down, and each server's health as a function of time.
//! A failed server is retried at once, then with exponential backoff up to `deadRetry`,
//! by the engine's own probe rather than by a wave of callers' requests.

use crate::distribution::Distribution;
use crate::error::{Error, Result};
use crate::keys;

use super::command::KeyRef;

/// The wait before the second retry of a failed server; it doubles with each failure
/// after that up to `deadRetry`. 100 ms rides out a restart (memcached listens again
/// within tens of milliseconds) without hammering a server that stays down.
pub const FIRST_BACKOFF_MS: u64 = 100;

/// A server's health, as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Takes requests.
    Up,
    /// Failed `failures` times in a row (connect, reply or probe); skipped by routing. At
    /// `retry_at` the engine probes it (`probing` while the probe is out).
    Down {
        failures: u32,
        retry_at: u64,
        probing: bool,
    },
}

impl Health {
    pub fn is_up(self) -> bool {
        matches!(self, Health::Up)
    }

    /// The health after one more failure at `now`, and whether the server just went down.
    pub fn after_failure(self, now: u64, dead_retry_ms: u64) -> (Health, bool) {
        let failures = match self {
            Health::Up => 1,
            Health::Down { failures, .. } => failures.saturating_add(1),
        };
        let down = Health::Down {
            failures,
            retry_at: now.saturating_add(backoff(failures, dead_retry_ms)),
            probing: false,
        };
        (down, self.is_up())
    }

    /// When a probe is due and not yet out.
    pub fn probe_due(self) -> Option<u64> {
        match self {
            Health::Down {
                retry_at,
                probing: false,
                ..
            } => Some(retry_at),
            _ => None,
        }
    }
}

/// How long after its `failures`-th failure in a row a server is tried again: at once
/// after the first, then [`FIRST_BACKOFF_MS`] doubling up to `dead_retry_ms` (never less
/// than [`FIRST_BACKOFF_MS`], so `deadRetry: 0` cannot make a tight reconnect loop).
pub fn backoff(failures: u32, dead_retry_ms: u64) -> u64 {
    if failures <= 1 {
        return 0;
    }
    let doubled = FIRST_BACKOFF_MS.saturating_mul(1u64 << (failures - 2).min(30));
    doubled.min(dead_retry_ms.max(FIRST_BACKOFF_MS))
}

/// The distribution with the failover rule.
pub struct Router {
    pub distribution: Distribution,
    /// Re-hash past a down server (python-memcached) rather than fail with NO_SERVER.
    pub failover: bool,
    /// JavaScript hashes every key itself (a custom hash function).
    pub caller_hashes: bool,
    /// The engine's server index of each of the distribution's servers: after
    /// `setServers` the distribution covers the current list, while servers that left
    /// keep their index until their last reply is in.
    pub members: Vec<usize>,
}

impl Router {
    /// The up server for a key: python-memcached's re-hash past down ones with failover;
    /// NO_SERVER when its server is down without failover, or none is up.
    pub fn server_for(
        &self,
        key: &KeyRef,
        full_key: &[u8],
        up: impl Fn(usize) -> bool,
    ) -> Result<usize> {
        keys::check_key(full_key)?;
        self.server_for_checked(key, full_key, up)
    }

    /// [`Router::server_for`] for a key already checked with `keys::check_key`.
    pub fn server_for_checked(
        &self,
        key: &KeyRef,
        full_key: &[u8],
        up: impl Fn(usize) -> bool,
    ) -> Result<usize> {
        let members = &self.members;
        let up = |i: usize| up(members[i]);
        let chosen = if self.failover {
            self.pick(key.hash, full_key, up)?
        } else {
            self.pick(key.hash, full_key, |_| true)?.filter(|&i| up(i))
        };
        chosen.map(|i| members[i]).ok_or_else(|| Error::NoServer {
            key: Error::key_text(full_key),
        })
    }

    fn pick(
        &self,
        hash: Option<u32>,
        key: &[u8],
        up: impl Fn(usize) -> bool,
    ) -> Result<Option<usize>> {
        match (&self.distribution, hash) {
            (Distribution::Modula(m), Some(hash)) => m.server_for_hash(hash, up),
            (d, _) => d.server_for_key(key, up),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_at_once_then_doubles_up_to_dead_retry() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n, 30_000)).collect();
        assert_eq!(
            waits,
            vec![0, 100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]
        );
        assert_eq!(
            backoff(1000, 30_000),
            30_000,
            "no overflow after many failures"
        );
        assert_eq!(
            backoff(5, 0),
            FIRST_BACKOFF_MS,
            "deadRetry 0 still waits 100 ms"
        );
    }

    #[test]
    fn health_goes_down_once_and_counts_failures() {
        let (down, went_down) = Health::Up.after_failure(1_000, 30_000);
        assert!(went_down);
        assert_eq!(
            down,
            Health::Down {
                failures: 1,
                retry_at: 1_000,
                probing: false
            }
        );
        assert_eq!(down.probe_due(), Some(1_000));
        let (again, went_down) = down.after_failure(1_010, 30_000);
        assert!(!went_down, "already down: no second serverDown");
        assert_eq!(again.probe_due(), Some(1_110));
        let probing = Health::Down {
            failures: 2,
            retry_at: 1_110,
            probing: true,
        };
        assert_eq!(probing.probe_due(), None, "one probe at a time");
    }
}
