//! Python pickles in and out: reads what python-memcached stores (protocols 0-5) and
//! turns it into JSON text, and writes JSON values as a pickle python-memcached reads.
//! Only plain data passes; a pickle that would build a class instance or call any
//! function beyond the few that rebuild builtins is refused, never half-decoded.

mod read;
mod write;

/// The deepest nesting of lists, dicts, tuples and sets we decode. Python's own
/// recursion limit (1000) stops deeper pickles at the writer anyway; ours keeps a
/// crafted pickle from exhausting the (small, fixed) wasm stack in the recursive
/// conversion.
pub const MAX_PICKLE_DEPTH: u32 = 200;

/// The most a pickle may expand to, in approximate bytes of JSON. A memo reference
/// shares one object many times over in a few bytes of pickle (each level of
/// `a = [b, b]` doubles the size), while JSON must spell every copy out; without this
/// bound a 1 KiB pickle could ask for terabytes. 64 MiB is twice the inflate limit.
pub const MAX_PICKLE_EXPANDED_SIZE: u64 = 64 * 1024 * 1024;

/// Highest protocol Python 3.11 writes; an unknown protocol is not a pickle we read.
const HIGHEST_PROTOCOL: u8 = 5;

/// Why a pickle was not turned into JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleError {
    /// The bytes are not a well-formed pickle (truncated, unknown opcode, trailing
    /// bytes). Under a custom serializer they may be the caller's own format.
    Malformed(String),
    /// A well-formed pickle holding something JSON cannot carry (a class instance, a
    /// function call, NaN, ...).
    Refused(String),
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickleError::Malformed(why) => write!(f, "not a valid pickle: {why}"),
            PickleError::Refused(why) => f.write_str(why),
        }
    }
}

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;
}

/// Opcodes a protocol 0 or 1 pickle of plain data can start with (protocol 2 and
/// later start with PROTO, 0x80). None of them can start JSON text, and JSON text can
/// never end with the STOP opcode '.', so the two cannot be confused.
const PROTOCOL_0_1_FIRST_OPCODES: &[u8] = &[
    op::MARK,
    op::FLOAT,
    op::INT,
    op::BININT,
    op::BININT1,
    op::LONG,
    op::BININT2,
    op::NONE,
    op::STRING,
    op::BINSTRING,
    op::SHORT_BINSTRING,
    op::UNICODE,
    op::BINUNICODE,
    op::GLOBAL,
    op::EMPTY_DICT,
    op::EMPTY_LIST,
    op::EMPTY_TUPLE,
    op::BINFLOAT,
];

/// Whether flag-1 bytes are a pickle (python-memcached's default serializer) rather
/// than JSON text or a caller's format.
pub fn looks_like_pickle(data: &[u8]) -> bool {
    match (data.first(), data.last()) {
        (Some(&first), Some(&op::STOP)) if data.len() >= 2 => {
            first == op::PROTO || PROTOCOL_0_1_FIRST_OPCODES.contains(&first)
        }
        _ => false,
    }
}

/// Decodes a pickle of plain data into JSON text:
/// - dict -> object, keys in the dict's (insertion) order; keys that are not str are
///   stringified as Python's `json.dumps` does (int -> "1", True -> "true", None ->
///   "null", float -> its JSON number text), bytes keys as their UTF-8 text (`\xNN`
///   escapes where not UTF-8), tuple/frozenset keys as their JSON text; two keys that
///   become the same string are an error, not a silent overwrite.
/// - list, tuple -> array; set, frozenset -> array in sorted order;
/// - str -> string; bytes and bytearray -> string when UTF-8, else an array of the
///   byte values (0-255);
/// - int of any size -> a JSON number written in full decimal (JavaScript's JSON.parse
///   rounds integers beyond 2^53 to the nearest double);
/// - float -> number (NaN and infinities have no JSON form: an error);
/// - bool -> true/false; None -> null.
pub fn pickle_to_json(data: &[u8]) -> Result<Vec<u8>, PickleError> {
    read::pickle_to_json(data)
}

/// Parses JSON text and writes it as a pickle of the given protocol (2 or 3;
/// python-memcached on Python 3 reads both).
pub fn json_to_pickle(json: &[u8], protocol: u8) -> Result<Vec<u8>, String> {
    write::json_to_pickle(json, protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_never_taken_for_a_pickle() {
        for json in [
            &b"{\"a\":1}"[..],
            b"[1,2]",
            b"\"x.\"",
            b"1.5",
            b"null",
            b"true",
            b"-1",
        ] {
            assert!(
                !looks_like_pickle(json),
                "{:?}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn hand_written_protocol_0_list_decodes() {
        // pickle.dumps([1, 'a', None], protocol=0) as CPython writes it.
        let data = b"(lp0\nI1\naVa\np1\naNa.";
        assert!(looks_like_pickle(data));
        assert_eq!(pickle_to_json(data).unwrap(), b"[1,\"a\",null]");
    }

    #[test]
    fn class_instance_is_refused_by_name() {
        // pickle.dumps(Foo(), protocol=2) for class Foo in __main__.
        let data = b"\x80\x02c__main__\nFoo\nq\x00)\x81q\x01.";
        match pickle_to_json(data) {
            Err(PickleError::Refused(why)) => assert!(why.contains("__main__.Foo"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn stack_global_is_named() {
        // protocol 4: SHORT_BINUNICODE 'os', MEMOIZE, SHORT_BINUNICODE 'system', MEMOIZE,
        // STACK_GLOBAL
        let data = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94.";
        match pickle_to_json(data) {
            Err(PickleError::Refused(why)) => assert!(why.contains("os.system"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn truncated_and_trailing_bytes_are_malformed() {
        let good = b"\x80\x03]q\x00(K\x01K\x02e.";
        assert_eq!(pickle_to_json(good).unwrap(), b"[1,2]");
        assert!(matches!(
            pickle_to_json(&good[..good.len() - 3]),
            Err(PickleError::Malformed(_))
        ));
        let mut trailing = good.to_vec();
        trailing.extend_from_slice(b"K\x01.");
        assert!(matches!(
            pickle_to_json(&trailing),
            Err(PickleError::Malformed(_))
        ));
        // A length prefix pointing far beyond the data.
        assert!(matches!(
            pickle_to_json(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f."),
            Err(PickleError::Malformed(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut data = vec![0x80, 2];
        data.extend_from_slice(&vec![op::EMPTY_LIST; MAX_PICKLE_DEPTH as usize + 5]);
        data.extend_from_slice(&vec![op::APPEND; MAX_PICKLE_DEPTH as usize + 4]);
        data.push(op::STOP);
        assert!(matches!(
            pickle_to_json(&data),
            Err(PickleError::Refused(_))
        ));
    }

    /// `a = []` memoized, `b` holds `a` many times, then `a` is filled with a long
    /// string: the expansion is counted on `a`'s final contents.
    fn late_filled_shared_list(references: usize, string_len: usize) -> Vec<u8> {
        // a = [] (memo 0, then off the stack); b = [a, a, ...]
        let mut data = vec![
            0x80,
            4,
            op::EMPTY_LIST,
            op::MEMOIZE,
            op::POP,
            op::EMPTY_LIST,
            op::MARK,
        ];
        data.extend(
            std::iter::repeat([op::BINGET, 0])
                .take(references)
                .flatten(),
        );
        data.push(op::APPENDS);
        // Bring a back, fill it with one string, drop it: b is left, holding a filled a.
        data.extend_from_slice(&[op::BINGET, 0, op::BINUNICODE8]);
        data.extend_from_slice(&(string_len as u64).to_le_bytes());
        data.extend(std::iter::repeat(b'x').take(string_len));
        data.extend_from_slice(&[op::APPEND, op::POP, op::STOP]);
        data
    }

    #[test]
    fn shared_references_are_counted_in_their_final_state() {
        let small = late_filled_shared_list(3, 4);
        assert_eq!(
            pickle_to_json(&small).unwrap(),
            br#"[["xxxx"],["xxxx"],["xxxx"]]"#.to_vec()
        );
        // 10,000 references to a 10 KiB string: a 100 KiB pickle asking for 100 MB of
        // JSON (600 MB with escapes counted).
        let bomb = late_filled_shared_list(10_000, 10 * 1024);
        match pickle_to_json(&bomb) {
            Err(PickleError::Refused(why)) => assert!(why.contains("expands"), "{why}"),
            other => panic!("expected a refusal, got {:?}", other.map(|j| j.len())),
        }
    }

    #[test]
    fn doubling_references_are_refused() {
        // x0 = "xxxxxxxx"; x(n+1) = (x(n), x(n)), 60 times: 2^60 copies in 250 bytes.
        let mut data = vec![0x80, 4, op::SHORT_BINUNICODE, 8];
        data.extend_from_slice(b"xxxxxxxx");
        data.push(op::MEMOIZE);
        for level in 0..60u8 {
            data.extend_from_slice(&[op::BINGET, level, op::TUPLE2, op::MEMOIZE]);
        }
        data.push(op::STOP);
        match pickle_to_json(&data) {
            Err(PickleError::Refused(why)) => assert!(why.contains("expands"), "{why}"),
            other => panic!("expected a refusal, got {:?}", other.map(|j| j.len())),
        }
    }

    #[test]
    fn repeated_set_calls_on_one_shared_list_are_refused() {
        // l = [0, 0, ..., 0] (4,000 items) memoized, then set(l) 4,000 times: 16 KB of
        // pickle asking for 16 million copied items.
        let mut data = vec![0x80, 4, op::EMPTY_LIST, op::MEMOIZE, op::MARK];
        data.extend(std::iter::repeat([op::BININT1, 0]).take(4000).flatten());
        data.extend_from_slice(&[op::APPENDS, op::POP, op::EMPTY_LIST, op::MARK]);
        data.extend_from_slice(b"\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94");
        for _ in 0..4000 {
            // BINGET set, BINGET l, TUPLE1, REDUCE
            data.extend_from_slice(&[op::BINGET, 3, op::BINGET, 0, op::TUPLE1, op::REDUCE]);
        }
        data.extend_from_slice(&[op::APPENDS, op::STOP]);
        match pickle_to_json(&data) {
            Err(PickleError::Refused(why)) => assert!(why.contains("expands"), "{why}"),
            other => panic!("expected a refusal, got {:?}", other.map(|j| j.len())),
        }
        // Once is what CPython writes, and reads.
        let once = b"\x80\x04\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94](K\x02K\x01K\x02e\x85R.";
        assert_eq!(pickle_to_json(once).unwrap(), b"[1,2]");
    }

    #[test]
    fn recursive_structure_is_refused() {
        // a = []; a.append(a)
        let data = [
            0x80,
            2,
            op::EMPTY_LIST,
            op::BINPUT,
            0,
            op::BINGET,
            0,
            op::APPEND,
            op::STOP,
        ];
        assert!(matches!(
            pickle_to_json(&data),
            Err(PickleError::Refused(_))
        ));
    }

    #[test]
    fn nan_is_refused() {
        let mut data = vec![0x80, 2, b'G'];
        data.extend_from_slice(&f64::NAN.to_be_bytes());
        data.push(b'.');
        assert!(matches!(
            pickle_to_json(&data),
            Err(PickleError::Refused(_))
        ));
    }

    #[test]
    fn json_round_trips_through_pickle() {
        for protocol in [2, 3] {
            let json = br#"{"a":[1,-2,3.5,"x",null,true],"b":{"c":18446744073709551615}}"#;
            let pickle = json_to_pickle(json, protocol).unwrap();
            assert_eq!(pickle[..2], [0x80, protocol]);
            assert_eq!(pickle_to_json(&pickle).unwrap(), json.to_vec());
        }
        assert!(json_to_pickle(b"[1]", 4).is_err());
        assert!(json_to_pickle(b"[1,", 3).is_err());
    }

    fn json_of(data: &[u8]) -> String {
        String::from_utf8(pickle_to_json(data).unwrap_or_else(|e| panic!("{data:?}: {e}"))).unwrap()
    }

    #[test]
    fn empty_bytes_at_protocols_0_to_2_decode() {
        // pickle.dumps(b'', protocol=0, 1, 2): CPython writes `bytes()`, not
        // `_codecs.encode('', 'latin1')`.
        for data in [
            &b"c__builtin__\nbytes\np0\n(tRp1\n."[..],
            b"c__builtin__\nbytes\nq\x00)Rq\x01.",
            b"\x80\x02c__builtin__\nbytes\nq\x00)Rq\x01.",
            // bytearray()
            b"c__builtin__\nbytearray\np0\n(tRp1\n.",
            b"\x80\x02c__builtin__\nbytearray\nq\x00)Rq\x01.",
        ] {
            assert_eq!(json_of(data), "\"\"");
        }
        // [b'', b'x'] at protocols 0 and 2; {'k': b''} at protocol 2.
        assert_eq!(
            json_of(b"(lp0\nc__builtin__\nbytes\np1\n(tRp2\nac_codecs\nencode\np3\n(Vx\np4\nVlatin1\np5\ntp6\nRp7\na."),
            r#"["","x"]"#
        );
        assert_eq!(
            json_of(b"\x80\x02]q\x00(c__builtin__\nbytes\nq\x01)Rq\x02c_codecs\nencode\nq\x03X\x01\x00\x00\x00xq\x04X\x06\x00\x00\x00latin1q\x05\x86q\x06Rq\x07e."),
            r#"["","x"]"#
        );
        assert_eq!(
            json_of(b"\x80\x02}q\x00X\x01\x00\x00\x00kq\x01c__builtin__\nbytes\nq\x02)Rq\x03s."),
            r#"{"k":""}"#
        );
        // bytes() with arguments is not how CPython pickles bytes.
        assert!(matches!(
            pickle_to_json(b"\x80\x02c__builtin__\nbytes\nK\x01\x85R."),
            Err(PickleError::Malformed(_))
        ));
    }

    #[test]
    fn dict_keys_keep_python_order_and_a_repeated_key_its_last_value() {
        // {'b': 1, 'a': 2} as CPython writes it at protocol 0 and 2.
        assert_eq!(
            json_of(b"(dp0\nVb\np1\nI1\nsVa\np2\nI2\ns."),
            r#"{"b":1,"a":2}"#
        );
        assert_eq!(
            json_of(b"\x80\x02}q\x00(X\x01\x00\x00\x00bq\x01K\x01X\x01\x00\x00\x00aq\x02K\x02u."),
            r#"{"b":1,"a":2}"#
        );
        // {2: 'x', 1: 'y'}
        assert_eq!(
            json_of(b"\x80\x02}q\x00(K\x02X\x01\x00\x00\x00xq\x01K\x01X\x01\x00\x00\x00yq\x02u."),
            r#"{"2":"x","1":"y"}"#
        );
        // A crafted dict setting 'b' twice, and 1 then True (one key in Python).
        assert_eq!(
            json_of(b"\x80\x02}(\x8c\x01bK\x01\x8c\x01aK\x02\x8c\x01bK\x03u."),
            r#"{"b":3,"a":2}"#
        );
        assert_eq!(json_of(b"\x80\x02}(K\x01K\x01\x88K\x02u."), r#"{"1":2}"#);
        // 1 and '1' are two keys in Python but one in JSON.
        match pickle_to_json(b"\x80\x02}(K\x01K\x01\x8c\x011K\x02u.") {
            Err(PickleError::Refused(why)) => assert!(why.contains("\"1\""), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A list cannot be a key.
        assert!(matches!(
            pickle_to_json(b"\x80\x02}(]K\x01u."),
            Err(PickleError::Malformed(_))
        ));
    }

    #[test]
    fn sets_come_out_sorted_without_duplicates() {
        // EMPTY_SET, ADDITEMS of 3, 1.5, True, 1, -2**70, 'b', 'a', b'z'.
        let mut data = vec![
            0x80,
            4,
            op::EMPTY_SET,
            op::MARK,
            op::BININT1,
            3,
            op::BINFLOAT,
        ];
        data.extend_from_slice(&1.5f64.to_be_bytes());
        data.extend_from_slice(&[op::NEWTRUE, op::BININT1, 1, op::LONG1, 9]);
        data.extend_from_slice(&(-(1i128 << 70)).to_le_bytes()[..9]);
        data.extend_from_slice(b"\x8c\x01b\x8c\x01aC\x01z");
        data.extend_from_slice(&[op::ADDITEMS, op::STOP]);
        assert_eq!(
            json_of(&data),
            r#"[-1180591620717411303424,true,1.5,3,"z","a","b"]"#
        );
    }

    #[test]
    fn integers_of_every_width_keep_their_digits() {
        for (data, json) in [
            (&b"L18446744073709551616L\n."[..], "18446744073709551616"),
            (b"L-9223372036854775809L\n.", "-9223372036854775809"),
            (b"I12345678901\n.", "12345678901"),
            (b"I01\n.", "true"),
            (b"I00\n.", "false"),
            (
                b"\x80\x02\x8a\t\xff\xff\xff\xff\xff\xff\xff\x7f\xff.",
                "-9223372036854775809",
            ),
            (
                b"\x80\x02\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.",
                "-9223372036854775808",
            ),
            (
                b"\x80\x02\x8a\t\xff\xff\xff\xff\xff\xff\xff\xff\x00.",
                "18446744073709551615",
            ),
            (b"\x80\x02\x8a\x00.", "0"),
            (
                b"\x80\x02\x8a\r\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0.",
                "-1267650600228229401496703205376",
            ),
            (b"\x80\x02J\x00\xff\xff\xff.", "-256"),
        ] {
            assert_eq!(json_of(data), json, "{data:?}");
        }
        // 2**4404 - 1 in LONG4: 1326 digits, within what CPython converts (4300).
        let mut long4 = vec![0x80, 2, op::LONG4];
        long4.extend_from_slice(&551u32.to_le_bytes());
        long4.extend(std::iter::repeat(0xff).take(550));
        long4.push(0x0f);
        long4.push(op::STOP);
        let digits = json_of(&long4);
        assert_eq!(digits.len(), 1326);
        assert!(
            digits.starts_with("5446") && digits.ends_with("4015"),
            "{digits}"
        );
        let mut text = b"L".to_vec();
        text.extend(std::iter::repeat(b'9').take(4301));
        text.extend_from_slice(b"L\n.");
        assert!(matches!(
            pickle_to_json(&text),
            Err(PickleError::Refused(_))
        ));
    }

    #[test]
    fn protocol_0_text_escapes_decode() {
        // pickle.dumps('a\\b\nc\u0101\U0001f642', protocol=0): raw-unicode-escape.
        assert_eq!(
            json_of(b"Va\\u005cb\\u000ac\\u0101\\U0001f642\np0\n."),
            "\"a\\\\b\\nc\u{101}\u{1f642}\""
        );
        // Latin-1 bytes are characters; a lone backslash is itself.
        assert_eq!(json_of(b"V\xe9\\x\n."), "\"\u{e9}\\\\x\"");
        // Python 2 str: a quoted literal with escapes, bytes that are not UTF-8.
        assert_eq!(
            json_of(b"S'it\\'s\\n\\xff\\101'\np0\n."),
            "[105,116,39,115,10,255,65]"
        );
        assert_eq!(json_of(b"S\"plain\"\n."), "\"plain\"");
        assert!(matches!(
            pickle_to_json(b"Sunquoted\n."),
            Err(PickleError::Malformed(_))
        ));
    }

    #[test]
    fn builtins_outside_a_call_and_other_encodings_are_refused() {
        assert!(matches!(
            pickle_to_json(b"\x80\x02c__builtin__\nset\n."),
            Err(PickleError::Refused(_))
        ));
        // _codecs.encode('x', 'rot13')
        assert!(matches!(
            pickle_to_json(
                b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
            ),
            Err(PickleError::Refused(_))
        ));
        // STACK_GLOBAL of names that are not str.
        assert!(matches!(
            pickle_to_json(b"\x80\x04K\x01K\x02\x93."),
            Err(PickleError::Malformed(_))
        ));
    }

    #[test]
    fn writer_picks_the_opcodes_python_picks() {
        // The bytes of pickle.dumps(value, protocol=2) in CPython 3.11 (scalars are
        // not memoized, so ours are identical).
        for (json, python) in [
            ("0", &b"\x80\x02K\x00."[..]),
            ("255", b"\x80\x02K\xff."),
            ("256", b"\x80\x02M\x00\x01."),
            ("65535", b"\x80\x02M\xff\xff."),
            ("65536", b"\x80\x02J\x00\x00\x01\x00."),
            ("-1", b"\x80\x02J\xff\xff\xff\xff."),
            ("-256", b"\x80\x02J\x00\xff\xff\xff."),
            ("2147483647", b"\x80\x02J\xff\xff\xff\x7f."),
            ("2147483648", b"\x80\x02\x8a\x05\x00\x00\x00\x80\x00."),
            ("-2147483648", b"\x80\x02J\x00\x00\x00\x80."),
            ("-2147483649", b"\x80\x02\x8a\x05\xff\xff\xff\x7f\xff."),
            (
                "9223372036854775807",
                b"\x80\x02\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f.",
            ),
            (
                "-9223372036854775808",
                b"\x80\x02\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.",
            ),
            (
                "18446744073709551615",
                b"\x80\x02\x8a\t\xff\xff\xff\xff\xff\xff\xff\xff\x00.",
            ),
            ("0.5", b"\x80\x02G?\xe0\x00\x00\x00\x00\x00\x00."),
            ("-1e300", b"\x80\x02G\xfe7\xe4<\x88\x00u\x9c."),
            ("null", b"\x80\x02N."),
            ("true", b"\x80\x02\x88."),
            ("false", b"\x80\x02\x89."),
            ("[]", b"\x80\x02]."),
            ("{}", b"\x80\x02}."),
        ] {
            assert_eq!(
                json_to_pickle(json.as_bytes(), 2).unwrap(),
                python,
                "{json}"
            );
        }
    }

    #[test]
    fn writer_output_reads_back_as_the_same_json() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let values = [
            "0",
            "1",
            "-1",
            "255",
            "256",
            "-129",
            "65535",
            "65536",
            "2147483647",
            "2147483648",
            "-2147483648",
            "-2147483649",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "0.1",
            "-2.5",
            "1e300",
            "5e-324",
            "1.0",
            "null",
            "true",
            "false",
            r#""""#,
            r#""héllo wörld ✓ 🙂""#,
            r#""quote \" backslash \\ newline \n tab \t nul \u0000""#,
            "[]",
            "{}",
            "[[],{},[[]]]",
            r#"{"z":1,"a":[1,2,{"b":null}],"m":"x"}"#,
            r#"[1,"two",3.5,true,null,{"k":[false]}]"#,
            &deep,
        ];
        for json in values {
            let expected: serde_json::Value = serde_json::from_str(json).unwrap();
            for protocol in [2, 3] {
                let pickle = json_to_pickle(json.as_bytes(), protocol).unwrap();
                assert!(looks_like_pickle(&pickle));
                let back = pickle_to_json(&pickle)
                    .unwrap_or_else(|e| panic!("{json} protocol {protocol}: {e}"));
                // serde_json writes the value as our reader does: the same text.
                assert_eq!(
                    String::from_utf8(back).unwrap(),
                    serde_json::to_string(&expected).unwrap(),
                    "{json} protocol {protocol}"
                );
            }
        }
        // A long list and a long string cross the one-byte length forms.
        let long = serde_json::json!([
            "x".repeat(70_000),
            (0..3000).collect::<Vec<i32>>(),
            (0..300)
                .map(|i| (format!("k{i}"), serde_json::json!(i)))
                .collect::<serde_json::Map<_, _>>()
        ]);
        let text = serde_json::to_vec(&long).unwrap();
        let back = pickle_to_json(&json_to_pickle(&text, 2).unwrap()).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&back).unwrap(),
            long
        );
    }
}
