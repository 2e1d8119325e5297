// Bad input is refused before anything is sent, and a failing server never leaves a call
// hanging: killed mid-request, restarted, or hung past the timeout, against real memcached.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Client, MemcacheError } from "../../client-wasm/js/node.js";
import { freePort, startMemcacheds } from "./support/servers.mjs";
import { rawCommand } from "./support/raw.mjs";
import { spawn } from "node:child_process";

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

async function oneServer(options = {}, args = []) {
  const [server] = await startMemcacheds(1, args);
  const mc = new Client([server.address], { timeout: 1000, ...options });
  cleanup.push(async () => { mc.close(); await server.stop(); });
  return { server, mc };
}

const code = (c) => (e) => { assert.ok(e instanceof MemcacheError, `not a MemcacheError: ${e}`); assert.equal(e.code, c, e.message); return true; };

test("bad keys are refused with BAD_KEY and nothing is sent", async () => {
  const { mc } = await oneServer();
  await assert.rejects(mc.get(""), code("BAD_KEY"));
  await assert.rejects(mc.set("has space", "v"), code("BAD_KEY"));
  await assert.rejects(mc.set("new\nline", "v"), code("BAD_KEY"));
  await assert.rejects(mc.get("tab\there"), code("BAD_KEY"));
  await assert.rejects(mc.get("k".repeat(251)), code("BAD_KEY"));
  await assert.rejects(mc.getMulti(["ok", "k".repeat(240)], { keyPrefix: "p".repeat(11) }), code("BAD_KEY"));
  await assert.rejects(mc.setMulti({ good: 1, "bad key": 2 }), code("BAD_KEY"));
  // The refused multi op queued nothing: the good key was not stored.
  assert.equal(await mc.get("good"), undefined);
  await assert.rejects(mc.get(10n ** 300n), code("BAD_KEY"));
  await assert.rejects(mc.get({}), code("BAD_ARGUMENT"));
  // A 250-byte key and UTF-8 keys are fine.
  assert.equal(await mc.set("k".repeat(250), "v"), true);
  assert.equal(await mc.set("ключ", "значение"), true);
  assert.equal(await mc.get("ключ"), "значение");
  // Calls in the same tick as a bad one are unaffected.
  const [ok, bad] = await Promise.allSettled([mc.set("same-tick", 1), mc.set("bad key", 1)]);
  assert.equal(ok.value, true);
  assert.equal(bad.reason.code, "BAD_KEY");
});

test("a value over maxValueSize is VALUE_TOO_LARGE; compression can bring it under", async () => {
  const { mc } = await oneServer({ maxValueSize: 1000 });
  await assert.rejects(mc.set("big", "x".repeat(1001)), code("VALUE_TOO_LARGE"));
  // setMulti stores the others and returns the key too large, as python-memcached does.
  assert.deepEqual(await mc.setMulti({ a: "ok", b: new Uint8Array(5000) }), ["b"]);
  assert.equal(await mc.get("a"), "ok");
  const { notStored, errors } = await mc.setMulti({ c: "ok", d: new Uint8Array(5000) }, { withErrors: true });
  assert.deepEqual(notStored, ["d"]);
  assert.equal(errors.d.code, "VALUE_TOO_LARGE");
  assert.equal(errors.d.key, "d");
  assert.equal(await mc.set("big", "x".repeat(5000), 0, { minCompressLen: 100 }), true);
  assert.equal(await mc.get("big"), "x".repeat(5000));
});

test("memcached's own item limit answers SERVER_ERROR when maxValueSize is set above it", async () => {
  const { mc } = await oneServer({ maxValueSize: 4 * 1024 * 1024 });
  await assert.rejects(mc.set("huge", new Uint8Array(2 * 1024 * 1024)), code("SERVER_ERROR"));
  assert.equal(await mc.set("after", "fine"), true);
  assert.equal(await mc.get("after"), "fine");
});

test("unserializable values are NOT_SERIALIZABLE before anything is sent", async () => {
  const { mc } = await oneServer();
  const cycle = { name: "loop" };
  cycle.self = cycle;
  await assert.rejects(mc.set("f", () => 1), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.set("c", cycle), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.set("u", undefined), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.set("s", Symbol("x")), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.set("n", NaN), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.set("b", { big: 1n }), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.setMulti({ ok: 1, f: () => 2 }), code("NOT_SERIALIZABLE"));
  for (const k of ["f", "c", "u", "s", "n", "b", "ok"]) assert.equal(await mc.get(k), undefined);
});

test("bad arguments are BAD_ARGUMENT", async () => {
  const { mc } = await oneServer();
  await assert.rejects(mc.set("k", "v", -1), code("BAD_ARGUMENT"));
  await assert.rejects(mc.set("k", "v", 1.5), code("BAD_ARGUMENT"));
  await assert.rejects(mc.incr("k", -1), code("BAD_ARGUMENT"));
  await assert.rejects(mc.cas("k", "v", "not-a-token"), code("BAD_ARGUMENT"));
  await assert.rejects(mc.getMulti("abc"), code("BAD_ARGUMENT"));
  assert.throws(() => new Client([]), code("BAD_ARGUMENT"));
  assert.throws(() => new Client(["127.0.0.1:1"], { serializer: "xml" }), code("BAD_ARGUMENT"));
  assert.throws(() => new Client(["127.0.0.1:1"], { distribution: "ring" }), code("BAD_ARGUMENT"));
  assert.throws(() => new Client(["127.0.0.1:1"], { bridge: "http://x" }), code("BAD_ARGUMENT"));
});

test("a server killed mid-request rejects what was pending with CONNECTION_ERROR, no hang", async () => {
  const { server, mc } = await oneServer({ timeout: 5000, deadRetry: 0.2 });
  assert.equal(await mc.set("k", "v"), true);
  await server.pause(); // the request reaches the socket but is not answered...
  const pending = Promise.allSettled([mc.get("k"), mc.set("k2", "v"), mc.getMulti(["a", "b"], { withErrors: true })]);
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  await server.stop(); // ...then the server dies with it in flight
  const [get, set, multi] = await pending;
  assert.ok(Date.now() - started < 2000, "rejected promptly, not at the timeout");
  for (const r of [get, set]) {
    assert.equal(r.status, "rejected");
    assert.equal(r.reason.code, "CONNECTION_ERROR");
    assert.equal(r.reason.server, server.address);
  }
  // A multi-get resolves with what answered (nothing here) and names the keys that failed.
  assert.equal(multi.status, "fulfilled");
  assert.deepEqual({ ...multi.value.values }, {});
  assert.deepEqual(Object.keys(multi.value.errors).sort(), ["a", "b"]);
  for (const error of Object.values(multi.value.errors)) {
    assert.equal(error.code, "CONNECTION_ERROR");
    assert.equal(error.server, server.address);
  }
  // While it is down, calls fail fast: connection refused, then NO_SERVER while dead.
  await assert.rejects(mc.get("k"), (e) => ["CONNECTION_ERROR", "NO_SERVER"].includes(e.code));
});

/** Resolves once `predicate()` holds, checking every few ms; fails after `ms`. */
async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("a restarted server comes back by itself: a background probe finds it and serverUp fires", async () => {
  const { server, mc } = await oneServer({ deadRetry: 1 });
  const events = [];
  mc.on("serverDown", (e) => events.push(["down", e.server, e.error.code]));
  const up = new Promise((resolve) => mc.on("serverUp", (e) => { events.push(["up", e.server]); resolve(); }));
  assert.equal(await mc.set("k", "v1"), true);
  await server.stop();
  await assert.rejects(mc.get("k"), code("CONNECTION_ERROR"));
  await assert.rejects(mc.get("k"), code("NO_SERVER"));
  assert.equal(mc.servers[0].dead, true);
  await server.startProcess();
  await up; // no call of ours was needed: the engine probed it
  assert.deepEqual(events, [["down", server.address, "CONNECTION_ERROR"], ["up", server.address]]);
  assert.equal(await mc.set("k", "v2"), true);
  assert.equal(await mc.get("k"), "v2");
});

test("an idle connection closed by a restart is reopened without marking the server dead", async () => {
  const { server, mc } = await oneServer({ deadRetry: 60 });
  assert.equal(await mc.set("k", "v"), true);
  assert.equal(mc.servers[0].status, "open");
  await server.restart();
  // The old socket's close arrives on its own; the next call then opens a new one.
  await until(() => mc.servers[0].status === "closed", 2000, "the socket's close");
  assert.equal(await mc.get("k"), undefined); // a fresh memcached, reached at once
  assert.equal(mc.servers[0].dead, false);
});

test("a hung server: every pending call rejects with TIMEOUT after `timeout`", async () => {
  const { server, mc } = await oneServer({ timeout: 300, deadRetry: 0.2 });
  assert.equal(await mc.set("k", "v"), true);
  await server.pause();
  const started = Date.now();
  const results = await Promise.allSettled([mc.get("k"), mc.get("k2"), mc.set("k3", 1)]);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 2500, `timed out after ${elapsed} ms`);
  for (const r of results) assert.equal(r.reason.code, "TIMEOUT");
  server.resume();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await mc.get("k"), "v");
});

test("nothing listening: CONNECTION_ERROR naming the server", async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const mc = new Client([address], { timeout: 1000 });
  cleanup.push(async () => mc.close());
  await assert.rejects(mc.get("k"), (e) => e.code === "CONNECTION_ERROR" && e.server === address && e.message.includes(address));
});

test("failover off: a dead server's keys fail with NO_SERVER instead of moving", async () => {
  const servers = await startMemcacheds(2);
  cleanup.push(() => servers.stopAll());
  const mc = new Client(servers.map((s) => s.address), { failover: false, deadRetry: 60, timeout: 1000 });
  cleanup.push(async () => mc.close());
  const keys = Array.from({ length: 40 }, (_, i) => `fo:${i}`);
  assert.deepEqual(await mc.setMulti(Object.fromEntries(keys.map((k) => [k, k]))), []);
  await servers[1].stop();
  const results = await Promise.allSettled(keys.map((k) => mc.get(k)));
  const settled = await Promise.allSettled(keys.map((k) => mc.get(k)));
  const ok = settled.filter((r) => r.status === "fulfilled");
  const noServer = settled.filter((r) => r.status === "rejected" && r.reason.code === "NO_SERVER");
  assert.ok(results.some((r) => r.status === "rejected"));
  assert.ok(ok.length > 0 && noServer.length > 0 && ok.length + noServer.length === keys.length);
  for (const r of ok) assert.ok(r.value.startsWith("fo:"));
});

test("failover on: a dead server's keys re-hash to a live one (python-memcached's walk)", async () => {
  const servers = await startMemcacheds(2);
  cleanup.push(() => servers.stopAll());
  const mc = new Client(servers.map((s) => s.address), { deadRetry: 60, timeout: 1000 });
  cleanup.push(async () => mc.close());
  const keys = Array.from({ length: 40 }, (_, i) => `fo:${i}`);
  await servers[1].stop();
  await Promise.allSettled(keys.map((k) => mc.set(k, k))); // the first ones to server 1 fail and mark it dead
  assert.deepEqual(await mc.setMulti(Object.fromEntries(keys.map((k) => [k, k]))), []);
  const got = await mc.getMulti(keys);
  assert.equal(Object.keys(got).length, keys.length);
});

test("close rejects pending calls and later ones with CLOSED", async () => {
  const { server, mc } = await oneServer();
  await server.pause();
  const pending = mc.get("k");
  await new Promise((r) => setTimeout(r, 50));
  mc.close();
  await assert.rejects(pending, code("CLOSED"));
  await assert.rejects(mc.get("k"), code("CLOSED"));
  server.resume();
});

test("a value that cannot be decoded rejects its call with DECODE_ERROR; the calls beside it are unharmed", async () => {
  const { server, mc } = await oneServer();
  const store = (key, flags, data) => rawCommand(server.address, Buffer.concat([Buffer.from(`set ${key} ${flags} 0 ${data.length}\r\n`), data, Buffer.from("\r\n")]), ["STORED\r\n"]);
  await store("d:badjson", 1, Buffer.from("{not json"));
  await store("d:badutf8", 16, Buffer.from([0xff, 0xfe, 0x41]));
  await store("d:badflags", 0x100, Buffer.from("x"));
  await mc.set("d:good", "fine");
  await mc.set("d:good2", { ok: 1 });
  const [multi, single, utf8, flags, good2] = await Promise.allSettled([
    mc.getMulti(["d:badjson", "d:good"]),
    mc.get("d:good"),
    mc.get("d:badutf8"),
    mc.get("d:badflags"),
    mc.get("d:good2"),
  ]);
  // One odd item fails that key alone: the multi-get keeps the good key and names the bad one.
  assert.deepEqual({ ...multi.value }, { "d:good": "fine" });
  const detailed = await mc.getMulti(["d:badjson", "d:good"], { withErrors: true });
  assert.deepEqual({ ...detailed.values }, { "d:good": "fine" });
  assert.equal(detailed.errors["d:badjson"].code, "DECODE_ERROR");
  assert.equal(detailed.errors["d:badjson"].key, "d:badjson");
  assert.equal(single.value, "fine");
  assert.equal(utf8.reason.code, "DECODE_ERROR");
  assert.equal(flags.reason.code, "DECODE_ERROR");
  assert.deepEqual(good2.value, { ok: 1 });
});

test("a script exits once its calls are answered (no close needed), and not before", async () => {
  const { server } = await oneServer();
  const script = `
    import { Client } from ${JSON.stringify(new URL("../../client-wasm/js/node.js", import.meta.url).href)};
    const mc = new Client([process.argv[1]], { timeout: 700 });
    await mc.set("exit:k", "v");
    console.log(await mc.get("exit:k"));`;
  const run = () => new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, server.address], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { out += d; });
    child.on("exit", (status) => resolve({ status, out, ms: Date.now() - started }));
  });
  const answered = await run();
  assert.equal(answered.status, 0, answered.out);
  assert.equal(answered.out.trim(), "v");
  assert.ok(answered.ms < 2500, `took ${answered.ms} ms to exit`);
  await server.pause();
  const hung = await run();
  server.resume();
  assert.equal(hung.status, 1);
  assert.match(hung.out, /TIMEOUT/);
  assert.ok(hung.ms >= 700, `exited after ${hung.ms} ms, before the timeout`);
});

test("a call made from inside a serializer while another is being written is refused; the outer call is unharmed", async () => {
  let nested;
  const { mc } = await oneServer({
    serializer: {
      serialize: (v) => { nested = mc.set("nested", "x").catch((e) => e); return JSON.stringify(v); },
      deserialize: (b) => JSON.parse(new TextDecoder().decode(b)),
    },
  });
  assert.equal(await mc.set("outer", { a: 1 }), true);
  const refused = await nested;
  assert.ok(refused instanceof MemcacheError && refused.code === "BAD_ARGUMENT", String(refused));
  assert.deepEqual(await mc.get("outer"), { a: 1 });
  assert.equal(await mc.get("nested"), undefined);
});
