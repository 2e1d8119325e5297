//! Every refusal, with its HTTP status or close code, and memcached untouched: checked with
//! memcached's own `stats` (connections, sets, items) and with a listener no one may reach.

mod support;

use std::net::TcpListener;

use support::{connect, read_close, read_until, send, Bridge, Memcached};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn token_file(name: &str, tokens: &str) -> String {
    let path = std::env::temp_dir().join(format!("bridge-test-{name}-{}", std::process::id()));
    std::fs::write(&path, tokens).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_upstreams_get_403_and_no_connection_is_attempted() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr()]);
    // A listener the client names but the bridge was not given: it must never see a connect.
    let bait = TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let bait_addr = bait.local_addr().unwrap().to_string();
    let connections = memcached.stat("total_connections");
    for upstream in [
        bait_addr.as_str(),
        "localhost:11211",
        &format!("localhost:{}", memcached.port),
        "127.0.0.1",
    ] {
        assert_eq!(
            connect(&bridge.url(upstream), &[]).await.err(),
            Some(403),
            "{upstream}"
        );
    }
    for path in ["", "a/b", "%zz"] {
        assert_eq!(
            connect(&bridge.url(path), &[]).await.err(),
            Some(404),
            "{path}"
        );
    }
    assert!(
        bait.accept().is_err(),
        "the bridge connected to an address it was not given"
    );
    // Only our own `stats` connection reached memcached.
    assert_eq!(memcached.stat("total_connections"), connections + 1);
    assert_eq!(
        bridge.metric("memcache_bridge_refusals_total{reason=\"unknown_upstream\"}"),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_origins_must_be_allowed() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--allow-origin",
        "https://dash.example.com",
    ]);
    let url = bridge.url(&memcached.addr());
    let connections = memcached.stat("total_connections");
    // A browser cannot read a refused handshake's status, so it gets a 101 and at once a
    // close frame whose application code (4403) and reason say the Origin was refused.
    for origin in ["https://evil.example", "null"] {
        let mut ws = connect(&url, &[("origin", origin)])
            .await
            .expect("a browser's handshake is answered");
        let (code, reason, data) = read_close(&mut ws).await;
        assert_eq!(u16::from(code), 4403, "{origin}");
        assert!(reason.starts_with("Origin refused"), "{reason}");
        assert!(data.is_empty());
    }
    assert_eq!(memcached.stat("total_connections"), connections + 1);
    assert!(connect(&url, &[("origin", "https://dash.example.com")])
        .await
        .is_ok());
    // The bridge's own origin (the dashboard it serves), and scripts that send none.
    let own = format!("http://{}", bridge.addr);
    assert!(connect(&url, &[("origin", &own)]).await.is_ok());
    assert!(connect(&url, &[]).await.is_ok());
    assert_eq!(
        bridge.metric("memcache_bridge_refusals_total{reason=\"bad_origin\"}"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured_and_never_logged_or_exposed() {
    let memcached = Memcached::start();
    let tokens = token_file("tokens", "# team\nfirst-token\nsecond.token\n");
    let bridge = Bridge::start(&["--upstream", &memcached.addr(), "--token-file", &tokens]);
    let url = bridge.url(&memcached.addr());
    let connections = memcached.stat("total_connections");
    assert_eq!(connect(&url, &[]).await.err(), Some(401));
    assert_eq!(
        connect(&url, &[("authorization", "Bearer first-tokeN")])
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        connect(&url, &[("sec-websocket-protocol", "binary, token.wrong")])
            .await
            .err(),
        Some(401)
    );
    assert_eq!(memcached.stat("total_connections"), connections + 1);

    // A browser (it sends Origin) learns the same from a close frame it can read.
    let mut page = connect(
        &url,
        &[
            ("origin", &format!("http://{}", bridge.addr)),
            ("sec-websocket-protocol", "binary, token.wrong"),
        ],
    )
    .await
    .expect("a browser's handshake is answered");
    let (code, reason, _) = read_close(&mut page).await;
    assert_eq!(u16::from(code), 4401);
    assert_eq!(reason, "token refused: the token is not valid");
    assert_eq!(memcached.stat("total_connections"), connections + 2);

    let mut script = connect(&url, &[("authorization", "Bearer first-token")])
        .await
        .unwrap();
    send(&mut script, b"version\r\n").await;
    assert!(read_until(&mut script, b"\r\n")
        .await
        .starts_with(b"VERSION "));
    let mut browser = connect(
        &url,
        &[("sec-websocket-protocol", "binary, token.second.token")],
    )
    .await
    .unwrap();
    send(&mut browser, b"version\r\n").await;
    assert!(read_until(&mut browser, b"\r\n")
        .await
        .starts_with(b"VERSION "));

    let (_, servers) = bridge.get("/servers");
    assert!(servers.contains("\"tokenRequired\":true"), "{servers}");
    let (_, metrics) = bridge.get("/metrics");
    assert!(!metrics.contains("first-token") && !metrics.contains("second.token"));
    assert_eq!(
        bridge.metric("memcache_bridge_refusals_total{reason=\"missing_token\"}"),
        1
    );
    assert_eq!(
        bridge.metric("memcache_bridge_refusals_total{reason=\"wrong_token\"}"),
        3
    );
    std::fs::remove_file(tokens).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_writes_with_1008_and_nothing_reaches_memcached() {
    let memcached = Memcached::start();
    memcached.direct(b"set seen 0 0 3\r\nold\r\n", b"STORED\r\n");
    let bridge = Bridge::start(&["--upstream", &memcached.addr(), "--read-only"]);
    let url = bridge.url(&memcached.addr());
    let sets = memcached.stat("cmd_set");
    for (request, command) in [
        (&b"set k 0 0 3\r\nnew\r\n"[..], "set"),
        (b"delete seen\r\n", "delete"),
        (b"incr seen 1\r\n", "incr"),
        (b"touch seen 10\r\n", "touch"),
        (b"flush_all\r\n", "flush_all"),
        (b"ms seen 3 T0\r\nnew\r\n", "ms"),
        (b"mg seen v T1\r\n", "mg"),
        (b"md seen\r\n", "md"),
        (b"md seen I q\r\n", "md"),
        (b"ma seen\r\n", "ma"),
        (b"mg nothing v N30\r\n", "mg"),
        (b"mg seen v R30\r\n", "mg"),
        (b"mg seen E99\r\n", "mg"),
    ] {
        let mut ws = connect(&url, &[]).await.unwrap();
        // A read first, in the same frame: it is answered before the close.
        let mut frame = b"get seen\r\n".to_vec();
        frame.extend_from_slice(request);
        send(&mut ws, &frame).await;
        let (code, reason, before) = read_close(&mut ws).await;
        assert_eq!(code, CloseCode::Policy, "{command}");
        assert!(reason.contains(command), "{reason}");
        assert_eq!(before, b"VALUE seen 0 3\r\nold\r\nEND\r\n", "{command}");
    }
    assert_eq!(memcached.stat("cmd_set"), sets);
    assert_eq!(
        memcached.stat("delete_hits") + memcached.stat("incr_hits") + memcached.stat("touch_hits"),
        0
    );
    assert_eq!(memcached.stat("cmd_flush"), 0);
    assert_eq!(
        memcached.direct(b"get seen\r\n", b"END\r\n"),
        b"VALUE seen 0 3\r\nold\r\nEND\r\n"
    );
    assert_eq!(
        bridge.metric("memcache_bridge_refusals_total{reason=\"read_only\"}"),
        13
    );
    // Meta reads pass: the value with its flags, TTL and key, quiet, and mn.
    let mut ws = connect(&url, &[]).await.unwrap();
    send(&mut ws, b"mg seen v f t k\r\nmg nothing v q\r\nmn\r\n").await;
    assert_eq!(
        read_until(&mut ws, b"MN\r\n").await,
        b"VA 3 f0 t-1 kseen\r\nold\r\nMN\r\n"
    );
    assert_eq!(
        memcached.stat("curr_items"),
        1,
        "the quiet miss made no item"
    );
    let (_, servers) = bridge.get("/servers");
    assert!(servers.contains("\"readOnly\":true"), "{servers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_are_refused_by_default_even_when_split_or_hidden_after_data() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--allow-admin",
        "verbosity",
    ]);
    let url = bridge.url(&memcached.addr());
    for (frames, command) in [
        (vec![&b"shutdown\r\n"[..]], "shutdown"),
        (vec![b"shut", b"down\r\n"], "shutdown"),
        // The data block holds "shutdown" (relayed as data); the next line is the command.
        (
            vec![b"set k 0 0 10\r\nshutdown\r\n\r\nsh", b"utdown\r\n"],
            "shutdown",
        ),
        (vec![b"slabs reassign 1 2\r\n"], "slabs reassign"),
        (vec![b"lru_crawler crawl all\r\n"], "lru_crawler crawl"),
        (vec![b"watch\r\n"], "watch"),
        (vec![b"cache_memlimit 10\r\n"], "cache_memlimit"),
        (vec![b"bogus\r\n"], "bogus"),
    ] {
        let mut ws = connect(&url, &[]).await.unwrap();
        for frame in frames {
            send(&mut ws, frame).await;
        }
        let (code, reason, _) = read_close(&mut ws).await;
        assert_eq!(code, CloseCode::Policy);
        assert!(reason.contains(command), "{reason}");
    }
    // memcached is still up, and the set whose data was "shutdown" was stored.
    assert_eq!(
        memcached.direct(b"get k\r\n", b"END\r\n"),
        b"VALUE k 0 10\r\nshutdown\r\n\r\nEND\r\n"
    );
    // An admin command the operator allowed passes.
    let mut ws = connect(&url, &[]).await.unwrap();
    send(&mut ws, b"verbosity 0\r\n").await;
    assert_eq!(read_until(&mut ws, b"\r\n").await, b"OK\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_close_with_1009_and_text_frames_with_1003() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--max-message-size",
        "1024",
    ]);
    let url = bridge.url(&memcached.addr());
    let mut ws = connect(&url, &[]).await.unwrap();
    let mut big = format!("set big 0 0 {}\r\n", 2000).into_bytes();
    big.extend_from_slice(&[b'x'; 2000]);
    big.extend_from_slice(b"\r\n");
    send(&mut ws, &big).await;
    let (code, _, _) = read_close(&mut ws).await;
    assert_eq!(code, CloseCode::Size);
    assert_eq!(memcached.stat("cmd_set"), 0);

    let mut ws = connect(&url, &[]).await.unwrap();
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::text("version\r\n"),
    )
    .await
    .unwrap();
    let (code, reason, _) = read_close(&mut ws).await;
    assert_eq!(code, CloseCode::Unsupported);
    assert!(reason.contains("binary"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr(), "--max-connections", "2"]);
    let url = bridge.url(&memcached.addr());
    let mut first = connect(&url, &[]).await.unwrap();
    let mut second = connect(&url, &[]).await.unwrap();
    // A reply through each relay proves its upstream connection is open, so the count
    // below cannot still grow by the relays' own connections.
    for relay in [&mut first, &mut second] {
        send(relay, b"version\r\n").await;
        read_until(relay, b"\r\n").await;
    }
    let connections = memcached.stat("total_connections");
    assert_eq!(connect(&url, &[]).await.err(), Some(503));
    // Refused before any upstream connection: only our own `stats` reached memcached.
    assert_eq!(memcached.stat("total_connections"), connections + 1);
    // A place frees up when a relay ends.
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = futures_util::StreamExt::next(&mut first).await {}
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match connect(&url, &[]).await {
            Ok(_) => break,
            Err(503) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(status) => panic!("status {status}"),
        }
    }
    assert!(bridge.metric("memcache_bridge_refusals_total{reason=\"too_many_connections\"}") >= 1);
}
