// getOrSet on a hit against get, 64 calls in flight, one memcached, 100-byte value: the
// meta read (`mg <key> v f t k N30`) must cost no more than the text get it replaces.
// Alternating blocks of each, medians. Usage: node bench/get-or-set-hit.mjs [blocks]
import { Client } from "../client-wasm/js/node.js";
import { Memcached } from "../tests/node/support/servers.mjs";

const BLOCKS = Number(process.argv[2] ?? 7);
const CALLS_PER_BLOCK = 64 * 1500;
const server = await Memcached.start(["-t", "1"]);
const mc = new Client([server.address], { timeout: 5000 });
const value = "x".repeat(100);
await mc.set("hit", value, 0);
const loader = () => { throw new Error("a hit must not load"); };

async function block(call) {
  const started = performance.now();
  let issued = 0;
  const lane = async () => { while (issued < CALLS_PER_BLOCK) { issued++; await call(); } };
  await Promise.all(Array.from({ length: 64 }, lane));
  return CALLS_PER_BLOCK / ((performance.now() - started) / 1000);
}

const rates = { get: [], getOrSet: [] };
try {
  await block(() => mc.get("hit"));
  await block(() => mc.getOrSet("hit", loader));
  for (let b = 0; b < BLOCKS; b++) {
    rates.get.push(await block(() => mc.get("hit")));
    rates.getOrSet.push(await block(() => mc.getOrSet("hit", loader)));
  }
} finally {
  await mc.close();
  await server.stop();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const g = median(rates.get), m = median(rates.getOrSet);
console.log(`get ${Math.round(g / 1000)}k/s, getOrSet hit ${Math.round(m / 1000)}k/s: ${(m / g).toFixed(2)}x (medians of ${BLOCKS} alternating blocks of ${CALLS_PER_BLOCK} calls, 64 in flight)`);
