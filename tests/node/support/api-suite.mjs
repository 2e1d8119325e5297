// The whole API, defined once and run against every setup: TCP and the bridge, one server
// and three. `setup()` returns { mc, addresses, cleanup } for a client on real memcached.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { MemcacheError } from "../../../client-wasm/js/node.js";

export function apiSuite(name, setup) {
  let mc;
  let addresses;
  let cleanup;
  before(async () => { ({ mc, addresses, cleanup } = await setup()); });
  after(async () => { await cleanup?.(); });

  test(`${name}: the seed's example: a list of rows set with expiry 60 reads back equal`, async () => {
    const rows = [
      { title: "Seven Samurai", year: 1954, rating: 8.6 },
      { title: "Spirited Away", year: 2001, rating: 8.6 },
      { title: "Parasite", year: 2019, rating: 8.5 },
      { title: "Casablanca", year: 1942, rating: 8.5 },
      { title: "Alien", year: 1979, rating: 8.5 },
    ];
    assert.equal(await mc.set("top5films", rows, 60), true);
    assert.deepEqual(await mc.get("top5films"), rows);
  });

  test(`${name}: the seed's example: getMulti with keyPrefix reads users:a and users:b`, async () => {
    await mc.set("users:a", "Ada");
    await mc.set("users:b", { name: "Bob" });
    assert.deepEqual({ ...(await mc.getMulti(["a", "b", "c"], { keyPrefix: "users:" })) }, { a: "Ada", b: { name: "Bob" } });
    assert.deepEqual({ ...(await mc.get_multi(["a"], { key_prefix: "users:" })) }, { a: "Ada" });
  });

  test(`${name}: a miss is undefined`, async () => {
    assert.equal(await mc.get("never-set"), undefined);
    assert.equal(await mc.gets("never-set"), undefined);
  });

  test(`${name}: values keep their types: text, bytes, safe integer, BigInt, JSON`, async () => {
    const bytes = new Uint8Array([0, 1, 2, 255, 13, 10]);
    await Promise.all([
      mc.set("t:text", "héllo wörld ✓"),
      mc.set("t:bytes", bytes),
      mc.set("t:int", -42),
      mc.set("t:big", 123456789012345678901234567890n),
      mc.set("t:json", { a: [1, "two", null, true], b: 1.5 }),
      mc.set("t:empty", ""),
    ]);
    assert.equal(await mc.get("t:text"), "héllo wörld ✓");
    assert.deepEqual(await mc.get("t:bytes"), bytes);
    assert.equal(await mc.get("t:int"), -42);
    assert.equal(await mc.get("t:big"), 123456789012345678901234567890n);
    assert.deepEqual(await mc.get("t:json"), { a: [1, "two", null, true], b: 1.5 });
    assert.equal(await mc.get("t:empty"), "");
  });

  test(`${name}: add, replace, append, prepend follow memcached's rules`, async () => {
    await mc.delete("s:k");
    assert.equal(await mc.replace("s:k", "x"), false);
    assert.equal(await mc.add("s:k", "mid"), true);
    assert.equal(await mc.add("s:k", "again"), false);
    assert.equal(await mc.append("s:k", ">"), true);
    assert.equal(await mc.prepend("s:k", "<"), true);
    assert.equal(await mc.get("s:k"), "<mid>");
    assert.equal(await mc.replace("s:k", "new"), true);
    assert.equal(await mc.get("s:k"), "new");
    assert.equal(await mc.append("s:missing", "x"), false);
  });

  test(`${name}: incr and decr: the new value, undefined when missing, BigInt above 2^53-1`, async () => {
    await mc.set("c:n", 10);
    assert.equal(await mc.incr("c:n"), 11);
    assert.equal(await mc.incr("c:n", 5), 16);
    assert.equal(await mc.decr("c:n", 20), 0);
    assert.equal(await mc.incr("c:missing"), undefined);
    assert.equal(await mc.decr("c:missing"), undefined);
    await mc.set("c:big", 9007199254740991);
    assert.equal(await mc.incr("c:big", 10), 9007199254741001n);
    assert.equal(await mc.get("c:big"), 9007199254741001n);
    await mc.set("c:text", "abc");
    await assert.rejects(mc.incr("c:text"), (e) => e instanceof MemcacheError && e.code === "CLIENT_ERROR");
  });

  test(`${name}: gets and cas: stored when unchanged, refused after another write`, async () => {
    await mc.set("cas:k", "v1");
    const { value, cas } = await mc.gets("cas:k");
    assert.equal(value, "v1");
    assert.equal(typeof cas, "bigint");
    assert.equal(await mc.cas("cas:k", "v2", cas), true);
    assert.equal(await mc.cas("cas:k", "v3", cas), false);
    assert.equal(await mc.get("cas:k"), "v2");
    assert.equal(await mc.cas("cas:missing", "v", cas), false);
  });

  test(`${name}: delete and deleteMulti`, async () => {
    await mc.setMulti({ a: 1, b: 2, c: 3 }, { keyPrefix: "d:" });
    assert.equal(await mc.delete("d:a"), true);
    assert.equal(await mc.delete("d:a"), false);
    assert.equal(await mc.deleteMulti(["b", "c", "zzz"], { keyPrefix: "d:" }), true);
    assert.deepEqual({ ...(await mc.getMulti(["a", "b", "c"], { keyPrefix: "d:" })) }, {});
  });

  test(`${name}: setMulti stores everything and returns the keys not stored`, async () => {
    const notStored = await mc.setMulti({ x: "1", y: 2, z: [3] }, { keyPrefix: "m:", expiry: 60 });
    assert.deepEqual(notStored, []);
    assert.deepEqual({ ...(await mc.getMulti(["x", "y", "z"], { keyPrefix: "m:" })) }, { x: "1", y: 2, z: [3] });
    const fromMap = await mc.set_multi(new Map([["p", "q"]]), { key_prefix: "m:" });
    assert.deepEqual(fromMap, []);
    assert.equal(await mc.get("m:p"), "q");
  });

  test(`${name}: touch sets a new expiry; an expired key is gone`, async () => {
    await mc.set("e:k", "v", 100);
    assert.equal(await mc.touch("e:k", 1), true);
    assert.equal(await mc.touch("e:missing", 10), false);
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal(await mc.get("e:k"), undefined);
  });

  test(`${name}: stats and version per server; stats with arguments`, async () => {
    const stats = await mc.stats();
    assert.deepEqual(Object.keys(stats).sort(), [...addresses].sort());
    for (const address of addresses) {
      assert.ok(Number(stats[address].pid) > 0);
      assert.ok("curr_items" in stats[address]);
    }
    const settings = await mc.get_stats("settings");
    for (const address of addresses) assert.equal(settings[address].tcpport, address.split(":")[1]);
    const version = await mc.version();
    for (const address of addresses) assert.match(version[address], /^\d+\.\d+\.\d+/);
  });

  test(`${name}: flushAll empties the server`, async () => {
    await mc.set("f:k", "v");
    assert.equal(await mc.flushAll(), true);
    assert.equal(await mc.get("f:k"), undefined);
    assert.equal(await mc.flush_all(), true);
  });

  test(`${name}: many calls in one tick all resolve, in order per key`, async () => {
    const n = 500;
    const sets = [];
    for (let i = 0; i < n; i++) sets.push(mc.set(`bulk:${i}`, `v${i}`));
    const gets = [];
    for (let i = 0; i < n; i++) gets.push(mc.get(`bulk:${i}`));
    assert.ok((await Promise.all(sets)).every((x) => x === true));
    const values = await Promise.all(gets);
    for (let i = 0; i < n; i++) assert.equal(values[i], `v${i}`);
  });

  test(`${name}: a set then a get of the same key in one tick reads the new value`, async () => {
    const [, first, , second] = await Promise.all([mc.set("o:k", "1"), mc.get("o:k"), mc.set("o:k", "2"), mc.get("o:k")]);
    assert.equal(first, "1");
    assert.equal(second, "2");
  });
}
