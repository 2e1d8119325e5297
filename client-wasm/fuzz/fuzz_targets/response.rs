//! Fuzzes the response parser through `Connection`: arbitrary server bytes, for a queue of
//! requests the input chooses, fed whole and then in small chunks. Neither may panic, and
//! both must give the same responses and the same error (or the same nothing-yet).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcache_wasm::connection::Connection;
use memcache_wasm::request::{MetadumpScope, Request, StorageVerb};
use memcache_wasm::response::Response;
use memcache_wasm::Error;

/// Small, so that inputs reach the item limit and the refusal path.
const MAX_ITEM_SIZE: usize = 1024;

const KEYS: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];

fn request(choice: u8) -> Request<'static> {
    match choice % 9 {
        0 => Request::Get {
            keys: &KEYS[..usize::from(choice / 9 % 4) + 1],
        },
        1 => Request::Store {
            verb: StorageVerb::Set,
            key: b"a",
            flags: 0,
            exptime: 0,
            data: b"x",
            noreply: false,
        },
        2 => Request::Delete {
            key: b"a",
            noreply: false,
        },
        3 => Request::Incr {
            key: b"a",
            delta: 1,
            noreply: false,
        },
        4 => Request::Touch {
            key: b"a",
            exptime: 1,
            noreply: false,
        },
        5 => Request::FlushAll {
            delay: None,
            noreply: false,
        },
        6 => Request::Stats { args: None },
        7 => Request::Version,
        _ => Request::Metadump {
            scope: MetadumpScope::All,
        },
    }
}

/// Everything the connection made of the bytes: responses, then the error if any, and how
/// many requests still wait.
fn outcome(choices: &[u8], pieces: &[&[u8]]) -> (Vec<Response>, Option<Error>, usize) {
    let mut connection = Connection::new(MAX_ITEM_SIZE);
    for &choice in choices {
        connection
            .push(&request(choice))
            .expect("fixed requests encode");
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
