//! Fuzzes the meta reply parser through `Connection`: arbitrary server bytes for a queue
//! that mixes meta requests and text `version` requests (the input chooses), fed whole and
//! then in small chunks. Neither may panic, and both must give the same responses and the
//! same error (or the same nothing-yet).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcache_wasm::connection::Connection;
use memcache_wasm::request::{Expect, Request};
use memcache_wasm::response::Response;
use memcache_wasm::Error;

/// Small, so that inputs reach the item limit and the read-past path.
const MAX_ITEM_SIZE: usize = 1024;

fn outcome(choices: &[u8], pieces: &[&[u8]]) -> (Vec<Response>, Option<Error>, usize) {
    let mut connection = Connection::new(MAX_ITEM_SIZE);
    for &choice in choices {
        if choice % 4 == 0 {
            connection.push(&Request::Version).expect("version encodes");
        } else {
            connection
                .push_encoded(
                    Expect::Meta,
                    1,
                    |out| {
                        out.extend_from_slice(b"mn\r\n");
                        Ok(())
                    },
                    (),
                )
                .expect("mn encodes");
        }
    }
    let mut responses = Vec::new();
    for piece in pieces {
        if let Err(error) = connection.receive_each(piece, |response| responses.push(response)) {
            return (responses, Some(error), connection.pending());
        }
    }
    (responses, None, connection.pending())
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 8) + 1;
    if rest.len() <= count {
        return;
    }
    let (choices, rest) = rest.split_at(count);
    let (&chunk, stream) = rest.split_first().expect("checked above");
    let chunk = usize::from(chunk % 32) + 1;

    let whole = outcome(choices, &[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(chunk).collect();
    let split = outcome(choices, &pieces);
    assert_eq!(whole, split, "chunks of {chunk} bytes changed the outcome");
});
