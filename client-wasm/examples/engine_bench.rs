//! Times the engine natively on the calls the issues name: a 100-key multi-get and a single
//! get, from the batch JavaScript writes to the output it reads, with memcached's reply fed
//! as one chunk. No socket: this is the engine's share of the client's CPU per call. Run it
//! optimised: `cargo run --release -p memcache-wasm --example engine_bench [ROUNDS]`.

use std::hint::black_box;
use std::time::Instant;

use memcache_wasm::codec::CodecOptions;
use memcache_wasm::distribution::HashFunction;
use memcache_wasm::engine::{DistributionKind, Engine, EngineConfig, Timing};
use memcache_wasm::wire::{kind, opcode, put_field, put_u32, put_u8};

const KEYS: usize = 100;
const VALUE: usize = 100;

fn engine() -> Engine {
    Engine::new(EngineConfig {
        servers: vec![("127.0.0.1:11211".into(), 1)],
        distribution: DistributionKind::Modula,
        hash: HashFunction::Cmemcache,
        caller_hashes: false,
        codec: CodecOptions::default(),
        max_item_size: 64 << 20,
        failover: true,
        timing: Timing::default(),
        behind_proxy: false,
    })
    .expect("engine")
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ROUNDS must be a number"))
        .unwrap_or(20_000);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("bench:{i:05}")).collect();
    let mut batch = Vec::new();
    put_u8(&mut batch, opcode::GET_MULTI);
    put_u32(&mut batch, 1);
    put_u8(&mut batch, 0);
    put_field(&mut batch, b"");
    put_u32(&mut batch, KEYS as u32);
    for k in &keys {
        put_field(&mut batch, k.as_bytes());
    }
    let mut reply = Vec::new();
    for k in &keys {
        reply.extend_from_slice(format!("VALUE {k} 16 {VALUE}\r\n").as_bytes());
        reply.extend(std::iter::repeat(b'v').take(VALUE));
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"END\r\n");
    let mut single = Vec::new();
    put_u8(&mut single, opcode::GET);
    put_u32(&mut single, 2);
    put_u8(&mut single, 0);
    put_field(&mut single, keys[0].as_bytes());
    let single_reply = [
        format!("VALUE {} 16 {VALUE}\r\n", keys[0]).as_bytes(),
        &[b'v'; VALUE][..],
        b"\r\nEND\r\n",
    ]
    .concat();
    let _ = kind::TEXT;

    let mut e = engine();
    let mut out = Vec::new();
    e.submit(0, &batch, &mut out).unwrap();
    e.connected(0, 0, &mut out).unwrap();
    e.receive(0, 0, &reply, &mut out).unwrap();
    for (name, batch, reply, per) in [
        ("multi-get, 100 keys", &batch, &reply, KEYS),
        ("get", &single, &single_reply, 1),
    ] {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let started = Instant::now();
            for t in 0..rounds as u64 {
                e.submit(t, black_box(batch), &mut out).unwrap();
                e.receive(t, 0, black_box(reply), &mut out).unwrap();
                black_box(&out);
            }
            best = best.min(started.elapsed().as_nanos() as f64 / (rounds * per) as f64);
        }
        println!("{name}: {best:.0} ns per key (submit + receive, best of 5)");
    }
}
