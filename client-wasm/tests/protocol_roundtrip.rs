//! Every request the core encodes, sent to a real memcached started by the test, and its
//! reply parsed back: the results are the ones memcached gives.

mod support;

use std::time::{Duration, Instant};

use memcache_wasm::request::{
    gat_key_batches, MetadumpScope, Request, StorageVerb, MAX_GAT_LINE_LENGTH,
};
use memcache_wasm::response::{Item, Response};
use memcache_wasm::{Error, KeyRule};
use support::{BlockingClient, Memcached};

fn store<'a>(verb: StorageVerb, key: &'a [u8], data: &'a [u8]) -> Request<'a> {
    Request::Store {
        verb,
        key,
        flags: 0,
        exptime: 0,
        data,
        noreply: false,
    }
}

fn set<'a>(key: &'a [u8], data: &'a [u8]) -> Request<'a> {
    store(StorageVerb::Set, key, data)
}

fn get(client: &mut BlockingClient, key: &[u8]) -> Option<Vec<u8>> {
    match client.call(&Request::Get { keys: &[key] }).unwrap() {
        Response::Values(mut items) => items.pop().map(|item| item.data),
        other => panic!("get answered {other:?}"),
    }
}

fn values(response: Response) -> Vec<Item> {
    match response {
        Response::Values(items) => items,
        other => panic!("expected values, got {other:?}"),
    }
}

fn stats(response: Response) -> Vec<(String, String)> {
    match response {
        Response::Stats(stats) => stats,
        other => panic!("expected stats, got {other:?}"),
    }
}

fn stat<'a>(stats: &'a [(String, String)], name: &str) -> &'a str {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no stat {name} in {stats:?}"))
}

#[test]
fn get_and_gets_return_hits_in_key_order_and_skip_misses() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let stored = client
        .send(&[
            Request::Store {
                verb: StorageVerb::Set,
                key: b"a",
                flags: 16,
                exptime: 0,
                data: b"alpha",
                noreply: false,
            },
            Request::Store {
                verb: StorageVerb::Set,
                key: b"c",
                flags: 4_294_967_295,
                exptime: 0,
                data: b"",
                noreply: false,
            },
        ])
        .unwrap();
    assert_eq!(stored, vec![Response::Stored, Response::Stored]);

    let items = values(
        client
            .call(&Request::Get {
                keys: &[b"c", b"b", b"a", b"c"],
            })
            .unwrap(),
    );
    let seen: Vec<_> = items
        .iter()
        .map(|i| (i.key.as_slice(), i.flags, i.data.as_slice(), i.cas))
        .collect();
    assert_eq!(
        seen,
        vec![
            (&b"c"[..], u32::MAX, &b""[..], None),
            (b"a", 16, b"alpha", None),
            (b"c", u32::MAX, b"", None)
        ]
    );

    let items = values(
        client
            .call(&Request::Gets {
                keys: &[b"a", b"c", b"zz"],
            })
            .unwrap(),
    );
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|item| item.cas.is_some_and(|cas| cas > 0)));
    assert_ne!(
        items[0].cas, items[1].cas,
        "each item has its own cas unique"
    );

    assert_eq!(
        client.call(&Request::Get { keys: &[b"none"] }).unwrap(),
        Response::Values(vec![])
    );
}

#[test]
fn gat_and_gats_fetch_and_set_a_new_expiry() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    client.send(&[set(b"x", b"1"), set(b"y", b"2")]).unwrap();

    let items = values(
        client
            .call(&Request::Gat {
                exptime: 100,
                keys: &[b"x", b"missing", b"y"],
            })
            .unwrap(),
    );
    assert_eq!(
        items.iter().map(|i| i.data.as_slice()).collect::<Vec<_>>(),
        vec![&b"1"[..], b"2"]
    );
    assert!(items.iter().all(|item| item.cas.is_none()));

    let items = values(
        client
            .call(&Request::Gats {
                exptime: 100,
                keys: &[b"x", b"y"],
            })
            .unwrap(),
    );
    assert!(items.iter().all(|item| item.cas.is_some()));

    // A negative expiry makes the item expire at once: gat returns it one last time.
    let items = values(
        client
            .call(&Request::Gat {
                exptime: -1,
                keys: &[b"x"],
            })
            .unwrap(),
    );
    assert_eq!(items.len(), 1);
    assert_eq!(get(&mut client, b"x"), None);
    assert_eq!(get(&mut client, b"y"), Some(b"2".to_vec()));
}

#[test]
fn storage_verbs_follow_memcached_rules() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let replies = client
        .send(&[
            store(StorageVerb::Replace, b"k", b"r"),
            store(StorageVerb::Append, b"k", b"a"),
            store(StorageVerb::Prepend, b"k", b"p"),
            store(StorageVerb::Add, b"k", b"mid"),
            store(StorageVerb::Add, b"k", b"again"),
            store(StorageVerb::Append, b"k", b"-end"),
            store(StorageVerb::Prepend, b"k", b"start-"),
            store(StorageVerb::Replace, b"other", b"x"),
        ])
        .unwrap();
    assert_eq!(
        replies,
        vec![
            Response::NotStored,
            Response::NotStored,
            Response::NotStored,
            Response::Stored,
            Response::NotStored,
            Response::Stored,
            Response::Stored,
            Response::NotStored,
        ]
    );
    assert_eq!(get(&mut client, b"k"), Some(b"start-mid-end".to_vec()));
    assert_eq!(
        client
            .call(&store(StorageVerb::Replace, b"k", b"new"))
            .unwrap(),
        Response::Stored
    );
    assert_eq!(get(&mut client, b"k"), Some(b"new".to_vec()));
    assert_eq!(
        client.call(&set(b"k", b"set wins")).unwrap(),
        Response::Stored
    );
    assert_eq!(get(&mut client, b"k"), Some(b"set wins".to_vec()));
}

#[test]
fn data_with_protocol_words_and_every_byte_round_trips() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let data: Vec<u8> = b"END\r\nVALUE x 0 1\r\nSTORED\r\n"
        .iter()
        .copied()
        .chain(0..=255)
        .collect();
    assert_eq!(client.call(&set(b"bin", &data)).unwrap(), Response::Stored);
    assert_eq!(get(&mut client, b"bin"), Some(data));
}

#[test]
fn cas_answers_exists_not_found_and_stored() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let cas = |key, cas| Request::Cas {
        key,
        flags: 2,
        exptime: 0,
        data: b"v2",
        cas,
        noreply: false,
    };
    assert_eq!(client.call(&cas(b"nokey", 1)).unwrap(), Response::NotFound);
    client.call(&set(b"k", b"v1")).unwrap();
    let unique = values(client.call(&Request::Gets { keys: &[b"k"] }).unwrap())[0]
        .cas
        .expect("gets returns a cas unique");
    assert_eq!(
        client.call(&cas(b"k", unique + 1)).unwrap(),
        Response::Exists
    );
    assert_eq!(client.call(&cas(b"k", unique)).unwrap(), Response::Stored);
    assert_eq!(
        client.call(&cas(b"k", unique)).unwrap(),
        Response::Exists,
        "the unique changed"
    );
    let item = values(client.call(&Request::Gets { keys: &[b"k"] }).unwrap()).remove(0);
    assert_eq!((item.flags, item.data.as_slice()), (2, &b"v2"[..]));
}

#[test]
fn delete_answers_deleted_then_not_found() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    client.call(&set(b"k", b"v")).unwrap();
    let delete = Request::Delete {
        key: b"k",
        noreply: false,
    };
    assert_eq!(
        client.send(&[delete, delete]).unwrap(),
        vec![Response::Deleted, Response::NotFound]
    );
    assert_eq!(get(&mut client, b"k"), None);
}

#[test]
fn incr_and_decr_count_wrap_and_floor_like_memcached() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let incr = |key, delta| Request::Incr {
        key,
        delta,
        noreply: false,
    };
    let decr = |key, delta| Request::Decr {
        key,
        delta,
        noreply: false,
    };
    assert_eq!(client.call(&incr(b"n", 1)).unwrap(), Response::NotFound);
    assert_eq!(client.call(&decr(b"n", 1)).unwrap(), Response::NotFound);

    client.call(&set(b"n", b"10")).unwrap();
    assert_eq!(client.call(&incr(b"n", 5)).unwrap(), Response::Number(15));
    assert_eq!(
        client.call(&decr(b"n", 100)).unwrap(),
        Response::Number(0),
        "decr stops at 0"
    );

    client
        .call(&set(b"max", u64::MAX.to_string().as_bytes()))
        .unwrap();
    assert_eq!(
        client.call(&incr(b"max", 0)).unwrap(),
        Response::Number(u64::MAX)
    );
    assert_eq!(
        client.call(&incr(b"max", 2)).unwrap(),
        Response::Number(1),
        "incr wraps at 2^64"
    );
    assert_eq!(
        client.call(&incr(b"max", u64::MAX)).unwrap(),
        Response::Number(0)
    );

    client.call(&set(b"text", b"abc")).unwrap();
    assert_eq!(
        client.call(&incr(b"text", 1)).unwrap(),
        Response::ClientError("cannot increment or decrement non-numeric value".into())
    );
}

#[test]
fn touch_changes_the_expiry_of_existing_items_only() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    client.call(&set(b"k", b"v")).unwrap();
    let touch = |key, exptime| Request::Touch {
        key,
        exptime,
        noreply: false,
    };
    assert_eq!(client.call(&touch(b"k", 100)).unwrap(), Response::Touched);
    assert_eq!(
        client.call(&touch(b"nokey", 100)).unwrap(),
        Response::NotFound
    );
    assert_eq!(client.call(&touch(b"k", -1)).unwrap(), Response::Touched);
    assert_eq!(
        get(&mut client, b"k"),
        None,
        "a negative expiry expires the item"
    );
}

#[test]
fn flush_all_now_and_with_a_delay() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    client.call(&set(b"a", b"1")).unwrap();
    assert_eq!(
        client
            .call(&Request::FlushAll {
                delay: None,
                noreply: false
            })
            .unwrap(),
        Response::Ok
    );
    assert_eq!(get(&mut client, b"a"), None);

    client.call(&set(b"b", b"2")).unwrap();
    assert_eq!(
        client
            .call(&Request::FlushAll {
                // memcached's clock ticks once a second and a delay of d takes effect
                // d - 1 ticks on: 5 leaves at least three seconds to see the item, enough
                // for a test thread descheduled on a loaded 2-core machine.
                delay: Some(5),
                noreply: false
            })
            .unwrap(),
        Response::Ok
    );
    assert_eq!(
        get(&mut client, b"b"),
        Some(b"2".to_vec()),
        "still there before the delay"
    );
    let deadline = Instant::now() + Duration::from_secs(12);
    while get(&mut client, b"b").is_some() {
        assert!(Instant::now() < deadline, "flush_all 5 did not take effect");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn stats_general_and_with_arguments() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    client.call(&set(b"k", b"v")).unwrap();

    let general = stats(client.call(&Request::Stats { args: None }).unwrap());
    assert_eq!(stat(&general, "curr_items"), "1");
    assert!(stat(&general, "pid").parse::<u32>().is_ok());

    let items = stats(
        client
            .call(&Request::Stats {
                args: Some("items"),
            })
            .unwrap(),
    );
    assert_eq!(stat(&items, "items:1:number"), "1");
    let slabs = stats(
        client
            .call(&Request::Stats {
                args: Some("slabs"),
            })
            .unwrap(),
    );
    assert_eq!(stat(&slabs, "active_slabs"), "1");
    let settings = stats(
        client
            .call(&Request::Stats {
                args: Some("settings"),
            })
            .unwrap(),
    );
    assert_eq!(stat(&settings, "item_size_max"), "1048576");
    assert_eq!(stat(&settings, "maxbytes"), (64 * 1024 * 1024).to_string());
    assert_eq!(stat(&settings, "inter"), "127.0.0.1");
    let sizes = stats(
        client
            .call(&Request::Stats {
                args: Some("sizes"),
            })
            .unwrap(),
    );
    assert!(!sizes.is_empty());
    let conns = stats(
        client
            .call(&Request::Stats {
                args: Some("conns"),
            })
            .unwrap(),
    );
    assert!(
        conns.iter().any(|(name, _)| name.ends_with(":addr")),
        "{conns:?}"
    );

    // cachedump walks only the cold LRU; memcached's LRU maintainer moves the new item
    // there within a moment, so ask until it shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cachedump = stats(
            client
                .call(&Request::Stats {
                    args: Some("cachedump 1 10"),
                })
                .unwrap(),
        );
        if let [(key, info)] = cachedump.as_slice() {
            assert_eq!(key, "k");
            assert!(info.starts_with("[1 b; "), "{info}");
            break;
        }
        assert!(cachedump.is_empty(), "{cachedump:?}");
        assert!(
            Instant::now() < deadline,
            "the item never reached the cold LRU"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    assert_eq!(
        client
            .call(&Request::Stats {
                args: Some("detail on")
            })
            .unwrap(),
        Response::Ok
    );
    assert_eq!(
        client
            .call(&Request::Stats {
                args: Some("reset")
            })
            .unwrap(),
        Response::Reset
    );
    assert_eq!(
        client
            .call(&Request::Stats {
                args: Some("no-such-group")
            })
            .unwrap(),
        Response::Error
    );
}

#[test]
fn version_is_the_one_the_binary_reports() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let output = std::process::Command::new("memcached")
        .arg("-V")
        .output()
        .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    let expected = printed
        .trim()
        .strip_prefix("memcached ")
        .unwrap()
        .to_string();
    assert_eq!(
        client.call(&Request::Version).unwrap(),
        Response::Version(expected)
    );
}

#[test]
fn verbosity_answers_ok() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    assert_eq!(
        client
            .call(&Request::Verbosity {
                level: 1,
                noreply: false
            })
            .unwrap(),
        Response::Ok
    );
    assert_eq!(
        client
            .call(&Request::Verbosity {
                level: 0,
                noreply: false
            })
            .unwrap(),
        Response::Ok
    );
}

/// Runs a metadump, waiting while the crawler is busy with an earlier crawl.
fn metadump(client: &mut BlockingClient, scope: MetadumpScope) -> Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.call(&Request::Metadump { scope }).unwrap();
        match &reply {
            Response::MetadumpRefused(line)
                if line.starts_with("BUSY") && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => return reply,
        }
    }
}

#[test]
fn lru_crawler_metadump_lists_every_item() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let keys: Vec<String> = (0..50).map(|i| format!("item:{i}")).collect();
    let requests: Vec<Request> = keys
        .iter()
        .map(|key| set(key.as_bytes(), b"value"))
        .collect();
    assert!(client
        .send(&requests)
        .unwrap()
        .iter()
        .all(|reply| *reply == Response::Stored));

    for scope in [
        MetadumpScope::All,
        MetadumpScope::Hash,
        MetadumpScope::ClassId(1),
    ] {
        let Response::Metadump(lines) = metadump(&mut client, scope) else {
            panic!("metadump {scope:?} failed");
        };
        let mut dumped: Vec<String> = lines
            .iter()
            .map(|line| {
                let key = line
                    .split(' ')
                    .next()
                    .unwrap()
                    .strip_prefix("key=")
                    .unwrap();
                // memcached URL-encodes keys in metadump; ':' comes out as %3A.
                key.replace("%3A", ":")
            })
            .collect();
        dumped.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(dumped, expected, "scope {scope:?}");
        assert!(
            lines.iter().all(|line| line.contains(" cls=1 ")),
            "{lines:?}"
        );
    }
    assert_eq!(
        metadump(&mut client, MetadumpScope::ClassId(200)),
        Response::MetadumpRefused("BADCLASS invalid class id".into())
    );
}

#[test]
fn noreply_requests_wait_for_nothing_and_take_effect() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    client.call(&set(b"counter", b"5")).unwrap();
    let quiet = [
        Request::Store {
            verb: StorageVerb::Set,
            key: b"a",
            flags: 3,
            exptime: 0,
            data: b"quiet",
            noreply: true,
        },
        Request::Store {
            verb: StorageVerb::Append,
            key: b"a",
            flags: 0,
            exptime: 0,
            data: b"!",
            noreply: true,
        },
        Request::Store {
            verb: StorageVerb::Set,
            key: b"gone",
            flags: 0,
            exptime: 0,
            data: b"x",
            noreply: true,
        },
        Request::Delete {
            key: b"gone",
            noreply: true,
        },
        Request::Incr {
            key: b"counter",
            delta: 10,
            noreply: true,
        },
        Request::Decr {
            key: b"counter",
            delta: 3,
            noreply: true,
        },
        Request::Touch {
            key: b"a",
            exptime: 1000,
            noreply: true,
        },
        Request::Verbosity {
            level: 0,
            noreply: true,
        },
        Request::Cas {
            key: b"nokey",
            flags: 0,
            exptime: 0,
            data: b"x",
            cas: 1,
            noreply: true,
        },
    ];
    assert_eq!(
        client.send(&quiet).unwrap(),
        vec![],
        "no reply is waited for"
    );
    assert_eq!(client.connection().pending(), 0);

    // The next reply on the wire belongs to the next request: nothing was left behind.
    let items = values(
        client
            .call(&Request::Get {
                keys: &[b"a", b"gone", b"counter"],
            })
            .unwrap(),
    );
    let seen: Vec<_> = items
        .iter()
        .map(|i| (i.key.as_slice(), i.flags, i.data.as_slice()))
        .collect();
    assert_eq!(
        seen,
        vec![(&b"a"[..], 3, &b"quiet!"[..]), (b"counter", 0, b"12")]
    );

    assert_eq!(
        client
            .send(&[Request::FlushAll {
                delay: None,
                noreply: true
            }])
            .unwrap(),
        vec![]
    );
    assert_eq!(get(&mut client, b"a"), None);
}

#[test]
fn quit_closes_the_connection_without_a_reply() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    assert_eq!(
        client
            .send(&[Request::Version, Request::Quit])
            .unwrap()
            .len(),
        1
    );
    assert!(client.server_closed().unwrap());
}

#[test]
fn pipelined_mixed_requests_come_back_in_order() {
    let server = Memcached::start(&[]);
    let mut client = server.client().with_read_size(7);
    let keys: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let data: Vec<String> = (0..200).map(|i| "v".repeat(i)).collect();
    let key_refs: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
    let mut requests = Vec::new();
    for (key, data) in key_refs.iter().zip(&data) {
        requests.push(set(key, data.as_bytes()));
        requests.push(Request::Get {
            keys: std::slice::from_ref(key),
        });
    }
    requests.push(Request::Gets { keys: &key_refs });
    requests.push(Request::Version);
    let replies = client.send(&requests).unwrap();
    assert_eq!(replies.len(), 402);
    for (i, pair) in replies[..400].chunks(2).enumerate() {
        assert_eq!(pair[0], Response::Stored);
        let items = values(pair[1].clone());
        assert_eq!(items[0].data, data[i].as_bytes(), "reply {i}");
    }
    let all = values(replies[400].clone());
    assert_eq!(
        all.iter().map(|i| i.key.clone()).collect::<Vec<_>>(),
        key_refs
    );
    assert!(matches!(replies[401], Response::Version(_)));
}

#[test]
fn a_multi_get_of_large_values_read_in_small_chunks() {
    let server = Memcached::start(&[]);
    let mut client = server.client().with_read_size(1000);
    let keys: Vec<String> = (0..100).map(|i| format!("big{i}")).collect();
    let data: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10_000]).collect();
    let stores: Vec<Request> = keys
        .iter()
        .zip(&data)
        .map(|(k, d)| set(k.as_bytes(), d))
        .collect();
    client.send(&stores).unwrap();
    let key_refs: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
    let items = values(client.call(&Request::Get { keys: &key_refs }).unwrap());
    assert_eq!(items.len(), 100);
    for (item, expected) in items.iter().zip(&data) {
        assert_eq!(&item.data, expected);
    }
}

#[test]
fn values_up_to_the_item_limit_round_trip_and_larger_ones_are_server_errors() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let near_limit = vec![b'x'; 1_000_000];
    assert_eq!(
        client.call(&set(b"big", &near_limit)).unwrap(),
        Response::Stored
    );
    assert_eq!(get(&mut client, b"big"), Some(near_limit));
    let over = vec![b'x'; 2 * 1024 * 1024];
    assert_eq!(
        client.call(&set(b"huge", &over)).unwrap(),
        Response::ServerError("object too large for cache".into())
    );
    assert!(matches!(
        client.call(&Request::Version).unwrap(),
        Response::Version(_)
    ));
}

#[test]
fn bad_keys_are_refused_before_anything_is_sent() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    let long = vec![b'k'; 251];
    let failure = client.call(&set(&long, b"x")).unwrap_err();
    let error = failure.downcast::<Error>().expect("a core error");
    assert!(
        matches!(
            *error,
            Error::BadKey {
                rule: KeyRule::TooLong,
                ..
            }
        ),
        "{error:?}"
    );
    let failure = client.call(&Request::Get { keys: &[b"a b"] }).unwrap_err();
    let error = failure.downcast::<Error>().expect("a core error");
    assert!(
        matches!(
            *error,
            Error::BadKey {
                rule: KeyRule::ControlOrSpace,
                ..
            }
        ),
        "{error:?}"
    );
    // The connection is still in step with the server.
    assert!(matches!(
        client.call(&Request::Version).unwrap(),
        Response::Version(_)
    ));
}

#[test]
fn failing_noreply_requests_stay_silent_so_replies_stay_in_step() {
    let server = Memcached::start(&[]);
    let mut client = server.client();
    client.call(&set(b"text", b"abc")).unwrap();
    let too_large = vec![b'x'; 2 * 1024 * 1024];
    let quiet_failures = [
        Request::Store {
            verb: StorageVerb::Set,
            key: b"huge",
            flags: 0,
            exptime: 0,
            data: &too_large,
            noreply: true,
        },
        Request::Incr {
            key: b"text",
            delta: 1,
            noreply: true,
        },
        Request::Store {
            verb: StorageVerb::Add,
            key: b"text",
            flags: 0,
            exptime: 0,
            data: b"x",
            noreply: true,
        },
        Request::Delete {
            key: b"missing",
            noreply: true,
        },
    ];
    assert_eq!(client.send(&quiet_failures).unwrap(), vec![]);
    // Had memcached answered any of them, that line would be read as this reply.
    let replies = client
        .send(&[
            Request::Version,
            Request::Get {
                keys: &[b"text", b"huge"],
            },
        ])
        .unwrap();
    assert!(matches!(replies[0], Response::Version(_)), "{replies:?}");
    let items = values(replies[1].clone());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].data, b"abc");
}

/// Waits until memcached has read all that was written on `stream`: its end of the
/// connection in /proc/net/tcp (local address memcached's, remote this one's) has an empty
/// receive queue. A fixed pause is not enough: under CPU load memcached could read both
/// halves of a split line at once and see it whole.
fn wait_until_read(stream: &std::net::TcpStream) {
    let hex = |address: std::net::SocketAddr| match address {
        std::net::SocketAddr::V4(v4) => {
            format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(v4.ip().octets()),
                v4.port()
            )
        }
        other => panic!("memcached listens on IPv4 loopback, not {other}"),
    };
    let (server, client) = (
        hex(stream.peer_addr().unwrap()),
        hex(stream.local_addr().unwrap()),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let receive_queue = table.lines().find_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            (fields.len() > 4 && fields[1] == server && fields[2] == client)
                .then(|| fields[4].split(':').nth(1).map(str::to_owned))
                .flatten()
        });
        match receive_queue.as_deref() {
            // Gone: memcached read and already closed the connection, as it does on an
            // over-long partial line.
            Some("00000000") | None => return,
            Some(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "memcached did not read the first part within 5 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes `line` in two writes, waiting after the first `split` bytes until memcached has
/// read them, so it sees a partial line, and returns what it answered (empty if it closed the connection).
fn answer_to_split_line(server: &Memcached, line: &[u8], split: usize) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(&line[..split]).unwrap();
    wait_until_read(&stream);
    // A write after memcached closed may fail; the read below tells what happened.
    let _ = stream.write_all(&line[split..]);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.ends_with(b"END\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    answer
}

#[test]
fn gat_lines_are_kept_under_the_length_memcached_reads_partially() {
    let server = Memcached::start(&[]);
    let names: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("{i:03}{}", "k".repeat(197)).into_bytes())
        .collect();
    let keys: Vec<&[u8]> = names.iter().map(|k| k.as_slice()).collect();

    // The longest line encode allows survives the worst split: all but its last byte.
    let batch = gat_key_batches(100, &keys)[0];
    let mut line = Vec::new();
    Request::Gats {
        exptime: 100,
        keys: batch,
    }
    .encode(&mut line)
    .unwrap();
    let padding = MAX_GAT_LINE_LENGTH - line.len();
    let mut widest = batch.to_vec();
    let last = [batch[batch.len() - 1], &vec![b'p'; padding][..]].concat();
    *widest.last_mut().unwrap() = &last;
    line.clear();
    Request::Gats {
        exptime: 100,
        keys: &widest,
    }
    .encode(&mut line)
    .unwrap();
    assert_eq!(line.len(), MAX_GAT_LINE_LENGTH);
    assert_eq!(
        answer_to_split_line(&server, &line, line.len() - 1),
        b"END\r\n"
    );

    // Two bytes more, split the same way (2049 bytes without a newline), and memcached
    // drops the connection: this is why encode refuses longer gat lines.
    let mut longer = line[..line.len() - 2].to_vec();
    longer.extend_from_slice(b"qq\r\n");
    assert_eq!(
        answer_to_split_line(&server, &longer, longer.len() - 1),
        b""
    );
    let error = Request::Gats {
        exptime: 100,
        keys: &keys,
    }
    .encode(&mut Vec::new())
    .unwrap_err();
    assert!(matches!(error, Error::BadArgument(_)), "{error:?}");

    // Batched, every key is answered.
    let mut client = server.client();
    let stores: Vec<Request> = keys.iter().map(|key| set(key, b"v")).collect();
    client.send(&stores).unwrap();
    let gats: Vec<Request> = gat_key_batches(100, &keys)
        .into_iter()
        .map(|batch| Request::Gats {
            exptime: 100,
            keys: batch,
        })
        .collect();
    assert!(gats.len() > 1);
    let found: usize = client
        .send(&gats)
        .unwrap()
        .into_iter()
        .map(|r| values(r).len())
        .sum();
    assert_eq!(found, keys.len());
}
