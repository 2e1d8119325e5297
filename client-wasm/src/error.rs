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

    /// The connection to a server could not be made or broke; the text says how (and, for
    /// TLS or a bridge, which layer).
    #[error("{0}")]
    Connection(String),

    /// A request got no reply within the client's `timeout`, or a connection was not made
    /// within `connectTimeout`: the connection was dropped.
    #[error("{0}")]
    Timeout(String),

    /// memcached answered NOT_STORED, EXISTS or NOT_FOUND to one key of a set_multi.
    #[error("memcached answered {reply}: the value was not stored")]
    NotStored { reply: &'static str },

    /// A memcache-bridge refused the WebSocket (Origin, token, or its policy); not a dead
    /// server: the next call asks again.
    #[error("{0}")]
    BridgeRefused(String),

    /// memcached (-Y) refused the client's credentials on a new connection; the text is
    /// the server and its reply, never the credentials.
    #[error("{0}")]
    AuthFailed(String),

    /// The client was made with `behindProxy`: the proxy (twemproxy) does not relay this
    /// command (it would close the connection), so it was not sent.
    #[error("{0}")]
    NotRelayed(String),
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
            Error::Connection(_) => "CONNECTION_ERROR",
            Error::Timeout(_) => "TIMEOUT",
            Error::NotStored { .. } => "NOT_STORED",
            Error::BridgeRefused(_) => "BRIDGE_REFUSED",
            Error::AuthFailed(_) => "AUTH_FAILED",
            Error::NotRelayed(_) => "NOT_RELAYED",
        }
    }

    /// The error's number on the binding's wire: its position in [`Error::CODES`].
    pub fn wire_code(&self) -> u8 {
        match self {
            Error::BadKey { .. } => 0,
            Error::ValueTooLarge { .. } => 1,
            Error::NotSerializable(_) => 2,
            Error::Decode { .. } => 3,
            Error::Protocol(_) => 4,
            Error::UnknownCommand => 5,
            Error::ClientError(_) => 6,
            Error::ServerError(_) => 7,
            Error::NoServer { .. } => 8,
            Error::BadArgument(_) => 9,
            Error::MetadumpRefused(_) => 10,
            Error::Connection(_) => 11,
            Error::Timeout(_) => 12,
            Error::NotStored { .. } => 13,
            Error::BridgeRefused(_) => 14,
            Error::AuthFailed(_) => 15,
            Error::NotRelayed(_) => 16,
        }
    }

    /// Every code, in wire order: the table the JavaScript side is generated from.
    pub const CODES: [&'static str; 17] = [
        "BAD_KEY",
        "VALUE_TOO_LARGE",
        "NOT_SERIALIZABLE",
        "DECODE_ERROR",
        "PROTOCOL_ERROR",
        "UNKNOWN_COMMAND",
        "CLIENT_ERROR",
        "SERVER_ERROR",
        "NO_SERVER",
        "BAD_ARGUMENT",
        "METADUMP_REFUSED",
        "CONNECTION_ERROR",
        "TIMEOUT",
        "NOT_STORED",
        "BRIDGE_REFUSED",
        "AUTH_FAILED",
        "NOT_RELAYED",
    ];

    /// The key this error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::BadKey { key, .. } | Error::ValueTooLarge { key, .. } => Some(key),
            Error::NoServer { key } if !key.is_empty() => Some(key),
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_index_the_code_table() {
        let samples = [
            Error::BadKey {
                key: "k".into(),
                rule: KeyRule::Empty,
            },
            Error::ValueTooLarge {
                key: "k".into(),
                size: 2,
                limit: 1,
            },
            Error::NotSerializable("x".into()),
            Error::Decode {
                flags: 1,
                reason: "x".into(),
            },
            Error::Protocol("x".into()),
            Error::UnknownCommand,
            Error::ClientError("x".into()),
            Error::ServerError("x".into()),
            Error::NoServer { key: "k".into() },
            Error::BadArgument("x".into()),
            Error::MetadumpRefused("x".into()),
            Error::Connection("x".into()),
            Error::Timeout("x".into()),
            Error::NotStored {
                reply: "NOT_STORED",
            },
            Error::BridgeRefused("x".into()),
            Error::AuthFailed("x".into()),
            Error::NotRelayed("x".into()),
        ];
        assert_eq!(samples.len(), Error::CODES.len());
        for (i, error) in samples.iter().enumerate() {
            assert_eq!(usize::from(error.wire_code()), i);
            assert_eq!(Error::CODES[i], error.code());
        }
    }
}
