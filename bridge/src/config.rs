//! The bridge's configuration: command-line flags, the same settings from the environment
//! (`MEMCACHE_BRIDGE_*`) and from a TOML file (`--config`). A flag or variable wins over the
//! file, the file over the built-in defaults in limits.rs. Everything is checked here, once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::error::BridgeError;
use crate::limits;
use crate::policy::{Policy, ADMIN_COMMANDS};
use crate::tls;
use crate::upstream::{Address, Credentials};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};

/// memcache-bridge: relays WebSocket connections from browsers and scripts to the memcached
/// servers it is started with, and to nothing else.
///
/// A client connects to ws://LISTEN/memcached/NAME, where NAME is one of the --upstream
/// servers (percent-encoded as one path segment), and sends memcached text-protocol
/// commands as binary frames.
/// The bridge also serves /healthz, /metrics, /servers and the files of --www.
#[derive(Debug, Parser)]
#[command(name = "memcache-bridge", version, about, long_about)]
pub struct Args {
    /// Address to listen on (IP:PORT) [default: 127.0.0.1:11280]
    #[arg(long, env = "MEMCACHE_BRIDGE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// A memcached server clients may reach, as python-memcached names it: HOST:PORT,
    /// [IPv6]:PORT, inet6:[IPv6]:PORT or unix:/path/to/socket, exactly as clients will name
    /// it in the URL (repeatable; the variable takes a comma-separated list)
    #[arg(
        long,
        env = "MEMCACHE_BRIDGE_UPSTREAM",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub upstream: Vec<String>,

    /// Reach the TCP upstreams over TLS (memcached -Z), verifying their certificates
    /// against --upstream-ca (or the system's CA bundle)
    #[arg(long, env = "MEMCACHE_BRIDGE_UPSTREAM_TLS", value_parser = clap::builder::BoolishValueParser::new())]
    pub upstream_tls: bool,

    /// PEM file of the CA certificates that sign memcached's certificates (with --upstream-tls)
    #[arg(long, env = "MEMCACHE_BRIDGE_UPSTREAM_CA", value_name = "PATH")]
    pub upstream_ca: Option<PathBuf>,

    /// PEM certificate chain the bridge presents to memcached (its ssl_verify_mode), with
    /// --upstream-key
    #[arg(long, env = "MEMCACHE_BRIDGE_UPSTREAM_CERT", value_name = "PATH")]
    pub upstream_cert: Option<PathBuf>,

    /// PEM private key of --upstream-cert
    #[arg(long, env = "MEMCACHE_BRIDGE_UPSTREAM_KEY", value_name = "PATH")]
    pub upstream_key: Option<PathBuf>,

    /// Authenticate to memcached (-Y): the file holds one username:password line, as
    /// memcached's own auth file does. The bridge authenticates every upstream connection
    /// before relaying; clients never see the credentials
    #[arg(long, env = "MEMCACHE_BRIDGE_UPSTREAM_AUTH_FILE", value_name = "PATH")]
    pub upstream_auth_file: Option<PathBuf>,

    /// Serve HTTPS and wss:// with this PEM certificate chain (with --tls-key)
    #[arg(long, env = "MEMCACHE_BRIDGE_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(long, env = "MEMCACHE_BRIDGE_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// A web page origin allowed to open WebSockets, as scheme://host[:port] (repeatable).
    /// The bridge's own origin (for the dashboard it serves) is allowed when reached by IP
    /// address or localhost; list it here when the bridge is reached by a DNS name
    #[arg(
        long,
        env = "MEMCACHE_BRIDGE_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origin: Vec<String>,

    /// Require a token: the file holds one token per line (# starts a comment). Browsers
    /// send it as the subprotocol "token.<TOKEN>" beside "binary", scripts as
    /// "Authorization: Bearer <TOKEN>"
    #[arg(long, env = "MEMCACHE_BRIDGE_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Refuse every command that changes data: storage, delete, incr/decr, touch, gat,
    /// flush_all and the meta writes (ms, md, ma, mg with N/T/R/E)
    #[arg(long, env = "MEMCACHE_BRIDGE_READ_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    pub read_only: bool,

    /// Allow an admin command that is refused by default, as NAME or "NAME SUBCOMMAND"
    /// (repeatable): shutdown, verbosity, slabs, lru_crawler, lru, watch, cache_memlimit,
    /// "stats reset", "stats detail", ...
    #[arg(
        long,
        env = "MEMCACHE_BRIDGE_ALLOW_ADMIN",
        value_name = "COMMAND",
        value_delimiter = ','
    )]
    pub allow_admin: Vec<String>,

    /// Largest WebSocket message accepted, in bytes; a bigger one closes the connection
    /// with code 1009 [default: 2097152]
    #[arg(long, env = "MEMCACHE_BRIDGE_MAX_MESSAGE_SIZE", value_name = "BYTES")]
    pub max_message_size: Option<usize>,

    /// Most WebSocket relays open at once; beyond it a handshake gets HTTP 503 [default: 4096]
    #[arg(long, env = "MEMCACHE_BRIDGE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Most connections (relays and handshakes) one client address may hold; an IPv6 client
    /// counts by its /64. Raise it behind a reverse proxy, where every client has the
    /// proxy's address [default: 512]
    #[arg(
        long,
        env = "MEMCACHE_BRIDGE_MAX_CONNECTIONS_PER_CLIENT",
        value_name = "N"
    )]
    pub max_connections_per_client: Option<usize>,

    /// Most connections the bridge opens to each memcached; beyond it a handshake gets HTTP
    /// 503 [default: half of the maxconns memcached reports in `stats settings` at start,
    /// or 512 if it cannot be asked]
    #[arg(
        long,
        env = "MEMCACHE_BRIDGE_MAX_UPSTREAM_CONNECTIONS",
        value_name = "N"
    )]
    pub max_upstream_connections: Option<usize>,

    /// Close a relay after this many seconds without traffic either way [default: 300]
    #[arg(long, env = "MEMCACHE_BRIDGE_IDLE_TIMEOUT", value_name = "SECS")]
    pub idle_timeout: Option<u64>,

    /// Close a connection that has not completed its HTTP request or WebSocket handshake
    /// in this many seconds [default: 10]
    #[arg(long, env = "MEMCACHE_BRIDGE_HANDSHAKE_TIMEOUT", value_name = "SECS")]
    pub handshake_timeout: Option<u64>,

    /// Give up connecting to memcached after this many seconds [default: 3]
    #[arg(long, env = "MEMCACHE_BRIDGE_CONNECT_TIMEOUT", value_name = "SECS")]
    pub connect_timeout: Option<u64>,

    /// On SIGTERM or SIGINT, let open relays run this many seconds before closing them
    /// [default: 10]
    #[arg(long, env = "MEMCACHE_BRIDGE_SHUTDOWN_GRACE", value_name = "SECS")]
    pub shutdown_grace: Option<u64>,

    /// Serve the files of this directory at / (the dashboard)
    #[arg(long, env = "MEMCACHE_BRIDGE_WWW", value_name = "DIR")]
    pub www: Option<PathBuf>,

    /// Relay threads; each serves its share of the connections [default: the number of CPUs]
    #[arg(long, env = "MEMCACHE_BRIDGE_THREADS", value_name = "N")]
    pub threads: Option<usize>,

    /// Read settings from this TOML file; flags and environment variables override it
    #[arg(long, env = "MEMCACHE_BRIDGE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// The config file: the same settings as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    #[serde(default)]
    upstream: Vec<String>,
    upstream_tls: Option<bool>,
    upstream_ca: Option<PathBuf>,
    upstream_cert: Option<PathBuf>,
    upstream_key: Option<PathBuf>,
    upstream_auth_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    allow_origin: Vec<String>,
    token_file: Option<PathBuf>,
    read_only: Option<bool>,
    #[serde(default)]
    allow_admin: Vec<String>,
    max_message_size: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    max_upstream_connections: Option<usize>,
    idle_timeout: Option<u64>,
    handshake_timeout: Option<u64>,
    connect_timeout: Option<u64>,
    shutdown_grace: Option<u64>,
    www: Option<PathBuf>,
    threads: Option<usize>,
}

/// A token from the token file. Its `Debug` shows nothing, so no log line can print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Token {
        Token(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The names as configured; each parses as an [`Address`].
    pub upstreams: Vec<String>,
    /// With `--upstream-tls`: how to reach the TCP upstreams over TLS.
    pub upstream_tls: Option<Arc<ClientConfig>>,
    /// With `--upstream-auth-file`: what the bridge authenticates to memcached with.
    pub upstream_credentials: Option<Credentials>,
    /// With `--tls-cert` and `--tls-key`: the bridge serves HTTPS and wss://.
    pub tls: Option<Arc<ServerConfig>>,
    /// Normalized origins: lower case, no trailing slash.
    pub allowed_origins: Vec<String>,
    /// Empty when no token is required.
    pub tokens: Vec<Token>,
    pub policy: Policy,
    pub max_message_size: usize,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// None: half of each memcached's `maxconns`, read at start.
    pub max_upstream_connections: Option<usize>,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
    pub shutdown_grace: Duration,
    pub www: Option<PathBuf>,
    pub threads: Option<usize>,
}

impl Config {
    /// Merges flags and environment (already in `args`) with the config file, then checks.
    pub fn load(args: Args) -> Result<Config, BridgeError> {
        let file = match &args.config {
            Some(path) => read_config_file(path)?,
            None => FileConfig::default(),
        };
        let prefer = |cli: Vec<String>, file: Vec<String>| if cli.is_empty() { file } else { cli };
        let listen_text = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| limits::DEFAULT_LISTEN.into());
        let listen = listen_text.parse().map_err(|_| BridgeError::BadListen {
            listen: listen_text.clone(),
        })?;

        let upstreams = prefer(args.upstream, file.upstream);
        if upstreams.is_empty() {
            return Err(BridgeError::NoUpstream);
        }
        let mut addresses = Vec::new();
        for upstream in &upstreams {
            let address = Address::parse(upstream).map_err(|problem| BridgeError::BadUpstream {
                upstream: upstream.clone(),
                problem,
            })?;
            addresses.push(address);
        }
        let upstream_tls = upstream_tls(
            args.upstream_tls || file.upstream_tls.unwrap_or(false),
            args.upstream_ca.or(file.upstream_ca),
            args.upstream_cert.or(file.upstream_cert),
            args.upstream_key.or(file.upstream_key),
            &addresses,
        )?;
        let upstream_credentials = match args.upstream_auth_file.or(file.upstream_auth_file) {
            Some(path) => Some(read_credentials(&path)?),
            None => None,
        };
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(tls::server_config(&cert, &key)?),
            (None, None) => None,
            (Some(_), None) => {
                return Err(BridgeError::BadCombination(
                    "--tls-cert needs --tls-key (the certificate's private key)",
                ))
            }
            (None, Some(_)) => {
                return Err(BridgeError::BadCombination(
                    "--tls-key needs --tls-cert (the certificate chain it belongs to)",
                ))
            }
        };
        let allowed_origins = prefer(args.allow_origin, file.allow_origin)
            .into_iter()
            .map(|origin| normalize_origin(&origin).ok_or(BridgeError::BadOrigin { origin }))
            .collect::<Result<Vec<_>, _>>()?;
        let tokens = match args.token_file.or(file.token_file) {
            Some(path) => read_tokens(&path)?,
            None => Vec::new(),
        };
        let allowed_admin = prefer(args.allow_admin, file.allow_admin);
        for command in &allowed_admin {
            let base = command.split(' ').next().unwrap_or_default();
            if !ADMIN_COMMANDS
                .iter()
                .any(|known| known == command || known.split(' ').next() == Some(base))
            {
                return Err(BridgeError::BadAdminCommand {
                    command: command.clone(),
                    known: ADMIN_COMMANDS.join(", "),
                });
            }
        }
        let positive = |flag: &'static str, value: u64| {
            if value == 0 {
                Err(BridgeError::BadValue {
                    flag,
                    problem: "must be at least 1".into(),
                })
            } else {
                Ok(value)
            }
        };
        let seconds = |flag, cli: Option<u64>, file: Option<u64>, default| {
            positive(flag, cli.or(file).unwrap_or(default)).map(Duration::from_secs)
        };
        let www = args.www.or(file.www);
        if let Some(dir) = &www {
            if !dir.is_dir() {
                return Err(BridgeError::BadWww { path: dir.clone() });
            }
        }
        Ok(Config {
            listen,
            upstreams,
            upstream_tls,
            upstream_credentials,
            tls,
            allowed_origins,
            tokens,
            policy: Policy {
                read_only: args.read_only || file.read_only.unwrap_or(false),
                allowed_admin,
            },
            max_message_size: positive(
                "--max-message-size",
                args.max_message_size
                    .or(file.max_message_size)
                    .unwrap_or(limits::DEFAULT_MAX_MESSAGE_SIZE) as u64,
            )? as usize,
            max_connections: positive(
                "--max-connections",
                args.max_connections
                    .or(file.max_connections)
                    .unwrap_or(limits::DEFAULT_MAX_CONNECTIONS) as u64,
            )? as usize,
            max_connections_per_client: positive(
                "--max-connections-per-client",
                args.max_connections_per_client
                    .or(file.max_connections_per_client)
                    .unwrap_or(limits::DEFAULT_MAX_CONNECTIONS_PER_CLIENT) as u64,
            )? as usize,
            max_upstream_connections: match args
                .max_upstream_connections
                .or(file.max_upstream_connections)
            {
                Some(n) => Some(positive("--max-upstream-connections", n as u64)? as usize),
                None => None,
            },
            idle_timeout: seconds(
                "--idle-timeout",
                args.idle_timeout,
                file.idle_timeout,
                limits::DEFAULT_IDLE_TIMEOUT_SECS,
            )?,
            handshake_timeout: seconds(
                "--handshake-timeout",
                args.handshake_timeout,
                file.handshake_timeout,
                limits::DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            )?,
            connect_timeout: seconds(
                "--connect-timeout",
                args.connect_timeout,
                file.connect_timeout,
                limits::DEFAULT_CONNECT_TIMEOUT_SECS,
            )?,
            shutdown_grace: Duration::from_secs(
                args.shutdown_grace
                    .or(file.shutdown_grace)
                    .unwrap_or(limits::DEFAULT_SHUTDOWN_GRACE_SECS),
            ),
            www,
            threads: match args.threads.or(file.threads) {
                Some(n) => Some(positive("--threads", n as u64)? as usize),
                None => None,
            },
        })
    }
}

fn read_config_file(path: &Path) -> Result<FileConfig, BridgeError> {
    let text = std::fs::read_to_string(path).map_err(|source| BridgeError::ReadFile {
        what: "config file",
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| BridgeError::ConfigFile {
        path: path.into(),
        message: e.to_string(),
    })
}

/// The TLS client configuration, when `--upstream-tls` is on; the other upstream TLS flags
/// only make sense with it, and memcached serves TLS on TCP only.
fn upstream_tls(
    on: bool,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    addresses: &[Address],
) -> Result<Option<Arc<ClientConfig>>, BridgeError> {
    if !on {
        if ca.is_some() || cert.is_some() || key.is_some() {
            return Err(BridgeError::BadCombination(
                "--upstream-ca, --upstream-cert and --upstream-key need --upstream-tls",
            ));
        }
        return Ok(None);
    }
    if addresses.iter().any(|a| matches!(a, Address::Unix(_))) {
        return Err(BridgeError::BadCombination(
            "--upstream-tls with a unix: upstream: memcached serves TLS on TCP only; run a second bridge for the unix socket",
        ));
    }
    for address in addresses {
        if let Address::Tcp { host, .. } = address {
            if host.parse::<std::net::IpAddr>().is_err()
                && ServerName::try_from(host.as_str()).is_err()
            {
                return Err(BridgeError::BadUpstream {
                    upstream: host.clone(),
                    problem: "not a name a TLS certificate can carry",
                });
            }
        }
    }
    let client = match (&cert, &key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(BridgeError::BadCombination(
                "--upstream-cert needs --upstream-key (the certificate's private key)",
            ))
        }
        (None, Some(_)) => {
            return Err(BridgeError::BadCombination(
                "--upstream-key needs --upstream-cert (the certificate chain it belongs to)",
            ))
        }
    };
    tls::client_config(ca.as_deref(), client).map(Some)
}

/// The one `username:password` line of an auth file in memcached's own format (`#` starts a
/// comment). Errors name the line, never its text.
fn read_credentials(path: &Path) -> Result<Credentials, BridgeError> {
    let text = std::fs::read_to_string(path).map_err(|source| BridgeError::ReadFile {
        what: "upstream auth file",
        path: path.into(),
        source,
    })?;
    let bad = |line, problem| BridgeError::BadAuthFile {
        path: path.into(),
        line,
        problem,
    };
    let mut found = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if found.is_some() {
            return Err(bad(
                index + 1,
                "a second entry: the bridge authenticates as one user",
            ));
        }
        let (username, password) = line
            .split_once(':')
            .ok_or_else(|| bad(index + 1, "expected username:password"))?;
        // memcached reads "<username> <password>": neither may hold a space.
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(username) || !printable(password) {
            return Err(bad(
                index + 1,
                "username and password must be non-empty, without spaces or control characters",
            ));
        }
        found = Some(Credentials::new(username.into(), password.into()));
    }
    found.ok_or(BridgeError::NoCredentials { path: path.into() })
}

/// `scheme://host[:port]` in lower case without a trailing slash, or `null`.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if origin == "null" {
        return Some(origin);
    }
    let (scheme, authority) = origin.split_once("://")?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority_ok = !authority.is_empty() && !authority.contains(['/', '?', '#', '@', ' ']);
    (scheme_ok && authority_ok).then_some(origin)
}

/// Characters a token may hold: valid both in a subprotocol name and in a Bearer token.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+".contains(&b)
}

fn read_tokens(path: &Path) -> Result<Vec<Token>, BridgeError> {
    let text = std::fs::read_to_string(path).map_err(|source| BridgeError::ReadFile {
        what: "token file",
        path: path.into(),
        source,
    })?;
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.bytes().all(is_token_byte) {
            return Err(BridgeError::BadToken {
                path: path.into(),
                line: index + 1,
            });
        }
        tokens.push(Token::new(line.as_bytes()));
    }
    if tokens.is_empty() {
        return Err(BridgeError::NoToken { path: path.into() });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        let mut argv = vec!["memcache-bridge"];
        argv.extend_from_slice(list);
        Args::try_parse_from(argv).expect("flags parse")
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize_origin("HTTPS://Dash.Example.com/").as_deref(),
            Some("https://dash.example.com")
        );
        assert_eq!(normalize_origin("null").as_deref(), Some("null"));
        assert_eq!(normalize_origin("dash.example.com"), None);
        assert_eq!(normalize_origin("https://x.com/path"), None);
    }

    #[test]
    fn the_config_file_fills_what_flags_leave_out() {
        let dir = std::env::temp_dir().join(format!("bridge-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bridge.toml");
        std::fs::write(&file, "upstream = [\"127.0.0.1:1\"]\nread_only = true\nidle_timeout = 7\nlisten = \"127.0.0.1:9\"\n").unwrap();
        let path = file.to_str().unwrap();
        let config = Config::load(args(&["--config", path, "--listen", "127.0.0.1:8"])).unwrap();
        assert_eq!(config.upstreams, vec!["127.0.0.1:1".to_string()]);
        assert!(config.policy.read_only);
        assert_eq!(config.idle_timeout, Duration::from_secs(7));
        assert_eq!(config.listen.port(), 8);
        std::fs::write(&file, "upstreams = [\"typo\"]\n").unwrap();
        assert!(matches!(
            Config::load(args(&["--config", path])),
            Err(BridgeError::ConfigFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_settings_are_refused_at_start() {
        assert!(matches!(
            Config::load(args(&[])),
            Err(BridgeError::NoUpstream)
        ));
        assert!(matches!(
            Config::load(args(&[
                "--upstream",
                "127.0.0.1:1",
                "--allow-admin",
                "flush_everything"
            ])),
            Err(BridgeError::BadAdminCommand { .. })
        ));
        assert!(matches!(
            Config::load(args(&["--upstream", "127.0.0.1:1", "--idle-timeout", "0"])),
            Err(BridgeError::BadValue { .. })
        ));
    }

    #[test]
    fn token_files_hold_subprotocol_safe_tokens() {
        let dir = std::env::temp_dir().join(format!("bridge-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "# ops\nabc-123_x.y~z+\n\n").unwrap();
        assert_eq!(
            read_tokens(&file).unwrap(),
            vec![Token::new(&b"abc-123_x.y~z+"[..])]
        );
        assert_eq!(
            format!("{:?}", read_tokens(&file).unwrap()),
            "[Token(hidden)]"
        );
        std::fs::write(&file, "has/slash\n").unwrap();
        assert!(matches!(
            read_tokens(&file),
            Err(BridgeError::BadToken { line: 1, .. })
        ));
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(matches!(
            read_tokens(&file),
            Err(BridgeError::NoToken { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
