// Real fleets: memcached on unix sockets and IPv6 (python-memcached's address forms) with
// both distributions, and live server changes with setServers: calls in flight finish on
// the server they were sent to, keys move as the distribution says, none is lost under load.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { Client } from "../../client-wasm/js/node.js";
import { startIpv6Memcached, startUnixMemcached, tempDir } from "./support/secure.mjs";
import { startMemcacheds } from "./support/servers.mjs";

const cleanup = [];
let tmp;
before(() => { tmp = tempDir(); cleanup.push(async () => tmp.remove()); });
after(async () => { for (const f of cleanup.reverse()) await f(); });

function client(servers, options) {
  const mc = new Client(servers, { timeout: 2000, ...options });
  cleanup.push(async () => mc.close());
  return mc;
}

async function started(promise) {
  const server = await promise;
  cleanup.push(() => server.stop());
  return server;
}

for (const distribution of ["modula", "ketama"]) {
  test(`unix sockets, [::1]:port and inet6:[::1]:port end to end under ${distribution}`, async () => {
    const unixA = await started(startUnixMemcached(tmp.dir));
    const unixB = await started(startUnixMemcached(tmp.dir));
    const v6 = await started(startIpv6Memcached());
    const v6b = await started(startIpv6Memcached());
    assert.match(unixA.address, /^unix:\//);
    assert.match(v6.address, /^\[::1\]:\d+$/);
    const addresses = [unixA.address, unixB.address, v6.address, `inet6:${v6b.address}`];
    const mc = client(addresses, { distribution });
    const entries = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`fleet-${i}`, `v${i}`]));
    assert.deepEqual(await mc.setMulti(entries), []);
    assert.deepEqual({ ...(await mc.getMulti(Object.keys(entries))) }, entries);
    // Every server got keys, and each key is where serverForKey says.
    const placed = new Map(addresses.map((a) => [a, 0]));
    for (const key of Object.keys(entries)) placed.set(mc.serverForKey(key), placed.get(mc.serverForKey(key)) + 1);
    for (const [address, count] of placed) assert.ok(count > 10, `${address} got ${count} of 200 keys`);
    const one = Object.keys(entries)[7];
    const single = client([mc.serverForKey(one)]);
    assert.equal(await single.get(one), entries[one]);
    assert.deepEqual(Object.keys(await mc.version()).sort(), [...addresses].sort());
    assert.equal(await mc.delete(one), true);
    assert.equal(await mc.incr("fleet-n", 1), undefined);
  });
}

for (const transport of ["unix", "ipv6"]) {
  test(`ketama over ${transport} servers places every key where libmemcached (pylibmc) stores it`, async () => {
    const servers = [];
    for (let i = 0; i < 3; i++) {
      servers.push(await started(transport === "unix" ? startUnixMemcached(tmp.dir, { name: `ketama-${i}` }) : startIpv6Memcached()));
    }
    const keys = Array.from({ length: 300 }, (_, i) => `libmemcached-${i}`);
    // pylibmc names a unix socket server by its path, an IPv6 one as [::1]:port; it cannot
    // mix the two in one client.
    const names = servers.map((s) => (transport === "unix" ? s.path : s.address));
    const out = execFileSync(process.env.MEMCACHE_WASM_PYLIBMC_PYTHON ?? "/usr/bin/python3",
      ["client-wasm/tests/python/ketama.py", "ketama_weighted", ...names],
      { input: JSON.stringify(keys.map((k) => Buffer.from(k).toString("hex"))) });
    const report = JSON.parse(out);
    assert.equal(report.stored, keys.length, JSON.stringify(report.failed));
    assert.equal(report.behaviors.distribution, "consistent weighted");
    const mc = client(servers.map((s) => s.address), { distribution: "ketama" });
    const where = new Map();
    for (const s of servers) {
      for (const key of Object.keys(await client([s.address]).getMulti(keys))) where.set(key, s.address);
    }
    const wrong = keys.filter((k) => where.get(k) !== mc.serverForKey(k));
    assert.deepEqual(wrong, [], "keys placed elsewhere than libmemcached placed them");
    assert.equal(new Set(where.values()).size, 3, "every server got keys");
  });
}

test("setServers: a call in flight finishes on the server it was sent to, later ones go by the new list", async () => {
  const servers = await startMemcacheds(2);
  cleanup.push(() => servers.stopAll());
  const [a, b] = servers.map((s) => s.address);
  const mc = client([a, b], { distribution: "ketama" });
  const key = Array.from({ length: 200 }, (_, i) => `move-${i}`).find((k) => mc.serverForKey(k) === a);
  assert.equal(await mc.set(key, "on a"), true);
  await servers[0].pause();
  // The get is written to a (which does not answer while paused), then a leaves the list.
  const inFlight = mc.get(key);
  await new Promise((resolve) => setImmediate(resolve));
  mc.setServers([b]);
  assert.deepEqual(mc.servers.map((s) => s.address), [b]);
  assert.equal(mc.serverForKey(key), b);
  servers[0].resume();
  assert.equal(await inFlight, "on a", "answered by the server it was sent to");
  assert.equal(await mc.get(key), undefined, "b never had it");
  // a's connection is closed once its last reply is in; b's is kept.
  assert.deepEqual(mc.servers.map((s) => s.status), ["open"]);
  const stats = await mc.stats();
  assert.deepEqual(Object.keys(stats), [b]);
});

test("setServers under ketama: adding a fourth server moves about a quarter of the keys; under modula most", async () => {
  const servers = await startMemcacheds(4);
  cleanup.push(() => servers.stopAll());
  const addresses = servers.map((s) => s.address);
  const keys = Array.from({ length: 2000 }, (_, i) => `ring-${i}`);
  for (const [distribution, low, high] of [["ketama", 0.15, 0.35], ["modula", 0.5, 1]]) {
    const mc = client(addresses.slice(0, 3), { distribution });
    const before = keys.map((k) => mc.serverForKey(k));
    mc.setServers(addresses);
    const afterwards = keys.map((k) => mc.serverForKey(k));
    const moved = before.filter((s, i) => s !== afterwards[i]).length / keys.length;
    assert.ok(moved >= low && moved <= high, `${distribution}: ${(moved * 100).toFixed(1)}% of the keys moved`);
    if (distribution === "ketama") {
      // Keys only move to the new server, and a client made with the four agrees.
      assert.ok(before.every((s, i) => s === afterwards[i] || afterwards[i] === addresses[3]));
      const fresh = client(addresses, { distribution });
      assert.deepEqual(keys.map((k) => fresh.serverForKey(k)), afterwards);
    }
  }
});

test("setServers under load: every call settles, every write is confirmed or rejected, none lost", async () => {
  const servers = await startMemcacheds(4);
  cleanup.push(() => servers.stopAll());
  const addresses = servers.map((s) => s.address);
  const mc = client(addresses.slice(0, 2), { distribution: "ketama" });
  const lists = [addresses.slice(0, 3), addresses.slice(1, 4), addresses, addresses.slice(0, 1), addresses.slice(2)];
  const calls = [];
  const stored = new Map();
  const deadline = Date.now() + 20_000;
  for (let round = 0; round < 50 && Date.now() < deadline; round++) {
    for (let i = 0; i < 40; i++) {
      const key = `load-${round}-${i}`;
      const value = `${round}:${i}`;
      calls.push(mc.set(key, value).then((ok) => { if (ok) stored.set(key, value); return ok; }));
      calls.push(mc.get(`load-${Math.max(0, round - 1)}-${i}`));
    }
    if (round % 5 === 4) mc.setServers(lists[(round / 5 | 0) % lists.length]);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const settled = await Promise.allSettled(calls);
  assert.equal(settled.length, calls.length);
  const rejected = settled.filter((s) => s.status === "rejected");
  assert.deepEqual(rejected.map((s) => s.reason.code), [], "no call failed: every server stayed up");
  // Every set that answered true is on one of the servers, with its value.
  assert.equal(stored.size, calls.length / 2);
  const everywhere = addresses.map((a) => client([a]));
  const found = new Map();
  for (const c of everywhere) {
    const values = await c.getMulti([...stored.keys()]);
    for (const [k, v] of Object.entries(values)) found.set(k, v);
  }
  for (const [key, value] of stored) assert.equal(found.get(key), value, `${key} was reported stored but is on no server`);
});

test("setServers refuses a bad list whole and keeps the old one", () => {
  const mc = client(["127.0.0.1:11", "127.0.0.1:12"]);
  assert.throws(() => mc.setServers([]), (e) => e.code === "BAD_ARGUMENT");
  assert.throws(() => mc.setServers(["nope:notaport"]), (e) => e.code === "BAD_ARGUMENT");
  assert.throws(() => mc.setServers(["127.0.0.1:13", "127.0.0.1:13"]), (e) => e.code === "BAD_ARGUMENT" && /twice/.test(e.message));
  assert.deepEqual(mc.servers.map((s) => s.address), ["127.0.0.1:11", "127.0.0.1:12"]);
  mc.set_servers(["127.0.0.1:12"]);
  assert.deepEqual(mc.servers.map((s) => s.address), ["127.0.0.1:12"]);
});
