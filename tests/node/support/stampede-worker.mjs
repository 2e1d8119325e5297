// One process of the stampede herd (forked by meta.test.mjs and bench/stampede.mjs): on the
// parent's "start" message it makes `calls` concurrent cache-aside calls on one key and
// reports, over IPC, each loader run (when it started and ended) and what every call
// resolved with. `pattern`: "getOrSet" (this client), "get-then-set" with this client, or
// the same pattern with memjs or memcached from npm ("memjs", "memcached").
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "../../../client-wasm/js/node.js";

const require = createRequire(import.meta.url);

function cacheAside(pattern, server) {
  if (pattern === "getOrSet") {
    const mc = new Client([server], { timeout: 5000 });
    return { run: (key, loader, ttl) => mc.getOrSet(key, loader, { ttl, timeout: 10_000 }), close: () => mc.close() };
  }
  if (pattern === "get-then-set") {
    const mc = new Client([server], { timeout: 5000 });
    return {
      run: async (key, loader, ttl) => {
        const hit = await mc.get(key);
        if (hit !== undefined) return hit;
        const value = await loader();
        await mc.set(key, value, ttl);
        return value;
      },
      close: () => mc.close(),
    };
  }
  if (pattern === "memjs") {
    const memjs = require("memjs");
    const mc = memjs.Client.create(server, { timeout: 5, retries: 0 });
    return {
      run: async (key, loader, ttl) => {
        const { value } = await mc.get(key);
        if (value !== null) return JSON.parse(value.toString());
        const fresh = await loader();
        await mc.set(key, JSON.stringify(fresh), { expires: ttl });
        return fresh;
      },
      close: () => mc.close(),
    };
  }
  if (pattern === "memcached") {
    const Memcached = require("memcached");
    const mc = new Memcached(server, { timeout: 5000, retries: 0, poolSize: 256 }); // its default 10 refuses the herd ("The connection pool is full")
    const get = (key) => new Promise((resolve, reject) => mc.get(key, (e, v) => (e ? reject(e) : resolve(v))));
    const set = (key, v, ttl) => new Promise((resolve, reject) => mc.set(key, v, ttl, (e) => (e ? reject(e) : resolve())));
    return {
      run: async (key, loader, ttl) => {
        const hit = await get(key);
        if (hit !== undefined) return hit;
        const fresh = await loader();
        await set(key, fresh, ttl);
        return fresh;
      },
      close: () => mc.end(),
    };
  }
  throw new Error(`unknown pattern ${pattern}`);
}

process.once("message", async ({ server, key, calls, loaderMs, ttl, pattern, waves = 1, waveGapMs = 0 }) => {
  const client = cacheAside(pattern, server);
  const loads = [];
  const loader = async () => {
    const started = Date.now();
    await sleep(loaderMs); // the query the cache stands in front of
    const value = { rows: ["film"], by: process.pid, n: loads.length, at: started };
    loads.push({ started, ended: Date.now(), value: JSON.stringify(value) });
    return value;
  };
  process.send({ ready: true });
  await new Promise((resolve) => process.once("message", resolve)); // "start"
  const results = [];
  const errors = [];
  const perWave = Math.ceil(calls / waves);
  const pending = [];
  for (let w = 0; w < waves; w++) {
    for (let i = 0; i < perWave && pending.length < calls; i++) {
      pending.push(client.run(key, loader, ttl).then(
        (v) => results.push(JSON.stringify(v)),
        (e) => errors.push(String(e?.code ?? e?.message ?? e)),
      ));
    }
    if (w + 1 < waves) await sleep(waveGapMs); // spreads the load over the key's expiry
  }
  await Promise.all(pending);
  client.close();
  // npm clients may keep sockets or timers alive after close: the report ends the process.
  process.send({ loads, results, errors }, () => process.exit(0));
});
