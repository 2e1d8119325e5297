// What a hostile or odd key, value or item cannot do, against real memcached: keys named
// like Object.prototype's members come back as plain own properties (nothing is polluted),
// lone surrogates are refused before anything is sent, an item over maxItemSize fails that
// key alone and leaves the connection in step, and metadump lists each key once.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Client, MemcacheError } from "../../client-wasm/js/node.js";
import { startMemcacheds } from "./support/servers.mjs";
import { recordEvents } from "./support/events.mjs";
import { rawGet, rawStats } from "./support/raw.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PYTHON = process.env.MEMCACHE_WASM_PYTHON ?? `${ROOT}.venv/bin/python`;
const PYTHON_SIDE = fileURLToPath(new URL("./support/python_failures.py", import.meta.url));

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

async function oneServer(options = {}, args = []) {
  const [server] = await startMemcacheds(1, args);
  const mc = new Client([server.address], { timeout: 2000, ...options });
  cleanup.push(async () => { mc.close(); await server.stop(); });
  return { server, mc };
}

const code = (c) => (e) => { assert.ok(e instanceof MemcacheError, `not a MemcacheError: ${e}`); assert.equal(e.code, c, e.message); return true; };

/** What memcached counted of the commands that reach it (to prove nothing was sent). */
async function commandCounts(address) {
  const s = await rawStats(address);
  const names = ["cmd_get", "cmd_set", "cmd_touch", "delete_hits", "delete_misses", "incr_hits", "incr_misses"];
  return Object.fromEntries(names.map((n) => [n, s[n]]));
}

const PROTOTYPE_NAMES = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "isPrototypeOf"];

test("getMulti's result has a null prototype: keys named like Object.prototype's members are own properties, nothing is polluted", async () => {
  const { mc } = await oneServer();
  const before = Object.getOwnPropertyNames(Object.prototype).sort();
  const stored = Object.fromEntries(PROTOTYPE_NAMES.map((k) => [k, { polluted: true, name: k }]));
  // Object.fromEntries defines "__proto__" as an own property; a Map is the other way in.
  assert.ok(Object.hasOwn(stored, "__proto__"));
  assert.deepEqual(await mc.setMulti(stored), []);
  assert.deepEqual(await mc.setMulti(new Map(PROTOTYPE_NAMES.map((k) => [k, `text ${k}`])), { keyPrefix: "p:" }), []);
  for (const [options, expected] of [
    [undefined, (k) => ({ polluted: true, name: k })],
    [{ keyPrefix: "p:" }, (k) => `text ${k}`],
  ]) {
    const got = await mc.getMulti([...PROTOTYPE_NAMES, "missing"], options);
    assert.equal(Object.getPrototypeOf(got), null, "getMulti resolves with a null-prototype object");
    assert.deepEqual(Object.keys(got).sort(), [...PROTOTYPE_NAMES].sort());
    for (const k of PROTOTYPE_NAMES) {
      assert.ok(Object.hasOwn(got, k), `${k} is an own property`);
      assert.deepEqual(Object.getOwnPropertyDescriptor(got, k).value, expected(k), k);
    }
    assert.equal(Object.hasOwn(got, "missing"), false);
    const { values, errors } = await mc.getMulti(PROTOTYPE_NAMES, { ...options, withErrors: true });
    assert.equal(Object.getPrototypeOf(values), null, "withErrors: values has a null prototype");
    for (const k of PROTOTYPE_NAMES) assert.deepEqual(Object.getOwnPropertyDescriptor(values, k)?.value, expected(k), k);
    assert.deepEqual(Object.keys(errors), []);
  }
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), before, "Object.prototype gained nothing");
  assert.equal({}.polluted, undefined);
  assert.equal({}.name, undefined);
  assert.equal(typeof {}.toString, "function");
  assert.equal(Object.prototype.toString.call([]), "[object Array]");
  // Single gets of the same keys are unaffected.
  assert.deepEqual(await mc.get("__proto__"), { polluted: true, name: "__proto__" });
});

test("a key with a lone surrogate is BAD_KEY in every call, and nothing is sent", async () => {
  const { server, mc } = await oneServer();
  const counts = await commandCounts(server.address);
  await assert.rejects(mc.get("a\ud800"), code("BAD_KEY"));
  await assert.rejects(mc.set("a\ud800", "v"), code("BAD_KEY"));
  await assert.rejects(mc.set("\udc00b", "v"), code("BAD_KEY"));
  await assert.rejects(mc.delete("a\udfff"), code("BAD_KEY"));
  await assert.rejects(mc.incr("n\ud800"), code("BAD_KEY"));
  await assert.rejects(mc.touch("t\ud800", 10), code("BAD_KEY"));
  await assert.rejects(mc.getMulti(["ok", "a\udc00"]), code("BAD_KEY"));
  await assert.rejects(mc.getMulti(["ok"], { keyPrefix: "p\ud800" }), code("BAD_KEY"));
  await assert.rejects(mc.setMulti({ ok: 1, "b\ud800": 2 }), code("BAD_KEY"));
  await assert.rejects(mc.setMulti({ ok: 1 }, { keyPrefix: "\udbff" }), code("BAD_KEY"));
  await assert.rejects(mc.deleteMulti(["ok", "c\ud800"]), code("BAD_KEY"));
  assert.throws(() => mc.serverForKey("a\ud800"), code("BAD_KEY"));
  assert.deepEqual(await commandCounts(server.address), counts, "memcached saw no command");
  // U+FFFD is what a lone surrogate would have been encoded as: nothing is stored under it.
  assert.equal(await rawGet(server.address, "a\ufffd"), undefined);
  assert.equal(await rawGet(server.address, "ok"), undefined);
  // A well-formed surrogate pair is an ordinary 4-byte UTF-8 character.
  assert.equal(await mc.set("emoji-😀", "ok"), true);
  assert.equal(await mc.get("emoji-😀"), "ok");
});

test("a string value with a lone surrogate is NOT_SERIALIZABLE, and nothing is sent", async () => {
  const { server, mc } = await oneServer();
  const counts = await commandCounts(server.address);
  await assert.rejects(mc.set("k", "x\ud800y"), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.set("k", "\udc00"), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.add("k", "tail\udbff"), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.append("k", "\ud800"), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.setMulti({ ok: 1, s: "\udfff" }), code("NOT_SERIALIZABLE"));
  await assert.rejects(mc.setMulti({ ok: 1, s: "\udfff" }, { withErrors: true }), code("NOT_SERIALIZABLE"));
  assert.deepEqual(await commandCounts(server.address), counts, "memcached saw no command");
  assert.equal(await rawGet(server.address, "k"), undefined);
  assert.equal(await rawGet(server.address, "ok"), undefined);
  assert.equal(await mc.set("k", "pair 😀 ok"), true);
  assert.equal(await mc.get("k"), "pair 😀 ok");
});

/** A 3 MB item stored by python-memcached (raw bytes, flags 0) on a memcached run with -I 5m. */
const LARGE_SIZE = 3 * 1000 * 1000;
const largeValue = () => Uint8Array.from({ length: LARGE_SIZE }, (_, i) => i % 251);

function pythonSetsLarge(address, key) {
  assert.ok(existsSync(PYTHON), `python-memcached's virtualenv is missing (${PYTHON}); run scripts/setup.sh`);
  const run = spawnSync(PYTHON, [PYTHON_SIDE, "set-large", address, key, String(LARGE_SIZE)], { encoding: "utf8" });
  assert.equal(run.status, 0, `python set-large failed: ${run.stderr}`);
}

test("an item over maxItemSize fails only its key: get is VALUE_TOO_LARGE, getMulti names it in errors, the connection stays in step, no serverDown", async () => {
  const { server, mc } = await oneServer({ maxItemSize: 1024 * 1024 }, ["-I", "5m"]);
  const events = recordEvents(mc);
  assert.deepEqual(await mc.setMulti({ a: "first", b: 2 }), []);
  pythonSetsLarge(server.address, "big");
  await assert.rejects(mc.get("big"), code("VALUE_TOO_LARGE"));
  // Calls pipelined on the same connection around it are answered with their own replies.
  const [a, big, b, set] = await Promise.allSettled([mc.get("a"), mc.get("big"), mc.get("b"), mc.set("c", "third")]);
  assert.equal(a.value, "first");
  code("VALUE_TOO_LARGE")(big.reason);
  assert.equal(b.value, 2);
  assert.equal(set.value, true);
  const { values, errors } = await mc.getMulti(["a", "big", "b", "c"], { withErrors: true });
  assert.deepEqual({ ...values }, { a: "first", b: 2, c: "third" });
  assert.deepEqual(Object.keys(errors), ["big"]);
  code("VALUE_TOO_LARGE")(errors.big);
  const plain = await mc.getMulti(["a", "big", "b"]);
  assert.deepEqual({ ...plain }, { a: "first", b: 2 });
  assert.equal(await mc.set("after", "fine"), true);
  assert.equal(await mc.get("after"), "fine");
  assert.equal(mc.servers[0].dead, false);
  assert.deepEqual(events, [], "no serverDown for one odd item");
});

test("with the default maxItemSize a 3 MB item written by python-memcached reads back whole", async () => {
  const { server, mc } = await oneServer({}, ["-I", "5m"]);
  const events = recordEvents(mc);
  pythonSetsLarge(server.address, "big");
  const expected = largeValue();
  const got = await mc.get("big");
  assert.ok(got instanceof Uint8Array, `a Uint8Array, got ${typeof got}`);
  assert.equal(got.length, LARGE_SIZE);
  assert.ok(Buffer.from(got).equals(Buffer.from(expected)), "the bytes python-memcached stored");
  await mc.set("small", "s");
  const multi = await mc.getMulti(["small", "big"]);
  assert.equal(multi.small, "s");
  assert.ok(Buffer.from(multi.big).equals(Buffer.from(expected)));
  assert.deepEqual(events, []);
});

/** The key names in metadump lines (memcached URL-encodes them). */
const dumpedKeys = (lines) => lines.map((line) => decodeURIComponent(/^key=(\S+)/.exec(line)[1]));

test("metadump lists each key once, also while the items it walks are rewritten, and every stored key appears", async () => {
  const { server, mc } = await oneServer({ timeout: 20000 });
  const writer = new Client([server.address], { timeout: 20000 });
  cleanup.push(async () => writer.close());
  const N = 10000;
  const stable = Array.from({ length: N }, (_, i) => `st:${i}`);
  const rewritten = Array.from({ length: N }, (_, i) => `rw:${i}`);
  for (const list of [stable, rewritten]) {
    for (let i = 0; i < N; i += 1000) {
      assert.deepEqual(await mc.setMulti(Object.fromEntries(list.slice(i, i + 1000).map((k) => [k, k]))), []);
    }
  }
  // memcached's crawler lists an item twice when it is replaced behind the crawler and the
  // new one is linked ahead of it: rewrite keys from a second connection during each dump.
  for (let round = 0; round < 6; round++) {
    let stop = false;
    const rewriting = (async () => {
      for (let j = 0, n = 0; !stop && n < 10000; n++) {
        const batch = {};
        for (let x = 0; x < 200; x++, j = (j + 1) % N) batch[rewritten[j]] = `again ${round}`;
        await writer.setMulti(batch);
      }
    })();
    let keys;
    try {
      keys = dumpedKeys(await mc.metadump({ server: server.address }));
    } finally {
      stop = true;
      await rewriting;
    }
    const seen = new Set(keys);
    assert.equal(seen.size, keys.length, `round ${round}: ${keys.length - seen.size} keys listed more than once`);
  }
  // With nothing moving, every stored key is there, once.
  const keys = dumpedKeys(await mc.metadump({ server: server.address }));
  assert.equal(new Set(keys).size, keys.length);
  const seen = new Set(keys);
  const missing = [...stable, ...rewritten].filter((k) => !seen.has(k));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} stored keys not listed`);
  assert.equal(keys.length, 2 * N);
});
