//! memcache-bridge as a library: the modules the binary (main.rs) runs, public so that the
//! fuzz targets (bridge/fuzz) can reach the sans-IO parts: the command scanner (policy.rs)
//! and the WebSocket frame reader (websocket.rs).

pub mod admission;
pub mod config;
pub mod error;
pub mod files;
pub mod handshake;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod relay;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod stream;
pub mod tls;
pub mod upstream;
pub mod websocket;
