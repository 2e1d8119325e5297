//! Server choice against the real python-memcached 1.62: for 10,000 keys and server
//! lists of 1, 2, 3 and 7 servers (some weighted), with both hash functions and with
//! dead servers, python-memcached computes its choice during the test and ours must be
//! the same for every key.

mod compat_common;

use compat_common::{hex, python_memcached_interpreter, run_script, sample_keys};
use memcache_wasm::distribution::{HashFunction, Modula};
use serde_json::{json, Value};

const KEY_COUNT: usize = 10_000;

struct Config {
    weights: Vec<u32>,
    dead: Vec<usize>,
}

fn configs() -> Vec<Config> {
    let c = |weights: &[u32], dead: &[usize]| Config {
        weights: weights.to_vec(),
        dead: dead.to_vec(),
    };
    vec![
        c(&[1], &[]),
        c(&[1, 1], &[]),
        c(&[1, 1, 1], &[]),
        c(&[1, 1, 1, 1, 1, 1, 1], &[]),
        c(&[3, 1], &[]),
        c(&[1, 2, 3], &[]),
        c(&[2, 1, 1, 3, 1, 1, 5], &[]),
        // Dead servers: python-memcached re-hashes str(hash) + str(i), up to 10 times.
        c(&[1], &[0]),
        c(&[1, 1], &[0]),
        c(&[1, 1], &[0, 1]),
        c(&[1, 1, 1], &[1]),
        c(&[1, 2, 3], &[2]),
        c(&[1, 1, 1, 1, 1, 1, 1], &[0, 3, 5]),
        c(&[2, 1, 1, 3, 1, 1, 5], &[6, 1]),
        c(&[2, 1, 1, 3, 1, 1, 5], &[0, 1, 2, 3, 4, 5]),
    ]
}

#[test]
fn server_choice_matches_python_memcached_for_every_key() {
    let keys = sample_keys(KEY_COUNT);
    // (hash, key) tuples: python-memcached's caller-given hash.
    let hashed: Vec<(u32, Vec<u8>)> = (0..500u32)
        .map(|i| {
            (
                i.wrapping_mul(2_654_435_761),
                format!("tuple-key-{i}").into_bytes(),
            )
        })
        .collect();
    let hashes = [
        ("cmemcache", HashFunction::Cmemcache),
        ("crc32", HashFunction::Crc32),
    ];
    let configs = configs();

    let mut request_configs = Vec::new();
    for (hash_name, _) in &hashes {
        for config in &configs {
            request_configs
                .push(json!({"weights": config.weights, "dead": config.dead, "hash": hash_name}));
        }
    }
    let request = json!({
        "keys": keys.iter().map(|k| hex(k)).collect::<Vec<_>>(),
        "hashed_keys": hashed.iter().map(|(h, k)| json!([h, hex(k)])).collect::<Vec<_>>(),
        "configs": request_configs,
    });
    let stdout = run_script(
        &python_memcached_interpreter(),
        "server_choice.py",
        &[],
        &serde_json::to_vec(&request).unwrap(),
    );
    let answer: Value = serde_json::from_slice(&stdout).unwrap();
    let choices = answer["choices"].as_array().unwrap();
    let hashed_choices = answer["hashed_choices"].as_array().unwrap();
    assert_eq!(choices.len(), hashes.len() * configs.len());

    let mut compared = 0usize;
    let mut rehashed = 0usize;
    let mut index = 0;
    for (hash_name, _) in &hashes {
        for config in &configs {
            let hash = match *hash_name {
                "crc32" => HashFunction::Crc32,
                _ => HashFunction::Cmemcache,
            };
            let modula = Modula::new(&config.weights, hash).unwrap();
            let alive = |s: usize| !config.dead.contains(&s);
            let python = choices[index].as_array().unwrap();
            assert_eq!(python.len(), keys.len());
            for (key, expected) in keys.iter().zip(python) {
                let ours = modula.server_for_key(key, alive).unwrap();
                let expected = expected.as_u64().map(|s| s as usize);
                assert_eq!(
                    ours,
                    expected,
                    "key {:?}, weights {:?}, dead {:?}, hash {hash_name}",
                    String::from_utf8_lossy(key),
                    config.weights,
                    config.dead
                );
                if !config.dead.is_empty() && modula.server_for_key(key, |_| true).unwrap() != ours
                {
                    rehashed += 1;
                }
                compared += 1;
            }
            let python = hashed_choices[index].as_array().unwrap();
            for ((hash, _), expected) in hashed.iter().zip(python) {
                let ours = modula.server_for_hash(*hash, alive).unwrap();
                assert_eq!(
                    ours,
                    expected.as_u64().map(|s| s as usize),
                    "hash {hash}, {:?}",
                    config.weights
                );
                compared += 1;
            }
            index += 1;
        }
    }
    // The dead-server configurations really exercised the re-hash walk.
    assert!(rehashed > 10_000, "only {rehashed} keys were re-hashed");
    eprintln!("compared {compared} choices with python-memcached ({rehashed} re-hashed past dead servers)");
}
