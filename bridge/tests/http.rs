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

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[test]
fn every_answer_carries_the_security_headers_and_the_dashboard_its_csp() {
    let memcached = Memcached::start();
    let root = std::env::temp_dir().join(format!("bridge-www-headers-{}", std::process::id()));
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>dashboard</h1>").unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    std::fs::write(root.join(".git/config"), "[core]").unwrap();
    std::os::unix::fs::symlink(root.join(".env"), root.join("env-link")).unwrap();
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--www",
        root.to_str().unwrap(),
        "--allow-origin",
        "https://dash.example.com",
    ]);
    let relay = format!("/memcached/{}", memcached.addr());
    let upgrade = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    let none: &[(&str, &str)] = &[];
    for (path, headers, status) in [
        ("/", none, 200),
        ("/healthz", none, 200),
        ("/missing", none, 404),
        (relay.as_str(), none, 426),
        ("/memcached/127.0.0.1:1", &upgrade[..], 403),
        ("/memcached/", &upgrade[..], 404),
    ] {
        let (got, head, _) = bridge.request(path, headers);
        assert_eq!(got, status, "{path}");
        assert_eq!(
            header(&head, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(header(&head, "x-frame-options"), Some("deny"), "{path}");
        assert_eq!(
            header(&head, "referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        let csp = header(&head, "content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "connect-src 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
    }
    // Dotfiles are never served: not by name, not in a dot-directory, not through a symlink.
    for path in ["/.env", "/.git/config", "/%2eenv", "/env-link"] {
        assert_eq!(bridge.request(path, &[]).0, 404, "{path}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn static_files_are_compressed_by_accept_encoding_and_revalidated_by_etag() {
    let memcached = Memcached::start();
    let root = std::env::temp_dir().join(format!("bridge-www-gzip-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let script = "export function hello() { return 'hello'; }\n".repeat(500);
    std::fs::write(root.join("app.js"), &script).unwrap();
    let wasm: Vec<u8> = b"\0asm\x01\0\0\0"
        .iter()
        .copied()
        .cycle()
        .take(20_000)
        .collect();
    std::fs::write(root.join("engine.wasm"), &wasm).unwrap();
    let bridge = Bridge::start(&[
        "--upstream",
        &memcached.addr(),
        "--www",
        root.to_str().unwrap(),
    ]);

    let (status, head, body) = bridge.request("/app.js", &[("accept-encoding", "gzip, br")]);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-encoding"), Some("br"));
    assert_eq!(header(&head, "vary"), Some("accept-encoding"));
    assert_eq!(header(&head, "cache-control"), Some("no-cache"));
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut &body[..], &mut plain).unwrap();
    assert_eq!(plain, script.as_bytes());
    assert!(body.len() < script.len() / 10);

    let (_, head, body) = bridge.request("/app.js", &[("accept-encoding", "gzip")]);
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert_eq!(plain, script.as_bytes());

    let (_, head, body) = bridge.request("/app.js", &[]);
    assert_eq!(header(&head, "content-encoding"), None);
    assert_eq!(body, script.as_bytes());

    // A reload with the ETag gets a 304 and no body.
    let etag = header(&head, "etag").unwrap().to_string();
    let (status, _, body) = bridge.request("/app.js", &[("if-none-match", &etag)]);
    assert_eq!(status, 304);
    assert!(body.is_empty());
    // An edited file is a new version at once.
    std::fs::write(root.join("app.js"), "export {};\n").unwrap();
    let (status, _, body) = bridge.request("/app.js", &[("if-none-match", &etag)]);
    assert_eq!(status, 200);
    assert_eq!(body, b"export {};\n");

    let (_, head, body) = bridge.request("/engine.wasm", &[("accept-encoding", "br")]);
    assert_eq!(header(&head, "content-type"), Some("application/wasm"));
    assert_eq!(header(&head, "content-encoding"), Some("br"));
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut &body[..], &mut plain).unwrap();
    assert_eq!(plain, wasm);
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
        "--max-connections-per-client",
        "--max-upstream-connections",
        "--idle-timeout",
        "--handshake-timeout",
        "--connect-timeout",
        "--shutdown-grace",
        "--www",
        "--threads",
        "--config",
        "--upstream-tls",
        "--upstream-ca",
        "--upstream-cert",
        "--upstream-key",
        "--upstream-auth-file",
        "--tls-cert",
        "--tls-key",
    ] {
        assert!(help.contains(flag), "--help does not explain {flag}");
    }
}
