//! Who gets in, and how many: connections per client address, plain HTTP connections,
//! relays in all and per upstream. Every place is a guard that gives itself back when
//! dropped, so no path can leak one. Nothing here waits except a client's own handshake
//! turn: the accept loop never blocks, so slow sockets cannot lock other clients out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::{MAX_HANDSHAKES_PER_CLIENT, MAX_HTTP_CONNECTIONS};

/// The bounds, shared by every connection.
#[derive(Debug)]
pub struct Admission {
    http: Arc<Semaphore>,
    relays: Arc<Semaphore>,
    upstreams: HashMap<String, Arc<Semaphore>>,
    clients: Arc<Mutex<HashMap<IpAddr, Client>>>,
    per_client: usize,
}

#[derive(Debug)]
struct Client {
    connections: usize,
    handshakes: Arc<Semaphore>,
}

/// Why a connection or a relay was not let in; each is a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `MAX_HTTP_CONNECTIONS` plain connections are open.
    HttpConnections,
    /// This client address holds `--max-connections-per-client` connections.
    Client,
    /// `--max-connections` relays are open.
    Relays,
    /// The upstream's share of memcached's `maxconns` is in use.
    Upstream,
}

impl Full {
    pub fn metric_label(self) -> &'static str {
        match self {
            Full::HttpConnections => "too_many_http_connections",
            Full::Client => "too_many_client_connections",
            Full::Relays => "too_many_connections",
            Full::Upstream => "upstream_busy",
        }
    }
}

/// A client address's place: one of its `--max-connections-per-client`.
#[derive(Debug)]
pub struct ClientPlace {
    clients: Arc<Mutex<HashMap<IpAddr, Client>>>,
    address: IpAddr,
    handshakes: Arc<Semaphore>,
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get_mut(&self.address) {
            client.connections -= 1;
            if client.connections == 0 {
                clients.remove(&self.address);
            }
        }
    }
}

impl ClientPlace {
    /// One more place for the same address, over its cap: the connection that holds `self`
    /// is turning into a relay and gives its own place back as soon as it ends.
    fn another(&self) -> ClientPlace {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get_mut(&self.address) {
            client.connections += 1;
        }
        ClientPlace {
            clients: self.clients.clone(),
            address: self.address,
            handshakes: self.handshakes.clone(),
        }
    }

    /// Waits for one of the address's `MAX_HANDSHAKES_PER_CLIENT` handshake turns.
    pub async fn handshake_turn(&self) -> OwnedSemaphorePermit {
        self.handshakes
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

/// An accepted connection's places: its client's, and one of the plain HTTP connections.
#[derive(Debug)]
pub struct Admitted {
    pub client: ClientPlace,
    pub http: OwnedSemaphorePermit,
}

/// A relay's places, held for its whole life.
#[derive(Debug)]
pub struct RelayPlaces {
    _client: ClientPlace,
    _relay: OwnedSemaphorePermit,
    _upstream: OwnedSemaphorePermit,
}

impl Admission {
    /// `upstream_limits`: each upstream with the most connections the bridge may open to it.
    pub fn new(
        max_relays: usize,
        per_client: usize,
        upstream_limits: &[(String, usize)],
    ) -> Admission {
        Admission {
            http: Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS)),
            relays: Arc::new(Semaphore::new(max_relays)),
            upstreams: upstream_limits
                .iter()
                .map(|(name, limit)| (name.clone(), Arc::new(Semaphore::new(*limit))))
                .collect(),
            clients: Arc::new(Mutex::new(HashMap::new())),
            per_client,
        }
    }

    /// Admits a newly accepted connection from `peer`, or says which bound is full.
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, Full> {
        let address = client_address(peer);
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            let client = clients.entry(address).or_insert_with(|| Client {
                connections: 0,
                handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES_PER_CLIENT)),
            });
            if client.connections >= self.per_client {
                return Err(Full::Client);
            }
            client.connections += 1;
            ClientPlace {
                clients: self.clients.clone(),
                address,
                handshakes: client.handshakes.clone(),
            }
        };
        let http = self
            .http
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::HttpConnections)?;
        Ok(Admitted { client, http })
    }

    /// Takes a relay place and a place at `upstream` for a connection holding `client`.
    pub fn relay(&self, upstream: &str, client: &ClientPlace) -> Result<RelayPlaces, Full> {
        let relay = self
            .relays
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Relays)?;
        let upstream = self
            .upstreams
            .get(upstream)
            .expect("handshake.rs admits configured upstreams only")
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Upstream)?;
        Ok(RelayPlaces {
            _client: client.another(),
            _relay: relay,
            _upstream: upstream,
        })
    }
}

/// The address a per-client bound counts under: an IPv4 address (also IPv4-mapped IPv6),
/// or an IPv6 /64, the block one host or site usually gets.
fn client_address(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_is_capped_and_places_come_back_when_dropped() {
        let admission = Admission::new(3, 2, &[("u:1".into(), 1)]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Full::Client);
        assert!(
            admission.admit(b).is_ok(),
            "another address is not affected"
        );
        drop(second);
        let again = admission.admit(a).unwrap();
        let relay = admission.relay("u:1", &first.client).unwrap();
        assert_eq!(
            admission.relay("u:1", &again.client).unwrap_err(),
            Full::Upstream
        );
        drop((first, again));
        assert!(
            admission.clients.lock().unwrap().get(&a).is_some(),
            "the relay holds a place"
        );
        drop(relay);
        assert!(admission.clients.lock().unwrap().get(&a).is_none());
    }

    #[test]
    fn ipv6_clients_count_by_slash_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_address(one), client_address(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_address(mapped),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
