//! Abuse, tried as an attacker would on loopback, each bounded by a figure from limits.rs:
//! a ping flood that never reads, slow handshakes from many sockets, a client that pipelines
//! huge gets and leaves, a thousand unfinished large frames, more relays than memcached has
//! slots, and logs at trace level that must hold no value and no token.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use support::{connect, frame, frame_start, read_until, send, Bridge, Memcached, RawClient};
use tokio::io::AsyncWriteExt;

/// Waits (polling the bridge's or memcached's own figures, at most `limit`) until `done`.
async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_that_never_reads_keeps_the_bridge_memory_bounded() {
    const PINGS: usize = 300_000;
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let mut client = RawClient::connect(&bridge, &memcached.addr());
    client.send(b"version\r\n");
    let rss_before = bridge.rss_kib();

    // 300,000 pings of 125 bytes (39 MB); the client reads none of the pongs.
    let ping = frame(0x9, &[b'p'; 125]);
    let batch: Vec<u8> = ping.repeat(10_000);
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..PINGS / 10_000 {
            client.stream.write_all(&batch).unwrap();
        }
        // A get after the pings: when memcached has counted it, every ping was read.
        client.send(b"get after-the-flood\r\n");
        client
    });
    let gets = || memcached.stat("cmd_get");
    wait_for("the get behind the pings", Duration::from_secs(60), || {
        gets() == 1
    })
    .await;
    let grown_kib = bridge.rss_kib().saturating_sub(rss_before);
    eprintln!("{PINGS} pings unread: bridge RSS grew by {grown_kib} KiB");
    // One pong slot per relay: the pongs of 39 MB of pings cost at most socket buffers.
    assert!(grown_kib < 8 * 1024, "bridge RSS grew by {grown_kib} KiB");
    drop(writer.join().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handshakes_from_many_sockets_do_not_lock_others_out() {
    const ADDRESSES: u8 = 10;
    const PER_ADDRESS: usize = 500;
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr(), "--handshake-timeout", "60"]);
    let addr: std::net::SocketAddr = bridge.addr.parse().unwrap();

    // 5,000 sockets from ten loopback addresses (127.0.0.2-11), each sending the start of
    // an upgrade request and then one byte at a time; and 520 from one more address, over
    // its --max-connections-per-client of 512.
    let mut slow = Vec::new();
    for host in 0..=ADDRESSES {
        let count = if host == ADDRESSES { 520 } else { PER_ADDRESS };
        for _ in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(format!("127.0.0.{}:0", host + 2).parse().unwrap())
                .unwrap();
            slow.push(socket.connect(addr).await.unwrap());
        }
    }
    let open = || bridge.metric("memcache_bridge_http_connections_open");
    wait_for(
        "the bridge to admit the slow sockets",
        Duration::from_secs(30),
        || open() >= 5_512,
    )
    .await;
    assert_eq!(
        bridge.metric("memcache_bridge_refusals_total{reason=\"too_many_client_connections\"}"),
        8
    );

    let request = format!(
        "GET /memcached/{} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n",
        memcached.addr(),
        bridge.addr
    );
    let mut health = Vec::new();
    let mut relays = Vec::new();
    for round in 0..10 {
        // Every slow socket sends its next byte...
        for stream in &mut slow {
            let byte = request.as_bytes()[round % request.len()];
            let _ = stream.write_all(&[byte]).await;
        }
        // ...while /healthz and a new relay (handshake and a round trip) are timed.
        let started = Instant::now();
        assert_eq!(bridge.get("/healthz").0, 200);
        health.push(started.elapsed());
        let started = Instant::now();
        let mut ws = connect(&bridge.url(&memcached.addr()), &[]).await.unwrap();
        send(&mut ws, b"version\r\n").await;
        read_until(&mut ws, b"\r\n").await;
        relays.push(started.elapsed());
    }
    assert!(open() >= 5_512, "the slow sockets were still open");
    health.sort();
    relays.sort();
    eprintln!("with 5,512 slow sockets open: /healthz {health:?}, new relay {relays:?}");
    // The median must be under 100 ms; every one under 1 s leaves room for this shared
    // 2-CPU machine descheduling a process now and then.
    assert!(health[5] < Duration::from_millis(100), "{health:?}");
    assert!(relays[5] < Duration::from_millis(100), "{relays:?}");
    assert!(health[9] < Duration::from_secs(1), "{health:?}");
    assert!(relays[9] < Duration::from_secs(1), "{relays:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_huge_gets_and_leaves_costs_memcached_little() {
    let memcached = Memcached::start();
    let value = vec![b'v'; 1_000_000];
    let mut set = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    memcached.direct(&set, b"STORED\r\n");
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let written_before = memcached.stat("bytes_written");
    let connections = memcached.stat("curr_connections");

    // 2,000 gets of a 1 MB value (2 GB asked for, in 18 KB of commands), then gone.
    let mut client = RawClient::connect(&bridge, &memcached.addr());
    client.send("get big\r\n".repeat(2_000).as_bytes());
    let relayed = || bridge.metric("memcache_bridge_upstream_to_client_bytes_total");
    wait_for(
        "memcached to start answering",
        Duration::from_secs(10),
        || relayed() > 0,
    )
    .await;
    drop(client);

    let open = || bridge.metric("memcache_bridge_connections_open");
    wait_for("the relay to end", Duration::from_secs(10), || open() == 0).await;
    // memcached has dropped the bridge's connection: it writes no more.
    wait_for(
        "memcached to drop the connection",
        Duration::from_secs(10),
        || memcached.stat("curr_connections") <= connections,
    )
    .await;
    let written = memcached.stat("bytes_written") - written_before;
    eprintln!("memcached wrote {written} bytes for a client that asked 2 GB and left");
    // What reached the client, the bridge's DRAIN_AFTER_CLIENT_LEFT (1 MiB) and what the
    // loopback socket buffers hold (a few MB); before the bound, 6.6 GB in 5 s.
    assert!(
        written < 32 * 1024 * 1024,
        "memcached wrote {written} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unfinished_large_frames_hold_no_frame_memory() {
    const CLIENTS: usize = 1000;
    const SENT: usize = 256 * 1024;
    let memcached = Memcached::start();
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--max-connections-per-client",
        "1100",
    ]);
    let rss_before = bridge.rss_kib();
    let addr = memcached.addr();
    // Each client announces a 2,000,000-byte frame (a set of a value memcached will refuse
    // as too large and swallow) and sends its first 256 KiB; the rest never comes.
    let clients = tokio::task::spawn_blocking({
        let bridge_addr = bridge.addr.clone();
        move || {
            (0..CLIENTS)
                .map(|i| {
                    let mut client = RawClient::connect_to(&bridge_addr, &addr);
                    let line = format!("set frame{i} 0 0 {}\r\n", 2_000_000 - 40);
                    let mut payload = line.into_bytes();
                    payload.resize(SENT, b'x');
                    use std::io::Write;
                    client
                        .stream
                        .write_all(&frame_start(0x2, 2_000_000, &payload))
                        .unwrap();
                    client
                })
                .collect::<Vec<_>>()
        }
    })
    .await
    .unwrap();
    let forwarded = || bridge.metric("memcache_bridge_client_to_upstream_bytes_total");
    wait_for(
        "every frame's start to be relayed",
        Duration::from_secs(60),
        || forwarded() >= (CLIENTS * SENT) as u64,
    )
    .await;
    let grown_kib = bridge.rss_kib().saturating_sub(rss_before);
    eprintln!(
        "{CLIENTS} unfinished 2 MB frames (256 MiB received): bridge RSS grew by {grown_kib} KiB"
    );
    // Payload is relayed as it arrives: a frame in progress costs no buffer of its own.
    // Holding the frames would take 256 MiB.
    assert!(grown_kib < 48 * 1024, "bridge RSS grew by {grown_kib} KiB");
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_that_carried_a_2_mb_message_keep_no_buffer_while_idle() {
    const CLIENTS: usize = 100;
    const VALUE: usize = 2_000_000;
    let memcached = Memcached::start_with(&["-I", "4m"]);
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let rss_before = bridge.rss_kib();
    let addr = memcached.addr();
    // Each relay carries one 2 MB set in one message (as a browser sends it), then idles.
    let clients = tokio::task::spawn_blocking({
        let bridge_addr = bridge.addr.clone();
        move || {
            let mut message = format!("set big 0 0 {VALUE}\r\n").into_bytes();
            message.resize(message.len() + VALUE, b'v');
            message.extend_from_slice(b"\r\n");
            (0..CLIENTS)
                .map(|_| {
                    let mut client = RawClient::connect_to(&bridge_addr, &addr);
                    client.send(&message);
                    client
                })
                .collect::<Vec<_>>()
        }
    })
    .await
    .unwrap();
    let forwarded = || bridge.metric("memcache_bridge_client_to_upstream_bytes_total");
    wait_for(
        "every message to be relayed",
        Duration::from_secs(60),
        || forwarded() >= (CLIENTS * VALUE) as u64,
    )
    .await;
    let grown_kib = bridge.rss_kib().saturating_sub(rss_before);
    eprintln!(
        "{CLIENTS} idle relays after a 2 MB message each: bridge RSS grew by {grown_kib} KiB"
    );
    // Holding each message's buffer would take 200 MB.
    assert!(grown_kib < 32 * 1024, "bridge RSS grew by {grown_kib} KiB");
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_to_one_memcached_stay_below_its_maxconns_with_a_clear_503() {
    // maxconns 64: the bridge reads it at start and opens at most 32 connections.
    let memcached = Memcached::start_with(&["-c", "64"]);
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    let url = bridge.url(&memcached.addr());
    let opened = join_all((0..32).map(|_| connect(&url, &[]))).await;
    let mut relays: Vec<_> = opened.into_iter().map(|ws| ws.unwrap()).collect();
    for ws in &mut relays {
        send(ws, b"version\r\n").await;
        read_until(ws, b"\r\n").await;
    }
    let (status, head, body) = bridge.request(
        &format!("/memcached/{}", memcached.addr()),
        &[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ],
    );
    assert_eq!(status, 503, "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("--max-upstream-connections"), "{body}");
    assert_eq!(
        bridge.metric("memcache_bridge_refusals_total{reason=\"upstream_busy\"}"),
        1
    );
    // The application's own connections still get in.
    assert!(memcached.stat("curr_connections") >= 32);
    // A place given back is a place taken again.
    relays.pop();
    let open = || bridge.metric("memcache_bridge_connections_open");
    wait_for("a relay to end", Duration::from_secs(10), || open() == 31).await;
    let mut again = connect(&url, &[]).await.unwrap();
    send(&mut again, b"version\r\n").await;
    read_until(&mut again, b"\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_tokens_are_never_logged_even_at_trace_level() {
    let memcached = Memcached::start();
    let tokens = std::env::temp_dir().join(format!("bridge-abuse-tokens-{}", std::process::id()));
    std::fs::write(&tokens, "token-that-must-not-be-logged\n").unwrap();
    let log = std::env::temp_dir().join(format!("bridge-abuse-log-{}", std::process::id()));
    let mut bridge = Bridge::start_logging(
        &[
            "--upstream",
            &memcached.addr(),
            "--token-file",
            tokens.to_str().unwrap(),
        ],
        "trace",
        Some(&log),
    );
    let url = bridge.url(&memcached.addr());
    let mut ws = connect(
        &url,
        &[("authorization", "Bearer token-that-must-not-be-logged")],
    )
    .await
    .unwrap();
    let value = "value-that-must-not-be-logged";
    send(
        &mut ws,
        format!("set k 0 0 {}\r\n{value}\r\nget k\r\n", value.len()).as_bytes(),
    )
    .await;
    let answer = read_until(&mut ws, b"END\r\n").await;
    assert!(String::from_utf8_lossy(&answer).contains(value));
    drop(ws);
    let open = || bridge.metric("memcache_bridge_connections_open");
    wait_for("the relay to end", Duration::from_secs(10), || open() == 0).await;
    bridge.terminate();
    assert!(bridge.wait_exit(Duration::from_secs(15)));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("relay open"),
        "the trace log has the relay's life"
    );
    for secret in [
        "value-that-must-not-be-logged",
        "token-that-must-not-be-logged",
    ] {
        assert!(!text.contains(secret), "{secret} is in the log");
    }
    std::fs::remove_file(&log).unwrap();
    std::fs::remove_file(&tokens).unwrap();
}
