// { noreply: true } on every write, against a real memcached 1.6.18: the writes go quietly
// (meta `q`: memcached answers only what did not succeed, one `mn` closes each run), each
// call still settles as the loud call would, nothing refused is taken for stored, the
// connection's order holds, and python-memcached reads what the quiet writes stored.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Client } from "../../client-wasm/js/node.js";
import { checkPython, python } from "./support/python.mjs";
import { Memcached } from "./support/servers.mjs";

let server;
let mc;
before(async () => {
  // -I 1m: memcached's own item limit, below the client's maxValueSize in one test.
  server = await Memcached.start(["-I", "1m"]);
  mc = new Client([server.address], { timeout: 3000 });
});
after(async () => { await mc?.close(); await server?.stop(); });

/**
 * A TCP pass-through in front of memcached that counts the bytes memcached sends back
 * (to see that quiet writes draw no replies). Stopped by its close().
 */
async function tap(port) {
  const counted = { fromServer: 0, replies: [] };
  const sockets = new Set();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    sockets.add(client); sockets.add(upstream);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => { counted.fromServer += d.length; counted.replies.push(d.toString("latin1")); client.write(d); });
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on("close", end); upstream.on("close", end);
    client.on("error", end); upstream.on("error", end);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${proxy.address().port}`,
    counted,
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => proxy.close(r)); },
  };
}

test("every write with { noreply: true } settles as the loud call does", async () => {
  const q = { noreply: true };
  assert.equal(await mc.set("nr:a", "one", 0, q), true);
  assert.equal(await mc.add("nr:a", "again", 0, q), false, "add of an existing key is not stored");
  assert.equal(await mc.add("nr:b", "bee", 0, q), true);
  assert.equal(await mc.replace("nr:missing", "x", 0, q), false);
  assert.equal(await mc.replace("nr:b", "B", 0, q), true);
  assert.equal(await mc.append("nr:b", "+", 0, q), true);
  assert.equal(await mc.prepend("nr:b", "<", 0, q), true);
  assert.equal(await mc.append("nr:missing", "x", 0, q), false);
  assert.equal(await mc.get("nr:b"), "<B+");
  const { cas } = await mc.gets("nr:a");
  assert.equal(await mc.cas("nr:a", "two", cas + 1n, 0, q), false, "a stale cas is not stored");
  assert.equal(await mc.cas("nr:a", "two", cas, 0, q), true);
  assert.equal(await mc.get("nr:a"), "two");
  assert.equal(await mc.touch("nr:a", 100, q), true);
  assert.equal(await mc.touch("nr:missing", 100, q), false);
  assert.equal((await mc.getWithTtl("nr:a")).ttl > 90, true, "the quiet touch set the expiry");
  await mc.set("nr:n", 10);
  assert.equal(await mc.incr("nr:n", 5, q), true);
  assert.equal(await mc.decr("nr:n", 3, q), true);
  assert.equal(await mc.incr("nr:missing", 1, q), false);
  assert.equal(await mc.get("nr:n"), 12);
  assert.equal(await mc.delete("nr:a", q), true);
  assert.equal(await mc.delete("nr:a", q), false);
  assert.deepEqual(await mc.setMulti({ "nr:m1": 1, "nr:m2": [2] }, q), []);
  assert.deepEqual(await mc.getMulti(["nr:m1", "nr:m2"]), Object.assign(Object.create(null), { "nr:m1": 1, "nr:m2": [2] }));
  assert.equal(await mc.deleteMulti(["nr:m1", "nr:m2", "nr:never"], q), true);
  assert.deepEqual(await mc.getMulti(["nr:m1", "nr:m2"]), Object.create(null));
});

test("1,000 quiet sets in one tick draw one MN from memcached, and a get after them in the same tick sees the last", async () => {
  const t = await tap(server.port);
  const c = new Client([t.address], { timeout: 3000 });
  try {
    await c.version(); // connected (and the probe's bytes counted) before the run
    const before = t.counted.fromServer;
    const sets = [];
    for (let i = 0; i < 1000; i++) sets.push(c.set(`nr:bulk:${i}`, `v${i}`, 0, { noreply: true }));
    const read = c.get("nr:bulk:999");
    assert.deepEqual(await Promise.all(sets), new Array(1000).fill(true));
    assert.equal(await read, "v999", "the loud get written after the quiet run reads its value");
    const replies = t.counted.replies.join("").slice(0);
    const after = t.counted.fromServer - before;
    // MN\r\n for the run, then the get's VALUE ... END: no reply per set.
    assert.ok(after < 100, `memcached sent ${after} bytes for 1,000 quiet sets and a get: ${JSON.stringify(replies.slice(-120))}`);
    assert.match(replies, /MN\r\nVALUE nr:bulk:999 /);
  } finally {
    await c.close();
    await t.close();
  }
});

test("a quiet write memcached refuses is never taken for stored: a value over memcached's -I rejects, and so does each quiet write it could belong to", async () => {
  const c = new Client([server.address], { timeout: 3000, maxValueSize: 4 * 1024 * 1024 });
  try {
    const big = "x".repeat(2 * 1024 * 1024);
    // memcached answers SERVER_ERROR without the opaque: the quiet writes before the next
    // reply that names one (here the MN) cannot be told apart, and none is said stored.
    const calls = [
      c.set("nr:before", "small", 0, { noreply: true }),
      c.set("nr:big", big, 0, { noreply: true }),
    ];
    const settled = await Promise.allSettled(calls);
    assert.equal(settled[1].status, "rejected");
    assert.equal(settled[1].reason.code, "SERVER_ERROR");
    assert.match(settled[1].reason.message, /too large/);
    assert.equal(settled[0].status, "rejected", "the write it cannot be told apart from is not said stored");
    assert.match(settled[0].reason.message, /may not have been applied/);
    // A refusal that names its write (NS with the opaque) leaves the others alone.
    await c.set("nr:exists", "x");
    const [a, b, d] = await Promise.all([
      c.set("nr:one", "1", 0, { noreply: true }),
      c.add("nr:exists", "y", 0, { noreply: true }),
      c.set("nr:two", "2", 0, { noreply: true }),
    ]);
    assert.deepEqual([a, b, d], [true, false, true]);
    // The connection is still in step.
    assert.equal(await c.get("nr:one"), "1");
    assert.equal(await c.get("nr:exists"), "x");
  } finally {
    await c.close();
  }
});

test("noreply takes only true or false, and not with a self-creating counter", async () => {
  for (const call of [
    () => mc.set("nr:bad", "v", 0, { noreply: "yes" }),
    () => mc.delete("nr:bad", { noreply: 1 }),
    () => mc.incr("nr:bad", 1, { noreply: true, initial: 5 }),
  ]) {
    await assert.rejects(call(), (e) => e.code === "BAD_ARGUMENT");
  }
  assert.equal(await mc.set("nr:loud", "v", 0, { noreply: false }), true);
});

test("python-memcached reads what quiet writes stored (its flags kept)", async () => {
  checkPython();
  const pickling = new Client([server.address], { serializer: "pickle", timeout: 3000 });
  const manifest = {};
  try {
    const calls = [];
    for (let i = 0; i < 60; i++) {
      const [key, value] = i % 3 === 0 ? [`nrpy:str:${i}`, `text ${i} ✓`]
        : i % 3 === 1 ? [`nrpy:int:${i}`, i * 9 - 100]
          : [`nrpy:pickle:${i}`, { rows: [[1, "x"]], i }];
      manifest[key] = value;
      calls.push(pickling.set(key, value, 0, { noreply: true }));
    }
    assert.ok((await Promise.all(calls)).every((r) => r === true));
  } finally {
    await pickling.close();
  }
  const result = python("read", [server], JSON.stringify(manifest));
  assert.equal(result.checked, 60);
  assert.deepEqual(result.mismatches, []);
});
