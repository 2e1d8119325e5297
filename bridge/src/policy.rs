//! The command policy: a sans-IO scanner of the memcached text protocol that a client sends.
//! It finds where every command line and every storage command's data block ends, across
//! WebSocket frames split anywhere, and decides which bytes may go to memcached.
//!
//! The scanner is an allow-list: a command it does not know is refused, so nothing memcached
//! would run can slip past as "unknown". Lines that would make memcached and the scanner
//! disagree about where a data block ends (bad byte counts, too many tokens, NUL bytes) are
//! refused too, because after such a line memcached reads the would-be data as commands.

use std::fmt;

use crate::limits::{MAX_COMMAND_LINE, MAX_KEY_LENGTH, MAX_META_SET_TOKENS};

/// What an operator allows beyond plain reads: writes unless read-only, and named admin commands.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub read_only: bool,
    /// Admin commands allowed by `--allow-admin`, as `verbosity` or `lru_crawler crawl`; a bare
    /// command name allows all of its subcommands.
    pub allowed_admin: Vec<String>,
}

/// The admin commands the bridge knows, refused unless `--allow-admin` names them.
pub const ADMIN_COMMANDS: &[&str] = &[
    "shutdown",
    "verbosity",
    "slabs",
    "lru_crawler",
    "lru",
    "watch",
    "cache_memlimit",
    "misbehave",
    "debugtime",
    "extstore",
    "refresh_certs",
    "stats reset",
    "stats detail",
    "stats sizes_enable",
    "stats sizes_disable",
];

/// Why a command was refused; the close reason the client sees is its `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A write (storage, delete, incr/decr, touch, flush_all, ...) on a read-only bridge.
    ReadOnly { command: String },
    /// An admin command not allowed by `--allow-admin`.
    Admin { command: String },
    /// A command memcached's text protocol does not have (or the bridge does not relay).
    Unknown { command: String },
    /// A line the bridge cannot frame safely; `problem` says what is wrong with it.
    Malformed {
        command: String,
        problem: &'static str,
    },
    /// The connection opened with memcached's binary protocol, which the bridge does not scan.
    BinaryProtocol,
    /// A command line longer than [`MAX_COMMAND_LINE`] that is not a multi-key get.
    LineTooLong { command: String },
}

impl Refusal {
    /// A stable label for the refusal counters in `/metrics`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Refusal::ReadOnly { .. } => "read_only",
            Refusal::Admin { .. } => "admin_command",
            Refusal::Unknown { .. } => "unknown_command",
            Refusal::Malformed { .. } => "malformed_command",
            Refusal::BinaryProtocol => "binary_protocol",
            Refusal::LineTooLong { .. } => "line_too_long",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ReadOnly { command } => write!(f, "read-only bridge refuses {command}"),
            Refusal::Admin { command } => write!(f, "admin command refused: {command}"),
            Refusal::Unknown { command } => write!(f, "unknown command refused: {command}"),
            Refusal::Malformed { command, problem } => {
                write!(f, "malformed {command} command refused: {problem}")
            }
            Refusal::BinaryProtocol => write!(f, "binary protocol refused: text protocol only"),
            Refusal::LineTooLong { command } => write!(f, "command line too long: {command}"),
        }
    }
}

/// What the caller may forward after feeding one chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes held back from earlier chunks (the start of a command line that this chunk
    /// completed); they go to memcached before `chunk[..pass]`.
    pub released: Vec<u8>,
    /// How many leading bytes of the chunk may go to memcached now. The rest is either held
    /// by the scanner (an incomplete command line) or, after a refusal, dropped.
    pub pass: usize,
    /// The refused command, if any. Everything before it was passed; nothing of it was.
    pub refusal: Option<Refusal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// At or inside a command line; its bytes so far are held in `line`.
    Line,
    /// Inside an allowed storage command's data block (value plus its "\r\n").
    Data { remaining: u64 },
    /// Inside an allowed multi-key get line longer than [`MAX_COMMAND_LINE`]; passes to '\n'.
    LongGet,
    /// A command was refused; the connection is finished and nothing more passes.
    Refused(Refusal),
}

/// Scans one connection's client-to-memcached byte stream. Feed it every chunk in order.
#[derive(Debug)]
pub struct CommandScanner {
    policy: Policy,
    state: State,
    /// The held-back start of the current command line (never longer than MAX_COMMAND_LINE).
    line: Vec<u8>,
    started: bool,
    quit_sent: bool,
}

/// How a complete, allowed command line continues.
enum Next {
    Line,
    Data(u64),
}

impl CommandScanner {
    pub fn new(policy: Policy) -> CommandScanner {
        CommandScanner {
            policy,
            state: State::Line,
            line: Vec::new(),
            started: false,
            quit_sent: false,
        }
    }

    /// Whether the client sent `quit`, after which memcached closing the connection is normal.
    pub fn quit_sent(&self) -> bool {
        self.quit_sent
    }

    /// Bytes of an unfinished command line the scanner is holding back.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.line.len()
    }

    /// Feeds the next chunk of the client's stream and says what of it may go upstream.
    pub fn feed(&mut self, chunk: &[u8]) -> Scanned {
        let mut out = Scanned::default();
        if chunk.is_empty() {
            return out;
        }
        if let State::Refused(refusal) = &self.state {
            out.refusal = Some(refusal.clone());
            return out;
        }
        if !self.started {
            self.started = true;
            // memcached picks the binary protocol when a connection's first byte is 0x80.
            if chunk[0] == 0x80 {
                return self.refuse(out, Refusal::BinaryProtocol);
            }
        }
        let mut pos = 0;
        while pos < chunk.len() {
            match self.state {
                State::Refused(_) => unreachable!("feed returns on a refusal"),
                State::Data { remaining } => {
                    let take = remaining.min((chunk.len() - pos) as u64);
                    pos += take as usize;
                    self.state = if take == remaining {
                        State::Line
                    } else {
                        State::Data {
                            remaining: remaining - take,
                        }
                    };
                    out.pass = pos;
                }
                State::LongGet => match memchr::memchr(b'\n', &chunk[pos..]) {
                    Some(at) => {
                        pos += at + 1;
                        self.state = State::Line;
                        out.pass = pos;
                    }
                    None => {
                        pos = chunk.len();
                        out.pass = pos;
                    }
                },
                State::Line => match memchr::memchr(b'\n', &chunk[pos..]) {
                    Some(at) => {
                        let end = pos + at;
                        let verdict = if self.line.is_empty() {
                            self.judge(&chunk[pos..end])
                        } else {
                            let mut whole = self.line.clone();
                            whole.extend_from_slice(&chunk[pos..end]);
                            self.judge(&whole)
                        };
                        match verdict {
                            Ok(next) => {
                                if !self.line.is_empty() {
                                    // The held start of this line goes out first.
                                    out.released = std::mem::take(&mut self.line);
                                }
                                pos = end + 1;
                                out.pass = pos;
                                if let Next::Data(len) = next {
                                    self.state = State::Data { remaining: len };
                                }
                            }
                            Err(refusal) => return self.refuse(out, refusal),
                        }
                    }
                    None => {
                        let rest = &chunk[pos..];
                        if self.line.len() + rest.len() <= MAX_COMMAND_LINE {
                            self.line.extend_from_slice(rest);
                            return out;
                        }
                        // Too long to hold: only a multi-key get may go on, as in memcached.
                        let mut head = std::mem::take(&mut self.line);
                        let room = MAX_COMMAND_LINE - head.len();
                        head.extend_from_slice(&rest[..room.min(rest.len())]);
                        match long_line_verdict(&head, &self.policy) {
                            Ok(()) => {
                                head.truncate(head.len() - room.min(rest.len()));
                                if !head.is_empty() {
                                    out.released = head;
                                }
                                self.state = State::LongGet;
                                pos = chunk.len();
                                out.pass = pos;
                            }
                            Err(refusal) => return self.refuse(out, refusal),
                        }
                    }
                },
            }
        }
        out
    }

    fn refuse(&mut self, mut out: Scanned, refusal: Refusal) -> Scanned {
        self.state = State::Refused(refusal.clone());
        self.line.clear();
        out.refusal = Some(refusal);
        out
    }

    /// Judges one complete command line (without its '\n'). A line too long to have been
    /// held back is judged by its start alone, exactly as when it arrives in pieces.
    fn judge(&mut self, line: &[u8]) -> Result<Next, Refusal> {
        if line.len() > MAX_COMMAND_LINE {
            return long_line_verdict(&line[..MAX_COMMAND_LINE], &self.policy).map(|()| Next::Line);
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let tokens: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .collect();
        let Some(&name) = tokens.first() else {
            // memcached answers an empty line with ERROR; nothing runs.
            return Ok(Next::Line);
        };
        let command = printable(name);
        if line.contains(&0) {
            // memcached stops reading a line at NUL; the scanner would see other tokens.
            return Err(Refusal::Malformed {
                command,
                problem: "NUL byte in command line",
            });
        }
        let class = classify(name, &tokens, &command)?;
        if name == b"quit" {
            self.quit_sent = true;
        }
        self.admit(&class)?;
        Ok(match class {
            Class::Store { data, .. } => Next::Data(data),
            _ => Next::Line,
        })
    }

    fn admit(&self, class: &Class) -> Result<(), Refusal> {
        match class {
            Class::Read => Ok(()),
            Class::Write { command } | Class::Store { command, .. } => {
                if self.policy.read_only {
                    Err(Refusal::ReadOnly {
                        command: command.clone(),
                    })
                } else {
                    Ok(())
                }
            }
            Class::Admin { command } => {
                if admin_allowed(&self.policy, command) {
                    Ok(())
                } else {
                    Err(Refusal::Admin {
                        command: command.clone(),
                    })
                }
            }
        }
    }
}

/// A command's class: what the policy has to decide about it.
enum Class {
    Read,
    Write {
        command: String,
    },
    /// A write followed by a data block of `data` bytes (the value and its "\r\n").
    Store {
        command: String,
        data: u64,
    },
    Admin {
        command: String,
    },
}

fn classify(name: &[u8], tokens: &[&[u8]], command: &str) -> Result<Class, Refusal> {
    let write = || Class::Write {
        command: command.to_string(),
    };
    let store = |data| Class::Store {
        command: command.to_string(),
        data,
    };
    let admin = |sub: Option<&[u8]>| Class::Admin {
        command: match sub {
            Some(sub) => format!("{command} {}", printable(sub)),
            None => command.to_string(),
        },
    };
    let class = match name {
        b"get" | b"gets" | b"version" | b"quit" | b"mn" => Class::Read,
        b"gat" | b"gats" | b"delete" | b"incr" | b"decr" | b"touch" | b"flush_all" | b"md"
        | b"ma" => write(),
        b"set" | b"add" | b"replace" | b"append" | b"prepend" => {
            store(storage_data_length(tokens, 5, command)?)
        }
        b"cas" => store(storage_data_length(tokens, 6, command)?),
        b"ms" => store(meta_set_data_length(tokens, command)?),
        b"mg" => {
            if tokens
                .iter()
                .skip(2)
                .all(|flag| is_read_only_meta_get_flag(flag))
            {
                Class::Read
            } else {
                // mg can touch (T), create (N) or mark items (R, E): a write, not a read.
                write()
            }
        }
        b"me" => Class::Read,
        b"stats" => match tokens.get(1).copied() {
            Some(b"reset") | Some(b"sizes_enable") | Some(b"sizes_disable") => {
                admin(tokens.get(1).copied())
            }
            Some(b"detail") if tokens.get(2).copied() != Some(b"dump") => {
                admin(tokens.get(1).copied())
            }
            _ => Class::Read,
        },
        b"lru_crawler" => match tokens.get(1).copied() {
            Some(b"metadump") => Class::Read,
            sub => admin(sub),
        },
        b"slabs" => admin(tokens.get(1).copied()),
        b"shutdown" | b"verbosity" | b"lru" | b"watch" | b"cache_memlimit" | b"misbehave"
        | b"debugtime" | b"extstore" | b"refresh_certs" => admin(None),
        _ => {
            return Err(Refusal::Unknown {
                command: command.to_string(),
            })
        }
    };
    Ok(class)
}

/// The data block length (value + "\r\n") of `set`/`add`/`replace`/`append`/`prepend`
/// (`fixed` = 5 tokens) or `cas` (6), checked as strictly as memcached checks it, so that
/// the scanner skips a data block only where memcached reads one.
fn storage_data_length(tokens: &[&[u8]], fixed: usize, command: &str) -> Result<u64, Refusal> {
    let malformed = |problem| Refusal::Malformed {
        command: command.to_string(),
        problem,
    };
    if tokens.len() != fixed && tokens.len() != fixed + 1 {
        return Err(malformed("wrong number of arguments"));
    }
    if tokens[1].len() > MAX_KEY_LENGTH {
        return Err(malformed("key longer than 250 bytes"));
    }
    if !matches!(parse_decimal(tokens[2]), Some(flags) if flags <= u64::from(u32::MAX)) {
        return Err(malformed("bad flags"));
    }
    let exptime = tokens[3].strip_prefix(b"-").unwrap_or(tokens[3]);
    if !matches!(parse_decimal(exptime), Some(t) if t <= i32::MAX as u64) {
        return Err(malformed("bad exptime"));
    }
    let bytes = value_length(tokens[4]).ok_or_else(|| malformed("bad byte count"))?;
    if fixed == 6 && parse_decimal(tokens[5]).is_none() {
        return Err(malformed("bad cas unique"));
    }
    Ok(bytes + 2)
}

/// The data block length of a meta set: `ms <key> <datalen> <flags>*`.
fn meta_set_data_length(tokens: &[&[u8]], command: &str) -> Result<u64, Refusal> {
    let malformed = |problem| Refusal::Malformed {
        command: command.to_string(),
        problem,
    };
    if tokens.len() < 3 || tokens.len() > MAX_META_SET_TOKENS {
        return Err(malformed("wrong number of arguments"));
    }
    if tokens[1].len() > MAX_KEY_LENGTH {
        return Err(malformed("key longer than 250 bytes"));
    }
    let bytes = value_length(tokens[2]).ok_or_else(|| malformed("bad data length"))?;
    Ok(bytes + 2)
}

/// A value length as memcached accepts it: 0 ..= INT_MAX - 2.
fn value_length(token: &[u8]) -> Option<u64> {
    parse_decimal(token).filter(|&n| n <= (i32::MAX - 2) as u64)
}

/// Plain ASCII digits only (memcached also takes signs and spaces; refusing them is safe).
fn parse_decimal(token: &[u8]) -> Option<u64> {
    if token.is_empty() || token.len() > 20 || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// Meta get flags that only read: b c f h k l O q s t u v (N, R, T and E change the item).
fn is_read_only_meta_get_flag(flag: &[u8]) -> bool {
    matches!(
        flag.first(),
        Some(b'b' | b'c' | b'f' | b'h' | b'k' | b'l' | b'O' | b'q' | b's' | b't' | b'u' | b'v')
    )
}

fn admin_allowed(policy: &Policy, command: &str) -> bool {
    let base = command.split(' ').next().unwrap_or(command);
    policy
        .allowed_admin
        .iter()
        .any(|allowed| allowed == command || allowed == base)
}

/// A line too long to hold back may continue only as a get, gets, gat or gats with many keys.
fn long_line_verdict(head: &[u8], policy: &Policy) -> Result<(), Refusal> {
    let mut tokens = head.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let name = tokens.next().unwrap_or_default();
    let command = printable(name);
    if head.contains(&0) {
        return Err(Refusal::Malformed {
            command,
            problem: "NUL byte in command line",
        });
    }
    match name {
        b"get" | b"gets" if tokens.next().is_some() => Ok(()),
        b"gat" | b"gats" if tokens.next().is_some() => {
            if policy.read_only {
                Err(Refusal::ReadOnly { command })
            } else {
                Ok(())
            }
        }
        _ => Err(Refusal::LineTooLong { command }),
    }
}

/// A command name fit for a close reason and a log line: short, printable ASCII.
fn printable(name: &[u8]) -> String {
    const SHOWN: usize = 32;
    let mut text: String = name
        .iter()
        .take(SHOWN)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    if name.len() > SHOWN {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scanner(read_only: bool) -> CommandScanner {
        CommandScanner::new(Policy {
            read_only,
            allowed_admin: Vec::new(),
        })
    }

    /// Feeds chunks and returns (bytes passed in order, refusal).
    fn run(scanner: &mut CommandScanner, chunks: &[&[u8]]) -> (Vec<u8>, Option<Refusal>) {
        let mut passed = Vec::new();
        for chunk in chunks {
            let scanned = scanner.feed(chunk);
            passed.extend_from_slice(&scanned.released);
            passed.extend_from_slice(&chunk[..scanned.pass]);
            if scanned.refusal.is_some() {
                return (passed, scanned.refusal);
            }
        }
        (passed, None)
    }

    #[test]
    fn data_block_that_looks_like_a_command_is_not_judged() {
        let input = b"set k 0 0 11\r\nflush_all\r\n\r\nget k\r\n";
        let (passed, refusal) = run(&mut scanner(false), &[input]);
        assert_eq!(refusal, None);
        assert_eq!(passed, input);
        // Read-only refuses the set itself, before any of it passes.
        let (passed, refusal) = run(&mut scanner(true), &[b"get a\r\n", input]);
        assert_eq!(passed, b"get a\r\n");
        assert_eq!(
            refusal,
            Some(Refusal::ReadOnly {
                command: "set".into()
            })
        );
    }

    #[test]
    fn storage_data_containing_shutdown_passes_and_the_next_line_is_judged() {
        let input = b"set k 0 0 10\r\nshutdown\r\n\r\nshutdown\r\n";
        let (passed, refusal) = run(&mut scanner(false), &[input]);
        assert_eq!(passed, b"set k 0 0 10\r\nshutdown\r\n\r\n");
        assert_eq!(
            refusal,
            Some(Refusal::Admin {
                command: "shutdown".into()
            })
        );
    }

    #[test]
    fn incomplete_lines_are_held_until_their_newline() {
        let mut s = scanner(false);
        let first = s.feed(b"get a\r\nfl");
        assert_eq!((first.released.as_slice(), first.pass), (&b""[..], 7));
        assert_eq!(s.held(), 2);
        let second = s.feed(b"ush_all\r\n");
        assert_eq!(second.released, b"fl");
        assert_eq!(second.pass, 9);
        assert_eq!(second.refusal, None);
    }

    #[test]
    fn refused_command_split_across_chunks_sends_nothing_of_it() {
        let (passed, refusal) = run(
            &mut scanner(false),
            &[b"version\r\nshut", b"down\r\nget a\r\n"],
        );
        assert_eq!(passed, b"version\r\n");
        assert_eq!(
            refusal,
            Some(Refusal::Admin {
                command: "shutdown".into()
            })
        );
    }

    #[test]
    fn read_only_passes_reads_and_refuses_each_write() {
        for line in [
            "get a b",
            "gets a",
            "stats",
            "stats slabs",
            "version",
            "mg k v f t",
            "mn",
            "me k",
        ] {
            let input = format!("{line}\r\n");
            let (_, refusal) = run(&mut scanner(true), &[input.as_bytes()]);
            assert_eq!(refusal, None, "{line}");
        }
        for (line, name) in [
            ("set k 0 0 1\r\nx", "set"),
            ("add k 0 0 1\r\nx", "add"),
            ("cas k 0 0 1 5\r\nx", "cas"),
            ("delete k", "delete"),
            ("incr k 1", "incr"),
            ("decr k 1", "decr"),
            ("touch k 10", "touch"),
            ("gat 10 k", "gat"),
            ("flush_all", "flush_all"),
            ("ms k 1 T0\r\nx", "ms"),
            ("md k", "md"),
            ("ma k", "ma"),
            ("mg k v T30", "mg"),
            ("mg k N30 v", "mg"),
        ] {
            let input = format!("{line}\r\n");
            let (passed, refusal) = run(&mut scanner(true), &[input.as_bytes()]);
            assert!(passed.is_empty(), "{line}");
            assert_eq!(
                refusal,
                Some(Refusal::ReadOnly {
                    command: name.into()
                }),
                "{line}"
            );
        }
    }

    #[test]
    fn admin_commands_are_refused_unless_allowed() {
        for (line, name) in [
            ("shutdown", "shutdown"),
            ("shutdown graceful", "shutdown"),
            ("verbosity 1", "verbosity"),
            ("slabs reassign 1 2", "slabs reassign"),
            ("slabs automove 1", "slabs automove"),
            ("lru_crawler crawl all", "lru_crawler crawl"),
            ("lru_crawler enable", "lru_crawler enable"),
            ("watch", "watch"),
            ("cache_memlimit 100", "cache_memlimit"),
            ("stats reset", "stats reset"),
            ("stats detail on", "stats detail"),
        ] {
            let input = format!("{line}\r\n");
            let (_, refusal) = run(&mut scanner(false), &[input.as_bytes()]);
            assert_eq!(
                refusal,
                Some(Refusal::Admin {
                    command: name.into()
                }),
                "{line}"
            );
        }
        let (_, refusal) = run(
            &mut scanner(false),
            &[b"lru_crawler metadump all\r\nstats detail dump\r\n"],
        );
        assert_eq!(refusal, None);
        let mut allowed = CommandScanner::new(Policy {
            read_only: false,
            allowed_admin: vec!["verbosity".into(), "lru_crawler crawl".into()],
        });
        let (_, refusal) = run(
            &mut allowed,
            &[b"verbosity 1\r\nlru_crawler crawl all\r\nlru_crawler enable\r\n"],
        );
        assert_eq!(
            refusal,
            Some(Refusal::Admin {
                command: "lru_crawler enable".into()
            })
        );
    }

    #[test]
    fn unknown_commands_and_nul_bytes_are_refused() {
        let (_, refusal) = run(&mut scanner(false), &[b"SET k 0 0 1\r\nx\r\n"]);
        assert_eq!(
            refusal,
            Some(Refusal::Unknown {
                command: "SET".into()
            })
        );
        let (_, refusal) = run(&mut scanner(false), &[b"flush_all\0x\r\n"]);
        assert!(matches!(refusal, Some(Refusal::Malformed { .. })));
        let (_, refusal) = run(&mut scanner(false), &[b"get a\0 b\r\n"]);
        assert!(matches!(refusal, Some(Refusal::Malformed { .. })));
        let (_, refusal) = run(&mut scanner(false), &[b"\x80\x00\x00\x05"]);
        assert_eq!(refusal, Some(Refusal::BinaryProtocol));
    }

    #[test]
    fn storage_lines_memcached_would_not_frame_are_refused() {
        for line in [
            "set k 0 0 -1",
            "set k 0 0 abc",
            "set k 0 0 5 noreply extra",
            "set k 0 0",
            "set k 4294967296 0 1",
            "set k 0 0 2147483646",
            "cas k 0 0 1",
            "ms k",
            "ms k x",
        ] {
            let input = format!("{line}\r\nflush_all\r\n");
            let (passed, refusal) = run(&mut scanner(false), &[input.as_bytes()]);
            assert!(passed.is_empty(), "{line}");
            assert!(
                matches!(refusal, Some(Refusal::Malformed { .. })),
                "{line}: {refusal:?}"
            );
        }
        let long_key = format!("set {} 0 0 1\r\nx\r\n", "k".repeat(251));
        let (_, refusal) = run(&mut scanner(false), &[long_key.as_bytes()]);
        assert!(matches!(refusal, Some(Refusal::Malformed { .. })));
    }

    #[test]
    fn long_lines_pass_only_for_multi_key_gets() {
        let keys: Vec<String> = (0..2000).map(|i| format!("key{i}")).collect();
        let get = format!("get {}\r\nversion\r\n", keys.join(" "));
        let (passed, refusal) = run(&mut scanner(true), &[get.as_bytes()]);
        assert_eq!((passed.len(), refusal), (get.len(), None));
        let stats = format!("stats {}\r\n", "x".repeat(MAX_COMMAND_LINE));
        let (_, refusal) = run(&mut scanner(false), &[stats.as_bytes()]);
        assert_eq!(
            refusal,
            Some(Refusal::LineTooLong {
                command: "stats".into()
            })
        );
    }

    #[test]
    fn close_reasons_fit_a_websocket_close_frame() {
        let name = "x".repeat(200);
        let refusal = Refusal::Malformed {
            command: printable(name.as_bytes()),
            problem: "NUL byte in command line",
        };
        assert!(refusal.to_string().len() <= 123);
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let command = prop_oneof![
            Just(b"get a b c\r\n".to_vec()),
            Just(b"gets k\r\n".to_vec()),
            Just(b"set k 0 0 11\r\nflush_all\r\n\r\n".to_vec()),
            Just(b"ms k 9 T0\r\nshutdown\n\r\n".to_vec()),
            Just(b"delete k\r\n".to_vec()),
            Just(b"incr n 1\n".to_vec()),
            Just(b"stats\r\n".to_vec()),
            Just(b"verbosity 1\r\n".to_vec()),
            Just(b"mg k v\r\n".to_vec()),
            Just(b"bogus\r\n".to_vec()),
            Just(b"set k 0 0 x\r\n".to_vec()),
            Just(format!("get {}\r\n", "k ".repeat(1500)).into_bytes()),
            Just(format!("stats {}\r\n", "x".repeat(MAX_COMMAND_LINE)).into_bytes()),
            Just(format!("stats {}\r\n", "x".repeat(MAX_COMMAND_LINE - 8)).into_bytes()),
            "[a-z ]{0,12}\r\n".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(command, 1..12).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn splitting_anywhere_gives_the_same_verdicts(
            input in stream(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            read_only in any::<bool>(),
        ) {
            let (whole_passed, whole_refusal) = run(&mut scanner(read_only), &[&input]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            points.push(0);
            points.push(input.len());
            points.sort_unstable();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &input[w[0]..w[1]]).collect();
            let (split_passed, split_refusal) = run(&mut scanner(read_only), &chunks);
            prop_assert_eq!(&split_passed, &whole_passed);
            prop_assert_eq!(split_refusal, whole_refusal);
            // What passed is always a prefix of the input: nothing reordered or duplicated.
            prop_assert!(input.starts_with(&split_passed));
        }

        #[test]
        fn one_byte_at_a_time_gives_the_same_verdicts(input in stream()) {
            let (whole_passed, whole_refusal) = run(&mut scanner(false), &[&input]);
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            let (split_passed, split_refusal) = run(&mut scanner(false), &bytes);
            prop_assert_eq!(split_passed, whole_passed);
            prop_assert_eq!(split_refusal, whole_refusal);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
            let cut = cut.min(input.len());
            let _ = run(&mut scanner(false), &[&input[..cut], &input[cut..]]);
        }
    }
}
