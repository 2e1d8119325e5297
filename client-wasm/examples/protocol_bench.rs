//! Times the protocol hot path natively: encoding requests and parsing replies through
//! `Connection`, with no socket. Run it optimised:
//! `cargo run --release -p memcache-wasm --example protocol_bench [RESPONSES]`.
//! Each figure is the best of several rounds, so other load on the machine shows less.

use std::hint::black_box;
use std::time::{Duration, Instant};

use memcache_wasm::connection::{Connection, DEFAULT_MAX_ITEM_SIZE};
use memcache_wasm::request::{Request, StorageVerb};
use memcache_wasm::response::Response;

/// Replies per block fed to the parser; the block is cut into socket-sized chunks, so most
/// chunk boundaries fall inside a reply, as they do on a real socket.
const REPLIES_PER_BLOCK: usize = 1000;
/// One reply per chunk, a TCP segment, a typical socket read, a large one.
const CHUNK_SIZES: [usize; 4] = [122, 1460, 16 * 1024, 64 * 1024];
const ROUNDS: usize = 5;

/// Runs `round` (which times its own `count` operations) several times; the fastest, in
/// ns per operation.
fn best_of(count: usize, mut round: impl FnMut() -> Duration) -> f64 {
    (0..ROUNDS)
        .map(|_| round().as_nanos() as f64 / count as f64)
        .fold(f64::INFINITY, f64::min)
}

fn timed(work: impl FnOnce()) -> Duration {
    let started = Instant::now();
    work();
    started.elapsed()
}

fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("RESPONSES must be a number"))
        .unwrap_or(1_000_000);
    let blocks = total.div_ceil(REPLIES_PER_BLOCK);
    let total = blocks * REPLIES_PER_BLOCK;

    let data = [b'x'; 100];
    let mut block = Vec::new();
    for _ in 0..REPLIES_PER_BLOCK {
        block.extend_from_slice(b"VALUE k 0 100\r\n");
        block.extend_from_slice(&data);
        block.extend_from_slice(b"\r\nEND\r\n");
    }
    let get = Request::Get { keys: &[b"k"] };
    println!(
        "{total} replies `VALUE k 0 100` + 100 bytes + END ({} bytes each), best of {ROUNDS} rounds",
        block.len() / REPLIES_PER_BLOCK
    );

    let mut connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
    let push_all = |connection: &mut Connection| {
        for _ in 0..total {
            connection.push(&get).unwrap();
            if connection.pending() % 4096 == 0 {
                black_box(connection.take_outbound());
            }
        }
        black_box(connection.take_outbound());
    };

    let ns = best_of(total, || {
        let elapsed = timed(|| push_all(&mut connection));
        connection.reset();
        elapsed
    });
    println!("push (encode `get k` + queue):              {ns:6.1} ns/request");

    for chunk_size in CHUNK_SIZES {
        let ns = best_of(total, || {
            push_all(&mut connection);
            let mut received = 0usize;
            let elapsed = timed(|| {
                for _ in 0..blocks {
                    for chunk in block.chunks(chunk_size) {
                        connection
                            .receive_each(chunk, |response| {
                                if let Response::Values(items) = response {
                                    received += items.len();
                                    black_box(items);
                                }
                            })
                            .unwrap();
                    }
                }
            });
            assert_eq!(received, total);
            assert_eq!(connection.pending(), 0);
            elapsed
        });
        println!("receive_each, {chunk_size:>5}-byte chunks:        {ns:6.1} ns/response");
    }

    let ns = best_of(total, || {
        push_all(&mut connection);
        let mut received = 0usize;
        let elapsed = timed(|| {
            for _ in 0..blocks {
                for chunk in block.chunks(16 * 1024) {
                    connection.receive(chunk).unwrap();
                    while let Some(response) = connection.next_response() {
                        received += 1;
                        black_box(response);
                    }
                }
            }
        });
        assert_eq!(received, total);
        elapsed
    });
    println!("receive + next_response, 16384-byte chunks: {ns:6.1} ns/response");

    let mut out = Vec::with_capacity(256);
    let set = Request::Store {
        verb: StorageVerb::Set,
        key: b"user:12345:profile",
        flags: 16,
        exptime: 3600,
        data: &data,
        noreply: false,
    };
    let ns = best_of(total, || {
        timed(|| {
            for _ in 0..total {
                out.clear();
                black_box(&set).encode(&mut out).unwrap();
                black_box(&out);
            }
        })
    });
    println!("encode `set user:12345:profile 16 3600 100`: {ns:6.1} ns/request");
}
