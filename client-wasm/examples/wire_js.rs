//! Writes `js/wire.js`, the JavaScript half of the binding's wire format, from the tables
//! in `src/wire.rs` (a unit test there fails when the committed file is out of date).

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/js/wire.js");
    std::fs::write(path, memcache_wasm::wire::javascript_module()).expect("write js/wire.js");
    println!("wrote {path}");
}
