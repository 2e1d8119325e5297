//! The plain HTTP side: health, metrics, the server list the dashboard reads, static files.

mod support;

use support::{Bridge, Memcached};

#[test]
fn health_servers_and_metrics_answer() {
    let memcached = Memcached::start();
    let bridge = Bridge::start(&["--upstream", &memcached.addr(), "--upstream", "127.0.0.1:1"]);
    assert_eq!(bridge.get("/healthz"), (200, "ok\n".to_string()));
    let (status, body) = bridge.get("/servers");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["servers"],
        serde_json::json!([memcached.addr(), "127.0.0.1:1"])
    );
    assert_eq!(json["readOnly"], false);
    assert_eq!(json["tokenRequired"], false);
    let (status, metrics) = bridge.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "memcache_bridge_connections_open 0",
        "memcache_bridge_connections_total 0",
        "memcache_bridge_client_to_upstream_bytes_total 0",
        "memcache_bridge_upstream_to_client_bytes_total 0",
        "memcache_bridge_refusals_total{reason=\"read_only\"} 0",
        "memcache_bridge_upstream_connect_errors_total 0",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    // The relay path without an upgrade is told to upgrade.
    assert_eq!(
        bridge.get(&format!("/memcached/{}", memcached.addr())).0,
        426
    );
    assert_eq!(bridge.get("/index.html").0, 404);
}

#[test]
fn static_files_are_served_from_www_and_nothing_outside_it() {
    let memcached = Memcached::start();
    let root = std::env::temp_dir().join(format!("bridge-www-{}", std::process::id()));
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>dashboard</h1>").unwrap();
    std::fs::write(root.join("pkg/engine.wasm"), b"\0asm").unwrap();
    std::fs::write(
        root.parent()
            .unwrap()
            .join(format!("bridge-secret-{}", std::process::id())),
        "secret",
    )
    .unwrap();
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--www",
        root.to_str().unwrap(),
    ]);
    assert_eq!(bridge.get("/"), (200, "<h1>dashboard</h1>".to_string()));
    assert_eq!(bridge.get("/pkg/engine.wasm").0, 200);
    assert_eq!(bridge.get("/missing.js").0, 404);
    let secret = format!("bridge-secret-{}", std::process::id());
    assert_eq!(bridge.get(&format!("/../{secret}")).0, 404);
    assert_eq!(bridge.get(&format!("/%2e%2e/{secret}")).0, 404);
    std::fs::remove_file(root.parent().unwrap().join(secret)).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_configuration_is_refused_at_start_with_a_clear_message() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_memcache-bridge"))
        .args(["--listen", "127.0.0.1:0", "--upstream", "no-port"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("bad upstream \"no-port\""), "{message}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_memcache-bridge"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--upstream",
        "--allow-origin",
        "--token-file",
        "--read-only",
        "--allow-admin",
        "--max-message-size",
        "--max-connections",
        "--idle-timeout",
        "--handshake-timeout",
        "--connect-timeout",
        "--shutdown-grace",
        "--www",
        "--threads",
        "--config",
    ] {
        assert!(help.contains(flag), "--help does not explain {flag}");
    }
}
