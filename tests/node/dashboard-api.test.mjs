// The calls the dashboard makes, against two real memcached servers: serverForKey names
// the server a raw get finds the key on, inspect shows the flags and stored size memcached
// holds, metadump lists the keys of one server (alone on its connection, even when other
// requests to that server are issued in the same tick).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../client-wasm/js/node.js";
import { Memcached, freePort, startMemcacheds } from "./support/servers.mjs";
import { Bridge } from "./support/bridge.mjs";
import { rawGet } from "./support/raw.mjs";

let servers;
let addresses;
let bridge;
/** An address where nothing listens: a server that is down. */
let deadAddress;
const clients = [];

before(async () => {
  servers = await startMemcacheds(2);
  addresses = servers.map((s) => s.address);
  deadAddress = `127.0.0.1:${await freePort()}`;
  bridge = await Bridge.start({ upstreams: addresses });
});
after(async () => { for (const c of clients) c.close(); await bridge?.stop(); await servers?.stopAll(); });
beforeEach(async () => { await client(addresses).flushAll(); });

function client(list, options = {}) {
  const mc = new Client(list, { timeout: 2000, ...options });
  clients.push(mc);
  return mc;
}

const keys = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** The key names in metadump lines (memcached URL-encodes them). */
const dumpedKeys = (lines) => lines.map((line) => decodeURIComponent(/^key=(\S+)/.exec(line)[1]));

for (const [name, options] of [
  ["modula", {}],
  ["ketama", { distribution: "ketama" }],
  ["a custom hash function", { hashFunction: (key) => key.length * 7919 + key.charCodeAt(key.length - 1) }],
]) {
  test(`serverForKey (${name}) names the server where a raw get finds the key`, async () => {
    const mc = client(addresses, options);
    const names = keys(100, `sfk-${name.length}`);
    assert.deepEqual(await mc.setMulti(Object.fromEntries(names.map((k) => [k, k]))), []);
    const used = new Set();
    for (const key of names) {
      const home = mc.serverForKey(key);
      assert.ok(addresses.includes(home), home);
      used.add(home);
      const [there, other] = home === addresses[0] ? addresses : [...addresses].reverse();
      assert.equal((await rawGet(there, key))?.data.toString(), key, `${key} on ${home}`);
      assert.equal(await rawGet(other, key), undefined, `${key} not on ${other}`);
    }
    assert.equal(used.size, 2, "keys spread over both servers");
  });
}

test("serverForKey follows a dead server as requests do: re-hashed with failover, NO_SERVER without", async () => {
  const list = [addresses[0], deadAddress];
  const mc = client(list, { deadRetry: 60 });
  const key = keys(50, "dead").find((k) => mc.serverForKey(k) === deadAddress);
  assert.ok(key, "a key that maps to the dead server");
  await assert.rejects(mc.get(key), (e) => e.code === "CONNECTION_ERROR");
  assert.equal(mc.serverForKey(key), addresses[0]);
  await assert.rejects(mc.metadump({ server: deadAddress }), (e) =>
    e.code === "NO_SERVER" && e.server === deadAddress && /marked dead/.test(e.message));
  assert.equal(await mc.set(key, "moved"), true);
  assert.equal((await rawGet(addresses[0], key)).data.toString(), "moved");

  const strict = client(list, { deadRetry: 60, failover: false });
  assert.equal(strict.serverForKey(key), deadAddress);
  await assert.rejects(strict.get(key), (e) => e.code === "CONNECTION_ERROR");
  assert.throws(() => strict.serverForKey(key), (e) => e.code === "NO_SERVER" && e.name === "NoServerError");
});

test("serverForKey throws BAD_KEY for a bad key and CLOSED after close", () => {
  const mc = client(addresses);
  for (const bad of ["", "has space", "x".repeat(251), "tab\tkey"]) {
    assert.throws(() => mc.serverForKey(bad), (e) => e.code === "BAD_KEY", JSON.stringify(bad));
  }
  mc.close();
  assert.throws(() => mc.serverForKey("k"), (e) => e.code === "CLOSED");
  // A hash function that fails or answers out of range is BAD_ARGUMENT, as for a request.
  const failing = client(addresses, { hashFunction: (key) => { if (key === "boom") throw new Error("no hash"); return -1; } });
  assert.throws(() => failing.serverForKey("boom"), (e) => e.code === "BAD_ARGUMENT" && /no hash/.test(e.message));
  assert.throws(() => failing.serverForKey("k"), (e) => e.code === "BAD_ARGUMENT");
});

test("inspect gives the value with the flags and stored size memcached holds", async () => {
  const mc = client(addresses, { minCompressLen: 100 });
  const long = "compress me ".repeat(200);
  const cases = [
    ["i-text", "héllo", 16],
    ["i-int", -12345, 2],
    ["i-json", { a: [1, 2, "x"], b: null }, 1],
    ["i-bytes", Uint8Array.from([0, 1, 2, 255]), 0],
    ["i-big", 2n ** 70n, 4],
    ["i-compressed", long, 16 | 8],
  ];
  for (const [key, value] of cases) assert.equal(await mc.set(key, value), true, key);
  for (const [key, value, flags] of cases) {
    const item = await mc.inspect(key);
    const server = mc.serverForKey(key);
    const raw = await rawGet(server, key);
    assert.deepEqual(item.value, value, key);
    assert.equal(item.flags, flags, key);
    assert.equal(raw.flags, flags, key);
    assert.equal(item.size, raw.data.length, key);
    assert.equal(item.server, server, key);
    assert.equal(typeof item.cas, "bigint", key);
    const { cas } = await mc.gets(key);
    assert.equal(item.cas, cas, key);
  }
  const compressed = await mc.inspect("i-compressed");
  assert.ok(compressed.size < Buffer.byteLength(long), `${compressed.size} stored for ${long.length} bytes`);
  assert.equal((await mc.inspect("i-int")).size, "-12345".length);
  assert.equal(await mc.inspect("i-missing"), undefined);
  await assert.rejects(mc.inspect("bad key"), (e) => e.code === "BAD_KEY");
});

test("metadump lists the keys of the one server named, in every scope", async () => {
  const mc = client(addresses);
  const names = keys(60, "md");
  assert.deepEqual(await mc.setMulti(Object.fromEntries(names.map((k) => [k, `v-${k}`]))), []);
  for (const server of addresses) {
    const mine = names.filter((k) => mc.serverForKey(k) === server).sort();
    assert.ok(mine.length > 0);
    for (const scope of [undefined, "all", "hash", 1]) {
      const lines = await mc.metadump({ server, scope });
      assert.ok(lines.every((l) => typeof l === "string" && /^key=\S+ exp=-?\d+ la=\d+ cas=\d+ .*cls=1 size=\d+/.test(l)), lines[0]);
      assert.deepEqual(dumpedKeys(lines).sort(), mine, `${server} ${scope}`);
    }
  }
});

test("metadump goes alone on its connection while other requests to the server share the tick", async () => {
  const server = addresses[0];
  const mc = client([server]);
  const names = keys(200, "tick");
  // Writes before it in the same tick, then the metadump, then more requests: memcached
  // would refuse the metadump with replies pending, and leave unread what arrived with it.
  const before = names.map((k) => mc.set(k, k));
  const dump = mc.metadump({ server });
  const after = [mc.set("tick-after", 1), mc.get(names[0]), mc.metadump({ server, scope: "hash" }), mc.incr("tick-after", 2)];
  assert.ok((await Promise.all(before)).every((ok) => ok === true));
  assert.deepEqual(dumpedKeys(await dump).sort(), [...names].sort());
  const [stored, first, secondDump, counter] = await Promise.all(after);
  assert.equal(stored, true);
  assert.equal(first, names[0]);
  assert.deepEqual(dumpedKeys(secondDump).sort(), [...names, "tick-after"].sort());
  assert.equal(counter, 3);
  assert.equal((await rawGet(server, "tick-after")).data.toString(), "3");
});

test("metadump refusals and bad arguments", async () => {
  const mc = client(addresses);
  await assert.rejects(mc.metadump({ server: deadAddress }), (e) => e.code === "BAD_ARGUMENT");
  await assert.rejects(mc.metadump({}), (e) => e.code === "BAD_ARGUMENT");
  await assert.rejects(mc.metadump({ server: addresses[0], scope: "everything" }), (e) => e.code === "BAD_ARGUMENT");
  await assert.rejects(mc.metadump({ server: addresses[0], scope: -1 }), (e) => e.code === "BAD_ARGUMENT");
  // memcached has no slab class 200: it answers BADCLASS, which is the refusal's text.
  await assert.rejects(mc.metadump({ server: addresses[1], scope: 200 }), (e) =>
    e.code === "METADUMP_REFUSED" && e.name === "MetadumpRefusedError" && /BADCLASS/.test(e.message) && e.server === addresses[1]);
  // The connection stays usable after a refusal.
  assert.equal(await mc.set("after-refusal", "ok"), true);
  assert.deepEqual(await mc.metadump({ server: addresses[1], scope: 200 }).catch((e) => e.code), "METADUMP_REFUSED");
  mc.close();
  await assert.rejects(mc.metadump({ server: addresses[0] }), (e) => e.code === "CLOSED");
});

test("a hung server during a metadump rejects it and the requests held behind it with TIMEOUT, no hang", async () => {
  const lone = await Memcached.start();
  try {
    const mc = client([lone.address], { timeout: 300, deadRetry: 0 });
    assert.equal(await mc.set("h", "v"), true);
    await lone.pause();
    const started = Date.now();
    const results = await Promise.allSettled([mc.metadump({ server: lone.address }), mc.set("held", 1), mc.get("h")]);
    assert.deepEqual(results.map((r) => r.reason?.code), ["TIMEOUT", "TIMEOUT", "TIMEOUT"]);
    assert.ok(Date.now() - started < 2000, `rejected after ${Date.now() - started} ms`);
    // The engine probes the server in the background; once it answers, calls go to it again.
    const up = new Promise((resolve) => mc.on("serverUp", resolve));
    lone.resume();
    await up;
    assert.equal(await mc.get("h"), "v");
    // memcached's crawler may still be walking for the dump whose connection was dropped:
    // it answers BUSY (METADUMP_REFUSED) until it is done, a bounded wait.
    let lines;
    for (let attempt = 0; lines === undefined; attempt++) {
      try {
        lines = await mc.metadump({ server: lone.address });
      } catch (e) {
        if (e.code !== "METADUMP_REFUSED" || !/BUSY/.test(e.message) || attempt >= 40) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.deepEqual(dumpedKeys(lines), ["h"]);
  } finally {
    await lone.stop();
  }
});

test("through a bridge: inspect, metadump and serverForKey as over TCP", async () => {
  const mc = client(addresses, { bridge: bridge.url });
  const names = keys(40, "br");
  assert.deepEqual(await mc.setMulti(Object.fromEntries(names.map((k) => [k, k.length]))), []);
  const item = await mc.inspect(names[3]);
  assert.deepEqual([item.value, item.flags, item.size, item.server], [names[3].length, 2, 1, mc.serverForKey(names[3])]);
  const listed = [];
  for (const server of addresses) listed.push(...dumpedKeys(await mc.metadump({ server })));
  assert.deepEqual(listed.sort(), [...names].sort());
});
