// Every option, and the operations across three servers, over TCP and through a real
// memcache-bridge: keys spread as python-memcached spreads them, multi ops split into one
// request per server, flags as python writes them.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../client-wasm/js/node.js";
import { freePort, startMemcacheds } from "./support/servers.mjs";
import { Bridge } from "./support/bridge.mjs";
import { presentCount, rawGet } from "./support/raw.mjs";

let servers;
let bridge;
/** A server the bridge may relay to but where nothing listens. */
let deadAddress;
const clients = [];

before(async () => {
  servers = await startMemcacheds(3);
  deadAddress = `127.0.0.1:${await freePort()}`;
  bridge = await Bridge.start({ upstreams: [...servers.map((s) => s.address), deadAddress] });
});
after(async () => { for (const c of clients) c.close(); await bridge?.stop(); await servers?.stopAll(); });
beforeEach(async () => { await direct(servers.map((s) => s.address)).flushAll(); });

function direct(list, options = {}) {
  const mc = new Client(list, { timeout: 2000, ...options });
  clients.push(mc);
  return mc;
}

const keys = (n, prefix = "k") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const counts = (names) => Promise.all(servers.map((s) => presentCount(s.address, names)));

for (const transport of ["tcp", "bridge"]) {
  const client = (list, options = {}) => direct(list, transport === "bridge" ? { bridge: bridge.url, ...options } : options);

  test(`${transport}: three servers: keys spread over all, every operation works across them`, async () => {
    const mc = client(servers.map((s) => s.address));
    const names = keys(300);
    assert.deepEqual(await mc.setMulti(Object.fromEntries(names.map((k) => [k, k.toUpperCase()]))), []);
    const perServer = await counts(names);
    assert.equal(perServer.reduce((a, b) => a + b), 300);
    for (const n of perServer) assert.ok(n > 50, `uneven spread ${perServer}`);
    const got = await mc.getMulti(names);
    assert.equal(Object.keys(got).length, 300);
    for (const k of names) assert.equal(got[k], k.toUpperCase());
    const singles = await Promise.all(names.map((k) => mc.get(k)));
    assert.deepEqual(singles, names.map((k) => k.toUpperCase()));
    assert.equal(await mc.set("n", 5), true);
    assert.equal(await mc.incr("n", 2), 7);
    const { cas } = await mc.gets("n");
    assert.equal(await mc.cas("n", 100, cas), true);
    assert.equal(await mc.touch("n", 100), true);
    assert.equal(await mc.deleteMulti(names.slice(0, 100)), true);
    assert.equal(Object.keys(await mc.getMulti(names)).length, 200);
    const stats = await mc.stats();
    assert.deepEqual(Object.keys(stats).sort(), servers.map((s) => s.address).sort());
    assert.equal(Object.keys(await mc.version()).length, 3);
    assert.equal(await mc.flushAll(), true);
    assert.deepEqual({ ...(await mc.getMulti(names)) }, {});
  });

  test(`${transport}: weights: a server of weight 2 holds about twice the keys (python's tuple form too)`, async () => {
    const mc = client([{ address: servers[0].address, weight: 2 }, [servers[1].address, 1]]);
    await mc.setMulti(Object.fromEntries(keys(600).map((k) => [k, 1])));
    const [a, b] = await counts(keys(600));
    assert.equal(a + b, 600);
    assert.ok(a > 1.5 * b && a < 2.6 * b, `weights 2:1 gave ${a}:${b}`);
  });

  test(`${transport}: distribution ketama and hash functions crc32-old and a caller's function`, async () => {
    for (const options of [{ distribution: "ketama" }, { hashFunction: "crc32-old" }]) {
      const mc = client(servers.map((s) => s.address), options);
      await mc.flushAll();
      await mc.setMulti(Object.fromEntries(keys(300).map((k) => [k, k])));
      const perServer = await counts(keys(300));
      for (const n of perServer) assert.ok(n > 40, `${JSON.stringify(options)} spread ${perServer}`);
      assert.equal(Object.keys(await mc.getMulti(keys(300))).length, 300);
    }
    // A caller's function sees the full key (prefix included) and decides alone.
    const seen = [];
    const mc = client(servers.map((s) => s.address), { hashFunction: (key) => { seen.push(key); return key.endsWith("!") ? 2 : 0; } });
    await mc.flushAll();
    await mc.setMulti({ "a!": 1, "b!": 2, c: 3, d: 4 }, { keyPrefix: "p:" });
    assert.ok(seen.includes("p:a!") && seen.includes("p:c"));
    assert.deepEqual(await counts(["p:a!", "p:b!", "p:c", "p:d"]), [2, 0, 2]);
    assert.deepEqual({ ...(await mc.getMulti(["a!", "b!", "c", "d"], { keyPrefix: "p:" })) }, { "a!": 1, "b!": 2, c: 3, d: 4 });
    // Past a dead server the walk hashes str(hash) + str(attempt) with the same function.
    const rehashed = [];
    const walking = client([servers[0].address, deadAddress, servers[2].address], {
      hashFunction: (key) => { if (/^\d+$/.test(key)) { rehashed.push(key); return 2; } return 1; },
      deadRetry: 60,
    });
    await assert.rejects(walking.set("w:first", 1), (e) => e.code === "CONNECTION_ERROR");
    assert.equal(await walking.set("w:moved", "x"), true);
    assert.deepEqual(rehashed, ["10"]);
    assert.equal((await rawGet(servers[2].address, "w:moved")).data.toString(), "x");
    // A function that fails during the walk rejects the call; it is never taken as hash 0.
    const failing = client([servers[0].address, deadAddress], {
      hashFunction: (key) => { if (/^\d+$/.test(key)) throw new TypeError("no numbers here"); return 1; },
      deadRetry: 60,
    });
    await assert.rejects(failing.set("f:first", 1), (e) => e.code === "CONNECTION_ERROR");
    await assert.rejects(failing.set("f:walk", 1), (e) => e.code === "BAD_ARGUMENT" && /no numbers here/.test(e.message));
    const outOfRange = client([servers[0].address, deadAddress], {
      hashFunction: (key) => (/^\d+$/.test(key) ? 2 ** 40 : 1),
      deadRetry: 60,
    });
    await assert.rejects(outOfRange.set("f:first", 1), (e) => e.code === "CONNECTION_ERROR");
    await assert.rejects(outOfRange.get("f:walk"), (e) => e.code === "BAD_ARGUMENT" && /2\^32-1/.test(e.message));
    const bad = client([servers[0].address], { hashFunction: () => -1 });
    await assert.rejects(bad.get("k"), (e) => e.code === "BAD_ARGUMENT");
    assert.throws(() => client([servers[0].address], { distribution: "ketama", hashFunction: "crc32-old" }), (e) => e.code === "BAD_ARGUMENT");
  });

  test(`${transport}: flags as python-memcached writes them: 16 text, 0 bytes, 2 int, 4 long, 1 serialized, 8 compressed`, async () => {
    const address = servers[0].address;
    const mc = client([address]);
    await mc.set("f:text", "abc");
    await mc.set("f:bytes", new Uint8Array([1, 2]));
    await mc.set("f:int", 42);
    await mc.set("f:long", 2n ** 70n);
    await mc.set("f:json", { a: 1 });
    await mc.set("f:zip", "z".repeat(1000), 0, { minCompressLen: 100 });
    await mc.set("f:nozip", "z".repeat(1000));
    const flags = {};
    for (const k of ["text", "bytes", "int", "long", "json", "zip", "nozip"]) flags[k] = (await rawGet(address, `f:${k}`)).flags;
    assert.deepEqual(flags, { text: 16, bytes: 0, int: 2, long: 4, json: 1, zip: 24, nozip: 16 });
    assert.equal((await rawGet(address, "f:int")).data.toString(), "42");
    assert.equal((await rawGet(address, "f:json")).data.toString(), '{"a":1}');
    assert.ok((await rawGet(address, "f:zip")).data.length < 100);
    assert.equal(await mc.get("f:zip"), "z".repeat(1000));
    // The client-wide minCompressLen applies to every set and setMulti.
    const zipping = client([address], { minCompressLen: 10 });
    await zipping.setMulti({ "f:m1": "y".repeat(500) });
    assert.equal((await rawGet(address, "f:m1")).flags, 24);
    assert.equal(await mc.get("f:m1"), "y".repeat(500));
    // Incompressible data stays as it was.
    let seed = 2463534242;
    const noise = new Uint8Array(400).map(() => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return seed & 0xff; });
    await zipping.set("f:noise", noise);
    assert.equal((await rawGet(address, "f:noise")).flags, 0);
  });

  test(`${transport}: serializer pickle writes a pickle (flag 1) and reads it back; JSON stays readable`, async () => {
    const address = servers[0].address;
    const mc = client([address], { serializer: "pickle" });
    const value = { rows: [1, 2.5, "x", null, true], nested: { k: [] } };
    await mc.set("p:obj", value);
    const raw = await rawGet(address, "p:obj");
    assert.equal(raw.flags, 1);
    assert.equal(raw.data[0], 0x80); // a protocol 2 pickle starts with PROTO
    assert.deepEqual(await mc.get("p:obj"), value);
    // A JSON client reads the pickle too (flag 1 pickles decode whatever the serializer).
    assert.deepEqual(await client([address]).get("p:obj"), value);
  });

  test(`${transport}: a custom serializer: bytes in, bytes out; pickles still read as pickles`, async () => {
    const address = servers[0].address;
    const tagged = {
      serialize: (v) => new TextEncoder().encode(`T:${JSON.stringify(v)}`),
      deserialize: (b) => ({ restored: JSON.parse(new TextDecoder().decode(b).slice(2)) }),
    };
    const mc = client([address], { serializer: tagged });
    await mc.set("c:v", [1, 2]);
    assert.equal((await rawGet(address, "c:v")).data.toString(), "T:[1,2]");
    assert.deepEqual(await mc.get("c:v"), { restored: [1, 2] });
    await client([address], { serializer: "pickle" }).set("c:p", { a: 1 });
    assert.deepEqual(await mc.get("c:p"), { a: 1 });
    const failing = client([address], { serializer: { serialize: () => { throw new Error("nope"); }, deserialize: (b) => b } });
    await assert.rejects(failing.set("c:x", {}), (e) => e.code === "NOT_SERIALIZABLE");
  });

  test(`${transport}: debug logs python-memcached style lines to the caller's logger`, async () => {
    const lines = [];
    const mc = client([servers[0].address, deadAddress], { debug: (line) => lines.push(line), deadRetry: 30 });
    await Promise.allSettled(keys(20).map((k) => mc.set(k, 1)));
    assert.ok(lines.some((l) => l.startsWith("MemCached: ") && l.includes(deadAddress) && l.includes("dead")), lines.join("\n"));
  });

  test(`${transport}: snake_case option names are accepted`, async () => {
    const mc = client([servers[0].address], { dead_retry: 1, socket_timeout: 500, min_compress_len: 10 });
    await mc.set("s:k", "q".repeat(100));
    assert.equal((await rawGet(servers[0].address, "s:k")).flags, 24);
    assert.equal((await mc.get_multi(["s:k"]))["s:k"], "q".repeat(100));
    assert.equal(await mc.delete_multi(["s:k"]), true);
  });
}
