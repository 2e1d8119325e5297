// The meta protocol against a real memcached 1.6.18: getOrSet's stampede protection across
// processes (4 Node processes x 250 concurrent calls), stale-while-revalidate after
// invalidate and near expiry, a loader that throws, a win whose holder died (lockTtl), and
// getWithTtl / getAndTouch / self-creating counters.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Client } from "../../client-wasm/js/node.js";
import { Memcached } from "./support/servers.mjs";
import { herd } from "./support/herd.mjs";

let server;
let mc;
before(async () => {
  server = await Memcached.start();
  mc = new Client([server.address], { timeout: 3000 });
});
after(async () => { await mc?.close(); await server?.stop(); });

/** Polls `read` until `ok(value)` (bounded): waits on what the server says. */
async function until(read, ok, what, limitMs = 10_000) {
  const end = Date.now() + limitMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > end) throw new Error(`${what}: not seen within ${limitMs} ms (last ${JSON.stringify(value)})`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A raw line exchange with memcached (to hold a win as a process that then dies would). */
function raw(line) {
  return new Promise((resolve, reject) => {
    const s = net.connect(server.port, "127.0.0.1", () => s.write(line));
    let got = "";
    s.on("data", (d) => { got += d; if (got.endsWith("\r\n")) { s.destroy(); resolve(got); } });
    s.on("error", reject);
  });
}

test("stampede: 4 processes x 250 concurrent getOrSet on a missing key run the 200 ms loader once, and all 1,000 calls get its value", async () => {
  const { loads, results, errors } = await herd({
    processes: 4, server: server.address, key: "top5films", calls: 250, loaderMs: 200, ttl: 60, pattern: "getOrSet",
  });
  assert.deepEqual(errors, []);
  assert.equal(loads.length, 1, "the loader ran once in the whole fleet");
  assert.equal(results.length, 1000);
  assert.ok(results.every((r) => r === loads[0].value), "every call resolved with the winner's value");
});

test("stampede with the key expiring under load: one loader at a time, each expiry loaded once, every call gets a loaded value", async () => {
  // ttl 1 s and calls spread over ~3 s in waves: the key expires under the herd twice or more.
  const { loads, results, errors } = await herd({
    processes: 4, server: server.address, key: "expiring", calls: 250, loaderMs: 200, ttl: 1,
    pattern: "getOrSet", waves: 25, waveGapMs: 120,
  });
  assert.deepEqual(errors, []);
  assert.equal(results.length, 1000);
  assert.ok(loads.length >= 2, `the key expired under load (${loads.length} loads)`);
  // memcached's clock ticks once a second: at most one load per tick of the run (~3 s + loads).
  assert.ok(loads.length <= 6, `one load per expiry, not one per caller (${loads.length} loads)`);
  const sorted = [...loads].sort((a, b) => a.started - b.started);
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(sorted[i].started >= sorted[i - 1].ended, "no two loaders ran at the same time");
  }
  const loaded = new Set(loads.map((l) => l.value));
  assert.ok(results.every((r) => loaded.has(r)), "every call resolved with a value some loader produced");
});

test("get-then-set (what memjs and memcached users write) under the same herd runs the loader many times", async () => {
  const { loads, errors } = await herd({
    processes: 4, server: server.address, key: "herd-plain", calls: 250, loaderMs: 200, ttl: 60, pattern: "get-then-set",
  });
  assert.deepEqual(errors, []);
  assert.ok(loads.length > 100, `the stampede the issue describes (${loads.length} loader runs)`);
});

test("stale-while-revalidate: after invalidate, callers keep the old value, one refresh runs, then everyone gets the new one", async () => {
  const key = "swr";
  assert.equal(await mc.getOrSet(key, async () => "v1", { ttl: 60 }), "v1");
  assert.equal(await mc.invalidate(key), true);
  let refreshes = 0;
  let refreshed;
  const stored = new Promise((resolve) => { refreshed = resolve; });
  const loader = async () => {
    refreshes++;
    await new Promise((r) => setTimeout(r, 200));
    queueMicrotask(refreshed);
    return "v2";
  };
  const during = await Promise.all(Array.from({ length: 100 }, () => mc.getOrSet(key, loader, { ttl: 60 })));
  assert.ok(during.every((v) => v === "v1"), "the stale value is served while the refresh runs");
  await stored;
  await until(() => mc.get(key), (v) => v === "v2", "the refreshed value");
  const after = await Promise.all(Array.from({ length: 100 }, () => mc.getOrSet(key, loader, { ttl: 60 })));
  assert.ok(after.every((v) => v === "v2"));
  assert.equal(refreshes, 1, "one refresh for 200 calls");
  assert.equal(await mc.invalidate("never-stored"), false);
});

test("staleTtl: a value in its last staleTtl seconds is served while one caller refreshes it", async () => {
  const key = "near-expiry";
  let loads = 0;
  const loader = async () => `load ${++loads}`;
  assert.equal(await mc.getOrSet(key, loader, { ttl: 1, staleTtl: 30 }), "load 1");
  // Stored for 31 s; after ~1 s fewer than 30 are left and one caller wins the refresh.
  const served = await until(() => mc.getOrSet(key, loader, { ttl: 1, staleTtl: 30 }), () => loads === 2, "the background refresh", 5000);
  assert.equal(served, "load 1", "the call that started the refresh got the stale value at once");
  await until(() => mc.get(key), (v) => v === "load 2", "the refreshed value");
  assert.equal(loads, 2);
});

test("a loader that throws: its caller gets its error, the win is released, and a waiting caller loads instead", async () => {
  const key = "throws";
  let calls = 0;
  const boom = new Error("the database is down");
  const loader = async () => {
    calls++;
    if (calls === 1) { await new Promise((r) => setTimeout(r, 100)); throw boom; }
    return "second try";
  };
  const settled = await Promise.allSettled(Array.from({ length: 20 }, () => mc.getOrSet(key, loader, { ttl: 60 })));
  const rejected = settled.filter((s) => s.status === "rejected");
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0].reason, boom, "the loader's own error reaches its caller");
  assert.ok(settled.filter((s) => s.status === "fulfilled").every((s) => s.value === "second try"));
  assert.equal(calls, 2, "after the release exactly one other caller loaded");
});

test("a win whose holder died: waiters time out within `timeout`, and once lockTtl passes the next caller wins", async () => {
  const key = "orphaned";
  assert.match(await raw(`mg ${key} v N2\r\n`), /^VA 0 .*W/, "a raw client holds the win and never stores");
  const started = Date.now();
  await assert.rejects(mc.getOrSet(key, async () => "x", { ttl: 60, timeout: 300 }), (e) => e.code === "TIMEOUT");
  assert.ok(Date.now() - started < 2000, "bounded by timeout");
  assert.equal(await mc.getOrSet(key, async () => "after the lock", { ttl: 60, timeout: 5000 }), "after the lock");
});

test("getWithTtl, getAndTouch and counters that create themselves", async () => {
  await mc.set("ttl", "v", 100);
  assert.deepEqual(await mc.getWithTtl("ttl"), { value: "v", ttl: 100 });
  await mc.set("forever", 7);
  assert.deepEqual(await mc.getWithTtl("forever"), { value: 7, ttl: -1 });
  assert.equal(await mc.getWithTtl("missing"), undefined);
  assert.equal(await mc.getAndTouch("ttl", 500), "v");
  assert.equal((await mc.getWithTtl("ttl")).ttl, 500);
  assert.equal(await mc.getAndTouch("missing", 5), undefined);
  assert.equal(await mc.incr("hits", 1, { initial: 10, ttl: 60 }), 10, "created at `initial`");
  assert.equal(await mc.incr("hits", 5, { initial: 10, ttl: 60 }), 15);
  assert.equal(await mc.decr("hits", 20, { initial: 0 }), 0, "memcached's decr stops at 0");
  assert.equal((await mc.getWithTtl("hits")).ttl, 60);
  // memcached creates the counter with client flags 0 (ma takes no F): raw digits, which a
  // decr leaves space-padded to their old length, as the text protocol's decr does.
  assert.equal(new TextDecoder().decode(await mc.get("hits")).trim(), "0");
  assert.equal(await mc.incr("plain-missing", 1), undefined, "without options incr keeps the text protocol's miss");
});

test("bad arguments are refused before anything is sent", async () => {
  await assert.rejects(mc.getOrSet("k", "not a function"), (e) => e.code === "BAD_ARGUMENT");
  await assert.rejects(mc.getOrSet("bad key", async () => 1), (e) => e.code === "BAD_KEY");
  await assert.rejects(mc.getOrSet("k", async () => 1, { lockTtl: 0 }), (e) => e.code === "BAD_ARGUMENT");
  await assert.rejects(mc.getOrSet("k", async () => 1, { staleTtl: 5 }), (e) => e.code === "BAD_ARGUMENT");
  await assert.rejects(mc.getOrSet("k", async () => 1, { timeout: -1 }), (e) => e.code === "BAD_ARGUMENT");
  await assert.rejects(mc.getOrSet("k", async () => undefined), (e) => e.code === "NOT_SERIALIZABLE");
  assert.equal(await mc.getOrSet("k", async () => 2), 2, "the refused store released the win");
});
