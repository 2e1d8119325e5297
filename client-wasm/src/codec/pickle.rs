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
}
