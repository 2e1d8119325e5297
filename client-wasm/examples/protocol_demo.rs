//! Drives a memcached server through the sans-IO core and a blocking socket, printing each
//! request and the reply memcached gave. The server is given by address:
//! `cargo run -p memcache-wasm --example protocol_demo -- 127.0.0.1:11211`.
//! It writes and deletes keys under `protocol-demo:` only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::ToSocketAddrs;
use std::process::ExitCode;

use memcache_wasm::request::{MetadumpScope, Request, StorageVerb};
use memcache_wasm::response::Response;
use support::{BlockingClient, Failure};

fn main() -> ExitCode {
    let Some(address) = std::env::args().nth(1) else {
        eprintln!("usage: protocol_demo HOST:PORT   (a memcached server to talk to)");
        return ExitCode::from(2);
    };
    match run(&address) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("protocol_demo: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn show(request: &Request, reply: &Response) {
    let mut line = Vec::new();
    request.encode(&mut line).expect("demo requests are valid");
    let first_line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    println!("> {}", String::from_utf8_lossy(first_line).trim_end());
    match reply {
        Response::Values(items) if items.is_empty() => println!("< (miss)"),
        Response::Values(items) => {
            for item in items {
                println!(
                    "< {} flags={} cas={:?} data={:?}",
                    String::from_utf8_lossy(&item.key),
                    item.flags,
                    item.cas,
                    String::from_utf8_lossy(&item.data)
                );
            }
        }
        Response::Stats(stats) => {
            for (name, value) in stats.iter().take(5) {
                println!("< STAT {name} {value}");
            }
            if stats.len() > 5 {
                println!("< ... {} more", stats.len() - 5);
            }
        }
        Response::Metadump(lines) => {
            for line in lines.iter().filter(|line| line.contains("protocol-demo")) {
                println!("< {line}");
            }
            println!("< ({} items in the whole dump)", lines.len());
        }
        other => println!("< {other:?}"),
    }
}

fn call(client: &mut BlockingClient, request: Request) -> Result<Response, Failure> {
    let reply = client.call(&request)?;
    show(&request, &reply);
    Ok(reply)
}

fn run(address: &str) -> Result<(), Failure> {
    let addr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    let mut client = BlockingClient::connect(addr)?;
    call(&mut client, Request::Version)?;

    // Three sets and a multi-get, written as one pipelined batch.
    let keys: [&[u8]; 3] = [b"protocol-demo:a", b"protocol-demo:b", b"protocol-demo:n"];
    let batch = [
        store(StorageVerb::Set, keys[0], b"alpha"),
        store(StorageVerb::Set, keys[1], b"beta"),
        store(StorageVerb::Set, keys[2], b"41"),
        Request::Get { keys: &keys },
    ];
    let replies = client.send(&batch)?;
    println!("(one write of {} pipelined requests)", batch.len());
    for (request, reply) in batch.iter().zip(&replies) {
        show(request, reply);
    }

    call(&mut client, store(StorageVerb::Append, keys[0], b"+omega"))?;
    call(&mut client, store(StorageVerb::Add, keys[0], b"ignored"))?;
    call(
        &mut client,
        Request::Incr {
            key: keys[2],
            delta: 1,
            noreply: false,
        },
    )?;
    call(
        &mut client,
        Request::Decr {
            key: keys[2],
            delta: 100,
            noreply: false,
        },
    )?;

    let cas = match call(&mut client, Request::Gets { keys: &keys[..1] })? {
        Response::Values(items) => items.first().and_then(|item| item.cas),
        _ => None,
    }
    .ok_or("gets returned no cas unique")?;
    call(
        &mut client,
        Request::Cas {
            key: keys[0],
            flags: 0,
            exptime: 0,
            data: b"swapped",
            cas,
            noreply: false,
        },
    )?;
    call(
        &mut client,
        Request::Cas {
            key: keys[0],
            flags: 0,
            exptime: 0,
            data: b"stale",
            cas,
            noreply: false,
        },
    )?;
    call(
        &mut client,
        Request::Gat {
            exptime: 600,
            keys: &keys[..2],
        },
    )?;
    call(
        &mut client,
        Request::Touch {
            key: keys[1],
            exptime: 300,
            noreply: false,
        },
    )?;
    call(
        &mut client,
        Request::Stats {
            args: Some("settings"),
        },
    )?;
    call(
        &mut client,
        Request::Metadump {
            scope: MetadumpScope::All,
        },
    )?;
    for key in keys {
        call(
            &mut client,
            Request::Delete {
                key,
                noreply: false,
            },
        )?;
    }
    call(&mut client, Request::Get { keys: &keys })?;
    Ok(())
}

fn store<'a>(verb: StorageVerb, key: &'a [u8], data: &'a [u8]) -> Request<'a> {
    Request::Store {
        verb,
        key,
        flags: 0,
        exptime: 0,
        data,
        noreply: false,
    }
}
