// Interop of the meta path with the real python-memcached 1.62: values python-memcached
// stored come back from getOrSet (its loader never runs) and getWithTtl, and values
// getOrSet stored (str, int, pickled rows, JSON) are read by python-memcached.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../client-wasm/js/node.js";
import { checkPython, fromManifest, python as pythonSide } from "./support/python.mjs";
import { startMemcacheds } from "./support/servers.mjs";

const python = (mode, input) => pythonSide(mode, servers, input);

let servers;
before(async () => {
  checkPython();
  servers = await startMemcacheds(2);
});
after(async () => { await servers?.stopAll(); });

test("getOrSet and getWithTtl return what python-memcached stored (every kind), without running the loader", async () => {
  const manifest = python("write");
  const keys = Object.keys(manifest);
  const mc = new Client(servers.map((s) => s.address), { timeout: 5000 });
  try {
    let loads = 0;
    const loader = async () => { loads++; return "loaded"; };
    const values = await Promise.all(keys.map((k) => mc.getOrSet(k, loader, { ttl: 60 })));
    const withTtl = await Promise.all(keys.map((k) => mc.getWithTtl(k)));
    for (let i = 0; i < keys.length; i++) {
      const want = fromManifest(manifest[keys[i]]);
      assert.deepEqual(values[i], want, `getOrSet ${keys[i]}`);
      assert.deepEqual(withTtl[i], { value: want, ttl: -1 }, `getWithTtl ${keys[i]}`);
    }
    assert.equal(loads, 0);
  } finally {
    mc.close();
  }
});

test("python-memcached reads what getOrSet stored: str, int, pickled rows and JSON", async () => {
  const pickling = new Client(servers.map((s) => s.address), { serializer: "pickle", timeout: 5000 });
  const json = new Client(servers.map((s) => s.address), { timeout: 5000 });
  const manifest = {};
  try {
    const calls = [];
    for (let i = 0; i < 200; i++) {
      let key, value, client = pickling;
      switch (i % 4) {
        case 0: key = `meta:str:${i}`; value = `texte ${i} ✓`; break;
        case 1: key = `meta:int:${i}`; value = i * 11 - 500; break;
        case 2: key = `meta:pickle:${i}`; value = { rows: [{ title: "Alien", year: 1979 }, { title: "Heat", year: 1995 }], i }; break;
        default: key = `meta:json:${i}`; value = { top: ["a", "b"], i }; client = json; break;
      }
      manifest[key] = value;
      calls.push(client.getOrSet(key, async () => value, { ttl: 300 }));
    }
    assert.deepEqual(await Promise.all(calls), Object.values(manifest));
  } finally {
    pickling.close();
    json.close();
  }
  const result = python("read", JSON.stringify(manifest));
  assert.equal(result.checked, 200);
  assert.deepEqual(result.mismatches, []);
});
