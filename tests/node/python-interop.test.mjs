// Interop with the real python-memcached 1.62 on the same three servers: Python sets 1,000
// keys and JavaScript reads every one, and JavaScript sets 1,000 keys that Python reads.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../client-wasm/js/node.js";
import { checkPython, fromManifest, python as pythonSide, toManifest } from "./support/python.mjs";
import { startMemcacheds } from "./support/servers.mjs";

const python = (mode, input) => pythonSide(mode, servers, input);

let servers;
before(async () => {
  checkPython();
  servers = await startMemcacheds(3);
});
after(async () => { await servers?.stopAll(); });

test("Python sets 1,000 keys (str, int, long, bytes, pickles 0 and 2, tuples, compressed, JSON); JavaScript reads every one", async () => {
  const manifest = python("write");
  const keys = Object.keys(manifest);
  assert.equal(keys.length, 1000);
  const mc = new Client(servers.map((s) => s.address), { timeout: 5000 });
  try {
    const all = await mc.getMulti(keys);
    const singles = await Promise.all(keys.map((k) => mc.get(k)));
    for (let i = 0; i < keys.length; i++) {
      const want = fromManifest(manifest[keys[i]]);
      assert.deepEqual(all[keys[i]], want, `getMulti ${keys[i]}`);
      assert.deepEqual(singles[i], want, `get ${keys[i]}`);
    }
  } finally {
    mc.close();
  }
});

test("JavaScript sets 1,000 keys (text, int, BigInt, bytes, pickled objects, compressed, JSON); Python reads every one", async () => {
  const pickling = new Client(servers.map((s) => s.address), { serializer: "pickle", timeout: 5000 });
  const json = new Client(servers.map((s) => s.address), { timeout: 5000 });
  const manifest = {};
  try {
    const writes = [];
    for (let i = 0; i < 1000; i++) {
      const kind = i % 8;
      let key, value, client = pickling, options;
      switch (kind) {
        case 0: key = `js:str:${i}`; value = `texte ${i} ✓ ñ`; break;
        case 1: key = `js:int:${i}`; value = 5000 - i * 13; break;
        case 2: key = `js:bigint:${i}`; value = 2n ** 80n + BigInt(i); break;
        case 3: key = `js:bytes:${i}`; value = new Uint8Array([i % 256, 0, 1, 255, 10]); break;
        case 4: key = `js:pickle:${i}`; value = { id: i, list: [1, 2.5, "x", null, false], nested: { a: [] } }; break;
        case 5: key = `js:zstr:${i}`; value = `squeeze ${i} `.repeat(50); options = { minCompressLen: 100 }; break;
        case 6: key = `js:zpickle:${i}`; value = { id: i, blob: "b".repeat(600) }; options = { minCompressLen: 100 }; break;
        default: key = `js:json:${i}`; value = { id: i, json: [true, null, "s"] }; client = json; break;
      }
      manifest[key] = toManifest(value);
      writes.push(client.set(key, value, 0, options));
    }
    assert.ok((await Promise.all(writes)).every((ok) => ok === true));
  } finally {
    pickling.close();
    json.close();
  }
  const result = python("read", JSON.stringify(manifest));
  assert.equal(result.checked, 1000);
  assert.deepEqual(result.mismatches, []);
});
