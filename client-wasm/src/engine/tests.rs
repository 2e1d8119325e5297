//! The engine's state machine driven with a fake clock: batches built as client-wasm/js
//! builds them, replies fed as memcached sends them, and every output entry decoded. No
//! sockets and no sleeps: time is whatever number a test passes.

use super::*;
use crate::wire::{opcode, Reader, OP_HASHED};

/// Builds batches the way client-wasm/js/operations.js does.
#[derive(Default)]
struct Batch(Vec<u8>);

impl Batch {
    fn op(mut self, code: u8, id: u32) -> Self {
        put_u8(&mut self.0, code);
        put_u32(&mut self.0, id);
        put_u8(&mut self.0, 0);
        self
    }
    fn hashed_op(mut self, code: u8, id: u32) -> Self {
        put_u8(&mut self.0, code);
        put_u32(&mut self.0, id);
        put_u8(&mut self.0, OP_HASHED);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        put_u32(&mut self.0, v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        put_u16(&mut self.0, v);
        self
    }
    fn u8(mut self, v: u8) -> Self {
        put_u8(&mut self.0, v);
        self
    }
    fn str(mut self, s: &[u8]) -> Self {
        put_field(&mut self.0, s);
        self
    }
    fn value(self, data: &[u8]) -> Self {
        self.u8(kind::TEXT).str(data)
    }
    fn get(self, id: u32, key: &[u8]) -> Self {
        self.op(opcode::GET, id).str(key)
    }
    fn set(self, id: u32, key: &[u8], data: &[u8]) -> Self {
        self.op(opcode::SET, id).str(key).u32(0).u32(0).value(data)
    }
    fn get_multi(self, id: u32, keys: &[&[u8]]) -> Self {
        let mut b = self
            .op(opcode::GET_MULTI, id)
            .str(b"")
            .u32(keys.len() as u32);
        for k in keys {
            b = b.str(k);
        }
        b
    }
    fn set_multi(self, id: u32, entries: &[(&[u8], &[u8])]) -> Self {
        let mut b = self
            .op(opcode::SET_MULTI, id)
            .str(b"")
            .u32(0)
            .u32(0)
            .u32(entries.len() as u32);
        for (k, v) in entries {
            b = b.str(k).value(v);
        }
        b
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Err {
    code: &'static str,
    server: Option<u16>,
    message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Rec {
    Miss,
    Value(Vec<u8>),
    CasValue(u64, Vec<u8>),
    True,
    False,
    Number(String),
    KeyValues(Vec<(u32, Vec<u8>)>),
    KeyError(u32, Err),
    ServerStats(u16, Vec<(String, String)>),
    ServerText(u16, String),
    Error(Err),
    Item { flags: u32, size: u32, server: u16 },
    Lines(Vec<String>),
    Done,
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Outcome(u32, Rec),
    Write(u16, Vec<u8>),
    Connect(u16),
    Close(u16),
    Down(u16, &'static str),
    Up(u16),
}

#[derive(Debug)]
struct Output {
    wake: Option<u64>,
    entries: Vec<Entry>,
}

impl Output {
    fn outcomes(&self) -> Vec<(u32, Rec)> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Outcome(id, r) => Some((*id, r.clone())),
                _ => None,
            })
            .collect()
    }
    fn writes(&self) -> Vec<(u16, String)> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Write(s, b) => Some((*s, String::from_utf8_lossy(b).into_owned())),
                _ => None,
            })
            .collect()
    }
    fn has(&self, entry: &Entry) -> bool {
        self.entries.contains(entry)
    }
}

fn read_error(r: &mut Reader) -> Err {
    let code = Error::CODES[r.u8().unwrap() as usize];
    let server = r.u16().unwrap();
    let _key = r.field().unwrap();
    let message = String::from_utf8(r.field().unwrap().to_vec()).unwrap();
    Err {
        code,
        server: (server != crate::wire::NO_SERVER_INDEX).then_some(server),
        message,
    }
}

fn text(r: &mut Reader) -> String {
    String::from_utf8(r.field().unwrap().to_vec()).unwrap()
}

fn value(r: &mut Reader) -> Vec<u8> {
    let _kind = r.u8().unwrap();
    r.field().unwrap().to_vec()
}

fn decode(out: &[u8]) -> Output {
    let wake = f64::from_le_bytes(out[..8].try_into().unwrap());
    let mut r = Reader::new(&out[8..]);
    let mut entries = Vec::new();
    while !r.is_done() {
        let e = match r.u8().unwrap() {
            entry::OUTCOME => {
                let id = r.u32().unwrap();
                let rec = match r.u8().unwrap() {
                    record::MISS => Rec::Miss,
                    record::VALUE => Rec::Value(value(&mut r)),
                    record::CAS_VALUE => {
                        let cas = r.u64().unwrap();
                        Rec::CasValue(cas, value(&mut r))
                    }
                    record::TRUE => Rec::True,
                    record::FALSE => Rec::False,
                    record::NUMBER => Rec::Number(text(&mut r)),
                    record::KEY_VALUES => {
                        let n = r.u32().unwrap();
                        let values = (0..n)
                            .map(|_| {
                                let i = r.u32().unwrap();
                                (i, value(&mut r))
                            })
                            .collect();
                        Rec::KeyValues(values)
                    }
                    record::KEY_ERROR => {
                        let i = r.u32().unwrap();
                        Rec::KeyError(i, read_error(&mut r))
                    }
                    record::SERVER_STATS => {
                        let s = r.u16().unwrap();
                        let n = r.u32().unwrap();
                        let lines = (0..n).map(|_| (text(&mut r), text(&mut r))).collect();
                        Rec::ServerStats(s, lines)
                    }
                    record::SERVER_TEXT => {
                        let s = r.u16().unwrap();
                        Rec::ServerText(s, text(&mut r))
                    }
                    record::ERROR => Rec::Error(read_error(&mut r)),
                    record::ITEM => {
                        let flags = r.u32().unwrap();
                        let size = r.u32().unwrap();
                        let _cas = r.u64().unwrap();
                        let server = r.u16().unwrap();
                        let _ = value(&mut r);
                        Rec::Item {
                            flags,
                            size,
                            server,
                        }
                    }
                    record::LINES => {
                        let n = r.u32().unwrap();
                        Rec::Lines((0..n).map(|_| text(&mut r)).collect())
                    }
                    record::DONE => Rec::Done,
                    other => panic!("unknown record {other}"),
                };
                Entry::Outcome(id, rec)
            }
            entry::WRITE => {
                let s = r.u16().unwrap();
                Entry::Write(s, r.field().unwrap().to_vec())
            }
            entry::CONNECT => Entry::Connect(r.u16().unwrap()),
            entry::CLOSE => Entry::Close(r.u16().unwrap()),
            entry::SERVER_DOWN => {
                let s = r.u16().unwrap();
                Entry::Down(s, read_error(&mut r).code)
            }
            entry::SERVER_UP => Entry::Up(r.u16().unwrap()),
            other => panic!("unknown entry {other}"),
        };
        entries.push(e);
    }
    Output {
        wake: (wake >= 0.0).then_some(wake as u64),
        entries,
    }
}

/// (id, code) of an ERROR outcome.
fn error_of(outcome: &(u32, Rec)) -> Option<(u32, &'static str)> {
    match outcome {
        (id, Rec::Error(e)) => Some((*id, e.code)),
        _ => None,
    }
}

/// (id, key index, code) of a KEY_ERROR outcome.
fn key_error(outcome: &(u32, Rec)) -> Option<(u32, u32, &'static str)> {
    match outcome {
        (id, Rec::KeyError(index, e)) => Some((*id, *index, e.code)),
        _ => None,
    }
}

/// Every outcome of `out`, when each is an ERROR: (id, code).
fn errors(out: &Output) -> Vec<(u32, &'static str)> {
    out.outcomes()
        .iter()
        .map(|o| error_of(o).unwrap_or((o.0, "not an ERROR")))
        .collect()
}

/// Every outcome of `out`, when each is a KEY_ERROR: (id, index, code).
fn key_errors(out: &Output) -> Vec<(u32, u32, &'static str)> {
    out.outcomes()
        .iter()
        .map(|o| key_error(o).unwrap_or((o.0, u32::MAX, "not a KEY_ERROR")))
        .collect()
}

/// An engine and its fake clock.
struct Harness {
    engine: Engine,
    out: Vec<u8>,
}

impl Harness {
    fn new(servers: usize) -> Self {
        Self::with(servers, true, usize::MAX / 2)
    }

    fn with(servers: usize, failover: bool, max_item_size: usize) -> Self {
        let engine = Engine::new(EngineConfig {
            servers: (0..servers)
                .map(|i| (format!("127.0.0.1:{}", 11211 + i), 1))
                .collect(),
            distribution: DistributionKind::Modula,
            hash: HashFunction::Cmemcache,
            caller_hashes: false,
            codec: CodecOptions::default(),
            max_item_size,
            failover,
            timing: Timing::default(),
            behind_proxy: false,
        })
        .unwrap();
        Harness {
            engine,
            out: Vec::new(),
        }
    }

    fn submit(&mut self, now: u64, batch: Batch) -> Output {
        self.engine.submit(now, &batch.0, &mut self.out).unwrap();
        decode(&self.out)
    }
    fn receive(&mut self, now: u64, server: usize, bytes: &[u8]) -> Output {
        self.engine
            .receive(now, server, bytes, &mut self.out)
            .unwrap();
        decode(&self.out)
    }
    fn connected(&mut self, now: u64, server: usize) -> Output {
        self.engine.connected(now, server, &mut self.out).unwrap();
        decode(&self.out)
    }
    fn lost(&mut self, now: u64, server: usize) -> Output {
        self.engine
            .connection_lost(
                now,
                server,
                link_failure::CONNECTION,
                "closed",
                &mut self.out,
            )
            .unwrap();
        decode(&self.out)
    }
    fn tick(&mut self, now: u64) -> Output {
        self.engine.handle_timeout(now, &mut self.out);
        decode(&self.out)
    }
    /// Connects every server with something to send and returns the writes.
    fn open_all(&mut self, now: u64) -> Vec<(u16, String)> {
        let mut writes = Vec::new();
        for s in 0..self.engine.server_count() {
            if self.engine.servers[s].link != Link::Open {
                writes.extend(self.connected(now, s).writes());
            }
        }
        writes
    }
    /// The server a key goes to.
    fn server_of(&self, key: &[u8]) -> usize {
        self.engine.server_for_key(key, None).unwrap()
    }
}

#[test]
fn nothing_is_written_before_the_connection_is_made() {
    let mut h = Harness::new(1);
    let out = h.submit(0, Batch::default().set(1, b"k", b"v"));
    assert_eq!(out.entries, vec![Entry::Connect(0)]);
    assert_eq!(out.wake, Some(1_000), "the connect deadline");
    let out = h.connected(5, 0);
    assert_eq!(out.writes(), vec![(0, "set k 16 0 1\r\nv\r\n".into())]);
    assert_eq!(out.wake, Some(3_000), "the request's deadline");
    let out = h.receive(6, 0, b"STORED\r\n");
    assert_eq!(out.outcomes(), vec![(1, Rec::True)]);
    assert_eq!(out.wake, None, "nothing waits: no timer");
    // The connection stays open: the next request is written at once.
    let out = h.submit(7, Batch::default().get(2, b"k"));
    assert_eq!(out.writes(), vec![(0, "get k\r\n".into())]);
}

#[test]
fn gets_of_one_batch_share_one_get_line_and_split_the_values() {
    let mut h = Harness::new(1);
    h.submit(
        0,
        Batch::default()
            .get(1, b"a")
            .get(2, b"b")
            .get_multi(3, &[b"b", b"c"]),
    );
    assert_eq!(h.open_all(1), vec![(0, "get a b b c\r\n".into())]);
    let out = h.receive(
        2,
        0,
        b"VALUE a 16 1\r\n1\r\nVALUE b 16 1\r\n2\r\nVALUE b 16 1\r\n2\r\nEND\r\n",
    );
    assert_eq!(
        out.outcomes(),
        vec![
            (1, Rec::Value(b"1".to_vec())),
            (2, Rec::Value(b"2".to_vec())),
            (3, Rec::KeyValues(vec![(0, b"2".to_vec())])),
            (3, Rec::Done),
        ]
    );
}

#[test]
fn a_write_between_gets_keeps_the_order_on_the_wire() {
    let mut h = Harness::new(1);
    h.submit(
        0,
        Batch::default()
            .get(1, b"a")
            .set(2, b"a", b"x")
            .get(3, b"a"),
    );
    assert_eq!(
        h.open_all(1),
        vec![(0, "get a\r\nset a 16 0 1\r\nx\r\nget a\r\n".into())]
    );
}

#[test]
fn a_bad_key_fails_only_its_op_and_a_malformed_batch_queues_nothing() {
    let mut h = Harness::new(1);
    let out = h.submit(0, Batch::default().get(1, b"bad key").get(2, b"good"));
    assert!(errors(&out) == [(1, "BAD_KEY")]);
    assert_eq!(h.open_all(1), vec![(0, "get good\r\n".into())]);
    let mut truncated = Batch::default().get(3, b"x").0;
    truncated.pop();
    let error = h.engine.submit(2, &truncated, &mut h.out).unwrap_err();
    assert_eq!(error.code(), "BAD_ARGUMENT");
    let hashed = Batch::default().hashed_op(opcode::GET, 4).u32(7).str(b"k");
    assert!(h.engine.submit(3, &hashed.0, &mut h.out).is_err());
}

#[test]
fn an_overdue_request_times_out_and_the_server_is_probed_at_once() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"k"));
    h.open_all(0);
    assert!(h.tick(2_999).entries.is_empty(), "not overdue yet");
    let out = h.tick(3_000);
    assert!(out.has(&Entry::Close(0)));
    assert!(out.has(&Entry::Down(0, "TIMEOUT")));
    assert!(matches!(
        &out.outcomes()[..],
        [(
            1,
            Rec::Error(Err {
                code: "TIMEOUT",
                server: Some(0),
                ..
            })
        )]
    ));
    // The first retry is at once: a probe's connection is asked for in the same call.
    assert!(out.has(&Entry::Connect(0)), "{out:?}");
    // While the server is down, calls fail at once instead of waiting.
    let out = h.submit(3_001, Batch::default().get(2, b"k"));
    assert!(errors(&out) == [(2, "NO_SERVER")]);
    // The probe is a version on the new connection; its answer brings the server back.
    assert_eq!(
        h.connected(3_002, 0).writes(),
        vec![(0, "version\r\n".into())]
    );
    let out = h.receive(3_003, 0, b"VERSION 1.6.18\r\n");
    assert_eq!(out.entries, vec![Entry::Up(0)]);
    h.submit(3_004, Batch::default().get(3, b"k"));
    let out = h.receive(3_005, 0, b"END\r\n");
    assert_eq!(out.outcomes(), vec![(3, Rec::Miss)]);
}

#[test]
fn a_server_that_stays_down_is_probed_with_backoff_up_to_dead_retry() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"k"));
    // Connection refused: the call fails and the server goes down.
    let out = h.lost(1, 0);
    assert!(out.has(&Entry::Down(0, "CONNECTION_ERROR")));
    assert!(errors(&out) == [(1, "CONNECTION_ERROR")]);
    assert_eq!(out.wake, Some(1), "retried at once");
    let mut now = 1;
    let mut probes = Vec::new();
    while now < 120_000 {
        let out = h.tick(now);
        if out.has(&Entry::Connect(0)) {
            probes.push(now);
            // Refused again: no second serverDown, the next probe waits longer.
            let lost = h.lost(now, 0);
            assert!(!lost.entries.iter().any(|e| matches!(e, Entry::Down(..))));
            now = lost.wake.expect("a down server always has a probe due");
        } else {
            now = out.wake.unwrap();
        }
    }
    let gaps: Vec<u64> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        &gaps[..10],
        &[100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000]
    );
    assert!(gaps[10..].iter().all(|&g| g == 30_000));
    // It comes back by itself: the next probe is answered.
    let out = h.tick(now);
    assert!(out.has(&Entry::Connect(0)));
    h.connected(now, 0);
    assert_eq!(
        h.receive(now + 1, 0, b"VERSION 1.6.18\r\n").entries,
        vec![Entry::Up(0)]
    );
}

#[test]
fn a_connection_that_is_not_made_in_time_fails_with_connect_timeout() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"k"));
    let out = h.tick(1_000);
    assert!(out.has(&Entry::Close(0)));
    let [(1, Rec::Error(e))] = &out.outcomes()[..] else {
        panic!("{out:?}")
    };
    assert_eq!(e.code, "CONNECTION_ERROR");
    assert!(e.message.contains("connectTimeout"), "{}", e.message);
}

#[test]
fn a_socket_that_closes_while_idle_is_no_failure() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"k"));
    h.open_all(0);
    h.receive(1, 0, b"END\r\n");
    let out = h.lost(2, 0);
    assert!(out.entries.is_empty(), "{out:?}");
    assert!(h.engine.is_up(0));
    assert_eq!(
        h.submit(3, Batch::default().get(2, b"k")).entries,
        vec![Entry::Connect(0)]
    );
}

#[test]
fn a_refused_bridge_fails_the_calls_without_marking_the_server_down() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"k"));
    h.engine
        .connection_lost(
            1,
            0,
            link_failure::BRIDGE_REFUSED,
            "Origin refused",
            &mut h.out,
        )
        .unwrap();
    let out = decode(&h.out);
    assert!(errors(&out) == [(1, "BRIDGE_REFUSED")]);
    assert!(!out.entries.iter().any(|e| matches!(e, Entry::Down(..))));
    assert!(h.engine.is_up(0));
}

/// Two keys that go to different servers of a two-server fleet.
fn keys_on_two_servers(h: &Harness) -> (Vec<u8>, Vec<u8>) {
    let a = b"k0".to_vec();
    let b = (1..100)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| h.server_of(k) != h.server_of(&a))
        .unwrap();
    (a, b)
}

#[test]
fn get_multi_keeps_what_answered_when_another_server_fails() {
    let mut h = Harness::new(2);
    let (a, b) = keys_on_two_servers(&h);
    let (sa, sb) = (h.server_of(&a), h.server_of(&b));
    h.submit(0, Batch::default().get_multi(1, &[&a, &b]));
    h.open_all(0);
    let reply = format!("VALUE {} 16 1\r\nx\r\nEND\r\n", String::from_utf8_lossy(&a));
    let out = h.receive(1, sa, reply.as_bytes());
    assert_eq!(
        out.outcomes(),
        vec![(1, Rec::KeyValues(vec![(0, b"x".to_vec())]))]
    );
    let out = h.lost(2, sb);
    let outcomes = out.outcomes();
    assert!(
        key_error(&outcomes[0]) == Some((1, 1, "CONNECTION_ERROR")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], (1, Rec::Done));
    assert!(out.has(&Entry::Down(sb as u16, "CONNECTION_ERROR")));
    // With failover the down server's keys go to the other one at once.
    let out = h.submit(3, Batch::default().get(2, &b));
    assert_eq!(
        out.writes(),
        vec![(
            sa as u16,
            format!("get {}\r\n", String::from_utf8_lossy(&b))
        )]
    );
}

#[test]
fn without_failover_a_down_servers_keys_are_no_server_and_multi_ops_name_them() {
    let mut h = Harness::with(2, false, usize::MAX / 2);
    let (a, b) = keys_on_two_servers(&h);
    let sb = h.server_of(&b);
    h.submit(0, Batch::default().get(1, &b));
    h.lost(0, sb);
    let out = h.submit(1, Batch::default().get_multi(2, &[&a, &b]));
    assert!(key_errors(&out) == [(2, 1, "NO_SERVER")]);
    let out = h.submit(2, Batch::default().get(3, &b));
    assert!(errors(&out) == [(3, "NO_SERVER")]);
}

#[test]
fn set_multi_answers_the_keys_not_stored_and_stores_the_others() {
    let mut h = Harness::new(1);
    h.engine.codec.max_value_size = 10;
    let big = [b'x'; 11];
    let out = h.submit(
        0,
        Batch::default().set_multi(1, &[(b"a", b"1"), (b"big", &big), (b"c", b"3")]),
    );
    assert!(key_errors(&out) == [(1, 1, "VALUE_TOO_LARGE")]);
    assert_eq!(
        h.open_all(1),
        vec![(0, "set a 16 0 1\r\n1\r\nset c 16 0 1\r\n3\r\n".into())]
    );
    let out = h.receive(2, 0, b"STORED\r\nNOT_STORED\r\n");
    let outcomes = out.outcomes();
    assert!(
        key_error(&outcomes[0]) == Some((1, 2, "NOT_STORED")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], (1, Rec::Done));
}

#[test]
fn set_multi_names_the_keys_of_a_server_that_failed_and_keeps_the_acknowledged_ones() {
    let mut h = Harness::new(1);
    h.submit(
        0,
        Batch::default().set_multi(1, &[(b"a", b"1"), (b"b", b"2")]),
    );
    h.open_all(0);
    assert!(h.receive(1, 0, b"STORED\r\n").outcomes().is_empty());
    let out = h.lost(2, 0);
    let outcomes = out.outcomes();
    assert!(
        key_error(&outcomes[0]) == Some((1, 1, "CONNECTION_ERROR")),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1],
        (1, Rec::Done),
        "key a was acknowledged: not reported"
    );
}

#[test]
fn an_item_over_the_read_limit_fails_its_key_alone_and_the_connection_stays() {
    let mut h = Harness::with(1, true, 4);
    h.submit(
        0,
        Batch::default()
            .get(1, b"big")
            .get_multi(2, &[b"big", b"ok"]),
    );
    h.open_all(0);
    let out = h.receive(
        1,
        0,
        b"VALUE big 0 5\r\n12345\r\nVALUE big 0 5\r\n12345\r\nVALUE ok 0 2\r\nhi\r\nEND\r\n",
    );
    let outcomes = out.outcomes();
    assert!(
        error_of(&outcomes[0]) == Some((1, "VALUE_TOO_LARGE")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], (2, Rec::KeyValues(vec![(1, b"hi".to_vec())])));
    assert!(key_error(&outcomes[2]) == Some((2, 0, "VALUE_TOO_LARGE")));
    assert_eq!(outcomes[3], (2, Rec::Done));
    assert!(h.engine.is_up(0));
    h.submit(2, Batch::default().get(3, b"ok"));
    assert_eq!(h.receive(3, 0, b"END\r\n").outcomes(), vec![(3, Rec::Miss)]);
}

#[test]
fn garbage_from_the_server_fails_what_waits_and_marks_it_down() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"a").set(2, b"b", b"v"));
    h.open_all(0);
    let out = h.receive(1, 0, b"END\r\nBOGUS\r\n");
    let outcomes = out.outcomes();
    assert_eq!(outcomes[0], (1, Rec::Miss));
    assert!(error_of(&outcomes[1]) == Some((2, "PROTOCOL_ERROR")));
    assert!(out.has(&Entry::Down(0, "PROTOCOL_ERROR")));
}

fn metadump(batch: Batch, id: u32, server: u16) -> Batch {
    batch.op(opcode::METADUMP, id).u16(server).u8(0).u32(0)
}

#[test]
fn a_metadump_goes_out_alone_and_later_writes_wait_for_its_end() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"a"));
    h.open_all(0);
    // Queued behind a pending get: the line waits for the get's reply.
    let out = h.submit(1, metadump(Batch::default(), 2, 0).get(3, b"b"));
    assert!(out.writes().is_empty(), "{out:?}");
    let out = h.receive(2, 0, b"END\r\n");
    assert_eq!(
        out.writes(),
        vec![(0, "lru_crawler metadump all\r\n".into())]
    );
    // Writes made during the dump wait for its end.
    assert!(h
        .submit(3, Batch::default().get(4, b"c"))
        .writes()
        .is_empty());
    let out = h.receive(
        4,
        0,
        b"key=a exp=-1 la=1 cas=1 fetch=no cls=1 size=60\nkey=b exp=-1 la=1 cas=2 fetch=no cls=1 size=60\nkey=a exp=-1 la=1 cas=1 fetch=no cls=1 size=60\nEND\r\n",
    );
    let Some((2, Rec::Lines(lines))) = out.outcomes().first().cloned() else {
        panic!("{out:?}")
    };
    assert_eq!(lines.len(), 2, "each key once: {lines:?}");
    assert_eq!(out.writes(), vec![(0, "get b\r\nget c\r\n".into())]);
}

#[test]
fn stats_leave_out_a_server_that_fails_and_fail_on_memcacheds_error() {
    let mut h = Harness::new(2);
    h.submit(0, Batch::default().op(opcode::STATS, 1).str(b""));
    h.open_all(0);
    assert_eq!(
        h.receive(1, 0, b"STAT pid 1\r\nEND\r\n").outcomes(),
        vec![(1, Rec::ServerStats(0, vec![("pid".into(), "1".into())]))]
    );
    assert_eq!(h.lost(2, 1).outcomes(), vec![(1, Rec::Done)]);
    // When no server can answer, the call says why instead of resolving empty.
    let mut lone = Harness::new(1);
    lone.submit(0, Batch::default().op(opcode::VERSION, 9));
    let out = lone.lost(1, 0);
    assert!(
        matches!(
            &out.outcomes()[..],
            [(
                9,
                Rec::Error(Err {
                    code: "CONNECTION_ERROR",
                    server: Some(0),
                    ..
                })
            )]
        ),
        "{out:?}"
    );
    // One server is down now: the next stats go to the other alone.
    h.submit(3, Batch::default().op(opcode::STATS, 2).str(b"bogus"));
    let out = h.receive(4, 0, b"ERROR\r\n");
    assert!(errors(&out) == [(2, "UNKNOWN_COMMAND")]);
}

#[test]
fn counters_touch_delete_cas_and_inspect_map_to_records() {
    let mut h = Harness::new(1);
    h.submit(
        0,
        Batch::default()
            .op(opcode::INCR, 1)
            .str(b"n")
            .u32(5)
            .u32(0)
            .op(opcode::DECR, 2)
            .str(b"m")
            .u32(1)
            .u32(0)
            .op(opcode::TOUCH, 3)
            .str(b"n")
            .u32(10)
            .op(opcode::DELETE, 4)
            .str(b"n")
            .op(opcode::GETS, 5)
            .str(b"n")
            .op(opcode::INSPECT, 6)
            .str(b"n"),
    );
    h.open_all(0);
    let out = h.receive(
        1,
        0,
        b"6\r\nNOT_FOUND\r\nTOUCHED\r\nNOT_FOUND\r\nVALUE n 16 1 9\r\nx\r\nEND\r\nVALUE n 16 1 9\r\nx\r\nEND\r\n",
    );
    assert_eq!(
        out.outcomes(),
        vec![
            (1, Rec::Number("6".into())),
            (2, Rec::Miss),
            (3, Rec::True),
            (4, Rec::False),
            (5, Rec::CasValue(9, b"x".to_vec())),
            (
                6,
                Rec::Item {
                    flags: 16,
                    size: 1,
                    server: 0
                }
            ),
        ]
    );
}

#[test]
fn flush_and_version_go_to_every_up_server_and_settle_once() {
    let mut h = Harness::new(2);
    h.submit(
        0,
        Batch::default()
            .op(opcode::FLUSH_ALL, 1)
            .u32(0)
            .op(opcode::VERSION, 2),
    );
    h.open_all(0);
    assert!(h
        .receive(1, 0, b"OK\r\nVERSION 1.6.18\r\n")
        .outcomes()
        .iter()
        .all(|(_, r)| !matches!(r, Rec::True | Rec::Done)));
    let out = h.receive(2, 1, b"OK\r\nVERSION 1.6.19\r\n");
    assert_eq!(
        out.outcomes(),
        vec![
            (1, Rec::True),
            (2, Rec::ServerText(1, "1.6.19".into())),
            (2, Rec::Done)
        ]
    );
}

#[test]
fn empty_multi_ops_settle_at_once() {
    let mut h = Harness::new(1);
    let out = h.submit(0, Batch::default().get_multi(1, &[]).set_multi(2, &[]));
    assert_eq!(out.outcomes(), vec![(1, Rec::Done), (2, Rec::Done)]);
    assert!(out.writes().is_empty());
}

#[test]
fn a_refused_probe_is_probed_again_later_never_left_waiting() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"k"));
    h.lost(1, 0);
    assert!(h.tick(1).has(&Entry::Connect(0)), "the probe");
    // A bridge (or a proxy in front of it) refuses the probe's socket.
    h.engine
        .connection_lost(2, 0, link_failure::BRIDGE_REFUSED, "HTTP 503", &mut h.out)
        .unwrap();
    let out = decode(&h.out);
    assert_eq!(
        out.wake,
        Some(102),
        "the next probe is due after the backoff"
    );
    assert!(h.tick(102).has(&Entry::Connect(0)));
}

#[test]
fn garbage_closes_the_socket_the_engine_gave_up_on() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"a"));
    h.open_all(0);
    let out = h.receive(1, 0, b"BOGUS\r\n");
    assert!(out.has(&Entry::Close(0)), "{out:?}");
    // Bytes the old socket still delivers count for nothing: the link is closed.
    assert!(h.receive(2, 0, b"more").entries.is_empty());
    assert_eq!(
        h.tick(2).entries,
        vec![Entry::Connect(0)],
        "the probe at once, as after one failure"
    );
}

#[test]
fn a_metadump_that_keeps_streaming_does_not_time_out_one_that_stalls_does() {
    let mut h = Harness::new(1);
    h.submit(0, metadump(Batch::default(), 1, 0));
    h.open_all(0);
    for t in [2_000, 4_000, 6_000] {
        h.receive(t, 0, b"key=a exp=-1 la=1 cas=1 fetch=no cls=1 size=60\n");
        assert!(
            h.tick(t + 1).entries.is_empty(),
            "still streaming at {t} ms"
        );
    }
    let out = h.tick(9_000);
    assert_eq!(errors(&out), vec![(1, "TIMEOUT")], "{out:?}");
}

#[test]
fn a_request_timeout_shorter_than_connect_timeout_fails_the_connection_not_the_server_answer() {
    let mut h = Harness::new(1);
    h.engine.timing.timeout_ms = 500;
    h.submit(0, Batch::default().get(1, b"k"));
    let out = h.tick(500);
    let [(1, Rec::Error(e))] = &out.outcomes()[..] else {
        panic!("{out:?}")
    };
    assert_eq!(e.code, "CONNECTION_ERROR");
    assert!(e.message.contains("request timeout"), "{}", e.message);
    assert!(out.has(&Entry::Close(0)));
}

impl Batch {
    /// The last op becomes noreply (its flags byte is the sixth of the op).
    fn quiet(mut self, op_start: usize) -> Self {
        self.0[op_start + 5] |= crate::wire::OP_NOREPLY;
        self
    }
}

#[test]
fn noreply_writes_go_quietly_and_one_mn_closes_the_run() {
    let mut h = Harness::new(1);
    let b = Batch::default().set(1, b"a", b"1");
    let at = b.0.len();
    let b = b.set(2, b"b", b"2").quiet(at);
    let at = b.0.len();
    let b = b
        .op(opcode::ADD, 3)
        .str(b"a")
        .u32(0)
        .u32(0)
        .value(b"x")
        .quiet(at);
    let at = b.0.len();
    let b = b.op(opcode::DELETE, 4).str(b"zz").quiet(at);
    let at = b.0.len();
    let b = b
        .op(opcode::TOUCH, 5)
        .str(b"a")
        .u32(9)
        .quiet(at)
        .get(6, b"a");
    h.submit(1, b);
    assert_eq!(
        h.open_all(1),
        vec![(
            0,
            "set a 16 0 1\r\n1\r\nms b 1 T0 F16 MS q O1\r\n2\r\nms a 1 T0 F16 ME q O2\r\nx\r\n\
             md zz q O3\r\nmg a T9 q O4\r\nmn\r\nget a\r\n"
                .into()
        )],
        "the quiet run is closed by mn before the loud get"
    );
    // memcached: STORED for the loud set, silence for b, NS for the add, NF for the
    // delete, HD for the touch's hit, MN, then the get.
    let out = h.receive(
        2,
        0,
        b"STORED\r\nNS O2\r\nNF O3\r\nHD O4\r\nMN\r\nVALUE a 16 1\r\n1\r\nEND\r\n",
    );
    assert_eq!(
        out.outcomes(),
        vec![
            (1, Rec::True),
            (2, Rec::True),
            (3, Rec::False),
            (4, Rec::False),
            (5, Rec::True),
            (6, Rec::Value(b"1".to_vec())),
        ]
    );
    assert_eq!(out.wake, None, "nothing waits");
}

#[test]
fn a_quiet_run_is_settled_by_mn_and_an_unattributed_error_fails_every_write_it_may_be() {
    let mut h = Harness::new(1);
    let mut b = Batch::default();
    for (id, key) in [(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")] {
        let at = b.0.len();
        b = b.set(id, key, b"v").quiet(at);
    }
    h.submit(1, b);
    assert!(h.open_all(1)[0].1.ends_with("mn\r\n"));
    // A SERVER_ERROR without an opaque, then NS for the fourth: the error is one of the
    // first three's, so none of them is taken for stored.
    let out = h.receive(
        2,
        0,
        b"SERVER_ERROR object too large for cache\r\nNS O4\r\nMN\r\n",
    );
    let outcomes = out.outcomes();
    assert_eq!(
        errors(&Output {
            wake: None,
            entries: outcomes[..3]
                .iter()
                .map(|(id, r)| Entry::Outcome(*id, r.clone()))
                .collect()
        }),
        vec![
            (1, "SERVER_ERROR"),
            (2, "SERVER_ERROR"),
            (3, "SERVER_ERROR")
        ]
    );
    assert_eq!(outcomes[3], (4, Rec::False));
    // The next run starts clean: silence and MN store both.
    let mut b = Batch::default();
    for (id, key) in [(5, b"e"), (6, b"f")] {
        let at = b.0.len();
        b = b.set(id, key, b"v").quiet(at);
    }
    h.submit(3, b);
    let out = h.receive(4, 0, b"MN\r\n");
    assert_eq!(out.outcomes(), vec![(5, Rec::True), (6, Rec::True)]);
}

#[test]
fn quiet_writes_time_out_and_fail_with_their_connection() {
    let mut h = Harness::new(1);
    let b = Batch::default();
    let b = b.set(1, b"a", b"1").quiet(0);
    h.submit(1, b);
    let out = h.connected(1, 0);
    assert_eq!(out.wake, Some(3_001), "a quiet write has its deadline too");
    let out = h.lost(2, 0);
    assert_eq!(errors(&out), vec![(1, "CONNECTION_ERROR")]);
    // A reply naming no waiting write is a protocol error, not a guess.
    let mut h = Harness::new(1);
    h.submit(1, Batch::default().set(1, b"a", b"1").quiet(0));
    h.open_all(1);
    let out = h.receive(2, 0, b"NS O99\r\n");
    assert_eq!(errors(&out), vec![(1, "PROTOCOL_ERROR")]);
}

#[test]
fn only_writes_can_be_noreply() {
    let mut h = Harness::new(1);
    let batch = Batch::default().get(1, b"a").quiet(0);
    assert!(h.engine.submit(0, &batch.0, &mut h.out).is_err());
}

#[test]
fn authentication_goes_first_and_alone_and_queued_requests_follow_its_stored() {
    let mut h = Harness::new(1);
    h.engine
        .set_auth(
            0,
            Some(super::auth::Credentials::new("alice", "s3cret").unwrap()),
        )
        .unwrap();
    let out = h.submit(0, Batch::default().set(1, b"k", b"v").get(2, b"k"));
    assert_eq!(out.entries, vec![Entry::Connect(0)]);
    let out = h.connected(1, 0);
    assert_eq!(
        out.writes(),
        vec![(0, "set auth 0 -1 12\r\nalice s3cret\r\n".into())]
    );
    // Nothing else goes out until memcached answers, in any chunking.
    assert!(h.receive(2, 0, b"STO").writes().is_empty());
    let out = h.receive(3, 0, b"RED\r\n");
    assert_eq!(
        out.writes(),
        vec![(0, "set k 16 0 1\r\nv\r\nget k\r\n".into())]
    );
    let out = h.receive(4, 0, b"STORED\r\nVALUE k 16 1\r\nv\r\nEND\r\n");
    assert_eq!(
        out.outcomes(),
        vec![(1, Rec::True), (2, Rec::Value(b"v".to_vec()))]
    );
    // The open connection does not authenticate again.
    let out = h.submit(5, Batch::default().get(3, b"k"));
    assert_eq!(out.writes(), vec![(0, "get k\r\n".into())]);
}

#[test]
fn refused_credentials_fail_the_waiting_calls_with_auth_failed_and_back_off() {
    let mut h = Harness::new(1);
    h.engine
        .set_auth(
            0,
            Some(super::auth::Credentials::new("alice", "wrong").unwrap()),
        )
        .unwrap();
    h.submit(0, Batch::default().get(1, b"k"));
    h.connected(1, 0);
    let out = h.receive(2, 0, b"CLIENT_ERROR authentication failure\r\n");
    assert!(errors(&out) == [(1, "AUTH_FAILED")], "{out:?}");
    assert!(out.entries.contains(&Entry::Close(0)));
    let shown = format!("{out:?}");
    assert!(!shown.contains("wrong"), "{shown}");
    assert!(!h.engine.is_up(0), "the server is skipped");
    // Its probe reconnects and authenticates; a second refusal waits FIRST_BACKOFF_MS
    // before the next try (the dead-server backoff, not a reconnect loop).
    let out = h.tick(2);
    assert_eq!(out.entries, vec![Entry::Connect(0)]);
    h.connected(3, 0);
    let out = h.receive(4, 0, b"CLIENT_ERROR authentication failure\r\n");
    assert_eq!(out.wake, Some(4 + super::routing::FIRST_BACKOFF_MS));
}

#[test]
fn behind_a_proxy_the_commands_it_does_not_relay_are_refused_unsent() {
    let mut h = Harness::new(1);
    h.engine.behind_proxy = true;
    let out = h.submit(
        0,
        Batch::default()
            .op(opcode::STATS, 1)
            .str(b"")
            .op(opcode::FLUSH_ALL, 2)
            .u32(0)
            .op(opcode::VERSION, 3),
    );
    assert!(
        errors(&out) == [(1, "NOT_RELAYED"), (2, "NOT_RELAYED")],
        "{out:?}"
    );
    assert_eq!(h.open_all(1), vec![(0, "version\r\n".into())]);
}

#[test]
fn an_unanswered_authentication_times_out() {
    let mut h = Harness::new(1);
    h.engine
        .set_auth(
            0,
            Some(super::auth::Credentials::new("alice", "s3cret").unwrap()),
        )
        .unwrap();
    h.submit(0, Batch::default().get(1, b"k"));
    let out = h.connected(1, 0);
    assert_eq!(out.wake, Some(3_000), "the request's deadline comes first");
    let out = h.tick(3_000);
    assert!(errors(&out) == [(1, "TIMEOUT")], "{out:?}");
}

#[test]
fn after_set_servers_a_request_in_flight_finishes_on_the_server_that_left() {
    let mut h = Harness::new(2);
    let key = (0..100u32)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| h.server_of(k) == 1)
        .unwrap();
    h.submit(0, Batch::default().get(1, &key));
    h.open_all(1);
    // Server 1 leaves while its get is out.
    h.engine
        .set_servers(2, vec![("127.0.0.1:11211".into(), 1)], &mut h.out)
        .unwrap();
    let out = decode(&h.out);
    assert!(
        !out.has(&Entry::Close(1)),
        "its reply is still due: {out:?}"
    );
    assert_eq!(h.engine.members(), &[0]);
    assert_eq!(h.server_of(&key), 0, "new requests go by the new list");
    let reply = format!(
        "VALUE {} 16 1\r\nv\r\nEND\r\n",
        String::from_utf8_lossy(&key)
    );
    let out = h.receive(3, 1, reply.as_bytes());
    assert_eq!(out.outcomes(), vec![(1, Rec::Value(b"v".to_vec()))]);
    assert!(out.has(&Entry::Close(1)), "idle now: closed");
    // stats and version go to the current list only.
    let out = h.submit(4, Batch::default().op(opcode::VERSION, 2));
    assert!(!out.entries.contains(&Entry::Connect(1)), "{out:?}");
}

#[test]
fn set_servers_keeps_a_kept_servers_index_and_refuses_a_bad_list_whole() {
    let mut h = Harness::new(2);
    h.engine
        .set_servers(
            0,
            vec![("127.0.0.1:11212".into(), 1), ("10.0.0.9:11211".into(), 1)],
            &mut h.out,
        )
        .unwrap();
    assert_eq!(h.engine.members(), &[1, 2]);
    assert!(h.engine.set_servers(1, vec![], &mut h.out).is_err());
    let twice = vec![("a:1".into(), 1), ("a:1".into(), 1)];
    assert!(h.engine.set_servers(1, twice, &mut h.out).is_err());
    assert_eq!(h.engine.members(), &[1, 2], "unchanged");
}

#[test]
fn a_stalled_tls_connection_gets_a_version_behind_its_pending_requests() {
    let mut h = Harness::new(1);
    h.engine.set_tls(0, true).unwrap();
    h.submit(0, Batch::default().set(1, b"k", b"v"));
    h.open_all(1);
    let out = h.submit(1, Batch::default().get(2, b"k"));
    // The oldest request (the set, pushed at 0) has waited that long with nothing read.
    assert_eq!(out.wake, Some(super::server::STALL_NUDGE_MS));
    let out = h.tick(super::server::STALL_NUDGE_MS);
    assert_eq!(out.writes(), vec![(0, "version\r\n".into())]);
    assert!(errors(&out).is_empty());
    // One nudge at a time; the replies come, the nudge's is read past.
    assert!(h
        .tick(2 + 2 * super::server::STALL_NUDGE_MS)
        .writes()
        .is_empty());
    let out = h.receive(500, 0, b"STORED\r\nEND\r\nVERSION 1.6.18\r\n");
    assert_eq!(out.outcomes(), vec![(1, Rec::True), (2, Rec::Miss)]);
    assert_eq!(out.wake, None);
}

#[test]
fn a_plain_connection_is_never_nudged() {
    let mut h = Harness::new(1);
    h.submit(0, Batch::default().get(1, b"k"));
    h.open_all(1);
    assert!(h.tick(1_000).writes().is_empty());
}
