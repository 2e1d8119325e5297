//! The `#[wasm_bindgen]` surface: converts the JavaScript options into an
//! [`EngineConfig`] and passes batches and chunks through to [`crate::engine::Engine`].
//! No logic lives here; errors cross as `Error` objects whose message is `CODE: text`.
//!
//! Bytes cross through two buffers the engine keeps in wasm memory: JavaScript writes a
//! batch or a chunk where `input(len)` points, calls `submit(len)` / `receive(server, len)`,
//! and reads the result where `output()` points (valid until the next call). That spares
//! an allocation, a free and a copy per crossing against passing `&[u8]` / `Vec<u8>`.

use wasm_bindgen::prelude::*;

use crate::codec::{CodecOptions, Serializer};
use crate::distribution::HashFunction;
use crate::engine::{self, DistributionKind, EngineConfig};
use crate::error::Error;

/// python-memcached reads pickles of protocols 0-5; 2 is the newest that Python 2 reads
/// too, and the one the pickle serializer writes.
const PICKLE_PROTOCOL: u8 = 2;

#[wasm_bindgen]
extern "C" {
    /// The caller's hash function, called here only for python-memcached's re-hash past a
    /// dead server (JavaScript hashes every key itself before a batch crosses).
    #[wasm_bindgen(typescript_type = "(key: string) => number")]
    pub type HashCallback;

    /// The checked hash, or the reason it failed as a string (client.js `rehashFunction`).
    #[wasm_bindgen(method, js_name = call)]
    fn call(this: &HashCallback, this_arg: &JsValue, key: &str) -> JsValue;
}

fn short_input(len: u32) -> Error {
    Error::BadArgument(format!(
        "{len} input bytes announced beyond the input buffer"
    ))
}

fn to_js(error: Error) -> JsError {
    JsError::new(&format!("{}: {}", error.code(), error))
}

#[wasm_bindgen]
pub struct Engine {
    inner: engine::Engine,
    input: Vec<u8>,
    output: Vec<u8>,
}

#[wasm_bindgen]
impl Engine {
    /// `distribution`: "modula" | "ketama"; `hash`: "crc32" | "crc32-old" | "custom" (then
    /// `rehash` is the caller's function); `serializer`: "json" | "pickle" | "custom".
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        addresses: Vec<String>,
        weights: Vec<u32>,
        distribution: &str,
        hash: &str,
        serializer: &str,
        min_compress_len: u32,
        max_value_size: u32,
        failover: bool,
        rehash: Option<HashCallback>,
    ) -> Result<Engine, JsError> {
        if addresses.len() != weights.len() {
            return Err(to_js(Error::BadArgument("one weight per server".into())));
        }
        let distribution = match distribution {
            "modula" => DistributionKind::Modula,
            "ketama" => DistributionKind::Ketama,
            other => {
                return Err(to_js(Error::BadArgument(format!(
                    "unknown distribution {other:?}"
                ))))
            }
        };
        let (hash, caller_hashes) = match (hash, rehash) {
            ("crc32", _) => (HashFunction::Cmemcache, false),
            ("crc32-old", _) => (HashFunction::Crc32, false),
            ("custom", Some(callback)) => (
                HashFunction::Custom(Box::new(move |key: &[u8]| {
                    let out = callback.call(&JsValue::UNDEFINED, &String::from_utf8_lossy(key));
                    match (out.as_f64(), out.as_string()) {
                        (Some(hash), _)
                            if hash.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&hash) =>
                        {
                            Ok(hash as u32)
                        }
                        (_, Some(reason)) => Err(reason),
                        _ => Err(format!(
                            "it returned {out:?}, not an integer from 0 to 2^32-1"
                        )),
                    }
                })),
                true,
            ),
            (other, _) => {
                return Err(to_js(Error::BadArgument(format!(
                    "unknown hash function {other:?}"
                ))))
            }
        };
        let serializer = match serializer {
            "json" => Serializer::Json,
            "pickle" => Serializer::Pickle {
                protocol: PICKLE_PROTOCOL,
            },
            "custom" => Serializer::Custom,
            other => {
                return Err(to_js(Error::BadArgument(format!(
                    "unknown serializer {other:?}"
                ))))
            }
        };
        let config = EngineConfig {
            servers: addresses.into_iter().zip(weights).collect(),
            distribution,
            hash,
            caller_hashes,
            codec: CodecOptions {
                serializer,
                min_compress_len: min_compress_len as usize,
                max_value_size: max_value_size as usize,
                ..CodecOptions::default()
            },
            failover,
        };
        engine::Engine::new(config)
            .map(|inner| Engine {
                inner,
                input: Vec::new(),
                output: Vec::new(),
            })
            .map_err(to_js)
    }

    /// Where JavaScript writes the next `len` bytes of input (a batch or a chunk). The
    /// address holds until the next call into the engine.
    pub fn input(&mut self, len: u32) -> *mut u8 {
        self.input.resize(len as usize, 0);
        self.input.as_mut_ptr()
    }

    /// Where the last result lies; its length is what `submit` / `receive` returned.
    pub fn output(&self) -> *const u8 {
        self.output.as_ptr()
    }

    /// The batch in the first `len` input bytes in, the submit result out (formats: engine.rs).
    pub fn submit(&mut self, len: u32) -> Result<u32, JsError> {
        let batch = self
            .input
            .get(..len as usize)
            .ok_or_else(|| to_js(short_input(len)))?;
        self.inner
            .submit_into(batch, &mut self.output)
            .map_err(to_js)?;
        Ok(self.output.len() as u32)
    }

    /// The chunk from server `server` in the first `len` input bytes in, the records of the
    /// replies it completed out.
    pub fn receive(&mut self, server: u32, len: u32) -> Result<u32, JsError> {
        let chunk = self
            .input
            .get(..len as usize)
            .ok_or_else(|| to_js(short_input(len)))?;
        self.inner
            .receive_into(server as usize, chunk, &mut self.output)
            .map_err(to_js)?;
        Ok(self.output.len() as u32)
    }

    /// The index of the server `key` goes to now (routing as `submit` does it); `hash` is
    /// the caller's hash of the key, given exactly when the client has a custom hash
    /// function. Not on a hot path: a dashboard asks this once per key it shows.
    #[wasm_bindgen(js_name = serverForKey)]
    pub fn server_for_key(&self, key: &str, hash: Option<u32>) -> Result<u32, JsError> {
        self.inner
            .server_for_key(key.as_bytes(), hash)
            .map(|server| server as u32)
            .map_err(to_js)
    }

    #[wasm_bindgen(js_name = markDead)]
    pub fn mark_dead(&mut self, server: u32) {
        self.inner.mark_dead(server as usize);
    }

    #[wasm_bindgen(js_name = markAlive)]
    pub fn mark_alive(&mut self, server: u32) {
        self.inner.mark_alive(server as usize);
    }

    pub fn reset(&mut self, server: u32) {
        self.inner.reset(server as usize);
    }
}
