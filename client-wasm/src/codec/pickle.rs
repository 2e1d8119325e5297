//! Python pickles in and out: reads what python-memcached stores (protocols 0-5) and
//! turns it into JSON text, and writes JSON values as a pickle python-memcached reads.
//! Only plain data passes; a pickle that would build a class instance or call any
//! function beyond the few that rebuild builtins is refused, never half-decoded.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_pickle::{HashableValue, Value};

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

/// Decodes a pickle of plain data into JSON text. See `write_json` for the mapping.
pub fn pickle_to_json(data: &[u8]) -> Result<Vec<u8>, PickleError> {
    check(data)?;
    let value = serde_pickle::value_from_slice(data, serde_pickle::DeOptions::new())
        .map_err(|e| PickleError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(data.len() + 16);
    write_json(&value, &mut out)?;
    Ok(out)
}

/// Parses JSON text and writes it as a pickle of the given protocol (2 or 3: the ones
/// serde-pickle writes; python-memcached on Python 3 reads both).
pub fn json_to_pickle(json: &[u8], protocol: u8) -> Result<Vec<u8>, String> {
    let options = match protocol {
        2 => serde_pickle::SerOptions::new().proto_v2(),
        3 => serde_pickle::SerOptions::new(),
        other => {
            return Err(format!(
                "pickle protocol {other} cannot be written (2 or 3)"
            ))
        }
    };
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("invalid JSON text: {e}"))?;
    serde_pickle::to_vec(&value, options).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------
// The check: one pass over the opcodes that builds only the skeleton of the value (a
// graph of objects: their own size, and which objects each container holds, memo
// references included), then measures the skeleton's nesting depth and expanded size
// before anything is really built. Containers are measured in their final state, so a
// memoized list filled after it was referenced is counted in full.

/// Index of an object in the skeleton.
type ObjectId = usize;

struct Object {
    /// Approximate JSON bytes of the object itself (its children not included).
    own_size: u64,
    container: bool,
    children: Vec<ObjectId>,
}

#[derive(Clone)]
enum Slot {
    Mark,
    /// An object on the stack, and its text when it is a short string (to name the
    /// globals STACK_GLOBAL refers to).
    Item {
        id: ObjectId,
        text: Option<String>,
    },
}

/// Globals plain data needs: bytes at protocols 0-2 (`_codecs.encode`), sets and
/// frozensets at protocols 0-3, bytearrays. Everything else is code or a class.
fn allowed_global(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("_codecs", "encode")
            | (
                "builtins" | "__builtin__",
                "set" | "frozenset" | "bytearray"
            )
    )
}

struct Checker<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Slot>,
    objects: Vec<Object>,
    reconstructs_instance: bool,
}

fn malformed(why: impl Into<String>) -> PickleError {
    PickleError::Malformed(why.into())
}

impl<'a> Checker<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| malformed(format!("truncated at byte {}", self.pos)))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, PickleError> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn sized(&mut self, len_bytes: usize) -> Result<&'a [u8], PickleError> {
        let len = self.uint(len_bytes)?;
        let len = usize::try_from(len).map_err(|_| malformed("length beyond memory"))?;
        self.take(len)
    }

    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| malformed(format!("unterminated line at byte {}", self.pos)))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn pop(&mut self) -> Result<Slot, PickleError> {
        self.stack
            .pop()
            .ok_or_else(|| malformed(format!("stack underflow at byte {}", self.pos)))
    }

    fn pop_object(&mut self) -> Result<ObjectId, PickleError> {
        match self.pop()? {
            Slot::Item { id, .. } => Ok(id),
            Slot::Mark => Err(malformed(format!("unexpected mark at byte {}", self.pos))),
        }
    }

    /// Pops to the last mark; returns the objects popped, in stack order.
    fn pop_mark(&mut self) -> Result<Vec<ObjectId>, PickleError> {
        let mut items = Vec::new();
        loop {
            match self.pop()? {
                Slot::Mark => {
                    items.reverse();
                    return Ok(items);
                }
                Slot::Item { id, .. } => items.push(id),
            }
        }
    }

    fn new_object(
        &mut self,
        own_size: usize,
        container: bool,
        children: Vec<ObjectId>,
    ) -> ObjectId {
        self.objects.push(Object {
            own_size: own_size as u64 + 2,
            container,
            children,
        });
        self.objects.len() - 1
    }

    fn push_scalar(&mut self, json_size: usize) {
        let id = self.new_object(json_size, false, Vec::new());
        self.stack.push(Slot::Item { id, text: None });
    }

    fn push_container(&mut self, children: Vec<ObjectId>) {
        let id = self.new_object(0, true, children);
        self.stack.push(Slot::Item { id, text: None });
    }

    /// APPEND-like opcodes: the container on top of the stack now also holds `items`.
    fn add_to_top(&mut self, items: &[ObjectId]) -> Result<(), PickleError> {
        let id = match self.stack.last() {
            Some(Slot::Item { id, .. }) => *id,
            _ => {
                return Err(malformed(format!(
                    "no container to add to at byte {}",
                    self.pos
                )))
            }
        };
        self.objects[id].children.extend_from_slice(items);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        if allowed_global(module, name) {
            self.push_scalar(0);
            Ok(())
        } else if matches!((module, name), ("copy_reg" | "copyreg", "_reconstructor")) {
            // Protocols 0 and 1 rebuild an instance through this helper; the class it
            // is given comes next, and naming the class says more than the helper.
            self.reconstructs_instance = true;
            self.push_scalar(0);
            Ok(())
        } else {
            Err(PickleError::Refused(format!(
                "pickle refers to {module}.{name} (a class instance or function call), \
                 which has no JSON form"
            )))
        }
    }

    fn memo_index(&mut self, what: &str, at: usize) -> Result<u32, PickleError> {
        let line = self.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| malformed(format!("bad {what} index at byte {at}")))
    }

    /// Runs to STOP; returns the object the pickle produces.
    fn run(&mut self) -> Result<ObjectId, PickleError> {
        use op::*;
        loop {
            let at = self.pos;
            let code = self.take(1)?[0];
            match code {
                STOP => {
                    if self.pos != self.data.len() {
                        return Err(malformed("bytes after the STOP opcode"));
                    }
                    if self.reconstructs_instance {
                        return Err(PickleError::Refused(
                            "pickle rebuilds a class instance (copyreg._reconstructor), \
                             which has no JSON form"
                                .into(),
                        ));
                    }
                    return match self.stack.as_slice() {
                        [Slot::Item { id, .. }] => Ok(*id),
                        _ => Err(malformed("STOP with a stack that is not one value")),
                    };
                }
                PROTO => {
                    let version = self.take(1)?[0];
                    if version > HIGHEST_PROTOCOL {
                        return Err(malformed(format!("unknown pickle protocol {version}")));
                    }
                }
                FRAME => {
                    self.take(8)?;
                }
                MARK => self.stack.push(Slot::Mark),
                POP => {
                    self.pop()?;
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let top = self.stack.last().cloned();
                    self.stack
                        .push(top.ok_or_else(|| malformed("DUP on an empty stack"))?);
                }
                FLOAT | INT | LONG | STRING => {
                    let line = self.line()?;
                    self.push_scalar(line.len());
                }
                UNICODE => {
                    let line = self.line()?;
                    let text = String::from_utf8_lossy(line).into_owned();
                    let id = self.new_object(line.len(), false, Vec::new());
                    self.stack.push(Slot::Item {
                        id,
                        text: Some(text),
                    });
                }
                // Integers and floats: at most about 25 characters of JSON.
                BININT | BININT1 | BININT2 | BINFLOAT => {
                    let width = match code {
                        BININT => 4,
                        BININT1 => 1,
                        BININT2 => 2,
                        _ => 8,
                    };
                    self.take(width)?;
                    self.push_scalar(25);
                }
                NONE | NEWTRUE | NEWFALSE => self.push_scalar(5),
                // A long of n bytes has about 2.4 n decimal digits.
                LONG1 | LONG4 => {
                    let bytes = self.sized(if code == LONG1 { 1 } else { 4 })?;
                    self.push_scalar(bytes.len() * 3);
                }
                // Bytes may become an array of numbers, up to 4 JSON bytes each.
                BINSTRING | BINBYTES | SHORT_BINSTRING | SHORT_BINBYTES | BINBYTES8
                | BYTEARRAY8 => {
                    let len_bytes = match code {
                        SHORT_BINSTRING | SHORT_BINBYTES => 1,
                        BINSTRING | BINBYTES => 4,
                        _ => 8,
                    };
                    let bytes = self.sized(len_bytes)?;
                    self.push_scalar(bytes.len() * 4);
                }
                SHORT_BINUNICODE | BINUNICODE | BINUNICODE8 => {
                    let len_bytes = match code {
                        SHORT_BINUNICODE => 1,
                        BINUNICODE => 4,
                        _ => 8,
                    };
                    let bytes = self.sized(len_bytes)?;
                    // Only short strings can name a module or a class.
                    let text =
                        (bytes.len() <= 256).then(|| String::from_utf8_lossy(bytes).into_owned());
                    // JSON escapes a control character in 6 bytes.
                    let id = self.new_object(bytes.len() * 6, false, Vec::new());
                    self.stack.push(Slot::Item { id, text });
                }
                EMPTY_LIST | EMPTY_DICT | EMPTY_TUPLE | EMPTY_SET => {
                    self.push_container(Vec::new())
                }
                LIST | DICT | TUPLE | FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push_container(items);
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let count = usize::from(code - TUPLE1 + 1);
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(self.pop_object()?);
                    }
                    items.reverse();
                    self.push_container(items);
                }
                APPEND => {
                    let child = self.pop_object()?;
                    self.add_to_top(&[child])?;
                }
                SETITEM => {
                    let value = self.pop_object()?;
                    let key = self.pop_object()?;
                    self.add_to_top(&[key, value])?;
                }
                APPENDS | SETITEMS | ADDITEMS => {
                    let items = self.pop_mark()?;
                    self.add_to_top(&items)?;
                }
                PUT => {
                    let index = self.memo_index("PUT", at)?;
                    self.memoize(index)?;
                }
                BINPUT => {
                    let index = self.uint(1)? as u32;
                    self.memoize(index)?;
                }
                LONG_BINPUT => {
                    let index = self.uint(4)? as u32;
                    self.memoize(index)?;
                }
                MEMOIZE => {
                    let index = self.memo.len() as u32;
                    self.memoize(index)?;
                }
                GET => {
                    let index = self.memo_index("GET", at)?;
                    self.recall(index)?;
                }
                BINGET => {
                    let index = self.uint(1)? as u32;
                    self.recall(index)?;
                }
                LONG_BINGET => {
                    let index = self.uint(4)? as u32;
                    self.recall(index)?;
                }
                GLOBAL => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    self.global(&module, &name)?;
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let text = |slot: Slot| match slot {
                        Slot::Item { text: Some(t), .. } => t,
                        _ => "?".to_string(),
                    };
                    let (module, name) = (text(module), text(name));
                    self.global(&module, &name)?;
                }
                REDUCE => {
                    // Only allowed globals reach here: set(list), frozenset(list),
                    // bytearray(bytes), _codecs.encode(str, 'latin1'). The result holds
                    // what the argument tuple holds.
                    let args = self.pop_object()?;
                    self.pop_object()?;
                    self.push_container(vec![args]);
                }
                INST => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    return Err(PickleError::Refused(format!(
                        "pickle holds an instance of {module}.{name}, which has no JSON form"
                    )));
                }
                OBJ | NEWOBJ | NEWOBJ_EX | BUILD => {
                    return Err(PickleError::Refused(format!(
                        "pickle builds a class instance (opcode {code:#04x} at byte {at}), \
                         which has no JSON form"
                    )));
                }
                PERSID | BINPERSID => {
                    return Err(PickleError::Refused(
                        "pickle holds a persistent id, which has no JSON form".into(),
                    ));
                }
                EXT1 | EXT2 | EXT4 => {
                    return Err(PickleError::Refused(
                        "pickle refers to a registered extension (copyreg), \
                         which has no JSON form"
                            .into(),
                    ));
                }
                NEXT_BUFFER | READONLY_BUFFER => {
                    return Err(PickleError::Refused(
                        "pickle uses out-of-band buffers, which memcached cannot carry".into(),
                    ));
                }
                other => {
                    return Err(malformed(format!(
                        "unknown opcode {other:#04x} at byte {at}"
                    )));
                }
            }
        }
    }

    fn memoize(&mut self, index: u32) -> Result<(), PickleError> {
        let top = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| malformed("PUT on an empty stack"))?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn recall(&mut self, index: u32) -> Result<(), PickleError> {
        let slot = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| malformed(format!("GET of memo {index}, never stored")))?;
        self.stack.push(slot);
        Ok(())
    }

    /// Nesting depth and expanded JSON size of `root`, every shared reference counted
    /// each time it appears. Iterative, so a deep skeleton cannot exhaust the stack;
    /// each object is measured once.
    fn measure(&self, root: ObjectId) -> Result<(u32, u64), PickleError> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            New,
            Open,
            Done(u32, u64),
        }
        let mut state = vec![State::New; self.objects.len()];
        let mut work = vec![root];
        while let Some(&id) = work.last() {
            match state[id] {
                State::Done(..) => {
                    work.pop();
                }
                State::New => {
                    state[id] = State::Open;
                    for &child in &self.objects[id].children {
                        match state[child] {
                            State::New => work.push(child),
                            // A container holding itself: JSON cannot carry it.
                            State::Open => {
                                return Err(PickleError::Refused(
                                    "pickle holds a recursive structure, which has no JSON form"
                                        .into(),
                                ))
                            }
                            State::Done(..) => {}
                        }
                    }
                }
                State::Open => {
                    let object = &self.objects[id];
                    let (mut depth, mut size) = (0u32, object.own_size);
                    for &child in &object.children {
                        let State::Done(child_depth, child_size) = state[child] else {
                            unreachable!("children are measured before their container")
                        };
                        depth = depth.max(child_depth);
                        size = size.saturating_add(child_size).saturating_add(1);
                    }
                    if object.container {
                        depth += 1;
                    }
                    if depth > MAX_PICKLE_DEPTH {
                        return Err(PickleError::Refused(format!(
                            "pickle nests deeper than {MAX_PICKLE_DEPTH} levels"
                        )));
                    }
                    if size > MAX_PICKLE_EXPANDED_SIZE {
                        return Err(PickleError::Refused(format!(
                            "pickle expands beyond {MAX_PICKLE_EXPANDED_SIZE} bytes of JSON \
                             (shared references repeated many times)"
                        )));
                    }
                    state[id] = State::Done(depth, size);
                    work.pop();
                }
            }
        }
        match state[root] {
            State::Done(depth, size) => Ok((depth, size)),
            _ => unreachable!("the root is measured last"),
        }
    }
}

/// Walks the whole pickle once: every argument within bounds, only plain data, exactly
/// one value at STOP; then bounds its nesting and expanded size.
fn check(data: &[u8]) -> Result<(), PickleError> {
    let mut checker = Checker {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        objects: Vec::new(),
        reconstructs_instance: false,
    };
    let root = checker.run()?;
    checker.measure(root)?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Value -> JSON text

/// Writes a decoded pickle as JSON text:
/// - dict -> object; keys that are not str are stringified as Python's `json.dumps`
///   does (int -> "1", True -> "true", None -> "null", float -> its JSON number text),
///   bytes keys as their UTF-8 text (`\xNN` escapes where not UTF-8), tuple/frozenset keys as their JSON text; two keys
///   that become the same string are an error, not a silent overwrite. serde-pickle
///   keeps dicts in sorted order, so keys come out sorted, not in insertion order.
/// - list, tuple, set, frozenset -> array;
/// - str -> string; bytes and bytearray -> string when UTF-8, else an array of the
///   byte values (0-255);
/// - int of any size -> a JSON number written in full decimal (JavaScript's JSON.parse
///   rounds integers beyond 2^53 to the nearest double);
/// - float -> number (NaN and infinities have no JSON form: an error);
/// - bool -> true/false; None -> null.
fn write_json(value: &Value, out: &mut Vec<u8>) -> Result<(), PickleError> {
    match value {
        Value::None => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I64(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Int(big) => out.extend_from_slice(big.to_string().as_bytes()),
        Value::F64(f) => write_float(*f, out)?,
        Value::Bytes(bytes) => write_bytes(bytes, out),
        Value::String(s) => write_string(s, out),
        Value::List(items) | Value::Tuple(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out)?;
            }
            out.push(b']');
        }
        Value::Set(items) | Value::FrozenSet(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(&item.clone().into_value(), out)?;
            }
            out.push(b']');
        }
        Value::Dict(map) => {
            let all_str = map.keys().all(|k| matches!(k, HashableValue::String(_)));
            let mut seen = HashSet::new();
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let key_text = key_text(key)?;
                if !all_str && !seen.insert(key_text.clone()) {
                    return Err(PickleError::Refused(format!(
                        "dict has two keys that both become the JSON key {key_text:?}"
                    )));
                }
                write_string(&key_text, out);
                out.push(b':');
                write_json(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_float(f: f64, out: &mut Vec<u8>) -> Result<(), PickleError> {
    if !f.is_finite() {
        return Err(PickleError::Refused(format!(
            "pickle holds the float {f}, which has no JSON form"
        )));
    }
    serde_json::to_writer(&mut *out, &f).map_err(|e| PickleError::Refused(e.to_string()))
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing a str to a Vec cannot fail");
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => write_string(s, out),
        Err(_) => {
            out.push(b'[');
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b.to_string().as_bytes());
            }
            out.push(b']');
        }
    }
}

fn key_text(key: &HashableValue) -> Result<String, PickleError> {
    Ok(match key {
        HashableValue::String(s) => s.clone(),
        HashableValue::None => "null".into(),
        HashableValue::Bool(b) => b.to_string(),
        HashableValue::I64(i) => i.to_string(),
        HashableValue::Int(big) => big.to_string(),
        HashableValue::F64(f) => {
            let mut out = Vec::new();
            write_float(*f, &mut out)?;
            String::from_utf8(out).expect("JSON numbers are ASCII")
        }
        HashableValue::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => {
                let mut text = String::new();
                for b in bytes.iter() {
                    let _ = write!(text, "\\x{b:02x}");
                }
                text
            }
        },
        HashableValue::Tuple(_) | HashableValue::FrozenSet(_) => {
            let mut out = Vec::new();
            write_json(&key.clone().into_value(), &mut out)?;
            String::from_utf8(out).expect("our JSON writer writes UTF-8")
        }
    })
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
