//! memcache-wasm: a sans-IO memcached client core, compatible with python-memcached.
//!
//! The core never touches a socket or a timer: callers hand it bytes that arrived and
//! get back whole responses; encoding a request returns the bytes to write. The same
//! code runs under `cargo test`, in Node and in browsers. Only `binding` knows about
//! JavaScript.

pub mod binding;
pub mod codec;
pub mod connection;
pub mod distribution;
pub mod engine;
pub mod error;
pub mod keys;
pub mod meta;
pub mod request;
pub mod response;
pub mod wire;

pub use error::{Error, KeyRule, Result};

/// The wasm build allocates with talc: faster and smaller than the default dlmalloc for the
/// engine's many small allocations (single-threaded wasm, no atomics).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
