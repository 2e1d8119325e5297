use super::*;
use std::path::PathBuf;

fn options() -> CodecOptions {
    CodecOptions::default()
}

fn with_serializer(serializer: Serializer) -> CodecOptions {
    CodecOptions {
        serializer,
        ..CodecOptions::default()
    }
}

fn round_trip(payload: Payload<'_>, options: &CodecOptions) -> (u32, Decoded<'static>) {
    let (flags, data) = encode_value(b"k", payload, options).unwrap();
    let decoded = decode_value(flags, &data, options).unwrap().into_owned();
    (flags, decoded)
}

#[test]
fn bytes_are_flag_0_and_borrowed() {
    let (flags, data) = encode_value(b"k", Payload::Bytes(b"\x00\xffraw"), &options()).unwrap();
    assert_eq!(flags, 0);
    assert!(matches!(data, Cow::Borrowed(_)));
    match decode_value(0, b"\x00\xffraw", &options()).unwrap() {
        Decoded::Bytes(Cow::Borrowed(b)) => assert_eq!(b, b"\x00\xffraw"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn text_is_flag_16_utf8() {
    let (flags, decoded) = round_trip(Payload::Text("héllo ✓"), &options());
    assert_eq!(flags, FLAG_TEXT);
    assert_eq!(decoded, Decoded::Text(Cow::Borrowed("héllo ✓")));
    let err = decode_value(FLAG_TEXT, b"\xff\xfe", &options()).unwrap_err();
    assert_eq!(err.code(), "DECODE_ERROR");
}

#[test]
fn int_is_flag_2_decimal() {
    let (flags, data) = encode_value(b"k", Payload::Int(-42), &options()).unwrap();
    assert_eq!((flags, &*data), (FLAG_INTEGER, &b"-42"[..]));
    assert_eq!(
        decode_value(FLAG_INTEGER, b"-42", &options()).unwrap(),
        Decoded::Int(-42)
    );
    assert_eq!(
        decode_value(FLAG_INTEGER, &i64::MAX.to_string().into_bytes(), &options()).unwrap(),
        Decoded::Int(i64::MAX)
    );
}

#[test]
fn int_after_decr_keeps_memcached_padding_readable() {
    // memcached writes a shorter decr result in place, padded with spaces: "10" - 1 = "9 ".
    assert_eq!(
        decode_value(FLAG_INTEGER, b"9 ", &options()).unwrap(),
        Decoded::Int(9)
    );
    assert_eq!(
        decode_value(FLAG_INTEGER, b"+007", &options()).unwrap(),
        Decoded::Int(7)
    );
}

#[test]
fn int_beyond_i64_is_a_long() {
    let big = b"123456789012345678901234567890";
    assert_eq!(
        decode_value(FLAG_INTEGER, big, &options()).unwrap(),
        Decoded::Long("123456789012345678901234567890".into())
    );
    assert_eq!(
        decode_value(
            FLAG_INTEGER,
            b"-0000123456789012345678901234567890",
            &options()
        )
        .unwrap(),
        Decoded::Long("-123456789012345678901234567890".into())
    );
}

#[test]
fn bad_integers_are_decode_errors() {
    for bad in [&b""[..], b"1.5", b"abc", b"-", b"1 2"] {
        for flags in [FLAG_INTEGER, FLAG_LONG] {
            let err = decode_value(flags, bad, &options()).unwrap_err();
            assert!(matches!(err, Error::Decode { .. }), "{bad:?}: {err:?}");
        }
    }
}

#[test]
fn long_is_flag_4() {
    let digits = "-98765432109876543210";
    let (flags, data) = encode_value(b"k", Payload::Long(digits), &options()).unwrap();
    assert_eq!((flags, &*data), (FLAG_LONG, digits.as_bytes()));
    assert_eq!(
        decode_value(FLAG_LONG, data.as_ref(), &options()).unwrap(),
        Decoded::Long(digits.into())
    );
    // Python reads flag 4 as int whatever its size; so do we, as a Long.
    assert_eq!(
        decode_value(FLAG_LONG, b"5", &options()).unwrap(),
        Decoded::Long("5".into())
    );
    for bad in ["12a", "", "-", "+5", " 5", "1.0", "1e3"] {
        let err = encode_value(b"k", Payload::Long(bad), &options()).unwrap_err();
        assert_eq!(err.code(), "NOT_SERIALIZABLE", "{bad:?}");
    }
}

#[test]
fn json_is_flag_1_stored_as_is() {
    let json = br#"{"a":[1,2,"x"]}"#;
    let (flags, data) = encode_value(b"k", Payload::Json(json), &options()).unwrap();
    assert_eq!(flags, FLAG_PICKLE);
    assert!(matches!(data, Cow::Borrowed(d) if d == json));
    match decode_value(FLAG_PICKLE, json, &options()).unwrap() {
        Decoded::Json(Cow::Borrowed(d)) => assert_eq!(d, json),
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_under_pickle_serializer_is_written_as_a_pickle() {
    for protocol in [2u8, 3] {
        let opts = with_serializer(Serializer::Pickle { protocol });
        let json = br#"{"name":"x","n":[1,2.5,null,true]}"#;
        let (flags, data) = encode_value(b"k", Payload::Json(json), &opts).unwrap();
        assert_eq!(flags, FLAG_PICKLE);
        assert_eq!(&data[..2], &[0x80, protocol]);
        let back = decode_value(flags, &data, &opts).unwrap();
        assert_eq!(
            back.to_json().unwrap(),
            serde_json::from_slice::<serde_json::Value>(json).unwrap()
        );
    }
    let err = encode_value(
        b"k",
        Payload::Json(b"[1"),
        &with_serializer(Serializer::Pickle { protocol: 3 }),
    )
    .unwrap_err();
    assert_eq!(err.code(), "NOT_SERIALIZABLE");
    let err = encode_value(
        b"k",
        Payload::Json(b"[1]"),
        &with_serializer(Serializer::Pickle { protocol: 0 }),
    )
    .unwrap_err();
    assert_eq!(err.code(), "BAD_ARGUMENT");
}

#[test]
fn json_under_custom_serializer_is_refused() {
    let err = encode_value(
        b"k",
        Payload::Json(b"[1]"),
        &with_serializer(Serializer::Custom),
    )
    .unwrap_err();
    assert_eq!(err.code(), "BAD_ARGUMENT");
}

#[test]
fn custom_serializer_bytes_pass_through() {
    let opts = with_serializer(Serializer::Custom);
    let (flags, data) = encode_value(b"k", Payload::Serialized(b"\x93\x01\x02"), &opts).unwrap();
    assert_eq!(flags, FLAG_PICKLE);
    assert_eq!(
        decode_value(flags, &data, &opts).unwrap(),
        Decoded::Serialized(Cow::Borrowed(b"\x93\x01\x02"))
    );
    // Looks like a pickle (starts with '(' and ends with '.') but is not one: the
    // caller's own format.
    assert_eq!(
        decode_value(FLAG_PICKLE, b"(my own format).", &opts).unwrap(),
        Decoded::Serialized(Cow::Borrowed(b"(my own format)."))
    );
    // A real pickle is decoded even under a custom serializer.
    assert_eq!(
        decode_value(FLAG_PICKLE, b"\x80\x03]q\x00(K\x01K\x02e.", &opts).unwrap(),
        Decoded::Json(Cow::Owned(b"[1,2]".to_vec()))
    );
}

#[test]
fn pickle_is_read_under_the_json_serializer() {
    // What python-memcached stores for [1, 2] with its defaults (protocol 0).
    let stored = b"(lp0\nI1\naI2\na.";
    assert_eq!(
        decode_value(FLAG_PICKLE, stored, &options()).unwrap(),
        Decoded::Json(Cow::Owned(b"[1,2]".to_vec()))
    );
    // Something that looks like a pickle under the JSON serializer cannot be JSON.
    let err = decode_value(FLAG_PICKLE, b"(garbage.", &options()).unwrap_err();
    assert_eq!(err.code(), "DECODE_ERROR");
}

#[test]
fn unknown_flags_are_an_error() {
    for flags in [0x20u32, 0x100, 0x8000_0000] {
        match decode_value(flags, b"x", &options()) {
            Err(Error::Decode { flags: f, reason }) => {
                assert_eq!(f, flags);
                assert!(reason.contains("unknown flags"), "{reason}");
            }
            other => panic!("{flags:#x}: {other:?}"),
        }
    }
    // Python tests bits in order, so extra unknown bits ride along with a known one.
    assert_eq!(
        decode_value(FLAG_TEXT | 0x100, b"x", &options()).unwrap(),
        Decoded::Text(Cow::Borrowed("x"))
    );
}

fn compressing(min: usize) -> CodecOptions {
    CodecOptions {
        min_compress_len: min,
        ..CodecOptions::default()
    }
}

#[test]
fn compression_is_kept_when_smaller() {
    let text = "memcached ".repeat(200);
    let opts = compressing(100);
    let (flags, data) = encode_value(b"k", Payload::Text(&text), &opts).unwrap();
    assert_eq!(flags, FLAG_TEXT | FLAG_COMPRESSED);
    assert!(data.len() < text.len() / 10, "{} bytes", data.len());
    assert_eq!(
        decode_value(flags, &data, &opts).unwrap(),
        Decoded::Text(Cow::Owned(text.clone()))
    );
    // Decompression happens whatever the threshold of the reader.
    assert_eq!(
        decode_value(flags, &data, &options()).unwrap(),
        Decoded::Text(Cow::Owned(text.clone()))
    );
}

#[test]
fn compression_is_dropped_when_not_smaller() {
    // A pseudo-random byte string does not compress.
    let mut state = 0x2545_f491u32;
    let noise: Vec<u8> = (0..400)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let (flags, data) = encode_value(b"k", Payload::Bytes(&noise), &compressing(10)).unwrap();
    assert_eq!(flags, 0);
    assert_eq!(&*data, &noise[..]);
}

#[test]
fn compression_needs_length_above_threshold() {
    let text = "a".repeat(100);
    let (flags, _) = encode_value(b"k", Payload::Text(&text), &compressing(100)).unwrap();
    assert_eq!(flags, FLAG_TEXT);
    let (flags, _) = encode_value(b"k", Payload::Text(&text), &compressing(99)).unwrap();
    assert_eq!(flags, FLAG_TEXT | FLAG_COMPRESSED);
    let (flags, _) = encode_value(b"k", Payload::Text(&text), &compressing(0)).unwrap();
    assert_eq!(flags, FLAG_TEXT);
}

#[test]
fn integers_are_never_compressed() {
    let (flags, _) = encode_value(b"k", Payload::Int(i64::MIN), &compressing(1)).unwrap();
    assert_eq!(flags, FLAG_INTEGER);
    let digits = "1".repeat(500);
    let (flags, _) = encode_value(b"k", Payload::Long(&digits), &compressing(1)).unwrap();
    assert_eq!(flags, FLAG_LONG);
}

#[test]
fn json_and_serialized_values_compress() {
    let json = format!("[{}]", vec!["\"same\""; 100].join(","));
    let (flags, data) =
        encode_value(b"k", Payload::Json(json.as_bytes()), &compressing(50)).unwrap();
    assert_eq!(flags, FLAG_PICKLE | FLAG_COMPRESSED);
    assert_eq!(
        decode_value(flags, &data, &options()).unwrap(),
        Decoded::Json(Cow::Owned(json.clone().into_bytes()))
    );
}

#[test]
fn value_over_the_limit_is_an_error_naming_key_and_sizes() {
    let opts = CodecOptions {
        max_value_size: 1000,
        ..CodecOptions::default()
    };
    let fits = vec![7u8; 1000];
    assert!(encode_value(b"k", Payload::Bytes(&fits), &opts).is_ok());
    let big = vec![7u8; 1001];
    match encode_value(b"big-key", Payload::Bytes(&big), &opts) {
        Err(Error::ValueTooLarge { key, size, limit }) => {
            assert_eq!((key.as_str(), size, limit), ("big-key", 1001, 1000));
        }
        other => panic!("{other:?}"),
    }
    // The limit applies after compression, as in python-memcached.
    let opts = CodecOptions {
        max_value_size: 1000,
        min_compress_len: 1,
        ..CodecOptions::default()
    };
    let (flags, data) = encode_value(b"k", Payload::Bytes(&[0u8; 5000]), &opts).unwrap();
    assert_eq!(flags, FLAG_COMPRESSED);
    assert!(data.len() <= 1000);
    // 0 means no limit.
    let opts = CodecOptions {
        max_value_size: 0,
        ..CodecOptions::default()
    };
    assert!(encode_value(
        b"k",
        Payload::Bytes(&vec![1u8; DEFAULT_MAX_VALUE_SIZE + 1]),
        &opts
    )
    .is_ok());
}

#[test]
fn default_limit_is_one_mebibyte() {
    let big = vec![1u8; DEFAULT_MAX_VALUE_SIZE + 1];
    let err = encode_value(b"k", Payload::Bytes(&big), &options()).unwrap_err();
    assert_eq!(err.code(), "VALUE_TOO_LARGE");
    assert!(encode_value(b"k", Payload::Bytes(&big[1..]), &options()).is_ok());
}

#[test]
fn decompression_bomb_stops_at_the_limit() {
    let opts = CodecOptions {
        max_decompressed_size: 64 * 1024,
        ..CodecOptions::default()
    };
    let exactly = compress(&vec![0u8; 64 * 1024]);
    assert_eq!(
        decode_value(FLAG_COMPRESSED, &exactly, &opts).unwrap(),
        Decoded::Bytes(Cow::Owned(vec![0; 64 * 1024]))
    );
    let bomb = compress(&vec![0u8; 64 * 1024 + 1]);
    match decode_value(FLAG_COMPRESSED, &bomb, &opts) {
        Err(Error::Decode { reason, .. }) => assert!(reason.contains("limit"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn decompression_bomb_at_the_default_limit() {
    // 1 GiB of zeros is about 1 MiB of zlib; build it from a 16 MiB block compressed
    // once, so the test stays fast: a zlib stream of the block repeated is made by
    // compressing in a loop with the same encoder.
    let block = vec![0u8; 1024 * 1024];
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..(DEFAULT_MAX_DECOMPRESSED_SIZE / block.len() + 8) {
        encoder.write_all(&block).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(
        bomb.len() < DEFAULT_MAX_VALUE_SIZE,
        "bomb fits in an item: {}",
        bomb.len()
    );
    let err = decode_value(FLAG_COMPRESSED | FLAG_TEXT, &bomb, &options()).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn broken_zlib_is_a_decode_error() {
    let good = compress(b"hello hello hello hello");
    assert!(decode_value(FLAG_COMPRESSED, &good[..good.len() - 6], &options()).is_err());
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    assert!(decode_value(FLAG_COMPRESSED, &trailing, &options()).is_err());
    assert!(decode_value(FLAG_COMPRESSED, b"not zlib at all", &options()).is_err());
    assert!(decode_value(FLAG_COMPRESSED, b"", &options()).is_err());
}

#[test]
fn json_value_convenience() {
    let value = serde_json::json!({"a": [1, "b", null], "c": {"d": 2.5}});
    for serializer in [
        Serializer::Json,
        Serializer::Pickle { protocol: 2 },
        Serializer::Pickle { protocol: 3 },
    ] {
        let opts = with_serializer(serializer);
        let (flags, data) = encode_json_value(b"k", &value, &opts).unwrap();
        assert_eq!(flags, FLAG_PICKLE);
        assert_eq!(
            decode_value(flags, &data, &opts)
                .unwrap()
                .to_json()
                .unwrap(),
            value
        );
    }
    assert_eq!(Decoded::Int(5).to_json().unwrap(), serde_json::json!(5));
    assert_eq!(
        Decoded::Text(Cow::Borrowed("x")).to_json().unwrap(),
        serde_json::json!("x")
    );
    assert!(Decoded::Bytes(Cow::Borrowed(b"x")).to_json().is_err());
}

// ---------------------------------------------------------------------------------
// Pickles CPython writes, protocols 0-5, generated during the test run.

/// The Python interpreter the compatibility tests use: `MEMCACHE_WASM_PYTHON`, or the
/// workspace's virtualenv that `scripts/setup.sh` creates.
fn python() -> PathBuf {
    let path = std::env::var_os("MEMCACHE_WASM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    assert!(
        path.exists(),
        "Python interpreter {} not found: run scripts/setup.sh to create the virtualenv \
         with python-memcached, or set MEMCACHE_WASM_PYTHON",
        path.display()
    );
    path
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn pickles_of_protocols_0_to_5_decode_to_json() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/pickles.py");
    let output = std::process::Command::new(python())
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let mut protocols_seen = std::collections::BTreeSet::new();
    let mut checked = 0;
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let protocol = case["protocol"].as_u64().unwrap();
        let data = hex_bytes(case["hex"].as_str().unwrap());
        assert!(looks_like_pickle(&data), "{name} protocol {protocol}");
        for serializer in [
            Serializer::Json,
            Serializer::Pickle { protocol: 3 },
            Serializer::Custom,
        ] {
            let result = decode_value(FLAG_PICKLE, &data, &with_serializer(serializer));
            if let Some(class) = case.get("refused") {
                match result {
                    Err(Error::Decode { reason, .. }) => {
                        let class = class.as_str().unwrap();
                        // Protocols 0/1 name the class unless _reconstructor comes
                        // first without it.
                        assert!(
                            reason.contains(class) || reason.contains("class instance"),
                            "{name} protocol {protocol}: {reason}"
                        );
                    }
                    other => panic!("{name} protocol {protocol}: expected refusal, got {other:?}"),
                }
            } else {
                let decoded = result.unwrap_or_else(|e| panic!("{name} protocol {protocol}: {e}"));
                let json = match &decoded {
                    Decoded::Json(json) => json.clone(),
                    other => panic!("{name} protocol {protocol}: {other:?}"),
                };
                let got: serde_json::Value = serde_json::from_slice(&json).unwrap_or_else(|e| {
                    panic!(
                        "{name} protocol {protocol}: {e}: {}",
                        String::from_utf8_lossy(&json)
                    )
                });
                assert_eq!(got, case["expect"], "{name} protocol {protocol}");
            }
            checked += 1;
        }
        protocols_seen.insert(protocol);
    }
    assert_eq!(
        protocols_seen.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert!(checked >= 6 * 20 * 3, "only {checked} cases");
}

#[test]
fn big_ints_keep_every_digit_in_the_json_text() {
    // pickle.dumps(2**100, protocol=2): LONG1 with 13 bytes.
    let mut data = vec![0x80, 2, 0x8a, 13];
    data.extend_from_slice(&[0; 12]);
    data.push(0x10);
    data.push(b'.');
    assert_eq!(
        decode_value(FLAG_PICKLE, &data, &options()).unwrap(),
        Decoded::Json(Cow::Owned(b"1267650600228229401496703205376".to_vec()))
    );
}
