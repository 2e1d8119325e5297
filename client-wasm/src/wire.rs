//! The binding's wire format: the numbers JavaScript and the engine exchange (opcodes,
//! record kinds, value kinds, output entries, error codes), defined once here, and the
//! byte-level reader and writers of the buffers. `js/wire.js` is generated from these
//! tables ([`javascript_module`]); a test fails when the two differ. Little-endian
//! throughout; `str` is a u32 byte length and the bytes.

use crate::error::{Error, Result};

/// One table of named numbers: Rust constants and the list the JavaScript side is
/// generated from.
macro_rules! wire_table {
    ($(#[$doc:meta])* $module:ident : $ty:ty as $js:literal { $($name:ident = $value:expr,)* }) => {
        $(#[$doc])*
        pub mod $module {
            $(pub const $name: $ty = $value;)*
            /// (name, value) in order, for the generated JavaScript.
            pub const TABLE: &[(&str, u64)] = &[$((stringify!($name), $value as u64)),*];
            pub const JS_NAME: &str = $js;
        }
    };
}

wire_table! {
    /// An op's first byte in a batch (the command it carries).
    opcode: u8 as "Op" {
        GET = 1, GETS = 2, GET_MULTI = 3, SET = 4, ADD = 5, REPLACE = 6, APPEND = 7,
        PREPEND = 8, CAS = 9, SET_MULTI = 10, DELETE = 11, DELETE_MULTI = 12, INCR = 13,
        DECR = 14, TOUCH = 15, FLUSH_ALL = 16, STATS = 17, VERSION = 18, INSPECT = 19,
        METADUMP = 20,
        LEASE_GET = 21, META_SET = 22, META_DELETE = 23, GET_WITH_TTL = 24, GET_AND_TOUCH = 25,
        META_COUNTER = 26,
    }
}

wire_table! {
    /// What an OUTCOME entry says about its op. MISS .. LINES, DONE and ERROR settle the op;
    /// KEY_VALUES, KEY_ERROR, SERVER_STATS and SERVER_TEXT are parts of a multi op's result.
    record: u8 as "Record" {
        MISS = 0, VALUE = 1, CAS_VALUE = 2, TRUE = 3, FALSE = 4, NUMBER = 5, KEY_VALUES = 6,
        KEY_ERROR = 7, SERVER_STATS = 8, SERVER_TEXT = 9, ERROR = 10, ITEM = 11, LINES = 12,
        DONE = 13,
        LEASE = 14, TTL_VALUE = 15,
    }
}

wire_table! {
    /// How a value crosses, the same numbers in and out.
    kind: u8 as "ValueKind" {
        BYTES = 0, TEXT = 1, INT = 2, LONG = 3, JSON = 4, SERIALIZED = 5,
    }
}

wire_table! {
    /// The entries of every output buffer, after its `wake:f64` header.
    entry: u8 as "Entry" {
        OUTCOME = 0, WRITE = 1, CONNECT = 2, CLOSE = 3, SERVER_DOWN = 4, SERVER_UP = 5,
    }
}

wire_table! {
    /// A METADUMP op's scope byte: `all`, `hash`, or the slab class in the u32 after it.
    metadump_scope: u8 as "MetadumpScope" {
        ALL = 0, HASH = 1, CLASS = 2,
    }
}

wire_table! {
    /// How a transport says its connection ended (`Engine::connection_lost`).
    link_failure: u8 as "LinkFailure" {
        CONNECTION = 0, BRIDGE_REFUSED = 1,
    }
}

wire_table! {
    /// What a LEASE record tells a `getOrSet` caller ([`crate::meta::Lease`]).
    lease: u8 as "Lease" {
        HIT = 0, WON_MISS = 1, WON_STALE = 2, SERVE_STALE = 3,
    }
}

wire_table! {
    /// A META_DELETE op's mode: delete the item, or mark it stale (`md <key> I`).
    meta_delete: u8 as "MetaDelete" {
        DELETE = 0, INVALIDATE = 1,
    }
}

/// Bit in an op's flags byte: every key of the op is preceded by the caller's u32 hash.
pub const OP_HASHED: u8 = 1;

/// Bit in an op's flags byte: the write is sent quietly (meta `q` with an opaque, one `mn`
/// closing each run), so memcached answers only what did not succeed.
pub const OP_NOREPLY: u8 = 2;

/// The server field of an error that is about no server.
pub const NO_SERVER_INDEX: u16 = u16::MAX;

/// The `wake` header when the engine needs no timer.
pub const NO_WAKE: f64 = -1.0;

/// `js/wire.js`, generated from the tables above and [`Error::CODES`].
pub fn javascript_module() -> String {
    let mut js = String::from(
        "// GENERATED from client-wasm/src/wire.rs by `cargo run --example wire_js`: do not edit.\n\
         // The numbers the engine and this layer exchange (formats: client-wasm/src/engine/mod.rs).\n",
    );
    let tables: [(&str, &[(&str, u64)]); 8] = [
        (opcode::JS_NAME, opcode::TABLE),
        (record::JS_NAME, record::TABLE),
        (kind::JS_NAME, kind::TABLE),
        (entry::JS_NAME, entry::TABLE),
        (metadump_scope::JS_NAME, metadump_scope::TABLE),
        (link_failure::JS_NAME, link_failure::TABLE),
        (lease::JS_NAME, lease::TABLE),
        (meta_delete::JS_NAME, meta_delete::TABLE),
    ];
    for (name, table) in tables {
        js.push_str(&format!("\nexport const {name} = Object.freeze({{\n"));
        for (key, value) in table {
            js.push_str(&format!("  {key}: {value},\n"));
        }
        js.push_str("});\n");
    }
    js.push_str("\n/** Error codes by their number on the wire. */\nexport const ERROR_CODES = Object.freeze([\n");
    for code in Error::CODES {
        js.push_str(&format!("  \"{code}\",\n"));
    }
    js.push_str("]);\n");
    js.push_str(&format!(
        "\nexport const OP_HASHED = {OP_HASHED};\nexport const OP_NOREPLY = {OP_NOREPLY};\nexport const NO_SERVER_INDEX = {NO_SERVER_INDEX};\nexport const NO_WAKE = {NO_WAKE};\n"
    ));
    js
}

/// Reads fields from a batch; every read checks the remaining length.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                Error::BadArgument(format!(
                    "malformed batch: {n} bytes wanted at offset {} of {}",
                    self.at,
                    self.bytes.len()
                ))
            })?;
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A u32 length and that many bytes.
    pub fn field(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A count that announces `n` entries of at least `min_entry` bytes each: refused when
    /// the batch cannot hold them, so a corrupt count cannot make us reserve memory.
    pub fn count(&mut self, min_entry: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if n.saturating_mul(min_entry) > left {
            return Err(Error::BadArgument(format!(
                "malformed batch: {n} entries announced with {left} bytes left"
            )));
        }
        Ok(n)
    }
}

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// An error as data: `code:u8 server:u16 key:str message:str` (server [`NO_SERVER_INDEX`]
/// and an empty key when the error is about neither).
pub fn put_error(out: &mut Vec<u8>, server: Option<usize>, error: &Error) {
    put_u8(out, error.wire_code());
    put_u16(out, server.map_or(NO_SERVER_INDEX, |s| s as u16));
    put_field(out, error.key().unwrap_or("").as_bytes());
    put_field(out, error.to_string().as_bytes());
}

/// A u32 length and the bytes.
pub fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Overwrites the u32 at `at` (a count written before its entries were known).
pub fn patch_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_writers_wrote() {
        let mut out = Vec::new();
        put_u8(&mut out, 7);
        put_u32(&mut out, 0xdead_beef);
        put_u64(&mut out, u64::MAX - 1);
        put_field(&mut out, b"key");
        let mut r = Reader::new(&out);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.u64().unwrap(), u64::MAX - 1);
        assert_eq!(r.field().unwrap(), b"key");
        assert!(r.is_done());
    }

    #[test]
    fn truncated_input_is_a_bad_argument_not_a_panic() {
        let mut out = Vec::new();
        put_u32(&mut out, 10);
        out.extend_from_slice(b"short");
        let mut r = Reader::new(&out);
        assert_eq!(r.field().unwrap_err().code(), "BAD_ARGUMENT");
        let mut r = Reader::new(&[1, 2]);
        assert!(r.u32().is_err());
    }

    /// The JavaScript side is generated from this module; the committed file must be what
    /// the tables say today (regenerate with `cargo run --example wire_js`).
    #[test]
    fn the_committed_javascript_matches_the_tables() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/js/wire.js");
        let committed = std::fs::read_to_string(path).expect("js/wire.js exists");
        assert!(
            committed == javascript_module(),
            "js/wire.js differs from src/wire.rs: run `cargo run -p memcache-wasm --example wire_js`"
        );
    }

    #[test]
    fn a_count_larger_than_the_batch_is_refused() {
        let mut out = Vec::new();
        put_u32(&mut out, 1_000_000);
        out.extend_from_slice(&[0; 16]);
        let mut r = Reader::new(&out);
        assert!(r.count(4).is_err());
    }
}
