//! The one error type of the core. Every variant says what happened and carries what a
//! person needs to act on it; `code()` is the stable string the JavaScript layer exposes
//! as `error.code`.

/// Which key rule a bad key broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    Empty,
    TooLong,
    ControlOrSpace,
}

impl std::fmt::Display for KeyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyRule::Empty => "a key must not be empty",
            KeyRule::TooLong => "a key (with its prefix) must be at most 250 bytes",
            KeyRule::ControlOrSpace => "a key must not contain control characters or spaces",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("bad key {key:?}: {rule}")]
    BadKey { key: String, rule: KeyRule },

    #[error("value for key {key:?} is {size} bytes, over the item limit of {limit} bytes")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },

    #[error("value cannot be serialized: {0}")]
    NotSerializable(String),

    #[error("value with flags {flags} cannot be decoded: {reason}")]
    Decode { flags: u32, reason: String },

    /// The server sent bytes that are not the memcached text protocol (or not the
    /// response the pending request expects). The connection must be dropped.
    #[error("malformed response from server: {0}")]
    Protocol(String),

    /// memcached answered `ERROR` (it did not know the command).
    #[error("server answered ERROR (unknown command)")]
    UnknownCommand,

    /// memcached answered `CLIENT_ERROR <text>`.
    #[error("server rejected the request: CLIENT_ERROR {0}")]
    ClientError(String),

    /// memcached answered `SERVER_ERROR <text>` (out of memory, object too large, ...).
    #[error("server failed: SERVER_ERROR {0}")]
    ServerError(String),

    /// No live server is left for the key (all of them dead, or none configured); `key`
    /// is empty for a request that names servers rather than a key (stats, metadump).
    #[error("no server available{}", for_key(key))]
    NoServer { key: String },

    #[error("bad argument: {0}")]
    BadArgument(String),

    /// memcached would not run an `lru_crawler metadump`: its whole line, such as `BUSY
    /// currently processing crawler request`, `BADCLASS invalid class id` or `ERROR cannot
    /// pipeline other commands before metadump`.
    #[error("server refused the metadump: {0}")]
    MetadumpRefused(String),
}

impl Error {
    /// The stable code of this error, documented in README.md.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadKey { .. } => "BAD_KEY",
            Error::ValueTooLarge { .. } => "VALUE_TOO_LARGE",
            Error::NotSerializable(_) => "NOT_SERIALIZABLE",
            Error::Decode { .. } => "DECODE_ERROR",
            Error::Protocol(_) => "PROTOCOL_ERROR",
            Error::UnknownCommand => "UNKNOWN_COMMAND",
            Error::ClientError(_) => "CLIENT_ERROR",
            Error::ServerError(_) => "SERVER_ERROR",
            Error::NoServer { .. } => "NO_SERVER",
            Error::BadArgument(_) => "BAD_ARGUMENT",
            Error::MetadumpRefused(_) => "METADUMP_REFUSED",
        }
    }

    /// A key as text for error messages: UTF-8 where it is, escaped where not.
    pub fn key_text(key: &[u8]) -> String {
        String::from_utf8(key.to_vec()).unwrap_or_else(|_| key.escape_ascii().to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn for_key(key: &str) -> String {
    if key.is_empty() {
        ": every server asked for is marked dead".into()
    } else {
        format!(" for key {key:?}")
    }
}
