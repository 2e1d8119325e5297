//! Fuzzes the bridge's WebSocket frame reader (websocket.rs): arbitrary client bytes fed
//! whole and then in chunks. Neither may panic; both must yield the same payload bytes, the
//! same events and the same error; and the reader never holds more than a frame header and
//! a control frame between reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use memcache_bridge::websocket::{Event, FrameError, FrameReader, MAX_CONTROL_PAYLOAD};

/// Small, so that inputs reach the too-big refusal.
const MAX_MESSAGE: usize = 4096;

fn run(pieces: &[&[u8]]) -> (Vec<u8>, Vec<String>, Option<FrameError>) {
    let mut reader = FrameReader::new(MAX_MESSAGE);
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut events = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match reader.next_event(&mut buf) {
                Ok(None) => break,
                Ok(Some(Event::Data(bytes))) => data.extend_from_slice(&bytes),
                // Where an event falls among data bytes is part of the outcome.
                Ok(Some(other)) => events.push(format!("{}:{other:?}", data.len())),
                Err(error) => return (data, events, Some(error)),
            }
        }
        assert!(buf.len() <= 14 + MAX_CONTROL_PAYLOAD, "held {} bytes", buf.len());
    }
    (data, events, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let whole = run(&[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(chunk).collect();
    assert_eq!(whole, run(&pieces), "chunks of {chunk} bytes changed the outcome");
});
