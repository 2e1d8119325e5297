//! Who may open a relay: the checks on a WebSocket handshake request, as pure functions of
//! its path and headers, made before any upstream connection is attempted. The upstream must
//! be configured, the Origin allowed, the token right, and the subprotocol one we speak.

use http::header::{AUTHORIZATION, HOST, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

use crate::config::{normalize_origin, Token};

/// The path prefix of relays: `/memcached/<name>`, the name percent-encoded as one segment.
pub const RELAY_PREFIX: &str = "/memcached/";

/// The subprotocol entry that carries a token from a browser: `token.<TOKEN>`.
pub const TOKEN_PROTOCOL_PREFIX: &str = "token.";

/// The one subprotocol the bridge speaks (raw bytes in binary frames, as websockify's).
pub const BINARY_PROTOCOL: &str = "binary";

/// What the bridge allows, taken from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub upstreams: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub tokens: Vec<Token>,
}

/// An accepted handshake: which upstream to open and which subprotocol to answer with.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub upstream: String,
    pub protocol: Option<&'static str>,
}

/// Why a handshake was refused; each maps to an HTTP status and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    NotFound,
    UnknownUpstream,
    BadOrigin,
    MissingToken,
    WrongToken,
    BadSubprotocol,
}

impl HandshakeRefusal {
    pub fn status(self) -> StatusCode {
        match self {
            HandshakeRefusal::NotFound => StatusCode::NOT_FOUND,
            HandshakeRefusal::UnknownUpstream | HandshakeRefusal::BadOrigin => {
                StatusCode::FORBIDDEN
            }
            HandshakeRefusal::MissingToken | HandshakeRefusal::WrongToken => {
                StatusCode::UNAUTHORIZED
            }
            HandshakeRefusal::BadSubprotocol => StatusCode::BAD_REQUEST,
        }
    }

    pub fn metric_label(self) -> &'static str {
        match self {
            HandshakeRefusal::NotFound => "not_found",
            HandshakeRefusal::UnknownUpstream => "unknown_upstream",
            HandshakeRefusal::BadOrigin => "bad_origin",
            HandshakeRefusal::MissingToken => "missing_token",
            HandshakeRefusal::WrongToken => "wrong_token",
            HandshakeRefusal::BadSubprotocol => "bad_subprotocol",
        }
    }

    /// The close code a browser gets instead of the HTTP status (a page cannot read a
    /// refused handshake's status): 4000 + the status, for the refusals a page can act on.
    pub fn close_code(self) -> Option<u16> {
        match self {
            HandshakeRefusal::BadOrigin => Some(4403),
            HandshakeRefusal::MissingToken | HandshakeRefusal::WrongToken => Some(4401),
            _ => None,
        }
    }

    /// The close reason beside [`HandshakeRefusal::close_code`]: at most 123 bytes, and it
    /// names what was refused (Origin or token) so a client can tell the person.
    pub fn close_reason(self) -> &'static str {
        match self {
            HandshakeRefusal::BadOrigin => {
                "Origin refused: this page's origin is not allowed (bridge flag --allow-origin)"
            }
            HandshakeRefusal::MissingToken => {
                "token refused: a token is required (subprotocol token.<TOKEN> beside binary)"
            }
            HandshakeRefusal::WrongToken => "token refused: the token is not valid",
            _ => "refused",
        }
    }

    /// The response body: says what is wrong without echoing anything the client sent.
    pub fn message(self) -> &'static str {
        match self {
            HandshakeRefusal::NotFound => "relays live at /memcached/HOST:PORT\n",
            HandshakeRefusal::UnknownUpstream => "this upstream is not one the bridge relays to (see /servers)\n",
            HandshakeRefusal::BadOrigin => "this page's origin is not allowed to use the bridge\n",
            HandshakeRefusal::MissingToken => {
                "a token is required: subprotocol token.<TOKEN> beside binary, or Authorization: Bearer <TOKEN>\n"
            }
            HandshakeRefusal::WrongToken => "the token is not valid\n",
            HandshakeRefusal::BadSubprotocol => "the bridge speaks only the \"binary\" subprotocol; offer it\n",
        }
    }
}

impl Rules {
    /// Checks a handshake in the order that leaks least: path, upstream, origin, token, protocol.
    pub fn check(&self, path: &str, headers: &HeaderMap) -> Result<Accepted, HandshakeRefusal> {
        let upstream = upstream_from_path(path).ok_or(HandshakeRefusal::NotFound)?;
        // Compared as text with the configured list: a client's name is never resolved, so
        // no name the client picks can point the bridge anywhere else.
        if !self.upstreams.contains(&upstream) {
            return Err(HandshakeRefusal::UnknownUpstream);
        }
        let origin = match headers.get(ORIGIN) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| HandshakeRefusal::BadOrigin)?),
        };
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if !origin_allowed(origin, host, &self.allowed_origins) {
            return Err(HandshakeRefusal::BadOrigin);
        }
        let offered = offered_protocols(headers);
        let token_entry = offered
            .iter()
            .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX));
        if !self.tokens.is_empty() {
            let bearer = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim);
            let presented = token_entry
                .or(bearer)
                .ok_or(HandshakeRefusal::MissingToken)?;
            if !token_matches(presented.as_bytes(), &self.tokens) {
                return Err(HandshakeRefusal::WrongToken);
            }
        }
        let protocols: Vec<&str> = offered
            .iter()
            .copied()
            .filter(|p| !p.starts_with(TOKEN_PROTOCOL_PREFIX))
            .collect();
        let protocol = if protocols.is_empty() && token_entry.is_none() {
            None
        } else if protocols.contains(&BINARY_PROTOCOL) {
            // Browsers fail a handshake that offered subprotocols and got none back.
            Some(BINARY_PROTOCOL)
        } else {
            return Err(HandshakeRefusal::BadSubprotocol);
        };
        Ok(Accepted { upstream, protocol })
    }
}

/// `/memcached/127.0.0.1%3A11211` -> `127.0.0.1:11211`, `/memcached/unix:%2Frun%2Fm.sock`
/// -> `unix:/run/m.sock`; `None` for any other path shape. The name is one path segment:
/// a `/` in it (a unix socket's path) must be escaped, so no path means two things.
fn upstream_from_path(path: &str) -> Option<String> {
    let raw = path.strip_prefix(RELAY_PREFIX)?;
    if raw.contains('/') {
        return None;
    }
    let decoded = percent_decode(raw)?;
    (!decoded.is_empty()).then_some(decoded)
}

/// Decodes `%XX` escapes of a URL path; `None` for a broken escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// All subprotocol entries offered, over every `Sec-WebSocket-Protocol` header.
fn offered_protocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Compares with every configured token, each in constant time, and never stops early, so
/// timing tells neither which token nor how much of it matched (only, at most, its length).
fn token_matches(presented: &[u8], tokens: &[Token]) -> bool {
    let mut matched = subtle::Choice::from(0);
    for token in tokens {
        matched |= token.as_bytes().ct_eq(presented);
    }
    matched.into()
}

/// No Origin (a script, not a browser) passes; a browser's Origin must be listed, or be the
/// bridge's own origin reached by IP address or `localhost`. A DNS name is not trusted as
/// "own" without being listed, because DNS rebinding lets any site claim it.
fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    let Some(origin) = normalize_origin(origin) else {
        return false;
    };
    if allowed.contains(&origin) {
        return true;
    }
    let (Some((scheme, authority)), Some(host)) = (origin.split_once("://"), host) else {
        return false;
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let host = host.to_ascii_lowercase();
    let strip = |a: &str| a.strip_suffix(default_port).unwrap_or(a).to_string();
    if strip(authority) != strip(&host) {
        return false;
    }
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => authority,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rules(tokens: &[&str]) -> Rules {
        Rules {
            upstreams: vec!["127.0.0.1:11211".into(), "[::1]:11211".into()],
            allowed_origins: vec!["https://dash.example.com".into()],
            tokens: tokens.iter().map(|t| Token::new(t.as_bytes())).collect(),
        }
    }

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_configured_upstreams_named_exactly_are_accepted() {
        let r = rules(&[]);
        let ok = r
            .check("/memcached/127.0.0.1:11211", &HeaderMap::new())
            .unwrap();
        assert_eq!(
            ok,
            Accepted {
                upstream: "127.0.0.1:11211".into(),
                protocol: None
            }
        );
        assert!(r
            .check("/memcached/127.0.0.1%3A11211", &HeaderMap::new())
            .is_ok());
        assert!(r
            .check("/memcached/%5B::1%5D:11211", &HeaderMap::new())
            .is_ok());
        for other in [
            "/memcached/localhost:11211",
            "/memcached/127.0.0.1:11212",
            "/memcached/127.0.0.2:11211",
        ] {
            assert_eq!(
                r.check(other, &HeaderMap::new()),
                Err(HandshakeRefusal::UnknownUpstream),
                "{other}"
            );
        }
        for bad in [
            "/",
            "/memcached/",
            "/memcached",
            "/memcached/a/b",
            "/memcached/%zz",
            "/other/127.0.0.1:11211",
        ] {
            assert_eq!(
                r.check(bad, &HeaderMap::new()),
                Err(HandshakeRefusal::NotFound),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_unix_socket_upstream_is_named_by_one_escaped_path_segment() {
        let r = Rules {
            upstreams: vec!["unix:/run/m.sock".into(), "inet6:[::1]:11211".into()],
            allowed_origins: vec![],
            tokens: vec![],
        };
        for path in [
            "/memcached/unix:%2Frun%2Fm.sock",
            "/memcached/unix%3A%2Frun%2Fm.sock",
            "/memcached/inet6:%5B::1%5D:11211",
            "/memcached/inet6%3A%5B%3A%3A1%5D%3A11211",
        ] {
            assert!(r.check(path, &HeaderMap::new()).is_ok(), "{path}");
        }
        assert_eq!(
            r.check("/memcached/unix:/run/m.sock", &HeaderMap::new()),
            Err(HandshakeRefusal::NotFound)
        );
        assert_eq!(
            r.check("/memcached/unix:%2Frun%2Fother.sock", &HeaderMap::new()),
            Err(HandshakeRefusal::UnknownUpstream)
        );
    }

    #[test]
    fn origins_listed_own_or_absent_pass() {
        let r = rules(&[]);
        let path = "/memcached/127.0.0.1:11211";
        assert!(r
            .check(path, &headers(&[("origin", "https://dash.example.com")]))
            .is_ok());
        assert!(r
            .check(
                path,
                &headers(&[
                    ("origin", "http://127.0.0.1:11280"),
                    ("host", "127.0.0.1:11280")
                ])
            )
            .is_ok());
        assert!(r
            .check(
                path,
                &headers(&[("origin", "http://localhost"), ("host", "localhost:80")])
            )
            .is_ok());
        for (origin, host) in [
            ("https://evil.example", "127.0.0.1:11280"),
            ("http://127.0.0.1:9999", "127.0.0.1:11280"),
            // DNS rebinding: the attacker's name points at the bridge; Host matches Origin.
            (
                "http://rebind.evil.example:11280",
                "rebind.evil.example:11280",
            ),
            ("null", "127.0.0.1:11280"),
        ] {
            let h = headers(&[("origin", origin), ("host", host)]);
            assert_eq!(
                r.check(path, &h),
                Err(HandshakeRefusal::BadOrigin),
                "{origin}"
            );
        }
    }

    #[test]
    fn tokens_come_from_the_subprotocol_or_a_bearer_header() {
        let r = rules(&["s3cret", "other-token"]);
        let path = "/memcached/127.0.0.1:11211";
        let browser = headers(&[("sec-websocket-protocol", "binary, token.s3cret")]);
        assert_eq!(r.check(path, &browser).unwrap().protocol, Some("binary"));
        let script = headers(&[("authorization", "Bearer other-token")]);
        assert_eq!(r.check(path, &script).unwrap().protocol, None);
        assert_eq!(
            r.check(path, &HeaderMap::new()),
            Err(HandshakeRefusal::MissingToken)
        );
        let wrong = headers(&[("sec-websocket-protocol", "binary, token.s3cre")]);
        assert_eq!(r.check(path, &wrong), Err(HandshakeRefusal::WrongToken));
        let wrong = headers(&[("authorization", "Bearer s3cret-not")]);
        assert_eq!(r.check(path, &wrong), Err(HandshakeRefusal::WrongToken));
    }

    #[test]
    fn browser_refusals_have_application_close_codes_and_short_reasons() {
        for refusal in [
            HandshakeRefusal::BadOrigin,
            HandshakeRefusal::MissingToken,
            HandshakeRefusal::WrongToken,
        ] {
            let code = refusal.close_code().unwrap();
            assert!((4000..5000).contains(&code));
            assert!(refusal.close_reason().len() <= 123);
        }
        assert!(HandshakeRefusal::BadOrigin
            .close_reason()
            .contains("Origin"));
        assert!(HandshakeRefusal::WrongToken
            .close_reason()
            .contains("token"));
        assert_eq!(HandshakeRefusal::UnknownUpstream.close_code(), None);
    }

    #[test]
    fn subprotocols_binary_or_none_are_accepted() {
        let r = rules(&[]);
        let path = "/memcached/127.0.0.1:11211";
        let binary = headers(&[("sec-websocket-protocol", "base64, binary")]);
        assert_eq!(r.check(path, &binary).unwrap().protocol, Some("binary"));
        let chat = headers(&[("sec-websocket-protocol", "chat")]);
        assert_eq!(r.check(path, &chat), Err(HandshakeRefusal::BadSubprotocol));
        // A token offered alone must come with "binary", or the browser gets no answer it accepts.
        let alone = headers(&[("sec-websocket-protocol", "token.x")]);
        assert_eq!(r.check(path, &alone), Err(HandshakeRefusal::BadSubprotocol));
    }
}
