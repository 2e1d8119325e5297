// How the client fails, against real memcached: a blip costs a retry, not a dead-retry
// outage; a down server is probed in the background and comes back by itself (serverDown,
// serverUp); a hung one times out; failover re-hashes as python-memcached does; multi-key
// calls keep what the answering servers returned and say which keys failed; an unanswered
// SYN is bounded by connectTimeout.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, MemcacheError } from "../../client-wasm/js/node.js";
import { startMemcacheds } from "./support/servers.mjs";
import { nextEvent, recordEvents } from "./support/events.mjs";
import { rawCommand, rawGet, rawStats } from "./support/raw.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PYTHON = process.env.MEMCACHE_WASM_PYTHON ?? `${ROOT}.venv/bin/python`;
const PYTHON_SIDE = fileURLToPath(new URL("./support/python_failures.py", import.meta.url));

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

function client(addresses, options = {}) {
  const mc = new Client(addresses, { timeout: 1000, ...options });
  cleanup.push(async () => mc.close());
  return mc;
}

async function oneServer(options = {}, args = []) {
  const [server] = await startMemcacheds(1, args);
  cleanup.push(() => server.stop());
  return { server, mc: client([server.address], options) };
}

async function fleet(n, options = {}) {
  const servers = await startMemcacheds(n);
  cleanup.push(() => servers.stopAll());
  return { servers, mc: client(servers.map((s) => s.address), options) };
}

const code = (c) => (e) => { assert.ok(e instanceof MemcacheError, `not a MemcacheError: ${e}`); assert.equal(e.code, c, e.message); return true; };
const oneOf = (codes) => (e) => { assert.ok(e instanceof MemcacheError, `not a MemcacheError: ${e}`); assert.ok(codes.includes(e.code), `${e.code}: ${e.message}`); return true; };
const names = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}:${i}`);
const sorted = (list) => [...list].sort();

/** The keys of `keys` that `mc` sends to `address` now (read before that server fails). */
const homedOn = (mc, keys, address) => keys.filter((k) => mc.serverForKey(k) === address);

test("a one-server fleet killed and restarted 200 ms later sees under 1 s of errors, and no call hangs", async () => {
  const { server, mc } = await oneServer({ timeout: 1000 });
  assert.equal(await mc.set("blip", 0), true);
  await server.stop();
  const killedAt = Date.now();
  const restarted = sleep(200).then(() => server.startProcess()).then(() => Date.now());
  restarted.catch(() => {});
  const failures = [];
  let firstFailure = null;
  let recoveredAt = null;
  let successes = 0;
  // One call after another (10 ms apart) until five in a row succeed after the outage.
  for (let i = 0; i < 2000 && successes < 5 && Date.now() - killedAt < 10000; i++) {
    const started = Date.now();
    try {
      assert.equal(await mc.set("blip", i), true);
      if (firstFailure !== null) {
        if (successes === 0) recoveredAt = Date.now();
        successes++;
      }
    } catch (e) {
      if (!(e instanceof MemcacheError)) throw e;
      failures.push({ code: e.code, ms: Date.now() - started, message: e.message });
      firstFailure ??= started;
      recoveredAt = null;
      successes = 0;
    }
    await sleep(10);
  }
  const listeningAt = await restarted;
  assert.ok(firstFailure !== null, "the outage was noticed");
  for (const f of failures) {
    assert.ok(["CONNECTION_ERROR", "NO_SERVER"].includes(f.code), `${f.code}: ${f.message}`);
    assert.ok(f.ms < 1500, `a call during the outage took ${f.ms} ms to reject (${f.code})`);
  }
  assert.ok(successes >= 5, `calls did not succeed again within 10 s of the kill (memcached listened again ${listeningAt - killedAt} ms after it; last error ${failures.at(-1)?.code})`);
  const errorWindow = recoveredAt - firstFailure;
  assert.ok(errorWindow < 1000, `errors for ${errorWindow} ms (${failures.length} failed calls) after a ${listeningAt - killedAt} ms outage`);
  assert.equal(typeof await mc.get("blip"), "number");
});

test("a down server is probed in the background and comes back by itself: serverDown, then serverUp within deadRetry, no request needed", async () => {
  const { server, mc } = await oneServer({ deadRetry: 1 });
  const events = recordEvents(mc);
  assert.equal(await mc.set("k", "v"), true);
  const down = nextEvent(mc, "serverDown");
  await server.stop();
  await assert.rejects(mc.get("k"), oneOf(["CONNECTION_ERROR", "NO_SERVER"]));
  const { server: downAddress, error } = await down;
  assert.equal(downAddress, server.address);
  assert.ok(error instanceof MemcacheError, `serverDown's error is a MemcacheError: ${error}`);
  assert.equal(error.code, "CONNECTION_ERROR", error.message);
  // Not a synchronisation: the outage lasts long enough for the probes' backoff to reach
  // its cap, deadRetry (1 s), before memcached comes back.
  await sleep(3000);
  const up = nextEvent(mc, "serverUp");
  await server.startProcess();
  const listeningAt = Date.now();
  const { server: upAddress, at } = await up;
  assert.equal(upAddress, server.address);
  assert.ok(at - listeningAt < 1000 + 1500, `serverUp ${at - listeningAt} ms after memcached listened again (deadRetry 1 s)`);
  // Nothing asked for it, and the first call after serverUp is answered at once.
  assert.equal(await mc.get("k"), undefined);
  assert.equal(await mc.set("k", "back"), true);
  assert.equal(await mc.get("k"), "back");
  assert.deepEqual(events.map((e) => e.name), ["serverDown", "serverUp"], "one serverDown for the outage (failed probes emit nothing), one serverUp");
});

test("a hung server: calls reject with TIMEOUT after `timeout`, serverDown says TIMEOUT, and after SIGCONT serverUp comes within about deadRetry", async () => {
  const { server, mc } = await oneServer({ timeout: 300, deadRetry: 1 });
  assert.equal(await mc.set("k", "v"), true);
  const down = nextEvent(mc, "serverDown");
  await server.pause();
  const started = Date.now();
  const results = await Promise.allSettled([mc.get("k"), mc.get("k2"), mc.set("k3", 1)]);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 2500, `settled after ${elapsed} ms with timeout 300`);
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.equal(r.reason.code, "TIMEOUT", r.reason.message);
  }
  const { server: downAddress, error } = await down;
  assert.equal(downAddress, server.address);
  assert.ok(error instanceof MemcacheError);
  assert.equal(error.code, "TIMEOUT", error.message);
  // While it hangs, calls still settle (TIMEOUT, or NO_SERVER once it is down), never hang.
  const whileHung = Date.now();
  await assert.rejects(mc.get("k"), oneOf(["TIMEOUT", "NO_SERVER", "CONNECTION_ERROR"]));
  assert.ok(Date.now() - whileHung < 2000);
  const up = nextEvent(mc, "serverUp");
  server.resume();
  const resumedAt = Date.now();
  const { at } = await up;
  assert.ok(at - resumedAt < 1000 + 300 + 2000, `serverUp ${at - resumedAt} ms after SIGCONT (deadRetry 1 s, timeout 300 ms)`);
  assert.equal(await mc.get("k"), "v");
});

test("off removes a listener: it hears no more events while the others still do", async () => {
  const { server, mc } = await oneServer({ deadRetry: 1 });
  const removed = [];
  const listener = (payload) => removed.push(payload);
  mc.on("serverDown", listener);
  mc.off("serverDown", listener);
  const down = nextEvent(mc, "serverDown");
  await server.stop();
  await assert.rejects(mc.get("k"), oneOf(["CONNECTION_ERROR", "NO_SERVER"]));
  await down;
  assert.deepEqual(removed, []);
});

test("failover: a down server's keys are re-hashed to the live servers as python-memcached does (Python finds every key)", async () => {
  assert.ok(existsSync(PYTHON), `python-memcached's virtualenv is missing (${PYTHON}); run scripts/setup.sh`);
  const { servers, mc } = await fleet(3, { deadRetry: 60 });
  const addresses = servers.map((s) => s.address);
  const keys = names(200, "failover");
  const dead = addresses[1];
  const moved = homedOn(mc, keys, dead);
  assert.ok(moved.length > 20, "some keys live on the server that will die");
  const down = nextEvent(mc, "serverDown", { server: dead });
  await servers[1].stop();
  await Promise.allSettled([mc.get(moved[0])]);
  await down;
  assert.deepEqual(await mc.setMulti(Object.fromEntries(keys.map((k) => [k, `v-${k}`]))), []);
  const got = await mc.getMulti(keys);
  assert.deepEqual(sorted(Object.keys(got)), sorted(keys));
  for (const k of keys) assert.equal(got[k], `v-${k}`);
  // python-memcached, given the same list with the dead server in it, walks to the same servers.
  const run = spawnSync(PYTHON, [PYTHON_SIDE, "get-multi", ...addresses], { input: JSON.stringify(keys), encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const found = JSON.parse(run.stdout);
  assert.deepEqual(sorted(Object.keys(found)), sorted(keys), "python-memcached finds every key where JavaScript put it");
  for (const k of moved) assert.equal(found[k], `v-${k}`);
});

test("getMulti on the call that discovers a server failure resolves with every key the other servers returned", async () => {
  const { servers, mc } = await fleet(3, { deadRetry: 60 });
  const keys = names(120, "discover");
  assert.deepEqual(await mc.setMulti(Object.fromEntries(keys.map((k) => [k, `v-${k}`]))), []);
  const lost = new Set(homedOn(mc, keys, servers[2].address));
  assert.ok(lost.size > 10 && lost.size < keys.length);
  await servers[2].stop();
  const got = await mc.getMulti(keys);
  const kept = keys.filter((k) => !lost.has(k));
  assert.deepEqual(sorted(Object.keys(got)), sorted(kept));
  for (const k of kept) assert.equal(got[k], `v-${k}`);
});

test("getMulti withErrors: the values of the live server, and each key of a dead one with CONNECTION_ERROR or NO_SERVER (failover off)", async () => {
  const { servers, mc } = await fleet(2, { failover: false, deadRetry: 60 });
  const keys = names(80, "we-dead");
  assert.deepEqual(await mc.setMulti(Object.fromEntries(keys.map((k) => [k, `v-${k}`]))), []);
  const lost = homedOn(mc, keys, servers[1].address);
  const kept = keys.filter((k) => !lost.includes(k));
  assert.ok(lost.length > 0 && kept.length > 0);
  await servers[1].stop();
  for (const round of ["discovering call", "server known down"]) {
    const { values, errors } = await mc.getMulti(keys, { withErrors: true });
    assert.deepEqual(sorted(Object.keys(values)), sorted(kept), round);
    for (const k of kept) assert.equal(values[k], `v-${k}`);
    assert.deepEqual(sorted(Object.keys(errors)), sorted(lost), round);
    for (const k of lost) oneOf(["CONNECTION_ERROR", "NO_SERVER"])(errors[k]);
  }
});

test("getMulti withErrors: each key of a hung server is TIMEOUT after `timeout`, the live server's values come back", async () => {
  const { servers, mc } = await fleet(2, { failover: false, timeout: 300, deadRetry: 60 });
  const keys = names(80, "we-hung");
  assert.deepEqual(await mc.setMulti(Object.fromEntries(keys.map((k) => [k, `v-${k}`]))), []);
  const lost = homedOn(mc, keys, servers[1].address);
  const kept = keys.filter((k) => !lost.includes(k));
  await servers[1].pause();
  const started = Date.now();
  const { values, errors } = await mc.getMulti(keys, { withErrors: true });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 2500, `settled after ${elapsed} ms with timeout 300`);
  assert.deepEqual(sorted(Object.keys(values)), sorted(kept));
  for (const k of kept) assert.equal(values[k], `v-${k}`);
  assert.deepEqual(sorted(Object.keys(errors)), sorted(lost));
  for (const k of lost) code("TIMEOUT")(errors[k]);
  servers[1].resume();
});

test("getMulti withErrors: a value that cannot be decoded is DECODE_ERROR for its key alone", async () => {
  const { server, mc } = await oneServer();
  assert.deepEqual(await mc.setMulti({ a: "one", b: { two: 2 } }), []);
  // JSON-serialized flags (1) over bytes that are not JSON, written past the client.
  await rawCommand(server.address, "set bad 1 0 9\r\n{not json\r\n", ["STORED\r\n"]);
  const { values, errors } = await mc.getMulti(["a", "bad", "b"], { withErrors: true });
  assert.deepEqual({ ...values }, { a: "one", b: { two: 2 } });
  assert.deepEqual(Object.keys(errors), ["bad"]);
  code("DECODE_ERROR")(errors.bad);
  assert.equal(await mc.get("a"), "one");
});

test("setMulti resolves with the keys over maxValueSize and stores the others", async () => {
  const { mc } = await oneServer({ maxValueSize: 1000 });
  const notStored = await mc.setMulti({ small: "ok", big: "x".repeat(5000), n: 3, bytes: new Uint8Array(2000) });
  assert.deepEqual(sorted(notStored), ["big", "bytes"]);
  assert.equal(await mc.get("small"), "ok");
  assert.equal(await mc.get("n"), 3);
  assert.equal(await mc.get("big"), undefined);
  const { notStored: again, errors } = await mc.setMulti({ small2: "ok", big: "y".repeat(5000) }, { withErrors: true, keyPrefix: "p:" });
  assert.deepEqual(again, ["big"]);
  assert.deepEqual(Object.keys(errors), ["big"]);
  code("VALUE_TOO_LARGE")(errors.big);
  assert.equal(await mc.get("p:small2"), "ok");
});

test("setMulti resolves with the keys memcached refused (maxValueSize above the server's item limit); the others are stored", async () => {
  const { mc } = await oneServer({ maxValueSize: 4 * 1024 * 1024 });
  const huge = new Uint8Array(2 * 1024 * 1024);
  assert.deepEqual(await mc.setMulti({ before: 1, huge, after: 2 }), ["huge"]);
  assert.equal(await mc.get("before"), 1);
  assert.equal(await mc.get("after"), 2);
  const { notStored, errors } = await mc.setMulti({ huge, fine: "f" }, { withErrors: true });
  assert.deepEqual(notStored, ["huge"]);
  assert.deepEqual(Object.keys(errors), ["huge"]);
  assert.ok(errors.huge instanceof MemcacheError, `${errors.huge}`);
  assert.equal(await mc.get("fine"), "f");
});

test("setMulti resolves with the keys of a server that failed, and stores the others (failover off)", async () => {
  const { servers, mc } = await fleet(2, { failover: false, deadRetry: 60 });
  const keys = names(80, "sm-dead");
  const lost = homedOn(mc, keys, servers[1].address);
  const kept = keys.filter((k) => !lost.includes(k));
  await servers[1].stop();
  const notStored = await mc.setMulti(Object.fromEntries(keys.map((k) => [k, `v-${k}`])));
  assert.deepEqual(sorted(notStored), sorted(lost));
  for (const k of kept) assert.equal((await rawGet(servers[0].address, k))?.data.toString(), `v-${k}`);
  const { notStored: again, errors } = await mc.setMulti(Object.fromEntries(keys.map((k) => [k, 1])), { withErrors: true });
  assert.deepEqual(sorted(again), sorted(lost));
  assert.deepEqual(sorted(Object.keys(errors)), sorted(lost));
  for (const k of lost) oneOf(["CONNECTION_ERROR", "NO_SERVER"])(errors[k]);
});

test("setMulti resolves with the keys of a server that timed out, each TIMEOUT under withErrors (failover off)", async () => {
  const { servers, mc } = await fleet(2, { failover: false, timeout: 300, deadRetry: 60 });
  const keys = names(80, "sm-hung");
  const lost = homedOn(mc, keys, servers[1].address);
  const kept = keys.filter((k) => !lost.includes(k));
  await servers[1].pause();
  const started = Date.now();
  const { notStored, errors } = await mc.setMulti(Object.fromEntries(keys.map((k) => [k, `v-${k}`])), { withErrors: true });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 2500, `settled after ${elapsed} ms with timeout 300`);
  assert.deepEqual(sorted(notStored), sorted(lost));
  assert.deepEqual(sorted(Object.keys(errors)), sorted(lost));
  for (const k of lost) code("TIMEOUT")(errors[k]);
  for (const k of kept) assert.equal((await rawGet(servers[0].address, k))?.data.toString(), `v-${k}`);
  servers[1].resume();
});

test("setMulti still rejects the whole call with nothing sent for a bad key or an unserializable value", async () => {
  const { server, mc } = await oneServer({ maxValueSize: 1000 });
  const sets = Number((await rawStats(server.address)).cmd_set);
  await assert.rejects(mc.setMulti({ ok: 1, big: "x".repeat(5000), "bad key": 2 }), code("BAD_KEY"));
  await assert.rejects(mc.setMulti({ ok: 1, big: "x".repeat(5000), f: () => 2 }), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.setMulti({ ok: 1 }, { withErrors: true, keyPrefix: "has space " }), code("BAD_KEY"));
  assert.equal(Number((await rawStats(server.address)).cmd_set), sets, "memcached saw no set");
  assert.equal(await rawGet(server.address, "ok"), undefined);
});

/**
 * Opens raw connections to a paused server until one's handshake does not complete: its
 * listen backlog is then full and the kernel drops new SYNs. Returns the sockets (the
 * caller destroys them), or throws when the backlog never filled.
 */
async function fillBacklog(port) {
  const sockets = [];
  for (let i = 0; i < 16; i++) {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    sockets.push(socket);
    const connected = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      socket.once("connect", () => { clearTimeout(timer); resolve(true); });
    });
    if (!connected) return sockets;
  }
  for (const s of sockets) s.destroy();
  throw new Error(`16 connections completed against a paused memcached started with -b 1: the backlog does not fill here`);
}

test("connectTimeout: a connect whose SYN goes unanswered rejects with CONNECTION_ERROR within about connectTimeout", async () => {
  const { server, mc } = await oneServer({ connectTimeout: 500, timeout: 10000, deadRetry: 1 }, ["-b", "1"]);
  await server.pause();
  const held = await fillBacklog(server.port);
  cleanup.push(async () => { for (const s of held) s.destroy(); });
  const started = Date.now();
  await assert.rejects(mc.get("k"), (e) => {
    code("CONNECTION_ERROR")(e);
    assert.match(e.message, /connect/i);
    assert.match(e.message, /timed out|timeout/i);
    return true;
  });
  const elapsed = Date.now() - started;
  // At least one connect attempt's worth, at most two (a failed connect is retried at once) plus slack.
  assert.ok(elapsed >= 450 && elapsed < 2 * 500 + 1500, `rejected after ${elapsed} ms with connectTimeout 500 (timeout 10000)`);
  for (const s of held) s.destroy();
  server.resume();
  // Once memcached accepts again the client comes back by itself.
  const until = Date.now() + 10000;
  let stored = false;
  for (let i = 0; i < 200 && !stored && Date.now() < until; i++) {
    stored = await mc.set("k", "v").catch(() => false);
    if (!stored) await sleep(50);
  }
  assert.equal(stored, true, "the client reached memcached again after SIGCONT");
});
