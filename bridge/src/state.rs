//! What every connection task shares: the checked configuration, the handshake rules, the
//! counters, the admission bounds and the static-file cache. server.rs builds it once;
//! http.rs reads it and hands a relay only the parts the relay needs (relay.rs sees none of it).

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::config::Config;
use crate::files::StaticFiles;
use crate::handshake::Rules;
use crate::metrics::Metrics;
use crate::relay::RelaySettings;
use crate::upstream::Upstream;

pub struct Shared {
    pub config: Config,
    pub rules: Rules,
    pub metrics: Arc<Metrics>,
    pub admission: Admission,
    pub relay: Arc<RelaySettings>,
    pub files: Option<StaticFiles>,
    /// In `--upstream` order; the handshake names one of them.
    pub upstreams: Vec<Arc<Upstream>>,
    /// With `--tls-cert`: every accepted connection is TLS first.
    pub tls: Option<TlsAcceptor>,
}

impl Shared {
    /// `upstreams`: from [`upstreams`]; `upstream_limits`: each upstream's name with the most
    /// connections the bridge opens to it.
    pub fn new(
        config: Config,
        upstreams: Vec<Arc<Upstream>>,
        upstream_limits: &[(String, usize)],
    ) -> Shared {
        Shared {
            rules: Rules {
                upstreams: config.upstreams.clone(),
                allowed_origins: config.allowed_origins.clone(),
                tokens: config.tokens.clone(),
            },
            metrics: Arc::new(Metrics::default()),
            admission: Admission::new(
                config.max_connections,
                config.max_connections_per_client,
                upstream_limits,
            ),
            relay: Arc::new(RelaySettings {
                policy: config.policy.clone(),
                max_message_size: config.max_message_size,
                idle_timeout: config.idle_timeout,
                connect_timeout: config.connect_timeout,
            }),
            files: config.www.clone().map(StaticFiles::new),
            upstreams,
            tls: config.tls.clone().map(TlsAcceptor::from),
            config,
        }
    }
}

/// The configured upstreams, ready to connect (TLS and credentials attached).
pub fn upstreams(config: &Config) -> Vec<Arc<Upstream>> {
    config
        .upstreams
        .iter()
        .map(|name| {
            Arc::new(Upstream::new(
                name,
                config.upstream_tls.as_ref(),
                config.upstream_credentials.as_ref(),
            ))
        })
        .collect()
}

impl Shared {
    /// The upstream a handshake named (handshake.rs admits configured names only).
    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}
