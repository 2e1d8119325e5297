//! Values to and from what memcached stores: a 32-bit flags word and bytes, with the
//! flag bits python-memcached and pymemcache use (0 bytes, 16 text, 2 int, 4 long,
//! 1 serialized, 8 zlib-compressed), so Python and JavaScript read each other's data.

use std::borrow::Cow;
use std::io::Write as _;

use crate::error::{Error, Result};

mod pickle;

pub use pickle::{looks_like_pickle, PickleError, MAX_PICKLE_DEPTH, MAX_PICKLE_EXPANDED_SIZE};

/// Serialized by the client's serializer (python-memcached: pickle).
pub const FLAG_PICKLE: u32 = 1 << 0;
/// Decimal ASCII integer; memcached's incr/decr work on it.
pub const FLAG_INTEGER: u32 = 1 << 1;
/// Decimal ASCII integer written by Python 2 for `long`; read the same way.
pub const FLAG_LONG: u32 = 1 << 2;
/// The bytes are zlib-compressed; the other bits describe what is inside.
pub const FLAG_COMPRESSED: u32 = 1 << 3;
/// UTF-8 text.
pub const FLAG_TEXT: u32 = 1 << 4;

/// python-memcached's `SERVER_MAX_VALUE_LENGTH`, memcached's default item size (`-I 1m`).
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024;

/// How large an inflated value may grow. A few hundred bytes of zlib can inflate to
/// gigabytes; this bounds what one value may allocate. 32 MiB is 32 times the default
/// item limit, far above what text and JSON compress by in practice.
pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 32 * 1024 * 1024;

/// What flag-1 (serialized) values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serializer {
    /// JSON text (the JavaScript layer runs JSON.stringify/JSON.parse).
    #[default]
    Json,
    /// Python pickle, written at this protocol (2 or 3; python-memcached reads 0-5).
    Pickle { protocol: u8 },
    /// The caller's own bytes; the core passes them through.
    Custom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecOptions {
    pub serializer: Serializer,
    /// Compress values longer than this many bytes (0: never), python-memcached's
    /// `min_compress_len`.
    pub min_compress_len: usize,
    /// Largest stored value (after compression); larger is `Error::ValueTooLarge`.
    /// 0 means no limit, as python-memcached's `server_max_value_length = 0`.
    pub max_value_size: usize,
    /// Largest value a compressed value may inflate to; larger is `Error::Decode`.
    pub max_decompressed_size: usize,
}

impl Default for CodecOptions {
    fn default() -> Self {
        CodecOptions {
            serializer: Serializer::Json,
            min_compress_len: 0,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            max_decompressed_size: DEFAULT_MAX_DECOMPRESSED_SIZE,
        }
    }
}

/// A value to store, as the JavaScript layer hands it over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payload<'a> {
    /// flag 0
    Bytes(&'a [u8]),
    /// flag 16
    Text(&'a str),
    /// flag 2, never compressed (so incr/decr keep working)
    Int(i64),
    /// flag 4: decimal digits with an optional '-', for integers beyond i64
    Long(&'a str),
    /// flag 1: JSON text; stored as is under `Serializer::Json`, as a pickle under
    /// `Serializer::Pickle`
    Json(&'a [u8]),
    /// flag 1: bytes from a caller's serializer, stored as is
    Serialized(&'a [u8]),
}

/// Turns a value into the flags and bytes to store under `key` (the key only names the
/// value in errors).
pub fn encode_value<'a>(
    key: &[u8],
    payload: Payload<'a>,
    options: &CodecOptions,
) -> Result<(u32, Cow<'a, [u8]>)> {
    let (mut flags, data, compressible): (u32, Cow<'a, [u8]>, bool) = match payload {
        Payload::Bytes(bytes) => (0, Cow::Borrowed(bytes), true),
        Payload::Text(text) => (FLAG_TEXT, Cow::Borrowed(text.as_bytes()), true),
        Payload::Int(n) => (FLAG_INTEGER, Cow::Owned(n.to_string().into_bytes()), false),
        Payload::Long(digits) => {
            // Strictly `-?[0-9]+`: memcached's incr/decr refuse anything else.
            let unsigned = digits.strip_prefix('-').unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::NotSerializable(format!(
                    "{digits:?} is not a decimal integer (digits with an optional '-')"
                )));
            }
            (FLAG_LONG, Cow::Borrowed(digits.as_bytes()), false)
        }
        Payload::Json(json) => match options.serializer {
            Serializer::Json => (FLAG_PICKLE, Cow::Borrowed(json), true),
            Serializer::Pickle { protocol } => {
                let data = pickle::json_to_pickle(json, protocol).map_err(|why| {
                    if protocol == 2 || protocol == 3 {
                        Error::NotSerializable(why)
                    } else {
                        Error::BadArgument(why)
                    }
                })?;
                (FLAG_PICKLE, Cow::Owned(data), true)
            }
            Serializer::Custom => {
                return Err(Error::BadArgument(
                    "a JSON value was given to a client whose serializer is custom; \
                     serialize it with the custom serializer"
                        .into(),
                ))
            }
        },
        Payload::Serialized(bytes) => (FLAG_PICKLE, Cow::Borrowed(bytes), true),
    };

    let data =
        if compressible && options.min_compress_len > 0 && data.len() > options.min_compress_len {
            let compressed = compress(&data);
            // Keep it only when it saves space, as python-memcached does.
            if compressed.len() < data.len() {
                flags |= FLAG_COMPRESSED;
                Cow::Owned(compressed)
            } else {
                data
            }
        } else {
            data
        };

    if options.max_value_size != 0 && data.len() > options.max_value_size {
        return Err(Error::ValueTooLarge {
            key: Error::key_text(key),
            size: data.len(),
            limit: options.max_value_size,
        });
    }
    Ok((flags, data))
}

/// For Rust callers: stores a `serde_json::Value` as a serialized (flag 1) value.
pub fn encode_json_value(
    key: &[u8],
    value: &serde_json::Value,
    options: &CodecOptions,
) -> Result<(u32, Vec<u8>)> {
    let json = serde_json::to_vec(value).map_err(|e| Error::NotSerializable(e.to_string()))?;
    let (flags, data) = encode_value(key, Payload::Json(&json), options)?;
    Ok((flags, data.into_owned()))
}

/// A value read back, borrowing from the received bytes where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<'a> {
    /// flags 0
    Bytes(Cow<'a, [u8]>),
    /// flag 16
    Text(Cow<'a, str>),
    /// flag 2 within i64
    Int(i64),
    /// flag 4, or flag 2 beyond i64: normalized decimal digits with an optional '-'
    Long(String),
    /// JSON text: flag 1 under the JSON serializer, and every pickle (converted)
    Json(Cow<'a, [u8]>),
    /// flag 1 under a custom serializer, when the bytes are not a pickle
    Serialized(Cow<'a, [u8]>),
}

impl Decoded<'_> {
    /// For Rust callers and tests: the value as `serde_json::Value`. Text is a string,
    /// integers are numbers (a Long beyond u64 becomes the nearest f64), JSON is
    /// parsed; raw bytes and custom-serialized bytes have no JSON form (BadArgument).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        use serde_json::Value;
        match self {
            Decoded::Text(text) => Ok(Value::String(text.to_string())),
            Decoded::Int(n) => Ok(Value::from(*n)),
            Decoded::Long(digits) => serde_json::from_str(digits)
                .map_err(|e| Error::BadArgument(format!("long {digits}: {e}"))),
            Decoded::Json(json) => serde_json::from_slice(json).map_err(|e| Error::Decode {
                flags: FLAG_PICKLE,
                reason: format!("invalid JSON: {e}"),
            }),
            Decoded::Bytes(_) | Decoded::Serialized(_) => Err(Error::BadArgument(
                "raw or custom-serialized bytes have no JSON form".into(),
            )),
        }
    }

    /// Detaches the value from the buffer it was read from.
    pub fn into_owned(self) -> Decoded<'static> {
        match self {
            Decoded::Bytes(b) => Decoded::Bytes(Cow::Owned(b.into_owned())),
            Decoded::Text(t) => Decoded::Text(Cow::Owned(t.into_owned())),
            Decoded::Int(n) => Decoded::Int(n),
            Decoded::Long(s) => Decoded::Long(s),
            Decoded::Json(j) => Decoded::Json(Cow::Owned(j.into_owned())),
            Decoded::Serialized(s) => Decoded::Serialized(Cow::Owned(s.into_owned())),
        }
    }
}

/// Turns stored flags and bytes back into a value, in python-memcached's order:
/// inflate when flag 8 is set, then flags == 0 bytes, text, integer, long, serialized;
/// any other flags are an error.
///
/// Flag-1 bytes that are a pickle (python-memcached's default) are decoded and turned
/// into JSON text whatever the serializer, so JavaScript reads what Python stored.
/// Otherwise, under `Json` and `Pickle` they are returned as JSON text (not validated
/// here: JSON.parse in the JavaScript layer does that), under `Custom` as the caller's
/// bytes.
pub fn decode_value<'a>(flags: u32, data: &'a [u8], options: &CodecOptions) -> Result<Decoded<'a>> {
    let original_flags = flags;
    let decode_error = |reason: String| Error::Decode {
        flags: original_flags,
        reason,
    };
    let mut flags = flags;
    let data: Cow<'a, [u8]> = if flags & FLAG_COMPRESSED != 0 {
        flags &= !FLAG_COMPRESSED;
        Cow::Owned(inflate(data, options.max_decompressed_size).map_err(decode_error)?)
    } else {
        Cow::Borrowed(data)
    };

    if flags == 0 {
        Ok(Decoded::Bytes(data))
    } else if flags & FLAG_TEXT != 0 {
        let text = match data {
            Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|e| decode_error(format!("text is not UTF-8: {e}")))?,
            Cow::Owned(bytes) => String::from_utf8(bytes)
                .map(Cow::Owned)
                .map_err(|e| decode_error(format!("text is not UTF-8: {e}")))?,
        };
        Ok(Decoded::Text(text))
    } else if flags & FLAG_INTEGER != 0 {
        let digits = normalize_decimal(&data).ok_or_else(|| {
            decode_error(format!("{:?} is not an integer", Error::key_text(&data)))
        })?;
        Ok(match digits.parse::<i64>() {
            Ok(n) => Decoded::Int(n),
            Err(_) => Decoded::Long(digits),
        })
    } else if flags & FLAG_LONG != 0 {
        let digits = normalize_decimal(&data).ok_or_else(|| {
            decode_error(format!("{:?} is not an integer", Error::key_text(&data)))
        })?;
        Ok(Decoded::Long(digits))
    } else if flags & FLAG_PICKLE != 0 {
        decode_serialized(data, options).map_err(decode_error)
    } else {
        Err(decode_error(format!("unknown flags {original_flags:#x}")))
    }
}

fn decode_serialized<'a>(
    data: Cow<'a, [u8]>,
    options: &CodecOptions,
) -> std::result::Result<Decoded<'a>, String> {
    let custom = options.serializer == Serializer::Custom;
    if pickle::looks_like_pickle(&data) {
        match pickle::pickle_to_json(&data) {
            Ok(json) => return Ok(Decoded::Json(Cow::Owned(json))),
            // Under a custom serializer, bytes that merely look like a pickle may be
            // the caller's own format: hand them over.
            Err(PickleError::Malformed(_)) if custom => return Ok(Decoded::Serialized(data)),
            Err(err) => return Err(err.to_string()),
        }
    }
    Ok(if custom {
        Decoded::Serialized(data)
    } else {
        Decoded::Json(data)
    })
}

/// What Python's `int()` accepts for stored integers: ASCII whitespace around (memcached
/// pads a shrinking incr/decr result with spaces), an optional sign, digits. Returns
/// the digits without '+' and leading zeros.
fn normalize_decimal(bytes: &[u8]) -> Option<String> {
    let trimmed = bytes.trim_ascii();
    let (negative, digits) = match trimmed.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let first_nonzero = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    let digits = &digits[first_nonzero..];
    if digits.is_empty() {
        return Some("0".into());
    }
    let mut out = String::with_capacity(digits.len() + 1);
    if negative {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(digits).expect("ASCII digits"));
    Some(out)
}

/// zlib at its default level, as Python's `zlib.compress`.
fn compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::default(),
    );
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Inflates a zlib stream, never holding more than `limit + 1` bytes of output.
fn inflate(data: &[u8], limit: usize) -> std::result::Result<Vec<u8>, String> {
    use flate2::{Decompress, FlushDecompress, Status};
    let cap = limit.saturating_add(1);
    let mut z = Decompress::new(true);
    let mut out: Vec<u8> = Vec::with_capacity(data.len().saturating_mul(4).clamp(64, cap));
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                break;
            }
            let grow = out.capacity().min(cap - out.len());
            out.reserve_exact(grow);
        }
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(&data[in_before as usize..], &mut out, FlushDecompress::None)
            .map_err(|e| format!("corrupt zlib data: {e}"))?;
        if out.len() > limit {
            break;
        }
        match status {
            Status::StreamEnd => {
                if z.total_in() as usize != data.len() {
                    return Err(format!(
                        "{} bytes after the end of the zlib stream",
                        data.len() - z.total_in() as usize
                    ));
                }
                return Ok(out);
            }
            Status::Ok | Status::BufError => {
                let stalled = z.total_in() == in_before && z.total_out() == out_before;
                if stalled && out.len() < out.capacity() {
                    return Err("truncated zlib data".into());
                }
            }
        }
    }
    Err(format!(
        "compressed value inflates beyond the limit of {limit} bytes"
    ))
}

#[cfg(test)]
mod tests;
