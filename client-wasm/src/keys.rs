//! Key rules, exactly python-memcached's `check_key`: a key is not empty, is at most 250
//! bytes (prefix included), and holds only bytes 0x21-0x7e and 0x80-0xff (no control
//! characters, no space, no DEL). A bad key is refused before anything is sent.

use crate::error::{Error, KeyRule, Result};

/// memcached's own limit (`KEY_MAX_LENGTH` in memcached.h); python-memcached's
/// `SERVER_MAX_KEY_LENGTH` is the same number, and it counts the key prefix too.
pub const MAX_KEY_LENGTH: usize = 250;

/// Checks a whole key (prefix already joined) against python-memcached's rules.
///
/// One note on fidelity: python-memcached's regex ends in `$`, which also matches
/// before a trailing `\n`, so it lets `b"key\n"` through and memcached then sees a
/// broken command line. We refuse `\n` everywhere.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(bad_key(key, KeyRule::Empty));
    }
    if key.len() > MAX_KEY_LENGTH {
        return Err(bad_key(key, KeyRule::TooLong));
    }
    // 0x00-0x20 are control characters and space, 0x7f is DEL; everything else,
    // UTF-8 continuation and lead bytes included, is allowed.
    if key.iter().any(|&b| b <= 0x20 || b == 0x7f) {
        return Err(bad_key(key, KeyRule::ControlOrSpace));
    }
    Ok(())
}

/// Joins `key_prefix` and `key` and checks the joined key, as python-memcached's
/// `*_multi(..., key_prefix=...)` does: the 250-byte limit counts the prefix, and an
/// empty key is fine when the prefix is not.
pub fn prefixed_key(prefix: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    let mut full = Vec::with_capacity(prefix.len() + key.len());
    full.extend_from_slice(prefix);
    full.extend_from_slice(key);
    check_key(&full)?;
    Ok(full)
}

fn bad_key(key: &[u8], rule: KeyRule) -> Error {
    Error::BadKey {
        key: Error::key_text(key),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(key: &[u8]) -> Option<KeyRule> {
        match check_key(key) {
            Ok(()) => None,
            Err(Error::BadKey { rule, .. }) => Some(rule),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn plain_keys_pass() {
        assert_eq!(rule_of(b"user:42"), None);
        assert_eq!(rule_of(b"!~"), None);
        assert_eq!(rule_of(b"a"), None);
    }

    #[test]
    fn empty_key_is_refused() {
        assert_eq!(rule_of(b""), Some(KeyRule::Empty));
    }

    #[test]
    fn length_limit_is_250_bytes() {
        assert_eq!(rule_of(&[b'k'; 250]), None);
        assert_eq!(rule_of(&[b'k'; 251]), Some(KeyRule::TooLong));
    }

    #[test]
    fn space_control_and_del_are_refused() {
        for bad in [b' ', b'\n', b'\r', b'\t', 0u8, 0x1f, 0x7f] {
            let key = [b'a', bad, b'b'];
            assert_eq!(
                rule_of(&key),
                Some(KeyRule::ControlOrSpace),
                "byte {bad:#x}"
            );
        }
        // The trailing newline python-memcached's regex lets through.
        assert_eq!(rule_of(b"key\n"), Some(KeyRule::ControlOrSpace));
    }

    #[test]
    fn every_byte_follows_the_rule() {
        for b in 0u8..=255 {
            let allowed = (0x21..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(rule_of(&[b]).is_none(), allowed, "byte {b:#x}");
        }
    }

    #[test]
    fn utf8_keys_pass() {
        assert_eq!(rule_of("clé-日本-🙂".as_bytes()), None);
    }

    #[test]
    fn prefix_counts_toward_the_limit() {
        let prefix = b"app:";
        let key = vec![b'k'; 246];
        let full = prefixed_key(prefix, &key).unwrap();
        assert_eq!(full.len(), 250);
        assert!(full.starts_with(b"app:k"));
        let key = vec![b'k'; 247];
        match prefixed_key(prefix, &key) {
            Err(Error::BadKey {
                rule: KeyRule::TooLong,
                key,
            }) => {
                assert!(
                    key.starts_with("app:kkk"),
                    "error names the joined key: {key}"
                )
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
    }

    #[test]
    fn empty_key_with_prefix_is_the_prefix() {
        assert_eq!(prefixed_key(b"p:", b"").unwrap(), b"p:");
        assert!(prefixed_key(b"", b"").is_err());
    }

    #[test]
    fn bad_prefix_is_refused() {
        assert!(matches!(
            prefixed_key(b"my app:", b"k"),
            Err(Error::BadKey {
                rule: KeyRule::ControlOrSpace,
                ..
            })
        ));
    }

    #[test]
    fn error_names_key_and_rule() {
        let err = check_key(b"a b").unwrap_err();
        assert_eq!(err.code(), "BAD_KEY");
        let text = err.to_string();
        assert!(text.contains("\"a b\""), "{text}");
        assert!(text.contains("control characters or spaces"), "{text}");
    }
}
