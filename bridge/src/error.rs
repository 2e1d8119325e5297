//! The bridge's error type: what went wrong at start-up or while serving, with the data an
//! operator needs to fix it (the flag, the file, the line). Tokens never appear in it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("no upstream configured: give at least one --upstream HOST:PORT (or MEMCACHE_BRIDGE_UPSTREAM, or upstream = [...] in the config file)")]
    NoUpstream,
    #[error("bad upstream {upstream:?}: {problem}")]
    BadUpstream {
        upstream: String,
        problem: &'static str,
    },
    #[error("bad --allow-origin {origin:?}: expected scheme://host[:port] (no path) or null")]
    BadOrigin { origin: String },
    #[error("bad --allow-admin {command:?}: known admin commands are {known}")]
    BadAdminCommand { command: String, known: String },
    #[error("bad --listen {listen:?}: expected IP:PORT")]
    BadListen { listen: String },
    #[error("bad value for {flag}: {problem}")]
    BadValue { flag: &'static str, problem: String },
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ConfigFile { path: PathBuf, message: String },
    #[error("token file {path} line {line}: tokens may only hold letters, digits and - . _ ~ + (so browsers can send them as a WebSocket subprotocol)")]
    BadToken { path: PathBuf, line: usize },
    #[error("token file {path} holds no token")]
    NoToken { path: PathBuf },
    #[error("--www {path} is not a directory")]
    BadWww { path: PathBuf },
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
    #[error("{flag} {path}: {problem}")]
    BadTlsFile {
        flag: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("{cert_flag} and {key_flag} do not make a key pair: {problem}")]
    TlsKeyPair {
        cert_flag: &'static str,
        key_flag: &'static str,
        problem: String,
    },
    #[error("--upstream-tls without --upstream-ca: no system CA bundle found (SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt, ...); give --upstream-ca PATH")]
    NoSystemCa,
    #[error("{0}")]
    BadCombination(&'static str),
    #[error("upstream auth file {path} line {line}: {problem}")]
    BadAuthFile {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },
    #[error("upstream auth file {path} holds no username:password line")]
    NoCredentials { path: PathBuf },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}
