//! Property tests of quiet requests (noreply writes, meta `q`) through `Connection`: a run
//! of quiet requests, each one silent (a success), refused with its opaque (`NS O<n>`) or
//! answered with an error that names no request (`SERVER_ERROR`), closed by `mn`, and the
//! replies split at random boundaries. Each request must settle as a model of the rule
//! says: silence is success, a reply naming its opaque is its own, and an error without an
//! opaque goes to every request it could belong to (those before the next reply naming
//! one); none is ever taken for a success when it may have failed.

use memcache_wasm::connection::Connection;
use memcache_wasm::meta::{MetaReply, MetaStatus};
use memcache_wasm::response::Response;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Silent,
    Refused,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Settled {
    Stored,
    NotStored,
    Failed,
}

const MN_TAG: u32 = u32::MAX;

/// The replies memcached sends for `fates`, and what each request must settle as.
fn model(fates: &[Fate]) -> (Vec<u8>, Vec<Settled>) {
    let mut bytes = Vec::new();
    let mut settled = vec![Settled::Stored; fates.len()];
    let mut segment: Vec<usize> = Vec::new();
    let mut error_in_segment = false;
    let close = |segment: &mut Vec<usize>, error: &mut bool, settled: &mut Vec<Settled>| {
        for &i in segment.iter() {
            settled[i] = if *error {
                Settled::Failed
            } else {
                Settled::Stored
            };
        }
        segment.clear();
        *error = false;
    };
    for (i, fate) in fates.iter().enumerate() {
        let opaque = i + 1;
        match fate {
            Fate::Silent => segment.push(i),
            Fate::Error => {
                bytes.extend_from_slice(b"SERVER_ERROR object too large for cache\r\n");
                segment.push(i);
                error_in_segment = true;
            }
            Fate::Refused => {
                bytes.extend_from_slice(format!("NS O{opaque}\r\n").as_bytes());
                close(&mut segment, &mut error_in_segment, &mut settled);
                settled[i] = Settled::NotStored;
            }
        }
    }
    bytes.extend_from_slice(b"MN\r\n");
    close(&mut segment, &mut error_in_segment, &mut settled);
    (bytes, settled)
}

fn run(fates: &[Fate], cuts: &[usize]) -> (Vec<Settled>, bool) {
    let mut connection: Connection<u32> = Connection::tagged(1024);
    for i in 0..fates.len() {
        connection
            .push_quiet(
                MetaStatus::Stored,
                |out, opaque| {
                    out.extend_from_slice(format!("ms k{i} 1 q O{opaque}\r\nv\r\n").as_bytes());
                    Ok(())
                },
                i as u32,
            )
            .unwrap();
    }
    connection.close_quiet(MN_TAG);
    let written = connection.take_outbound();
    assert!(written.ends_with(b"mn\r\n"));
    let (bytes, _) = model(fates);
    let mut got = vec![None; fates.len()];
    let mut mn_last = false;
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for end in points {
        let end = end.max(start);
        connection
            .receive_tagged(&bytes[start..end], |tag, response| {
                if tag == MN_TAG {
                    mn_last = got.iter().all(Option::is_some)
                        && response == Response::Meta(MetaReply::new(MetaStatus::Noop));
                    return;
                }
                let settled = match response {
                    Response::Meta(m) if m.status == MetaStatus::Stored => Settled::Stored,
                    Response::Meta(m) if m.status == MetaStatus::NotStored => Settled::NotStored,
                    Response::ServerError(text) => {
                        assert!(text.contains("too large"), "{text}");
                        Settled::Failed
                    }
                    other => panic!("unexpected {other:?}"),
                };
                assert!(got[tag as usize].is_none(), "request {tag} settled twice");
                got[tag as usize] = Some(settled);
            })
            .unwrap();
        start = end;
    }
    assert_eq!(connection.pending(), 0);
    (got.into_iter().map(Option::unwrap).collect(), mn_last)
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Silent),
        2 => Just(Fate::Refused),
        1 => Just(Fate::Error),
    ]
}

proptest! {
    #[test]
    fn quiet_requests_settle_as_the_rule_says_in_any_chunking(
        fates in proptest::collection::vec(fate(), 1..24),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let (_, want) = model(&fates);
        let (got, mn_last) = run(&fates, &cuts);
        prop_assert_eq!(&got, &want);
        prop_assert!(mn_last, "the mn settles last, after every quiet request");
        // Never a success where memcached may have refused.
        for (i, fate) in fates.iter().enumerate() {
            if *fate != Fate::Silent {
                prop_assert_ne!(&got[i], &Settled::Stored);
            }
        }
    }
}

#[test]
fn every_boundary_of_one_mixed_run() {
    let fates = [
        Fate::Silent,
        Fate::Error,
        Fate::Silent,
        Fate::Refused,
        Fate::Silent,
        Fate::Refused,
        Fate::Error,
    ];
    let (bytes, want) = model(&fates);
    assert_eq!(
        want,
        vec![
            Settled::Failed,
            Settled::Failed,
            Settled::Failed,
            Settled::NotStored,
            Settled::Stored,
            Settled::NotStored,
            Settled::Failed,
        ]
    );
    for cut in 0..=bytes.len() {
        assert_eq!(run(&fates, &[cut]).0, want, "split at {cut}");
    }
}
