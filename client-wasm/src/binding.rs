//! The `#[wasm_bindgen]` surface: converts the JavaScript options into an
//! [`EngineConfig`] and passes batches and chunks through to [`crate::engine::Engine`].
//! No logic lives here; errors cross as data ([`EngineError`]: a code and a message).
//!
//! Bytes cross through two buffers the engine keeps in wasm memory: JavaScript writes a
//! batch or a chunk where `input(len)` points, calls `submit(len)` / `receive(server, len)`,
//! and reads the result where `output()` points (valid until the next call). That spares
//! an allocation, a free and a copy per crossing against passing `&[u8]` / `Vec<u8>`.

use wasm_bindgen::prelude::*;

use crate::codec::{CodecOptions, Serializer};
use crate::distribution::HashFunction;
use crate::engine::{self, DistributionKind, EngineConfig, Timing};
use crate::error::Error;

/// What `submit` and `receive` return when the call failed; `takeError()` then gives the
/// error. (An output is never this long.) A `Result` would cross as a JavaScript array of
/// three made on every call, the two calls every request makes.
const FAILED: u32 = u32::MAX;

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

/// An error thrown across the binding, as data: JavaScript reads `code` and `message` and
/// builds the MemcacheError subclass of the code (no text to parse).
#[wasm_bindgen]
pub struct EngineError {
    code: &'static str,
    message: String,
}

#[wasm_bindgen]
impl EngineError {
    #[wasm_bindgen(getter)]
    pub fn code(&self) -> String {
        self.code.to_string()
    }

    #[wasm_bindgen(getter)]
    pub fn message(&self) -> String {
        self.message.clone()
    }
}

fn to_js(error: Error) -> EngineError {
    EngineError {
        code: error.code(),
        message: error.to_string(),
    }
}

/// A millisecond count from JavaScript (a clock reading or an option) as the core's u64.
fn millis(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    }
}

#[wasm_bindgen]
pub struct Engine {
    inner: engine::Engine,
    input: Vec<u8>,
    output: Vec<u8>,
    /// The error of the last `submit` or `receive` that returned [`FAILED`].
    error: Option<EngineError>,
}

#[wasm_bindgen]
impl Engine {
    /// `distribution`: "modula" | "ketama"; `hash`: "crc32" | "crc32-old" | "custom" (then
    /// `rehash` is the caller's function); `serializer`: "json" | "pickle" | "custom".
    /// Times are milliseconds; the JavaScript layer has checked every option already.
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
        max_item_size: u32,
        failover: bool,
        timeout_ms: f64,
        connect_timeout_ms: f64,
        dead_retry_ms: f64,
        behind_proxy: bool,
        rehash: Option<HashCallback>,
    ) -> Result<Engine, EngineError> {
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
            max_item_size: max_item_size as usize,
            failover,
            timing: Timing {
                timeout_ms: millis(timeout_ms),
                connect_timeout_ms: millis(connect_timeout_ms),
                dead_retry_ms: millis(dead_retry_ms),
            },
            behind_proxy,
        };
        engine::Engine::new(config)
            .map(|inner| Engine {
                inner,
                input: Vec::new(),
                output: Vec::new(),
                error: None,
            })
            .map_err(to_js)
    }

    /// memcached -Y credentials for server `server`'s connections (each new one
    /// authenticates before anything else is written).
    #[wasm_bindgen(js_name = setAuth)]
    pub fn set_auth(
        &mut self,
        server: u32,
        username: &str,
        password: &str,
    ) -> Result<(), EngineError> {
        let credentials = engine::auth::Credentials::new(username, password).map_err(to_js)?;
        self.inner
            .set_auth(server as usize, Some(credentials))
            .map_err(to_js)
    }

    /// Whether server `server`'s socket is TLS.
    #[wasm_bindgen(js_name = setTls)]
    pub fn set_tls(&mut self, server: u32, tls: bool) -> Result<(), EngineError> {
        self.inner.set_tls(server as usize, tls).map_err(to_js)
    }

    /// Server `server`'s new connections do not authenticate.
    #[wasm_bindgen(js_name = clearAuth)]
    pub fn clear_auth(&mut self, server: u32) -> Result<(), EngineError> {
        self.inner.set_auth(server as usize, None).map_err(to_js)
    }

    /// A new server list (`setServers`); `members()` then says each one's server index.
    #[wasm_bindgen(js_name = setServers)]
    pub fn set_servers(
        &mut self,
        now: f64,
        addresses: Vec<String>,
        weights: Vec<u32>,
    ) -> Result<u32, EngineError> {
        if addresses.len() != weights.len() {
            return Err(to_js(Error::BadArgument("one weight per server".into())));
        }
        self.inner
            .set_servers(
                millis(now),
                addresses.into_iter().zip(weights).collect(),
                &mut self.output,
            )
            .map_err(to_js)?;
        Ok(self.output.len() as u32)
    }

    /// The server index of each server of the current list, in its order.
    pub fn members(&self) -> Vec<u32> {
        self.inner.members().iter().map(|&i| i as u32).collect()
    }

    /// Where JavaScript writes the next `len` bytes of input (a batch or a chunk). The
    /// address holds until the next call into the engine.
    pub fn input(&mut self, len: u32) -> *mut u8 {
        self.input.resize(len as usize, 0);
        self.input.as_mut_ptr()
    }

    /// Where the last output lies; its length is what the last call returned.
    pub fn output(&self) -> *const u8 {
        self.output.as_ptr()
    }

    /// The batch in the first `len` input bytes (formats: engine/command.rs): the output's
    /// length, or [`FAILED`] (then `takeError()`).
    pub fn submit(&mut self, now: f64, len: u32) -> u32 {
        let result = match self.input.get(..len as usize) {
            Some(batch) => self.inner.submit(millis(now), batch, &mut self.output),
            None => Err(short_input(len)),
        };
        self.output_or_failed(result)
    }

    /// The chunk from server `server` in the first `len` input bytes: the output's length,
    /// or [`FAILED`] (then `takeError()`).
    pub fn receive(&mut self, now: f64, server: u32, len: u32) -> u32 {
        let result = match self.input.get(..len as usize) {
            Some(chunk) => {
                self.inner
                    .receive(millis(now), server as usize, chunk, &mut self.output)
            }
            None => Err(short_input(len)),
        };
        self.output_or_failed(result)
    }

    /// The error of the last `submit` or `receive` that returned FAILED (u32::MAX).
    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error(&mut self) -> Option<EngineError> {
        self.error.take()
    }

    fn output_or_failed(&mut self, result: Result<(), Error>) -> u32 {
        match result {
            Ok(()) => self.output.len() as u32,
            Err(error) => {
                self.error = Some(to_js(error));
                FAILED
            }
        }
    }

    /// The socket a CONNECT asked for is open.
    pub fn connected(&mut self, now: f64, server: u32) -> Result<u32, EngineError> {
        self.inner
            .connected(millis(now), server as usize, &mut self.output)
            .map_err(to_js)?;
        Ok(self.output.len() as u32)
    }

    /// The server's socket failed or closed; `kind` is a LinkFailure number.
    #[wasm_bindgen(js_name = connectionLost)]
    pub fn connection_lost(
        &mut self,
        now: f64,
        server: u32,
        kind: u8,
        message: &str,
    ) -> Result<u32, EngineError> {
        self.inner
            .connection_lost(
                millis(now),
                server as usize,
                kind,
                message,
                &mut self.output,
            )
            .map_err(to_js)?;
        Ok(self.output.len() as u32)
    }

    /// The time the last output's `wake` named has come.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now: f64) -> u32 {
        self.inner.handle_timeout(millis(now), &mut self.output);
        self.output.len() as u32
    }

    /// The index of the server `key` goes to now (routing as `submit` does it); `hash` is
    /// the caller's hash of the key, given exactly when the client has a custom hash
    /// function. Not on a hot path: a dashboard asks this once per key it shows.
    #[wasm_bindgen(js_name = serverForKey)]
    pub fn server_for_key(&self, key: &str, hash: Option<u32>) -> Result<u32, EngineError> {
        self.inner
            .server_for_key(key.as_bytes(), hash)
            .map(|server| server as u32)
            .map_err(to_js)
    }

    /// Whether routing sends keys to the server now.
    #[wasm_bindgen(js_name = isUp)]
    pub fn is_up(&self, server: u32) -> bool {
        self.inner.is_up(server as usize)
    }
}
