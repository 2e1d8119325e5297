//! Limits and life cycle: a client that never reads keeps the bridge's memory bounded,
//! 1,000 relays at once are all answered, idle relays close, and SIGTERM drains gracefully.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use support::{connect, read_close, read_until, send, Bridge, Memcached, RawClient};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_keeps_the_bridge_memory_bounded() {
    let memcached = Memcached::start();
    let value = vec![b'v'; 900_000];
    for i in 0..4 {
        let mut set = format!("set big{i} 0 0 {}\r\n", value.len()).into_bytes();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        memcached.direct(&set, b"STORED\r\n");
    }
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let rss_before = bridge.rss_kib();

    // 100 multi-gets of 3.6 MB each: 360 MB the client asks for and never reads.
    let mut client = RawClient::connect(&bridge, &memcached.addr());
    client.send("get big0 big1 big2 big3\r\n".repeat(100).as_bytes());
    let relayed = "memcache_bridge_upstream_to_client_bytes_total";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = bridge.metric(relayed);
        if now > 0 && now == last {
            break; // stalled: backpressure reached memcached
        }
        assert!(
            Instant::now() < deadline,
            "the relay never stalled ({now} bytes relayed)"
        );
        last = now;
    }
    // What moved is what the kernel's socket buffers hold, not the 360 MB asked for.
    assert!(
        last < 32 * 1024 * 1024,
        "relayed {last} bytes to a client that reads nothing"
    );
    let grown_kib = bridge.rss_kib().saturating_sub(rss_before);
    assert!(grown_kib < 16 * 1024, "bridge RSS grew by {grown_kib} KiB");
    eprintln!("stalled after relaying {last} bytes; bridge RSS grew by {grown_kib} KiB");

    // The bridge still serves others meanwhile.
    let mut other = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    send(&mut other, b"version\r\n").await;
    assert!(read_until(&mut other, b"\r\n")
        .await
        .starts_with(b"VERSION "));
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_relays_are_all_answered() {
    const CLIENTS: usize = 1000;
    let memcached = Memcached::start();
    // All from 127.0.0.1, and memcached's -c 4096 allows the bridge 2,048 of them.
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--max-connections-per-client",
        "1100",
    ]);
    let url = bridge.url(&memcached.addr());
    let started = Instant::now();

    let opened = join_all((0..CLIENTS).map(|_| connect(&url, &[]))).await;
    let mut sockets: Vec<_> = opened
        .into_iter()
        .map(|ws| ws.expect("handshake"))
        .collect();
    // A relay counts itself open just after its 101 went out: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge.metric("memcache_bridge_connections_open") != CLIENTS as u64 {
        assert!(
            Instant::now() < deadline,
            "the bridge does not count 1,000 open relays"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every relay sends, then every relay reads: all 1,000 are in flight at once.
    join_all(sockets.iter_mut().enumerate().map(|(i, ws)| async move {
        let value = format!("value-{i}");
        send(
            ws,
            format!("set k{i} 0 0 {}\r\n{value}\r\nget k{i}\r\n", value.len()).as_bytes(),
        )
        .await;
    }))
    .await;
    let answers = join_all(sockets.iter_mut().map(|ws| read_until(ws, b"END\r\n"))).await;
    for (i, answer) in answers.iter().enumerate() {
        let value = format!("value-{i}");
        let expected = format!(
            "STORED\r\nVALUE k{i} 0 {}\r\n{value}\r\nEND\r\n",
            value.len()
        );
        assert_eq!(String::from_utf8_lossy(answer), expected);
    }
    assert!(memcached.stat("curr_connections") >= CLIENTS as u64);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    eprintln!(
        "1,000 relays opened and answered in {:?}; bridge RSS {} KiB",
        started.elapsed(),
        bridge.rss_kib()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_relay_is_closed() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr(), "--idle-timeout", "1"]);
    let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
    send(&mut ws, b"version\r\n").await;
    read_until(&mut ws, b"\r\n").await;
    let started = Instant::now();
    let (code, reason, _) = read_close(&mut ws).await;
    assert_eq!(code, CloseCode::Away);
    assert!(reason.contains("idle"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(bridge.metric("memcache_bridge_idle_timeouts_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_lets_relays_finish_then_closes_them() {
    let memcached = Memcached::start();
    let mut bridge = Bridge::start(&["--upstream", &memcached.addr(), "--shutdown-grace", "2"]);
    let url = bridge.url(&memcached.addr());
    let mut ws = connect(&url, &[]).await.unwrap();
    bridge.terminate();
    // New connections are no longer accepted once the bridge has handled the signal (a fixed
    // 300 ms pause can race a bridge descheduled under CPU load; 1 s is inside the 2 s grace)...
    let deadline = Instant::now() + Duration::from_secs(1);
    while tokio::net::TcpStream::connect(&bridge.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the bridge still accepts connections 1 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...while the open relay still works during the grace period...
    send(&mut ws, b"set k 0 0 1\r\nx\r\n").await;
    assert_eq!(read_until(&mut ws, b"\r\n").await, b"STORED\r\n");
    // ...and is closed with "going away" once it is over.
    let (code, reason, _) = read_close(&mut ws).await;
    assert_eq!(code, CloseCode::Away);
    assert!(reason.contains("shutting down"), "{reason}");
    assert!(
        bridge.wait_exit(Duration::from_secs(5)),
        "the bridge did not exit"
    );
}
