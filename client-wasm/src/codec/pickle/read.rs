//! The pickle reader: a stack machine over the opcodes CPython writes for plain data
//! (protocols 0-5). It builds the value in an arena (memo references share a node, as
//! Python shares the object), bounds its depth and expanded size, then writes JSON text.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;

use super::{op, PickleError, HIGHEST_PROTOCOL, MAX_PICKLE_DEPTH, MAX_PICKLE_EXPANDED_SIZE};

/// The most decimal digits an integer may have. CPython 3.11 refuses to convert longer
/// integers to or from text (`sys.int_info.default_max_str_digits`) because the
/// conversion is quadratic; the same bound keeps a crafted LONG4 from costing us
/// seconds of CPU.
const MAX_INT_DIGITS: usize = 4300;

/// Index of a node in the arena.
type NodeId = usize;

/// The callables plain data is rebuilt with (by REDUCE), plus the helper protocols 0
/// and 1 rebuild class instances with, which is refused when called.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Callable {
    /// `_codecs.encode(str, 'latin1')`: bytes at protocols 0-2.
    Encode,
    /// `bytes()`: the empty bytes at protocols 0-2.
    Bytes,
    Bytearray,
    Set,
    FrozenSet,
    /// `copyreg._reconstructor`: a class instance at protocols 0-1.
    Reconstructor,
}

impl Callable {
    fn name(self) -> &'static str {
        match self {
            Callable::Encode => "_codecs.encode",
            Callable::Bytes => "builtins.bytes",
            Callable::Bytearray => "builtins.bytearray",
            Callable::Set => "builtins.set",
            Callable::FrozenSet => "builtins.frozenset",
            Callable::Reconstructor => "copyreg._reconstructor",
        }
    }
}

/// An integer beyond i64: sign and magnitude in little-endian 32-bit limbs, without
/// high zero limbs, and its decimal text, worked out once however often the memo
/// repeats the integer.
#[derive(Debug)]
struct BigInt {
    negative: bool,
    limbs: Vec<u32>,
    decimal: String,
}

#[derive(Debug)]
enum Node<'a> {
    None,
    Bool(bool),
    Int(i64),
    /// Boxed: rare, and three times the size of the other variants.
    BigInt(Box<BigInt>),
    Float(f64),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    List(Vec<NodeId>),
    Tuple(Vec<NodeId>),
    Dict(Vec<[NodeId; 2]>),
    Set(Vec<NodeId>),
    FrozenSet(Vec<NodeId>),
    Callable(Callable),
}

fn malformed(why: impl Into<String>) -> PickleError {
    PickleError::Malformed(why.into())
}

fn refused(why: impl Into<String>) -> PickleError {
    PickleError::Refused(why.into())
}

/// Decodes a pickle of plain data into JSON text (see `super::pickle_to_json`).
pub(super) fn pickle_to_json(data: &[u8]) -> Result<Vec<u8>, PickleError> {
    let mut reader = Reader {
        data,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        copied: 0,
    };
    let root = reader.run()?;
    let (_, size) = reader.measure(root)?;
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(data.len() * 2) + 16);
    reader.write_json(root, &mut out)?;
    Ok(out)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node<'a>>,
    /// The unpickler's stack; `marks` holds where each MARK cut it.
    stack: Vec<NodeId>,
    marks: Vec<usize>,
    memo: HashMap<u32, NodeId>,
    /// Items and bytes REDUCE has copied so far (bounded where `run` handles REDUCE).
    copied: usize,
}

impl<'a> Reader<'a> {
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

    /// A text argument, without its '\n' (and a '\r' before it, as Python 2 on Windows
    /// may have written).
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        let end = memchr::memchr(b'\n', rest)
            .ok_or_else(|| malformed(format!("unterminated line at byte {}", self.pos)))?;
        self.pos += end + 1;
        let line = &rest[..end];
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn push(&mut self, node: Node<'a>) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    /// Where the items above the last MARK start.
    fn base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<NodeId, PickleError> {
        if self.stack.len() <= self.base() {
            return Err(malformed(format!("stack underflow at byte {}", self.pos)));
        }
        Ok(self.stack.pop().expect("checked above the mark"))
    }

    fn top(&self) -> Result<NodeId, PickleError> {
        if self.stack.len() <= self.base() {
            return Err(malformed(format!("empty stack at byte {}", self.pos)));
        }
        Ok(*self.stack.last().expect("checked above the mark"))
    }

    /// Pops to the last mark; returns the items popped, in stack order.
    fn pop_mark(&mut self) -> Result<Vec<NodeId>, PickleError> {
        let base = self
            .marks
            .pop()
            .ok_or_else(|| malformed(format!("no mark to pop at byte {}", self.pos)))?;
        Ok(self.stack.split_off(base))
    }

    fn pairs(items: Vec<NodeId>, at: usize) -> Result<Vec<[NodeId; 2]>, PickleError> {
        if items.len() % 2 != 0 {
            return Err(malformed(format!("a key without a value at byte {at}")));
        }
        Ok(items.chunks_exact(2).map(|kv| [kv[0], kv[1]]).collect())
    }

    fn text_of(&self, id: NodeId, what: &str) -> Result<&str, PickleError> {
        match &self.nodes[id] {
            Node::Str(s) => Ok(s),
            _ => Err(malformed(format!(
                "{what} is not a str at byte {}",
                self.pos
            ))),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        let callable = match (module, name) {
            ("_codecs", "encode") => Callable::Encode,
            ("copy_reg" | "copyreg", "_reconstructor") => Callable::Reconstructor,
            ("builtins" | "__builtin__", "bytes") => Callable::Bytes,
            ("builtins" | "__builtin__", "bytearray") => Callable::Bytearray,
            ("builtins" | "__builtin__", "set") => Callable::Set,
            ("builtins" | "__builtin__", "frozenset") => Callable::FrozenSet,
            _ => {
                return Err(refused(format!(
                    "pickle refers to {module}.{name} (a class instance or function call), \
                     which has no JSON form"
                )))
            }
        };
        self.push(Node::Callable(callable));
        Ok(())
    }

    /// REDUCE: calls one of the allowed callables the way CPython's pickles do.
    fn reduce(&mut self, callable: Callable, args: &[NodeId]) -> Result<Node<'a>, PickleError> {
        let bad = || {
            malformed(format!(
                "unexpected arguments to {} at byte {}",
                callable.name(),
                self.pos
            ))
        };
        let nodes = &self.nodes;
        Ok(match (callable, args) {
            (Callable::Reconstructor, _) => {
                return Err(refused(
                    "pickle rebuilds a class instance (copyreg._reconstructor), \
                     which has no JSON form",
                ))
            }
            (Callable::Bytes | Callable::Bytearray, []) => Node::Bytes(Cow::Borrowed(&[])),
            (Callable::Bytearray, [arg]) => match &nodes[*arg] {
                Node::Bytes(bytes) => Node::Bytes(bytes.clone()),
                _ => return Err(bad()),
            },
            // `encode(str, 'latin1')` (and Python 2's `bytearray(unicode, 'latin-1')`):
            // every character is one byte.
            (Callable::Encode | Callable::Bytearray, [text, encoding]) => {
                let (Node::Str(text), Node::Str(encoding)) = (&nodes[*text], &nodes[*encoding])
                else {
                    return Err(bad());
                };
                if !matches!(&**encoding, "latin1" | "latin-1" | "iso-8859-1") {
                    return Err(refused(format!(
                        "pickle encodes bytes as {encoding:?}; only latin1 is read"
                    )));
                }
                if text.is_ascii() {
                    Node::Bytes(match text {
                        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                        Cow::Owned(s) => Cow::Owned(s.clone().into_bytes()),
                    })
                } else {
                    let bytes = text
                        .chars()
                        .map(|c| u8::try_from(u32::from(c)))
                        .collect::<Result<Vec<u8>, _>>()
                        .map_err(|_| malformed("latin1 text holds a character above U+00FF"))?;
                    Node::Bytes(Cow::Owned(bytes))
                }
            }
            (Callable::Set | Callable::FrozenSet, []) => Node::Set(Vec::new()),
            (Callable::Set | Callable::FrozenSet, [arg]) => match &nodes[*arg] {
                Node::List(items) | Node::Tuple(items) => Node::Set(items.clone()),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        })
        .map(|node| match (callable, node) {
            (Callable::FrozenSet, Node::Set(items)) => Node::FrozenSet(items),
            (_, node) => node,
        })
    }

    fn memo_index(&mut self, what: &str, at: usize) -> Result<u32, PickleError> {
        let line = self.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| malformed(format!("bad {what} index at byte {at}")))
    }

    fn memoize(&mut self, index: u32) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn recall(&mut self, index: u32) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| malformed(format!("GET of memo {index}, never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    /// The container on top of the stack, for APPEND-like opcodes.
    fn top_node(&mut self, at: usize) -> Result<&mut Node<'a>, PickleError> {
        let id = self
            .top()
            .map_err(|_| malformed(format!("no container to add to at byte {at}")))?;
        Ok(&mut self.nodes[id])
    }

    fn append(&mut self, items: Vec<NodeId>, at: usize) -> Result<(), PickleError> {
        match self.top_node(at)? {
            Node::List(list) => {
                list.extend(items);
                Ok(())
            }
            _ => Err(malformed(format!(
                "append to something not a list at byte {at}"
            ))),
        }
    }

    fn set_items(&mut self, items: Vec<NodeId>, at: usize) -> Result<(), PickleError> {
        let pairs = Self::pairs(items, at)?;
        match self.top_node(at)? {
            Node::Dict(dict) => {
                dict.extend(pairs);
                Ok(())
            }
            _ => Err(malformed(format!(
                "setitem on something not a dict at byte {at}"
            ))),
        }
    }

    /// Runs to STOP; returns the node the pickle produces.
    fn run(&mut self) -> Result<NodeId, PickleError> {
        use op::*;
        loop {
            let at = self.pos;
            let code = self.take(1)?[0];
            match code {
                STOP => {
                    if self.pos != self.data.len() {
                        return Err(malformed("bytes after the STOP opcode"));
                    }
                    return match (self.marks.is_empty(), self.stack.as_slice()) {
                        (true, [id]) => Ok(*id),
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
                MARK => self.marks.push(self.stack.len()),
                POP => {
                    // Python pops the mark when nothing is above it.
                    if self.stack.len() > self.base() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                NONE => self.push(Node::None),
                NEWTRUE => self.push(Node::Bool(true)),
                NEWFALSE => self.push(Node::Bool(false)),
                INT => {
                    // Protocols 0 and 1 spell True and False as I01 and I00.
                    let node = match self.line()? {
                        b"01" => Node::Bool(true),
                        b"00" => Node::Bool(false),
                        line => int_from_decimal(line, at)?,
                    };
                    self.push(node);
                }
                LONG => {
                    let line = self.line()?;
                    let node = int_from_decimal(line.strip_suffix(b"L").unwrap_or(line), at)?;
                    self.push(node);
                }
                BININT => {
                    let n = self.uint(4)? as u32 as i32;
                    self.push(Node::Int(n.into()));
                }
                BININT1 => {
                    let n = self.uint(1)?;
                    self.push(Node::Int(n as i64));
                }
                BININT2 => {
                    let n = self.uint(2)?;
                    self.push(Node::Int(n as i64));
                }
                LONG1 | LONG4 => {
                    let bytes = self.sized(if code == LONG1 { 1 } else { 4 })?;
                    let node = int_from_le_bytes(bytes)?;
                    self.push(node);
                }
                FLOAT => {
                    let line = self.line()?;
                    let f = std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .ok_or_else(|| malformed(format!("bad float at byte {at}")))?;
                    self.push(Node::Float(f));
                }
                BINFLOAT => {
                    let bytes = self.take(8)?;
                    let f = f64::from_be_bytes(bytes.try_into().expect("8 bytes"));
                    self.push(Node::Float(f));
                }
                STRING => {
                    let line = self.line()?;
                    let bytes = unescape_string(line, at)?;
                    self.push(Node::Bytes(bytes));
                }
                UNICODE => {
                    let line = self.line()?;
                    let text = raw_unicode_unescape(line, at)?;
                    self.push(Node::Str(text));
                }
                // Python 2 str (bytes), Python 3 bytes, and bytearray at protocol 5.
                BINSTRING | BINBYTES | SHORT_BINSTRING | SHORT_BINBYTES | BINBYTES8
                | BYTEARRAY8 => {
                    let len_bytes = match code {
                        SHORT_BINSTRING | SHORT_BINBYTES => 1,
                        BINSTRING | BINBYTES => 4,
                        _ => 8,
                    };
                    let bytes = self.sized(len_bytes)?;
                    self.push(Node::Bytes(Cow::Borrowed(bytes)));
                }
                SHORT_BINUNICODE | BINUNICODE | BINUNICODE8 => {
                    let len_bytes = match code {
                        SHORT_BINUNICODE => 1,
                        BINUNICODE => 4,
                        _ => 8,
                    };
                    let bytes = self.sized(len_bytes)?;
                    let text = std::str::from_utf8(bytes)
                        .map_err(|_| malformed(format!("str at byte {at} is not UTF-8")))?;
                    self.push(Node::Str(Cow::Borrowed(text)));
                }
                EMPTY_LIST => self.push(Node::List(Vec::new())),
                EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                EMPTY_SET => self.push(Node::Set(Vec::new())),
                LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Node::FrozenSet(items));
                }
                DICT => {
                    let items = self.pop_mark()?;
                    let pairs = Self::pairs(items, at)?;
                    self.push(Node::Dict(pairs));
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let count = usize::from(code - TUPLE1 + 1);
                    if self.stack.len() < self.base() + count {
                        return Err(malformed(format!("stack underflow at byte {at}")));
                    }
                    let items = self.stack.split_off(self.stack.len() - count);
                    self.push(Node::Tuple(items));
                }
                APPEND => {
                    let item = self.pop()?;
                    self.append(vec![item], at)?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.append(items, at)?;
                }
                SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value], at)?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    self.set_items(items, at)?;
                }
                ADDITEMS => {
                    let items = self.pop_mark()?;
                    match self.top_node(at)? {
                        Node::Set(set) => set.extend(items),
                        _ => return Err(malformed(format!("additems to a non-set at byte {at}"))),
                    }
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
                    let module = String::from_utf8_lossy(self.line()?);
                    let name = String::from_utf8_lossy(self.line()?);
                    self.global(&module, &name)?;
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (module, name) = (
                        self.text_of(module, "STACK_GLOBAL module")?.to_string(),
                        self.text_of(name, "STACK_GLOBAL name")?.to_string(),
                    );
                    self.global(&module, &name)?;
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let Node::Callable(callable) = self.nodes[callable] else {
                        return Err(malformed(format!("REDUCE of a non-callable at byte {at}")));
                    };
                    let Node::Tuple(args) = &self.nodes[args] else {
                        return Err(malformed(format!(
                            "REDUCE without an argument tuple at byte {at}"
                        )));
                    };
                    let args = args.clone();
                    let node = self.reduce(callable, &args)?;
                    // Python copies the argument into the new object; CPython's pickles
                    // pass each argument once, so they never copy more than their own
                    // size. A crafted one calling set() on one memoized list over and
                    // over would ask for memory quadratic in its size.
                    self.copied = self.copied.saturating_add(match &node {
                        Node::Set(items) | Node::FrozenSet(items) => items.len(),
                        Node::Bytes(Cow::Owned(bytes)) => bytes.len(),
                        _ => 0,
                    });
                    if self.copied > self.data.len() {
                        return Err(refused(
                            "pickle expands beyond its own size by calling set, frozenset \
                             or bytes again and again on shared data",
                        ));
                    }
                    self.push(node);
                }
                INST => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    return Err(refused(format!(
                        "pickle holds an instance of {module}.{name}, which has no JSON form"
                    )));
                }
                OBJ | NEWOBJ | NEWOBJ_EX | BUILD => {
                    return Err(refused(format!(
                        "pickle builds a class instance (opcode {code:#04x} at byte {at}), \
                         which has no JSON form"
                    )));
                }
                PERSID | BINPERSID => {
                    return Err(refused(
                        "pickle holds a persistent id, which has no JSON form",
                    ));
                }
                EXT1 | EXT2 | EXT4 => {
                    return Err(refused(
                        "pickle refers to a registered extension (copyreg), \
                         which has no JSON form",
                    ));
                }
                NEXT_BUFFER | READONLY_BUFFER => {
                    return Err(refused(
                        "pickle uses out-of-band buffers, which memcached cannot carry",
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

    fn children(&self, id: NodeId) -> &[NodeId] {
        match &self.nodes[id] {
            Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items) => {
                items
            }
            // [key, value] pairs laid out flat: the same ids, read as a slice.
            Node::Dict(pairs) => pairs.as_flattened(),
            _ => &[],
        }
    }

    /// Approximate JSON bytes of a node itself, its children not included.
    fn own_size(&self, id: NodeId) -> u64 {
        let size = match &self.nodes[id] {
            Node::None | Node::Bool(_) => 5,
            Node::Int(_) | Node::Float(_) => 25,
            Node::BigInt(big) => big.decimal.len(),
            // JSON escapes a control character in 6 bytes.
            Node::Str(text) => text.len() * 6,
            // Bytes may become an array of numbers, up to 4 JSON bytes each.
            Node::Bytes(bytes) => bytes.len() * 4,
            _ => 0,
        };
        size as u64 + 2
    }

    /// Nesting depth and expanded JSON size of `root`, every shared reference counted
    /// each time it appears. Iterative, so a deep pickle cannot exhaust the stack; each
    /// node is measured once.
    fn measure(&self, root: NodeId) -> Result<(u32, u64), PickleError> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            New,
            Open,
            Done(u32, u64),
        }
        let mut state = vec![State::New; self.nodes.len()];
        let mut work = vec![root];
        while let Some(&id) = work.last() {
            match state[id] {
                State::Done(..) => {
                    work.pop();
                }
                State::New => {
                    state[id] = State::Open;
                    for &child in self.children(id) {
                        match state[child] {
                            State::New => work.push(child),
                            // A container holding itself: JSON cannot carry it.
                            State::Open => {
                                return Err(refused(
                                    "pickle holds a recursive structure, which has no JSON form",
                                ))
                            }
                            State::Done(..) => {}
                        }
                    }
                }
                State::Open => {
                    let (mut depth, mut size) = (0u32, self.own_size(id));
                    let children = self.children(id);
                    for &child in children {
                        let State::Done(child_depth, child_size) = state[child] else {
                            unreachable!("children are measured before their container")
                        };
                        depth = depth.max(child_depth);
                        size = size.saturating_add(child_size).saturating_add(1);
                    }
                    if matches!(
                        self.nodes[id],
                        Node::List(_)
                            | Node::Tuple(_)
                            | Node::Dict(_)
                            | Node::Set(_)
                            | Node::FrozenSet(_)
                    ) {
                        depth += 1;
                    }
                    if depth > MAX_PICKLE_DEPTH {
                        return Err(refused(format!(
                            "pickle nests deeper than {MAX_PICKLE_DEPTH} levels"
                        )));
                    }
                    if size > MAX_PICKLE_EXPANDED_SIZE {
                        return Err(refused(format!(
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

    // -----------------------------------------------------------------------------
    // Node -> JSON text. Recursive, but only after `measure` bounded the depth.

    /// Writes a node as JSON text; see `super::pickle_to_json` for the mapping.
    fn write_json(&self, id: NodeId, out: &mut Vec<u8>) -> Result<(), PickleError> {
        match &self.nodes[id] {
            Node::None => out.extend_from_slice(b"null"),
            Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Node::Int(i) => write!(out, "{i}").expect("writing to a Vec cannot fail"),
            Node::BigInt(big) => out.extend_from_slice(big.decimal.as_bytes()),
            Node::Float(f) => write_float(*f, out)?,
            Node::Str(text) => write_string(text, out),
            Node::Bytes(bytes) => write_bytes(bytes, out),
            Node::List(items) | Node::Tuple(items) => self.write_array(items, out)?,
            Node::Set(items) | Node::FrozenSet(items) => {
                let members = self.set_members(items)?;
                self.write_array(&members, out)?;
            }
            Node::Dict(pairs) => self.write_object(pairs, out)?,
            Node::Callable(callable) => {
                return Err(refused(format!(
                    "pickle holds the function {} itself, which has no JSON form",
                    callable.name()
                )))
            }
        }
        Ok(())
    }

    fn write_array(&self, items: &[NodeId], out: &mut Vec<u8>) -> Result<(), PickleError> {
        out.push(b'[');
        for (i, &item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.write_json(item, out)?;
        }
        out.push(b']');
        Ok(())
    }

    /// Keys in Python's order (insertion); a key set twice keeps its first place and
    /// its last value, as a Python dict does.
    fn write_object(&self, pairs: &[[NodeId; 2]], out: &mut Vec<u8>) -> Result<(), PickleError> {
        for &[key, _] in pairs {
            self.check_hashable(key)?;
        }
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by(|&a, &b| self.compare(pairs[a][0], pairs[b][0]));
        let mut value_at: Vec<Option<NodeId>> = vec![None; pairs.len()];
        for run in order.chunk_by(|&a, &b| self.compare(pairs[a][0], pairs[b][0]).is_eq()) {
            // A stable sort keeps each run in insertion order.
            value_at[run[0]] = Some(pairs[run[run.len() - 1]][1]);
        }
        let all_str = pairs
            .iter()
            .all(|&[k, _]| matches!(self.nodes[k], Node::Str(_)));
        let mut seen = HashSet::new();
        out.push(b'{');
        let mut first = true;
        for (&[key, _], value) in pairs.iter().zip(value_at) {
            let Some(value) = value else { continue };
            if !first {
                out.push(b',');
            }
            first = false;
            let text = match &self.nodes[key] {
                Node::Str(text) => Cow::Borrowed(&**text),
                _ => Cow::Owned(self.key_text(key)?),
            };
            if !all_str && !seen.insert(text.clone().into_owned()) {
                return Err(refused(format!(
                    "dict has two keys that both become the JSON key {text:?}"
                )));
            }
            write_string(&text, out);
            out.push(b':');
            self.write_json(value, out)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// A dict key as a JSON key, as Python's `json.dumps` writes it for str, int,
    /// float, bool and None keys; bytes as their UTF-8 text (`\xNN` where not UTF-8),
    /// tuple and frozenset keys as their JSON text.
    fn key_text(&self, key: NodeId) -> Result<String, PickleError> {
        Ok(match &self.nodes[key] {
            Node::Str(text) => text.to_string(),
            Node::None => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::BigInt(big) => big.decimal.clone(),
            Node::Bytes(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_string(),
                Err(_) => bytes.iter().fold(String::new(), |mut text, b| {
                    let _ = write!(text, "\\x{b:02x}");
                    text
                }),
            },
            _ => {
                let mut out = Vec::new();
                self.write_json(key, &mut out)?;
                String::from_utf8(out).expect("our JSON writer writes UTF-8")
            }
        })
    }

    /// Set members sorted (Python sets have no order of their own) and without
    /// duplicates (the first of equal members stays, as in Python).
    fn set_members(&self, items: &[NodeId]) -> Result<Vec<NodeId>, PickleError> {
        for &item in items {
            self.check_hashable(item)?;
        }
        let mut members = items.to_vec();
        members.sort_by(|&a, &b| self.compare(a, b));
        members.dedup_by(|a, b| self.compare(*a, *b).is_eq());
        Ok(members)
    }

    /// Dict keys and set members are what Python can hash.
    fn check_hashable(&self, id: NodeId) -> Result<(), PickleError> {
        match &self.nodes[id] {
            Node::Tuple(items) | Node::FrozenSet(items) => {
                items.iter().try_for_each(|&item| self.check_hashable(item))
            }
            Node::List(_) | Node::Dict(_) | Node::Set(_) => Err(malformed(
                "a dict key or set member is a list, dict or set, which Python cannot hash",
            )),
            Node::Callable(callable) => Err(refused(format!(
                "pickle holds the function {} itself, which has no JSON form",
                callable.name()
            ))),
            _ => Ok(()),
        }
    }

    /// A total order on hashable nodes: None, then numbers by value (so 1, 1.0 and
    /// True are one key, as in Python), then bytes, str, frozensets and tuples.
    fn compare(&self, a: NodeId, b: NodeId) -> Ordering {
        fn rank(node: &Node) -> u8 {
            match node {
                Node::None => 0,
                Node::Bool(_) | Node::Int(_) | Node::BigInt(_) | Node::Float(_) => 1,
                Node::Bytes(_) => 2,
                Node::Str(_) => 3,
                Node::FrozenSet(_) => 4,
                Node::Tuple(_) => 5,
                _ => 6,
            }
        }
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        match (x, y) {
            (Node::Bytes(x), Node::Bytes(y)) => x.cmp(y),
            (Node::Str(x), Node::Str(y)) => x.cmp(y),
            (Node::Tuple(x), Node::Tuple(y)) => self.compare_all(x, y),
            (Node::FrozenSet(x), Node::FrozenSet(y)) => {
                match (self.set_members(x), self.set_members(y)) {
                    (Ok(x), Ok(y)) => self.compare_all(&x, &y),
                    _ => Ordering::Equal,
                }
            }
            _ => match (Number::of(x), Number::of(y)) {
                (Some(x), Some(y)) => x.compare(&y),
                _ => rank(x).cmp(&rank(y)),
            },
        }
    }

    fn compare_all(&self, x: &[NodeId], y: &[NodeId]) -> Ordering {
        x.iter()
            .zip(y)
            .map(|(&a, &b)| self.compare(a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len()))
    }
}

/// A number as compared for dict keys and set members.
enum Number<'n> {
    Int(i64),
    Big(&'n BigInt),
    Float(f64),
}

impl<'n> Number<'n> {
    fn of(node: &'n Node) -> Option<Number<'n>> {
        match node {
            Node::Bool(b) => Some(Number::Int(i64::from(*b))),
            Node::Int(i) => Some(Number::Int(*i)),
            Node::BigInt(big) => Some(Number::Big(big)),
            Node::Float(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }

    fn to_f64(&self) -> f64 {
        match self {
            Number::Int(i) => *i as f64,
            Number::Big(big) => big.to_f64(),
            Number::Float(f) => *f,
        }
    }

    fn compare(&self, other: &Number) -> Ordering {
        match (self, other) {
            (Number::Int(x), Number::Int(y)) => x.cmp(y),
            // A BigInt is beyond i64 by construction: its sign decides.
            (Number::Big(x), Number::Int(_)) => sign_order(x.negative),
            (Number::Int(_), Number::Big(y)) => sign_order(y.negative).reverse(),
            (Number::Big(x), Number::Big(y)) => x.compare(y),
            _ => self
                .to_f64()
                .partial_cmp(&other.to_f64())
                .unwrap_or(Ordering::Less),
        }
    }
}

fn sign_order(negative: bool) -> Ordering {
    if negative {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

impl BigInt {
    fn compare(&self, other: &BigInt) -> Ordering {
        if self.negative != other.negative {
            return sign_order(self.negative);
        }
        let magnitude = self
            .limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()));
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }

    fn to_f64(&self) -> f64 {
        let magnitude = self
            .limbs
            .iter()
            .rev()
            .fold(0f64, |acc, &limb| acc * 4_294_967_296.0 + f64::from(limb));
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }

    /// Every digit, by repeated division by 10^9.
    fn decimal(negative: bool, limbs: &[u32]) -> String {
        const CHUNK: u64 = 1_000_000_000;
        let mut limbs = limbs.to_vec();
        let mut chunks = Vec::with_capacity(limbs.len() * 32 / 29 + 1);
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let value = (rem << 32) | u64::from(*limb);
                *limb = (value / CHUNK) as u32;
                rem = value % CHUNK;
            }
            chunks.push(rem as u32);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        let mut text = String::with_capacity(chunks.len() * 9 + 1);
        if negative {
            text.push('-');
        }
        let mut chunks = chunks.iter().rev();
        let _ = write!(text, "{}", chunks.next().copied().unwrap_or(0));
        for chunk in chunks {
            let _ = write!(text, "{chunk:09}");
        }
        text
    }
}

/// An integer from its sign and magnitude: an i64 when it fits, else a BigInt.
fn int_node<'a>(negative: bool, mut limbs: Vec<u32>) -> Node<'a> {
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    if limbs.len() <= 2 {
        let magnitude = limbs
            .iter()
            .rev()
            .fold(0u64, |acc, &limb| (acc << 32) | u64::from(limb));
        let value = if negative {
            -i128::from(magnitude)
        } else {
            i128::from(magnitude)
        };
        if let Ok(value) = i64::try_from(value) {
            return Node::Int(value);
        }
    }
    let decimal = BigInt::decimal(negative, &limbs);
    Node::BigInt(Box::new(BigInt {
        negative,
        limbs,
        decimal,
    }))
}

fn too_many_digits() -> PickleError {
    refused(format!(
        "pickle holds an integer of more than {MAX_INT_DIGITS} digits, which CPython \
         does not convert to text either"
    ))
}

/// LONG1 and LONG4: little-endian two's complement.
fn int_from_le_bytes<'a>(bytes: &[u8]) -> Result<Node<'a>, PickleError> {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    if bytes.len() <= 8 {
        let mut word = [if negative { 0xff } else { 0 }; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        return Ok(Node::Int(i64::from_le_bytes(word)));
    }
    // log10(256) < 2.41 digits per byte.
    if bytes.len() * 241 / 100 > MAX_INT_DIGITS {
        return Err(too_many_digits());
    }
    let mut magnitude = bytes.to_vec();
    if negative {
        let mut carry = true;
        for byte in &mut magnitude {
            *byte = !*byte;
            if carry {
                (*byte, carry) = byte.overflowing_add(1);
            }
        }
    }
    let limbs = magnitude
        .chunks(4)
        .map(|chunk| {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            u32::from_le_bytes(word)
        })
        .collect();
    Ok(int_node(negative, limbs))
}

/// INT and LONG: decimal text with an optional sign.
fn int_from_decimal<'a>(text: &[u8], at: usize) -> Result<Node<'a>, PickleError> {
    let text = text.trim_ascii();
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed(format!("bad integer at byte {at}")));
    }
    if digits.len() > MAX_INT_DIGITS {
        return Err(too_many_digits());
    }
    let mut limbs: Vec<u32> = Vec::new();
    for chunk in digits.chunks(9) {
        let scale = 10u64.pow(chunk.len() as u32);
        let mut carry = chunk
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        for limb in &mut limbs {
            let value = u64::from(*limb) * scale + carry;
            *limb = value as u32;
            carry = value >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    Ok(int_node(negative, limbs))
}

/// STRING (Python 2 str at protocol 0): a quoted Python literal with backslash escapes.
fn unescape_string<'a>(line: &'a [u8], at: usize) -> Result<Cow<'a, [u8]>, PickleError> {
    let inner = match line {
        [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
        _ => return Err(malformed(format!("STRING at byte {at} is not quoted"))),
    };
    if !inner.contains(&b'\\') {
        return Ok(Cow::Borrowed(inner));
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some((&escape, tail)) = rest.split_first() else {
            return Err(malformed(format!(
                "STRING at byte {at} ends in a backslash"
            )));
        };
        rest = tail;
        match escape {
            b'\\' | b'\'' | b'"' => out.push(escape),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'\n' => {}
            b'x' => {
                let value = rest
                    .get(..2)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| malformed(format!("bad \\x escape in STRING at byte {at}")))?;
                out.push(value);
                rest = &rest[2..];
            }
            b'0'..=b'7' => {
                let mut value = u32::from(escape - b'0');
                for _ in 0..2 {
                    match rest.split_first() {
                        Some((&d @ b'0'..=b'7', tail)) => {
                            value = value * 8 + u32::from(d - b'0');
                            rest = tail;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            // Python keeps an unknown escape as it is.
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    Ok(Cow::Owned(out))
}

/// UNICODE (str at protocol 0): raw-unicode-escape, that is Latin-1 bytes with
/// `\uXXXX` and `\UXXXXXXXX` escapes; any other backslash is itself.
fn raw_unicode_unescape<'a>(line: &'a [u8], at: usize) -> Result<Cow<'a, str>, PickleError> {
    if line.is_ascii() && !line.contains(&b'\\') {
        return Ok(Cow::Borrowed(
            std::str::from_utf8(line).expect("ASCII is UTF-8"),
        ));
    }
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        let width = match (b, line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => {
                out.push(char::from(b));
                i += 1;
                continue;
            }
        };
        let c = line
            .get(i + 2..i + 2 + width)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32)
            .ok_or_else(|| malformed(format!("bad \\u escape in UNICODE at byte {at}")))?;
        out.push(c);
        i += 2 + width;
    }
    Ok(Cow::Owned(out))
}

fn write_float(f: f64, out: &mut Vec<u8>) -> Result<(), PickleError> {
    if !f.is_finite() {
        // Named by hand: formatting an f64 would link the float printer into the .wasm.
        let name = if f.is_nan() {
            "nan"
        } else if f > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        return Err(refused(format!(
            "pickle holds the float {name}, which has no JSON form"
        )));
    }
    serde_json::to_writer(&mut *out, &f).map_err(|e| refused(e.to_string()))
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing a str to a Vec cannot fail");
}

/// Bytes are a string when UTF-8, else an array of the byte values.
fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => write_string(s, out),
        Err(_) => {
            out.push(b'[');
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write!(out, "{b}").expect("writing to a Vec cannot fail");
            }
            out.push(b']');
        }
    }
}
