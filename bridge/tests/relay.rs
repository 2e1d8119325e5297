//! Relay correctness against a real memcached: pipelined requests split across frames in
//! any way come back complete and in order; upstream faults close with a clear code.

mod support;

use std::time::Duration;

use support::{connect, read_close, read_until, send, Bridge, Memcached};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A pipelined batch: sets whose values look like commands, gets, a miss, incr, delete.
fn batch() -> (Vec<u8>, Vec<u8>) {
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let value = format!("get x{i}\r\nflush_all\r\n");
        request.extend_from_slice(
            format!("set key{i} {i} 0 {}\r\n{value}\r\n", value.len()).as_bytes(),
        );
        expected.extend_from_slice(b"STORED\r\n");
    }
    request.extend_from_slice(b"set n 0 0 1\r\n5\r\nincr n 10\r\n");
    expected.extend_from_slice(b"STORED\r\n15\r\n");
    for i in 0..20 {
        let value = format!("get x{i}\r\nflush_all\r\n");
        request.extend_from_slice(format!("get key{i} missing{i}\r\n").as_bytes());
        expected.extend_from_slice(
            format!("VALUE key{i} {i} {}\r\n{value}\r\nEND\r\n", value.len()).as_bytes(),
        );
    }
    request.extend_from_slice(b"delete key0\r\nget key0\r\nversion\r\n");
    expected.extend_from_slice(b"DELETED\r\nEND\r\nVERSION ");
    (request, expected)
}

async fn relay_split(bridge: &Bridge, memcached: &Memcached, cuts: &[usize]) {
    let (request, expected) = batch();
    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (request.len() + 1)).collect();
    points.push(0);
    points.push(request.len());
    points.sort_unstable();
    for window in points.windows(2) {
        if window[0] < window[1] {
            send(&mut ws, &request[window[0]..window[1]]).await;
        }
    }
    let mut reply = Vec::new();
    while reply.len() <= expected.len() || !reply.ends_with(b"\r\n") {
        reply.extend(read_until(&mut ws, b"\n").await);
    }
    assert_eq!(&reply[..expected.len()], &expected[..], "cuts {cuts:?}");
    // Nothing duplicated: exactly one version line follows.
    assert_eq!(
        reply[expected.len()..]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        1
    );
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_split_across_frames_in_any_way_are_relayed_in_order() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    // Whole, one byte per frame around command and data boundaries, and pseudo-random cuts.
    relay_split(&bridge, &memcached, &[]).await;
    relay_split(&bridge, &memcached, &(0..300).collect::<Vec<_>>()).await;
    let mut seed = 0x9e37_79b9_u64;
    for _ in 0..20 {
        let cuts: Vec<usize> = (0..12)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as usize
            })
            .collect();
        relay_split(&bridge, &memcached, &cuts).await;
    }
    let every_byte: Vec<usize> = (0..batch().0.len()).collect();
    relay_split(&bridge, &memcached, &every_byte).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_multi_get_streams_back_whole() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    let value = vec![b'v'; 500_000];
    for i in 0..4 {
        let mut set = format!("set big{i} 0 0 {}\r\n", value.len()).into_bytes();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        send(&mut ws, &set).await;
        assert_eq!(read_until(&mut ws, b"\r\n").await, b"STORED\r\n");
    }
    send(&mut ws, b"get big0 big1 big2 big3\r\n").await;
    let reply = read_until(&mut ws, b"END\r\n").await;
    assert_eq!(
        reply.len(),
        4 * (value.len() + "VALUE big0 0 500000\r\n\r\n".len()) + 5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_closes_with_1013_naming_it() {
    let port = support::free_port();
    let upstream = format!("127.0.0.1:{port}");
    let bridge = Bridge::start(&["--upstream", &upstream]);
    let mut ws = connect(&bridge.url(&upstream), &[]).await.unwrap();
    let (code, reason, _) = read_close(&mut ws).await;
    assert_eq!(code, CloseCode::Again);
    assert!(
        reason.contains(&format!("upstream {upstream} unreachable")),
        "{reason}"
    );
    assert_eq!(
        bridge.metric("memcache_bridge_upstream_connect_errors_total"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_goes_away_closes_with_1011_and_a_restarted_one_serves_again() {
    let mut memcached = Memcached::start();
    let port = memcached.port;
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    send(&mut ws, b"version\r\n").await;
    read_until(&mut ws, b"\r\n").await;
    memcached.stop();
    let (code, reason, _) = read_close(&mut ws).await;
    assert_eq!(code, CloseCode::Error);
    assert!(
        reason.contains(&format!("upstream 127.0.0.1:{port}")),
        "{reason}"
    );

    let memcached = Memcached::start_on(port);
    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    send(&mut ws, b"set k 0 0 2\r\nok\r\nget k\r\n").await;
    assert_eq!(
        read_until(&mut ws, b"END\r\n").await,
        b"STORED\r\nVALUE k 0 2\r\nok\r\nEND\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_closes_normally_and_a_client_leaving_closes_the_upstream() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    // memcached may still count, for a moment, connections already closed: the start-up
    // probe of Memcached::start and the bridge's `stats settings` at its start. Idle, it
    // counts only the connection that asks.
    let before = IDLE_CONNECTIONS;
    wait_for_connections(&memcached, before).await;
    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    send(&mut ws, b"quit\r\n").await;
    let (code, _, _) = read_close(&mut ws).await;
    assert_eq!(code, CloseCode::Normal);
    // memcached counts the quit connection until it has closed it on its side.
    wait_for_connections(&memcached, before).await;

    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    send(&mut ws, b"version\r\n").await;
    read_until(&mut ws, b"\r\n").await;
    assert_eq!(memcached.stat("curr_connections"), before + 1);
    drop(ws); // no close frame: the TCP connection just ends
    wait_for_connections(&memcached, before).await;
}

/// What memcached's `curr_connections` says with no client but the one asking (`stats`).
const IDLE_CONNECTIONS: u64 = 1;

/// Waits (at most 5 s) until memcached counts `expected` open connections.
async fn wait_for_connections(memcached: &Memcached, expected: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let open = memcached.stat("curr_connections");
        if open == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "memcached counts {open} open connections, {expected} expected: an upstream connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_just_before_the_client_closes_all_land() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend_from_slice(format!("set last{i} 0 0 4 noreply\r\nlast\r\n").as_bytes());
    }
    send(&mut ws, &batch).await;
    ws.close(None).await.unwrap(); // closes without reading a single answer
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while memcached.stat("curr_items") != 2000 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 2000 writes landed",
            memcached.stat("curr_items")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
