//! memcache-bridge: relays WebSocket connections from browsers to configured memcached servers.
fn main() {}
