//! Times the protocol hot path natively: encoding requests and parsing replies through
//! `Connection`, with no socket. Run it optimised:
//! `cargo run --release -p memcache-wasm --example protocol_bench [RESPONSES]`.

use std::hint::black_box;
use std::time::Instant;

use memcache_wasm::connection::{Connection, DEFAULT_MAX_ITEM_SIZE};
use memcache_wasm::request::{Request, StorageVerb};
use memcache_wasm::response::Response;

/// Replies per block fed to the parser; the block is cut into socket-sized chunks, so most
/// chunk boundaries fall inside a reply, as they do on a real socket.
const REPLIES_PER_BLOCK: usize = 1000;
const CHUNK_SIZES: [usize; 5] = [122, 1464, 1460, 16 * 1024, 64 * 1024];

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
        "{total} replies `VALUE k 0 100` + 100 bytes + END ({} bytes each)",
        block.len() / REPLIES_PER_BLOCK
    );

    let mut connection = Connection::new(DEFAULT_MAX_ITEM_SIZE);
    let started = Instant::now();
    for _ in 0..total {
        connection.push(&get).unwrap();
        if connection.pending() % 4096 == 0 {
            black_box(connection.take_outbound());
        }
    }
    black_box(connection.take_outbound());
    let push_ns = started.elapsed().as_nanos() as f64 / total as f64;
    println!("push (encode `get k` + queue):            {push_ns:6.1} ns/request");

    for chunk_size in CHUNK_SIZES {
        let mut received = 0usize;
        let started = Instant::now();
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
        let ns = started.elapsed().as_nanos() as f64 / total as f64;
        assert_eq!(received, total);
        assert_eq!(connection.pending(), 0);
        println!("receive_each, {chunk_size:>5}-byte chunks:       {ns:6.1} ns/response");
        for _ in 0..total {
            connection.push(&get).unwrap();
        }
        connection.take_outbound();
    }

    let mut received = 0usize;
    let started = Instant::now();
    for _ in 0..blocks {
        for chunk in block.chunks(16 * 1024) {
            connection.receive(chunk).unwrap();
            while let Some(response) = connection.next_response() {
                received += 1;
                black_box(response);
            }
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / total as f64;
    assert_eq!(received, total);
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
    let started = Instant::now();
    for _ in 0..total {
        out.clear();
        black_box(&set).encode(&mut out).unwrap();
        black_box(&out);
    }
    let ns = started.elapsed().as_nanos() as f64 / total as f64;
    println!("encode `set user:12345:profile 16 3600 100`: {ns:6.1} ns/request");
}
