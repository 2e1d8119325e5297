//! Property tests of the meta reply parser through `Connection`, as `protocol_split.rs`
//! does for the text protocol: meta replies (with every return flag, values that look like
//! reply lines, opaque tokens) interleaved with text replies on one connection, split at
//! every boundary and in random chunkings, give exactly what the unsplit bytes give; and
//! arbitrary bytes give the same outcome whatever the chunking.

use memcache_wasm::connection::Connection;
use memcache_wasm::meta::{MetaFlags, MetaReply, MetaStatus};
use memcache_wasm::request::{Expect, Request};
use memcache_wasm::response::Response;
use proptest::prelude::*;

const MAX_ITEM_SIZE: usize = 4096;

/// One reply and what it must parse to; `meta` says which parser reads it.
#[derive(Debug, Clone)]
struct Reply {
    meta: bool,
    bytes: Vec<u8>,
    response: Response,
}

fn flags() -> impl Strategy<Value = (MetaFlags, String)> {
    (
        proptest::option::of(-1i64..100_000),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of("[!-~]{1,20}"),
        proptest::option::of("[!-~]{1,32}"),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(ttl, cas, client_flags, key, opaque, (w, z, x), hit)| {
            let mut text = String::new();
            if let Some(t) = ttl {
                text.push_str(&format!(" t{t}"));
            }
            if let Some(c) = cas {
                text.push_str(&format!(" c{c}"));
            }
            if let Some(f) = client_flags {
                text.push_str(&format!(" f{f}"));
            }
            if let Some(k) = &key {
                text.push_str(&format!(" k{k}"));
            }
            if let Some(o) = &opaque {
                text.push_str(&format!(" O{o}"));
            }
            if let Some(h) = hit {
                text.push_str(if h { " h1" } else { " h0" });
            }
            for (set, letter) in [(w, " W"), (z, " Z"), (x, " X")] {
                if set {
                    text.push_str(letter);
                }
            }
            let flags = MetaFlags {
                ttl,
                cas,
                client_flags,
                size: None,
                key: key.map(String::into_bytes),
                opaque: opaque.map(String::into_bytes),
                win: w,
                won_elsewhere: z,
                stale: x,
                hit_before: hit,
                last_access: None,
            };
            (flags, text)
        })
}

fn meta(status: MetaStatus, flags: MetaFlags, data: Vec<u8>) -> Response {
    Response::Meta(MetaReply {
        status,
        flags,
        data,
        skipped: None,
        debug: None,
    })
}

fn any_reply() -> impl Strategy<Value = Reply> {
    let data = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        Just(b"HD\r\nVA 1\r\n".to_vec()),
        proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'H')], 0..10),
    ];
    prop_oneof![
        (flags(), data).prop_map(|((flags, text), data)| {
            let mut bytes = format!("VA {}{text}\r\n", data.len()).into_bytes();
            bytes.extend_from_slice(&data);
            bytes.extend_from_slice(b"\r\n");
            Reply {
                meta: true,
                bytes,
                response: meta(MetaStatus::Value, flags, data),
            }
        }),
        (
            prop_oneof![
                Just(("HD", MetaStatus::Stored)),
                Just(("EN", MetaStatus::Miss)),
                Just(("NS", MetaStatus::NotStored)),
                Just(("EX", MetaStatus::Exists)),
                Just(("NF", MetaStatus::NotFound)),
            ],
            flags()
        )
            .prop_map(|((code, status), (flags, text))| Reply {
                meta: true,
                bytes: format!("{code}{text}\r\n").into_bytes(),
                response: meta(status, flags, Vec::new()),
            }),
        Just(Reply {
            meta: true,
            bytes: b"MN\r\n".to_vec(),
            response: meta(MetaStatus::Noop, MetaFlags::default(), Vec::new()),
        }),
        "[ -~]{0,20}".prop_map(|text| Reply {
            meta: true,
            bytes: format!("SERVER_ERROR {text}\r\n").into_bytes(),
            response: Response::ServerError(text),
        }),
        // Text replies on the same connection, in between.
        Just(Reply {
            meta: false,
            bytes: b"VERSION 1.6.18\r\n".to_vec(),
            response: Response::Version("1.6.18".into()),
        }),
    ]
}

fn connection_for(replies: &[Reply]) -> Connection {
    let mut connection = Connection::new(MAX_ITEM_SIZE);
    for reply in replies {
        if reply.meta {
            connection
                .push_encoded(
                    Expect::Meta,
                    1,
                    |out| {
                        out.extend_from_slice(b"mn\r\n");
                        Ok(())
                    },
                    (),
                )
                .unwrap();
        } else {
            connection.push(&Request::Version).unwrap();
        }
    }
    connection
}

fn feed(replies: &[Reply], chunks: &[&[u8]]) -> Vec<Response> {
    let mut connection = connection_for(replies);
    for chunk in chunks {
        connection.receive(chunk).unwrap();
    }
    assert_eq!(connection.pending(), 0);
    std::iter::from_fn(|| connection.next_response()).collect()
}

proptest! {
    #[test]
    fn meta_replies_split_at_every_boundary_parse_the_same(
        replies in proptest::collection::vec(any_reply(), 1..6)
    ) {
        let bytes: Vec<u8> = replies.iter().flat_map(|r| r.bytes.clone()).collect();
        let expected: Vec<Response> = replies.iter().map(|r| r.response.clone()).collect();
        prop_assert_eq!(&feed(&replies, &[&bytes]), &expected);
        for split in 0..=bytes.len() {
            let got = feed(&replies, &[&bytes[..split], &bytes[split..]]);
            prop_assert_eq!(&got, &expected, "split at {}", split);
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&feed(&replies, &one_by_one), &expected);
    }

    #[test]
    fn arbitrary_bytes_give_the_same_outcome_in_any_chunking(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'V'), Just(b'A'), Just(b' '), Just(b'1'), Just(b'\r'), Just(b'\n'),
                        Just(b'H'), Just(b'D'), Just(b't'), Just(b'W'), any::<u8>()], 0..80),
        cut in any::<prop::sample::Index>(),
    ) {
        let run = |chunks: &[&[u8]]| {
            let mut connection = Connection::new(MAX_ITEM_SIZE);
            for _ in 0..8 {
                connection.push_encoded(Expect::Meta, 1, |out| { out.extend_from_slice(b"mn\r\n"); Ok(()) }, ()).unwrap();
            }
            let mut result = Ok(());
            for chunk in chunks {
                result = connection.receive(chunk);
                if result.is_err() { break; }
            }
            let responses: Vec<Response> = std::iter::from_fn(|| connection.next_response()).collect();
            (responses, result.err().map(|e| e.code()))
        };
        let whole = run(&[&bytes]);
        let at = cut.index(bytes.len() + 1);
        prop_assert_eq!(run(&[&bytes[..at], &bytes[at..]]), whole.clone());
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(run(&one_by_one), whole);
    }
}
