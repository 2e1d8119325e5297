//! memcached's text-protocol authentication (`-Y authfile`): the first request on every
//! new connection is `set <key> 0 <exptime> <len>` whose data is `<username> <password>`,
//! and memcached answers STORED when the pair is in its file, `CLIENT_ERROR
//! authentication failure` when not (the connection stays open). Until that reply the
//! engine writes nothing else; this module holds the credentials and reads that one line.

use crate::error::{Error, Result};

/// The key of the authentication `set`: memcached -Y ignores it.
const AUTH_KEY: &str = "auth";

/// The exptime of the authentication `set`. memcached -Y never stores the item; a server
/// without -Y would, so it is written already expired there and the credentials can never
/// be read back from the cache.
const AUTH_EXPTIME: i32 = -1;

/// The longest reply line read while authenticating: memcached's answers are short, so a
/// longer line without its CRLF is not memcached (and is not buffered without bound).
pub const MAX_AUTH_REPLY: usize = 1024;

/// A username and password for one server. Debug never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// Neither may hold a space (memcached splits the data into space-separated tokens and
    /// compares the first two) or a control character (the data is one line). Errors
    /// never repeat them.
    pub fn new(username: &str, password: &str) -> Result<Self> {
        if username.is_empty() || username.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::BadArgument(
                "auth.username must be non-empty, without spaces or control characters".into(),
            ));
        }
        if password.is_empty() || password.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::BadArgument(
                "auth.password must be non-empty, without spaces, line breaks or control characters (memcached -Y compares space-separated tokens)".into(),
            ));
        }
        Ok(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    /// The bytes of the authentication request.
    pub fn request(&self) -> Vec<u8> {
        let data_len = self.username.len() + 1 + self.password.len();
        let mut out = format!("set {AUTH_KEY} 0 {AUTH_EXPTIME} {data_len}\r\n").into_bytes();
        out.extend_from_slice(self.username.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.password.as_bytes());
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// What the server answered to the authentication request.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthReply {
    /// Not a whole line yet.
    Partial,
    /// STORED: the connection is authenticated; `rest` bytes followed the line.
    Accepted { rest: usize },
    /// Anything else: the server's line (without the CRLF) says why.
    Refused(String),
}

/// Reads the reply from what arrived so far (`buffer` keeps the bytes of earlier chunks).
pub fn read_reply(buffer: &mut Vec<u8>, chunk: &[u8]) -> Result<AuthReply> {
    let before = buffer.len();
    buffer.extend_from_slice(chunk);
    let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") else {
        if buffer.len() > MAX_AUTH_REPLY {
            return Err(Error::Protocol(format!(
                "no line end in the first {MAX_AUTH_REPLY} bytes of the reply to authentication"
            )));
        }
        return Ok(AuthReply::Partial);
    };
    let line = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let consumed = end + 2 - before;
    buffer.clear();
    if line == "STORED" {
        Ok(AuthReply::Accepted {
            rest: chunk.len() - consumed,
        })
    } else {
        Ok(AuthReply::Refused(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_one_set_whose_data_is_user_space_password() {
        let c = Credentials::new("alice", "pa:ss").unwrap();
        assert_eq!(c.request(), b"set auth 0 -1 11\r\nalice pa:ss\r\n");
    }

    #[test]
    fn debug_never_shows_the_credentials() {
        let c = Credentials::new("alice", "s3cret").unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn bad_credentials_are_refused_without_being_repeated() {
        for (u, p) in [
            ("", "Zq9secret"),
            ("Qz7 user", "Zq9secret"),
            ("Qz7user", ""),
            ("Qz7user", "Zq9 secret"),
            ("Qz7user", "Zq9\r\nsecret"),
            ("Qz7\nuser", "Zq9secret"),
        ] {
            let e = Credentials::new(u, p).unwrap_err();
            assert_eq!(e.code(), "BAD_ARGUMENT");
            let text = e.to_string();
            assert!(!text.contains("Qz7") && !text.contains("Zq9"), "{text}");
        }
    }

    #[test]
    fn the_reply_is_read_across_chunks_at_any_split() {
        for reply in [
            &b"STORED\r\n"[..],
            b"CLIENT_ERROR authentication failure\r\n",
        ] {
            for split in 0..=reply.len() {
                let mut buffer = Vec::new();
                let first = read_reply(&mut buffer, &reply[..split]).unwrap();
                let result = if split == reply.len() {
                    first
                } else {
                    assert_eq!(first, AuthReply::Partial);
                    read_reply(&mut buffer, &reply[split..]).unwrap()
                };
                match result {
                    AuthReply::Accepted { rest } => {
                        assert_eq!(rest, 0);
                        assert!(reply.starts_with(b"STORED"));
                    }
                    AuthReply::Refused(line) => {
                        assert_eq!(line, "CLIENT_ERROR authentication failure")
                    }
                    AuthReply::Partial => panic!("partial at split {split}"),
                }
            }
        }
    }

    #[test]
    fn bytes_after_the_reply_are_counted() {
        let mut buffer = Vec::new();
        assert_eq!(read_reply(&mut buffer, b"STO").unwrap(), AuthReply::Partial);
        assert_eq!(
            read_reply(&mut buffer, b"RED\r\nEND\r\n").unwrap(),
            AuthReply::Accepted { rest: 5 }
        );
    }

    #[test]
    fn an_endless_line_is_a_protocol_error() {
        let mut buffer = Vec::new();
        let long = vec![b'x'; MAX_AUTH_REPLY + 1];
        assert_eq!(
            read_reply(&mut buffer, &long).unwrap_err().code(),
            "PROTOCOL_ERROR"
        );
    }
}
