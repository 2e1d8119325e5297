//! Upstreams named as python-memcached names them, against a real memcached: a unix socket
//! (`unix:/path`), IPv6 (`[::1]:PORT`, `inet6:[::1]:PORT`), each reached through the URL
//! path /servers gives for it; and the per-upstream cap read from memcached's `maxconns` for
//! a unix socket, IPv6, and TLS with authentication.

mod support;

use support::{connect, pki, read_until, send, temp_path, Bridge, Launch, Memcached};

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The URL path /servers gives for `name`.
fn relay_path(bridge: &Bridge, name: &str) -> String {
    let (status, body) = bridge.get("/servers");
    assert_eq!(status, 200);
    let servers: serde_json::Value = serde_json::from_str(&body).unwrap();
    servers["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {body}"))["path"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn round_trip(bridge: &Bridge, path: &str, key: &str) {
    let url = format!("ws://{}{path}", bridge.addr);
    let mut ws = connect(&url, &[]).await.unwrap();
    let request = format!("set {key} 0 0 2\r\nok\r\nget {key}\r\n");
    send(&mut ws, request.as_bytes()).await;
    let expected = format!("STORED\r\nVALUE {key} 0 2\r\nok\r\nEND\r\n");
    assert_eq!(
        String::from_utf8_lossy(&read_until(&mut ws, b"END\r\n").await),
        expected,
        "{path}"
    );
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_and_ipv6_upstreams_are_relayed_at_the_paths_servers_gives() {
    let socket = temp_path("memcached.sock");
    let local = Memcached::launch(Launch {
        unix: Some(socket.clone()),
        ..Launch::default()
    });
    let v6 = Memcached::launch(Launch {
        ipv6: true,
        ..Launch::default()
    });
    let unix_name = local.addr();
    assert_eq!(unix_name, format!("unix:{}", socket.display()));
    let v6_name = v6.addr();
    let inet6_name = format!("inet6:{v6_name}");
    let bridge = Bridge::start(&[
        "--upstream",
        &unix_name,
        "--upstream",
        &v6_name,
        "--upstream",
        &inet6_name,
    ]);
    let unix_path = relay_path(&bridge, &unix_name);
    assert_eq!(
        unix_path,
        format!(
            "/memcached/unix:{}",
            socket.display().to_string().replace('/', "%2F")
        )
    );
    round_trip(&bridge, &unix_path, "over-unix").await;
    assert_eq!(
        local.direct(b"get over-unix\r\n", b"END\r\n"),
        b"VALUE over-unix 0 2\r\nok\r\nEND\r\n"
    );
    let v6_path = relay_path(&bridge, &v6_name);
    assert_eq!(v6_path, format!("/memcached/%5B::1%5D:{}", v6.port));
    round_trip(&bridge, &v6_path, "over-ipv6").await;
    round_trip(&bridge, &relay_path(&bridge, &inet6_name), "over-inet6").await;
    // Any percent-encoding of the name works (JavaScript's encodeURIComponent, or none for
    // the brackets); an unescaped / does not, so no path names two things.
    let encoded = format!(
        "/memcached/{}",
        v6_name
            .replace('[', "%5B")
            .replace(']', "%5D")
            .replace(':', "%3A")
    );
    round_trip(&bridge, &encoded, "encoded").await;
    round_trip(&bridge, &format!("/memcached/{v6_name}"), "brackets").await;
    let unescaped = format!("ws://{}/memcached/{unix_name}", bridge.addr);
    assert_eq!(connect(&unescaped, &[]).await.err(), Some(404));
    assert_eq!(v6.stat("curr_items"), 4);
    let (_, servers) = bridge.get("/servers");
    assert!(
        servers.contains("\"transport\":\"unix\"") && servers.contains("\"transport\":\"tcp\""),
        "{servers}"
    );
}

/// Opens relays until the bridge answers 503; returns how many it opened (each did a round
/// trip, so each holds a memcached connection).
async fn relays_until_busy(bridge: &Bridge, name: &str, most: usize) -> usize {
    let url = format!("ws://{}{}", bridge.addr, relay_path(bridge, name));
    let mut open = Vec::new();
    loop {
        match connect(&url, &[]).await {
            Ok(mut ws) => {
                send(&mut ws, b"version\r\n").await;
                let reply = read_until(&mut ws, b"\r\n").await;
                assert!(
                    reply.starts_with(b"VERSION "),
                    "{name} relay {}: {:?}",
                    open.len(),
                    String::from_utf8_lossy(&reply)
                );
                open.push(ws);
                assert!(open.len() <= most, "{name}: no cap after {most} relays");
            }
            Err(status) => {
                assert_eq!(status, 503, "{name}");
                return open.len();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_upstream_cap_is_read_from_unix_ipv6_and_tls_authenticated_memcached() {
    let few = vec!["-c".to_string(), "64".to_string()];
    let local = Memcached::launch(Launch {
        unix: Some(temp_path("capped.sock")),
        extra: few.clone(),
        ..Launch::default()
    });
    let v6 = Memcached::launch(Launch {
        ipv6: true,
        extra: few.clone(),
        ..Launch::default()
    });
    let secure = Memcached::launch(Launch {
        tls: true,
        auth: vec![("bridge", "cap-test-password")],
        extra: few,
        ..Launch::default()
    });
    let auth_file = temp_path("cap.auth");
    std::fs::write(&auth_file, "bridge:cap-test-password\n").unwrap();
    let plain = Bridge::start(&["--upstream", &local.addr(), "--upstream", &v6.addr()]);
    assert_eq!(relays_until_busy(&plain, &local.addr(), 32).await, 32);
    assert_eq!(relays_until_busy(&plain, &v6.addr(), 32).await, 32);
    let tls = Bridge::start(&[
        "--upstream",
        &secure.addr(),
        "--upstream-tls",
        "--upstream-ca",
        path(&pki().ca),
        "--upstream-auth-file",
        path(&auth_file),
    ]);
    assert_eq!(relays_until_busy(&tls, &secure.addr(), 32).await, 32);
}
