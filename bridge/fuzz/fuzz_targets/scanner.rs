//! Fuzzes the bridge's command scanner (policy.rs): an arbitrary client byte stream, under a
//! policy the input chooses, fed whole and then in chunks. Neither may panic; both must pass
//! the same bytes and refuse the same command; and what passes is a prefix of the stream
//! (nothing reordered, duplicated or invented).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcache_bridge::policy::{CommandScanner, Policy, Refusal};

fn run(policy: &Policy, pieces: &[&[u8]]) -> (Vec<u8>, Option<Refusal>) {
    let mut scanner = CommandScanner::new(policy.clone());
    let mut passed = Vec::new();
    for piece in pieces {
        let scanned = scanner.feed(piece);
        passed.extend_from_slice(&scanned.released);
        passed.extend_from_slice(&piece[..scanned.pass]);
        if let Some(refusal) = scanned.refusal {
            return (passed, Some(refusal));
        }
    }
    (passed, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let policy = Policy {
        read_only: control & 1 != 0,
        allowed_admin: if control & 2 != 0 {
            vec!["verbosity".into(), "lru_crawler crawl".into()]
        } else {
            Vec::new()
        },
    };
    let chunk = usize::from(control >> 2) + 1;
    let whole = run(&policy, &[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(chunk).collect();
    let split = run(&policy, &pieces);
    assert_eq!(whole, split, "chunks of {chunk} bytes changed the verdict");
    assert!(stream.starts_with(&whole.0), "passed bytes are not a prefix");
});
