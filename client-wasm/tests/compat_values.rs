//! Values both ways against the real python-memcached 1.62 and a real memcached: what
//! python-memcached stores (bytes, str, int, large int, pickles at protocols 0 and 2,
//! compressed values) we decode, and what we encode python-memcached reads back.

mod compat_common;
mod support;

use compat_common::{python_memcached_interpreter, raw_get, raw_set, run_script, unhex};
use memcache_wasm::codec::{
    decode_value, encode_value, CodecOptions, Decoded, Payload, Serializer, FLAG_COMPRESSED,
    FLAG_INTEGER, FLAG_PICKLE, FLAG_TEXT,
};
use memcache_wasm::Error;
use serde_json::{json, Value};
use support::Memcached;

#[test]
fn we_decode_what_python_memcached_stores() {
    let server = Memcached::start(&[]);
    let addr = server.addr();
    let stdout = run_script(
        &python_memcached_interpreter(),
        "values.py",
        &["store".into(), addr.to_string()],
        b"",
    );
    let cases: serde_json::Map<String, Value> = serde_json::from_slice(&stdout).unwrap();
    assert!(
        cases.len() >= 17,
        "python stored only {} values",
        cases.len()
    );
    let options = CodecOptions::default();
    for (name, case) in &cases {
        let key = case["key"].as_str().unwrap();
        let expect = &case["expect"];
        let (flags, data) = raw_get(addr, key.as_bytes()).unwrap_or_else(|| panic!("{name}: miss"));
        let compressed = expect.get("compressed").is_some();
        assert_eq!(
            flags & FLAG_COMPRESSED != 0,
            compressed,
            "{name}: flags {flags}"
        );
        let decoded = decode_value(flags, &data, &options);
        if let Some(class) = expect.get("refused") {
            match decoded {
                Err(Error::Decode { reason, .. }) => {
                    assert!(reason.contains(class.as_str().unwrap()), "{name}: {reason}")
                }
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
            continue;
        }
        let decoded = decoded.unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(hex) = expect.get("bytes") {
            assert_eq!(flags & !FLAG_COMPRESSED, 0, "{name}");
            assert_eq!(
                decoded,
                Decoded::Bytes(unhex(hex.as_str().unwrap()).into()),
                "{name}"
            );
        } else if let Some(text) = expect.get("text") {
            assert_eq!(flags & !FLAG_COMPRESSED, FLAG_TEXT, "{name}");
            assert_eq!(
                decoded,
                Decoded::Text(text.as_str().unwrap().into()),
                "{name}"
            );
        } else if let Some(n) = expect.get("int") {
            assert_eq!(flags, FLAG_INTEGER, "{name}");
            assert_eq!(decoded, Decoded::Int(n.as_i64().unwrap()), "{name}");
        } else if let Some(digits) = expect.get("long") {
            // Python 3 stores every int with flag 2, however large.
            assert_eq!(flags, FLAG_INTEGER, "{name}");
            assert_eq!(
                decoded,
                Decoded::Long(digits.as_str().unwrap().into()),
                "{name}"
            );
        } else if let Some(value) = expect.get("json") {
            assert_eq!(flags & !FLAG_COMPRESSED, FLAG_PICKLE, "{name}");
            assert!(matches!(decoded, Decoded::Json(_)), "{name}: {decoded:?}");
            assert_eq!(&decoded.to_json().unwrap(), value, "{name}");
        } else {
            panic!("{name}: unknown expectation {expect}");
        }
    }
}

struct Written {
    key: &'static str,
    flags: u32,
    /// Python's type name and value in values.py's JSON form.
    python_type: &'static str,
    python_value: Value,
}

#[test]
fn python_memcached_reads_what_we_encode() {
    let server = Memcached::start(&[]);
    let addr = server.addr();
    let long_text = "memcached ".repeat(500);
    let big_list = format!(
        "[{}]",
        (0..1000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let object = br#"{"a":[1,2.5,null,true],"b":"x","\u00fc":{"nested":[]}}"#;
    let object_as_python =
        json!({"a": [{"int": "1"}, 2.5, null, true], "b": "x", "ü": {"nested": []}});
    let plain = CodecOptions::default();
    let pickle = |protocol| CodecOptions {
        serializer: Serializer::Pickle { protocol },
        ..CodecOptions::default()
    };
    let compressing = |serializer| CodecOptions {
        serializer,
        min_compress_len: 100,
        ..CodecOptions::default()
    };
    let cases: Vec<(&'static str, Payload<'_>, CodecOptions, &'static str, Value)> = vec![
        (
            "rs:bytes",
            Payload::Bytes(b"\x00\x01raw\xff"),
            plain.clone(),
            "bytes",
            json!({"hex": "0001726177ff"}),
        ),
        (
            "rs:text",
            Payload::Text("grüße ✓ 🙂"),
            plain.clone(),
            "str",
            json!("grüße ✓ 🙂"),
        ),
        (
            "rs:int",
            Payload::Int(-42),
            plain.clone(),
            "int",
            json!({"int": "-42"}),
        ),
        (
            "rs:int_max",
            Payload::Int(i64::MAX),
            plain.clone(),
            "int",
            json!({"int": i64::MAX.to_string()}),
        ),
        (
            "rs:long",
            Payload::Long("-123456789012345678901234567890"),
            plain.clone(),
            "int",
            json!({"int": "-123456789012345678901234567890"}),
        ),
        (
            "rs:json_pickle2",
            Payload::Json(object),
            pickle(2),
            "dict",
            object_as_python.clone(),
        ),
        (
            "rs:json_pickle3",
            Payload::Json(object),
            pickle(3),
            "dict",
            object_as_python.clone(),
        ),
        (
            "rs:compressed_text",
            Payload::Text(&long_text),
            compressing(Serializer::Json),
            "str",
            json!(long_text),
        ),
        (
            "rs:compressed_bytes",
            Payload::Bytes(long_text.as_bytes()),
            compressing(Serializer::Json),
            "bytes",
            json!({"hex": compat_common::hex(long_text.as_bytes())}),
        ),
        (
            "rs:compressed_pickle",
            Payload::Json(big_list.as_bytes()),
            compressing(Serializer::Pickle { protocol: 3 }),
            "list",
            Value::Array((0..1000).map(|i| json!({"int": i.to_string()})).collect()),
        ),
        // JSON text (the default serializer) is not a pickle: python-memcached's
        // unpickler fails on it and its get() returns None. Pinned here so the
        // limit is visible: share values with Python through Serializer::Pickle.
        (
            "rs:json_plain",
            Payload::Json(object),
            plain.clone(),
            "NoneType",
            Value::Null,
        ),
    ];
    let mut written = Vec::new();
    for (key, payload, options, python_type, python_value) in cases {
        let (flags, data) = encode_value(key.as_bytes(), payload, &options).unwrap();
        raw_set(addr, key.as_bytes(), flags, &data);
        written.push(Written {
            key,
            flags,
            python_type,
            python_value,
        });
    }
    // The compressed ones really are.
    for w in &written {
        if w.key.starts_with("rs:compressed") {
            assert_ne!(w.flags & FLAG_COMPRESSED, 0, "{}", w.key);
        }
    }

    let mut args = vec!["load".to_string(), addr.to_string()];
    args.extend(written.iter().map(|w| w.key.to_string()));
    let stdout = run_script(&python_memcached_interpreter(), "values.py", &args, b"");
    let read: Value = serde_json::from_slice(&stdout).unwrap();
    for w in &written {
        let got = &read[w.key];
        assert_eq!(got["type"], w.python_type, "{}: python read {got}", w.key);
        assert_eq!(got["value"], w.python_value, "{}", w.key);
    }
}
