//! Ketama against libmemcached, the reference: keys stored through Debian's
//! python3-pylibmc with `ketama_weighted` on real memcached servers must sit on the
//! server our `Ketama` picks. And the point of ketama, measured: adding an 11th server
//! to 10 moves about 1/11 of the keys, where modula moves most of them.

mod compat_common;
mod support;

use std::net::TcpStream;
use std::time::Duration;

use compat_common::{hex, pylibmc_interpreter, raw_get, run_script, sample_keys};
use memcache_wasm::distribution::{HashFunction, Ketama, Modula};
use serde_json::Value;
use support::Memcached;

const KEY_COUNT: usize = 2_000;

fn check_against_libmemcached(weights: &[u32]) {
    let servers: Vec<Memcached> = weights.iter().map(|_| Memcached::start(&[])).collect();
    let names: Vec<(String, u32)> = servers
        .iter()
        .zip(weights)
        .map(|(s, &w)| (format!("127.0.0.1:{}", s.addr().port()), w))
        .collect();
    let specs: Vec<String> = names
        .iter()
        .map(|(host, w)| format!("{host}:{w}"))
        .collect();
    let mut args = vec!["ketama_weighted".to_string()];
    args.extend(specs);

    let keys = sample_keys(KEY_COUNT);
    let stdin = serde_json::to_vec(&keys.iter().map(|k| hex(k)).collect::<Vec<_>>()).unwrap();
    let stdout = run_script(&pylibmc_interpreter(), "ketama.py", &args, &stdin);
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["stored"], KEY_COUNT, "{}", report["failed"]);
    assert_eq!(
        report["behaviors"]["distribution"], "consistent weighted",
        "{report}"
    );
    assert_eq!(report["behaviors"]["hash"], "md5", "{report}");

    let ketama = Ketama::new(&names).unwrap();
    let mut per_server = vec![0usize; servers.len()];
    for key in &keys {
        let holders: Vec<usize> = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| raw_get(s.addr(), key).is_some())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "key {:?} on servers {holders:?}",
            String::from_utf8_lossy(key)
        );
        let ours = ketama.server_for_key(key, |_| true);
        assert_eq!(
            ours,
            Some(holders[0]),
            "key {:?}, weights {weights:?}: libmemcached stored it on {}, we pick {ours:?}",
            String::from_utf8_lossy(key),
            holders[0]
        );
        per_server[holders[0]] += 1;
    }
    // Every server got keys, so the comparison covered them all.
    assert!(per_server.iter().all(|&n| n > 0), "{per_server:?}");
    eprintln!("weights {weights:?}: {KEY_COUNT} keys placed as libmemcached does, per server {per_server:?}");
}

#[test]
fn ketama_matches_libmemcached_with_equal_weights() {
    check_against_libmemcached(&[1, 1, 1]);
}

#[test]
fn ketama_matches_libmemcached_with_weights() {
    check_against_libmemcached(&[1, 2, 3]);
    check_against_libmemcached(&[5, 1, 1, 3]);
}

/// libmemcached names a server on the default port 11211 "host-N" on the circle, not
/// "host:11211-N". No test may listen on 11211, so the server there is one nobody
/// listens on: libmemcached fails exactly the keys it assigns to it.
#[test]
fn default_port_server_is_named_without_its_port() {
    let down = "127.0.0.2:11211";
    assert!(
        TcpStream::connect_timeout(&down.parse().unwrap(), Duration::from_millis(500)).is_err(),
        "something listens on {down}; this test needs that address closed"
    );
    let up = Memcached::start(&[]);
    let up_name = format!("127.0.0.1:{}", up.addr().port());
    let names = vec![(down.to_string(), 1), (up_name.clone(), 1)];
    let args = vec![
        "ketama_weighted".to_string(),
        format!("{down}:1"),
        format!("{up_name}:1"),
    ];
    let keys = sample_keys(KEY_COUNT);
    let stdin = serde_json::to_vec(&keys.iter().map(|k| hex(k)).collect::<Vec<_>>()).unwrap();
    let stdout = run_script(&pylibmc_interpreter(), "ketama.py", &args, &stdin);
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    let failed: std::collections::HashSet<&str> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();

    let ketama = Ketama::new(&names).unwrap();
    let mut on_down = 0;
    for key in &keys {
        let ours = ketama.server_for_key(key, |_| true).unwrap();
        let libmemcached = if failed.contains(hex(key).as_str()) {
            0
        } else {
            1
        };
        assert_eq!(ours, libmemcached, "key {:?}", String::from_utf8_lossy(key));
        assert_eq!(raw_get(up.addr(), key).is_some(), libmemcached == 1);
        on_down += usize::from(ours == 0);
    }
    // Both servers own a real share, so the names of both were exercised.
    assert!(
        (KEY_COUNT / 5..KEY_COUNT * 4 / 5).contains(&on_down),
        "{on_down} keys on {down}"
    );
}

#[test]
fn adding_an_eleventh_server_moves_about_one_eleventh_under_ketama() {
    const KEYS: usize = 100_000;
    let ten: Vec<(String, u32)> = (0..10).map(|i| (format!("10.0.0.{i}:11211"), 1)).collect();
    let mut eleven = ten.clone();
    eleven.push(("10.0.0.10:11211".into(), 1));
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("remap:{i}").into_bytes())
        .collect();

    let (before, after) = (Ketama::new(&ten).unwrap(), Ketama::new(&eleven).unwrap());
    let mut moved = 0;
    for key in &keys {
        let (a, b) = (
            before.server_for_key(key, |_| true),
            after.server_for_key(key, |_| true),
        );
        if a != b {
            // Consistent hashing only ever moves keys onto the new server.
            assert_eq!(
                b,
                Some(10),
                "key {:?} moved from {a:?} to {b:?}",
                String::from_utf8_lossy(key)
            );
            moved += 1;
        }
    }
    let ketama_share = moved as f64 / KEYS as f64;

    let (before, after) = (
        Modula::new(&[1; 10], HashFunction::Cmemcache).unwrap(),
        Modula::new(&[1; 11], HashFunction::Cmemcache).unwrap(),
    );
    let modula_moved = keys
        .iter()
        .filter(|k| before.server_for_key(k, |_| true) != after.server_for_key(k, |_| true))
        .count();
    let modula_share = modula_moved as f64 / KEYS as f64;

    eprintln!(
        "10 -> 11 servers, {KEYS} keys: ketama moved {moved} ({:.2}%, ideal 1/11 = 9.09%), \
         modula moved {modula_moved} ({:.2}%)",
        ketama_share * 100.0,
        modula_share * 100.0
    );
    assert!(
        (0.06..0.12).contains(&ketama_share),
        "ketama moved {ketama_share}"
    );
    assert!(modula_share > 0.85, "modula moved {modula_share}");
}
