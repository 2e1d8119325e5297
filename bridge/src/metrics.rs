//! The bridge's counters, shared by every connection and rendered as Prometheus text at
//! `/metrics`. Plain atomics: a relay adds to them on its hot path, so they must be cheap.
//! Labels are fixed words; nothing a client sends (and no token) ever becomes a label.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Every refusal reason, handshake and command alike, in the order `/metrics` lists them.
pub const REFUSAL_REASONS: &[&str] = &[
    "not_found",
    "unknown_upstream",
    "bad_origin",
    "missing_token",
    "wrong_token",
    "bad_subprotocol",
    "too_many_connections",
    "too_many_client_connections",
    "too_many_http_connections",
    "upstream_busy",
    "upstream_auth_backoff",
    "read_only",
    "admin_command",
    "unknown_command",
    "malformed_command",
    "binary_protocol",
    "line_too_long",
    "text_frame",
    "message_too_big",
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    /// Plain HTTP connections admitted and not yet ended (or turned into relays).
    pub http_connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub bytes_client_to_upstream: AtomicU64,
    pub bytes_upstream_to_client: AtomicU64,
    pub upstream_connect_errors: AtomicU64,
    pub upstream_closed: AtomicU64,
    /// TLS handshakes with memcached that failed (a certificate not trusted, most often).
    pub upstream_tls_errors: AtomicU64,
    /// Authentications memcached refused (`CLIENT_ERROR authentication failure`).
    pub upstream_auth_failures: AtomicU64,
    pub idle_timeouts: AtomicU64,
    pub http_requests: AtomicU64,
    refusals: [AtomicU64; REFUSAL_REASONS.len()],
}

impl Metrics {
    /// Counts one refusal; `reason` must be one of [`REFUSAL_REASONS`].
    pub fn refused(&self, reason: &str) {
        let index = REFUSAL_REASONS.iter().position(|r| *r == reason);
        debug_assert!(index.is_some(), "unlisted refusal reason {reason}");
        if let Some(index) = index {
            self.refusals[index].fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "memcache_bridge_connections_open",
            "gauge",
            "WebSocket relays open now.",
            self.connections_open.load(Relaxed),
        );
        metric(
            "memcache_bridge_http_connections_open",
            "gauge",
            "Plain HTTP connections open now (requests, handshakes, and those waiting their turn).",
            self.http_connections_open.load(Relaxed),
        );
        metric(
            "memcache_bridge_connections_total",
            "counter",
            "WebSocket relays opened since start.",
            self.connections_total.load(Relaxed),
        );
        metric(
            "memcache_bridge_client_to_upstream_bytes_total",
            "counter",
            "Bytes relayed from clients to memcached.",
            self.bytes_client_to_upstream.load(Relaxed),
        );
        metric(
            "memcache_bridge_upstream_to_client_bytes_total",
            "counter",
            "Bytes relayed from memcached to clients.",
            self.bytes_upstream_to_client.load(Relaxed),
        );
        metric(
            "memcache_bridge_upstream_connect_errors_total",
            "counter",
            "Upstream connections that failed or timed out.",
            self.upstream_connect_errors.load(Relaxed),
        );
        metric(
            "memcache_bridge_upstream_tls_errors_total",
            "counter",
            "TLS handshakes with memcached that failed.",
            self.upstream_tls_errors.load(Relaxed),
        );
        metric(
            "memcache_bridge_upstream_auth_failures_total",
            "counter",
            "Authentications memcached refused (wrong --upstream-auth-file credentials).",
            self.upstream_auth_failures.load(Relaxed),
        );
        metric(
            "memcache_bridge_upstream_closed_total",
            "counter",
            "Relays ended because memcached closed or reset the connection.",
            self.upstream_closed.load(Relaxed),
        );
        metric(
            "memcache_bridge_idle_timeouts_total",
            "counter",
            "Relays closed for inactivity.",
            self.idle_timeouts.load(Relaxed),
        );
        metric(
            "memcache_bridge_http_requests_total",
            "counter",
            "HTTP requests served.",
            self.http_requests.load(Relaxed),
        );
        out.push_str(
            "# HELP memcache_bridge_refusals_total Handshakes and commands refused, by reason.\n",
        );
        out.push_str("# TYPE memcache_bridge_refusals_total counter\n");
        for (reason, count) in REFUSAL_REASONS.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "memcache_bridge_refusals_total{{reason=\"{reason}\"}} {}",
                count.load(Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_counter_and_renders() {
        let metrics = Metrics::default();
        assert_eq!(REFUSAL_REASONS.len(), metrics.refusals.len());
        metrics.refused("read_only");
        metrics.refused("read_only");
        let text = metrics.render();
        assert!(text.contains("memcache_bridge_refusals_total{reason=\"read_only\"} 2\n"));
        assert!(text.contains("memcache_bridge_refusals_total{reason=\"bad_origin\"} 0\n"));
    }
}
