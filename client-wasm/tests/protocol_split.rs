//! Property tests of the response parser through `Connection`: every kind of reply, split
//! at every boundary and in random chunkings, gives exactly what the unsplit bytes give;
//! corrupted and arbitrary bytes give the same outcome (responses, then the same error)
//! whatever the chunking; and a large multi-get fed one byte at a time stays linear.

use std::time::{Duration, Instant};

use memcache_wasm::connection::Connection;
use memcache_wasm::request::{MetadumpScope, Request, StorageVerb};
use memcache_wasm::response::{Item, Response};
use memcache_wasm::Error;
use proptest::prelude::*;

const MAX_ITEM_SIZE: usize = 4096;

/// Up to this many keys in a generated multi-get.
const KEYS: [&[u8]; 8] = [b"k"; 8];

/// The request whose reply a generated reply answers.
#[derive(Debug, Clone, Copy)]
enum Asked {
    Get(usize),
    Set,
    Delete,
    Incr,
    Touch,
    Flush,
    Stats,
    Version,
    Metadump,
}

impl Asked {
    fn request(self) -> Request<'static> {
        match self {
            Asked::Get(keys) => Request::Get {
                keys: &KEYS[..keys],
            },
            Asked::Set => Request::Store {
                verb: StorageVerb::Set,
                key: b"k",
                flags: 0,
                exptime: 0,
                data: b"v",
                noreply: false,
            },
            Asked::Delete => Request::Delete {
                key: b"k",
                noreply: false,
            },
            Asked::Incr => Request::Incr {
                key: b"k",
                delta: 1,
                noreply: false,
            },
            Asked::Touch => Request::Touch {
                key: b"k",
                exptime: 0,
                noreply: false,
            },
            Asked::Flush => Request::FlushAll {
                delay: None,
                noreply: false,
            },
            Asked::Stats => Request::Stats { args: None },
            Asked::Version => Request::Version,
            Asked::Metadump => Request::Metadump {
                scope: MetadumpScope::All,
            },
        }
    }
}

/// One reply: the request it answers, its bytes, and the response it must parse to.
#[derive(Debug, Clone)]
struct Reply {
    asked: Asked,
    bytes: Vec<u8>,
    response: Response,
}

fn reply(asked: Asked, bytes: impl Into<Vec<u8>>, response: Response) -> Reply {
    Reply {
        asked,
        bytes: bytes.into(),
        response,
    }
}

fn word() -> impl Strategy<Value = String> {
    "[!-~]{1,12}".prop_map(|s| s.to_string())
}

fn message() -> impl Strategy<Value = String> {
    "[ -~]{0,30}".prop_map(|s| s.to_string())
}

fn item() -> impl Strategy<Value = Item> {
    let data = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        // Data that looks like reply lines must still be read as data.
        Just(b"END\r\nVALUE k 0 1\r\n".to_vec()),
        proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'E')], 0..10),
    ];
    (
        "[!-~]{1,20}",
        any::<u32>(),
        proptest::option::of(any::<u64>()),
        data,
    )
        .prop_map(|(key, flags, cas, data)| Item {
            key: key.into_bytes(),
            flags,
            cas,
            data,
            skipped: None,
        })
}

fn render_values(items: &[Item]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for item in items {
        bytes.extend_from_slice(b"VALUE ");
        bytes.extend_from_slice(&item.key);
        bytes.extend_from_slice(format!(" {} {}", item.flags, item.data.len()).as_bytes());
        if let Some(cas) = item.cas {
            bytes.extend_from_slice(format!(" {cas}").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&item.data);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"END\r\n");
    bytes
}

/// Every shape of reply memcached sends, with the response it stands for.
fn any_reply() -> impl Strategy<Value = Reply> {
    let any_asked = prop_oneof![
        (1..=KEYS.len()).prop_map(Asked::Get),
        Just(Asked::Set),
        Just(Asked::Delete),
        Just(Asked::Incr),
        Just(Asked::Touch),
        Just(Asked::Flush),
        Just(Asked::Stats),
        Just(Asked::Version),
        Just(Asked::Metadump),
    ];
    prop_oneof![
        (proptest::collection::vec(item(), 0..=KEYS.len()), 0..3usize).prop_map(
            |(items, spare)| {
                let keys = (items.len() + spare).clamp(1, KEYS.len());
                reply(
                    Asked::Get(keys),
                    render_values(&items),
                    Response::Values(items),
                )
            }
        ),
        prop_oneof![
            Just((Asked::Set, "STORED", Response::Stored)),
            Just((Asked::Set, "NOT_STORED", Response::NotStored)),
            Just((Asked::Set, "EXISTS", Response::Exists)),
            Just((Asked::Set, "NOT_FOUND", Response::NotFound)),
            Just((Asked::Delete, "DELETED", Response::Deleted)),
            Just((Asked::Delete, "NOT_FOUND", Response::NotFound)),
            Just((Asked::Incr, "NOT_FOUND", Response::NotFound)),
            Just((Asked::Touch, "TOUCHED", Response::Touched)),
            Just((Asked::Touch, "NOT_FOUND", Response::NotFound)),
            Just((Asked::Flush, "OK", Response::Ok)),
            Just((Asked::Stats, "RESET", Response::Reset)),
            Just((Asked::Stats, "OK", Response::Ok)),
        ]
        .prop_map(|(asked, line, response)| reply(asked, format!("{line}\r\n"), response)),
        any::<u64>().prop_map(|n| reply(Asked::Incr, format!("{n}\r\n"), Response::Number(n))),
        proptest::collection::vec((word(), message()), 0..6).prop_map(|stats| {
            let mut text = String::new();
            let mut expected = Vec::new();
            for (name, value) in stats {
                text.push_str(&format!("STAT {name} {value}\r\n"));
                expected.push((name, value));
            }
            text.push_str("END\r\n");
            reply(Asked::Stats, text, Response::Stats(expected))
        }),
        "[!-~][ -~]{0,20}".prop_map(|version| reply(
            Asked::Version,
            format!("VERSION {version}\r\n"),
            Response::Version(version.to_string())
        )),
        proptest::collection::vec(("[!-~]{1,20}", 0..100u32), 0..6).prop_map(|dump| {
            let mut text = String::new();
            let mut lines = Vec::new();
            for (key, size) in dump {
                let line = format!("key={key} exp=-1 la=1 cas=1 fetch=no cls=1 size={size}");
                text.push_str(&line);
                text.push('\n');
                lines.push(line);
            }
            text.push_str("END\r\n");
            reply(Asked::Metadump, text, Response::Metadump(lines))
        }),
        prop_oneof![
            Just("BUSY currently processing crawler request"),
            Just("BADCLASS invalid class id"),
            Just("NOTSTARTED no items to crawl"),
        ]
        .prop_map(|line| reply(
            Asked::Metadump,
            format!("{line}\r\n"),
            Response::MetadumpRefused(line.to_string())
        )),
        (any_asked.clone(), message(), 0..3u8).prop_map(|(asked, text, kind)| match kind {
            0 => reply(asked, "ERROR\r\n", Response::Error),
            1 => reply(
                asked,
                format!("CLIENT_ERROR {text}\r\n"),
                Response::ClientError(text)
            ),
            _ => reply(
                asked,
                format!("SERVER_ERROR {text}\r\n"),
                Response::ServerError(text)
            ),
        }),
    ]
}

/// Everything a connection made of some bytes: the responses, then the error if any, and
/// how many requests still wait.
#[derive(Debug, PartialEq)]
struct Outcome {
    responses: Vec<Response>,
    error: Option<Error>,
    pending: usize,
}

fn feed(asked: &[Asked], pieces: &[&[u8]]) -> Outcome {
    let mut connection = Connection::new(MAX_ITEM_SIZE);
    for ask in asked {
        connection
            .push(&ask.request())
            .expect("fixed requests encode");
    }
    let mut responses = Vec::new();
    for piece in pieces {
        if let Err(error) = connection.receive_each(piece, |response| responses.push(response)) {
            return Outcome {
                responses,
                error: Some(error),
                pending: connection.pending(),
            };
        }
    }
    Outcome {
        responses,
        error: None,
        pending: connection.pending(),
    }
}

/// Cuts `bytes` at the given points (taken modulo the length, in order).
fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for point in points {
        pieces.push(&bytes[start..point]);
        start = point;
    }
    pieces.push(&bytes[start..]);
    pieces
}

fn stream(replies: &[Reply]) -> (Vec<Asked>, Vec<u8>, Vec<Response>) {
    let asked = replies.iter().map(|r| r.asked).collect();
    let bytes = replies
        .iter()
        .flat_map(|r| r.bytes.iter().copied())
        .collect();
    let responses = replies.iter().map(|r| r.response.clone()).collect();
    (asked, bytes, responses)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn each_reply_split_at_every_boundary_parses_like_the_whole(reply in any_reply()) {
        let whole = feed(&[reply.asked], &[&reply.bytes]);
        prop_assert_eq!(&whole, &Outcome { responses: vec![reply.response.clone()], error: None, pending: 0 });
        for split in 0..=reply.bytes.len() {
            let (head, tail) = reply.bytes.split_at(split);
            prop_assert_eq!(&feed(&[reply.asked], &[head, tail]), &whole, "split at {}", split);
        }
        let bytes: Vec<&[u8]> = reply.bytes.chunks(1).collect();
        prop_assert_eq!(&feed(&[reply.asked], &bytes), &whole, "one byte at a time");
    }

    #[test]
    fn pipelined_replies_in_any_chunking_parse_like_the_whole(
        replies in proptest::collection::vec(any_reply(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        size in 1..17usize,
    ) {
        let (asked, bytes, responses) = stream(&replies);
        let whole = feed(&asked, &[&bytes]);
        prop_assert_eq!(&whole, &Outcome { responses, error: None, pending: 0 });
        prop_assert_eq!(&feed(&asked, &cut(&bytes, &cuts)), &whole, "cut at {:?}", cuts);
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        prop_assert_eq!(&feed(&asked, &chunks), &whole, "chunks of {}", size);
    }

    #[test]
    fn a_truncated_stream_leaves_the_rest_pending(
        replies in proptest::collection::vec(any_reply(), 1..6),
        keep in any::<usize>(),
    ) {
        let (asked, bytes, _) = stream(&replies);
        let keep = keep % bytes.len();
        let outcome = feed(&asked, &[&bytes[..keep]]);
        prop_assert_eq!(outcome.error, None);
        prop_assert_eq!(outcome.responses.len() + outcome.pending, asked.len());
        prop_assert!(outcome.pending > 0);
    }

    #[test]
    fn corrupted_streams_give_the_same_outcome_in_any_chunking(
        replies in proptest::collection::vec(any_reply(), 1..6),
        at in any::<usize>(),
        byte in any::<u8>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let (asked, mut bytes, _) = stream(&replies);
        let at = at % bytes.len();
        bytes[at] = byte;
        let whole = feed(&asked, &[&bytes]);
        prop_assert_eq!(&feed(&asked, &cut(&bytes, &cuts)), &whole, "cut at {:?}", cuts);
        let bytes_one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&feed(&asked, &bytes_one_by_one), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_ignore_chunking(
        asked in proptest::collection::vec(prop_oneof![
            (1..=KEYS.len()).prop_map(Asked::Get), Just(Asked::Set), Just(Asked::Incr),
            Just(Asked::Stats), Just(Asked::Metadump), Just(Asked::Version),
        ], 1..5),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        size in 1..9usize,
    ) {
        let whole = feed(&asked, &[&bytes]);
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        prop_assert_eq!(&feed(&asked, &chunks), &whole);
    }
}

#[test]
fn a_large_multi_get_fed_one_byte_at_a_time_stays_linear() {
    const KEY_COUNT: usize = 100;
    const VALUE_SIZE: usize = 10_000;
    let names: Vec<String> = (0..KEY_COUNT).map(|i| format!("key{i}")).collect();
    let keys: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let items: Vec<Item> = names
        .iter()
        .enumerate()
        .map(|(i, name)| Item {
            key: name.clone().into_bytes(),
            flags: 0,
            cas: Some(i as u64),
            data: vec![b'a' + (i % 26) as u8; VALUE_SIZE],
            skipped: None,
        })
        .collect();
    let bytes = render_values(&items);

    let mut connection = Connection::new(1024 * 1024);
    connection.push(&Request::Gets { keys: &keys }).unwrap();
    let started = Instant::now();
    let mut responses = Vec::new();
    for byte in bytes.chunks(1) {
        connection
            .receive_each(byte, |r| responses.push(r))
            .unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(responses, vec![Response::Values(items)]);
    // About a million one-byte calls. Rescanning the reply on each call would be ~10^12
    // byte visits (hours); linear work takes well under a second even unoptimised.
    assert!(
        elapsed < Duration::from_secs(20),
        "{} one-byte chunks took {elapsed:?}",
        bytes.len()
    );
    println!("{} one-byte chunks parsed in {elapsed:?}", bytes.len());
}
