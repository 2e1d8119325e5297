// set with { noreply: true } against the loud set, 64 calls in flight and 1,000 at once (one
// tick), one memcached, 100-byte values: what dropping memcached's STORED per write saves.
// Alternating blocks of each, medians. Usage: node bench/noreply.mjs [blocks]
import { Client } from "../client-wasm/js/node.js";
import { Memcached } from "../tests/node/support/servers.mjs";

const BLOCKS = Number(process.argv[2] ?? 7);
const CALLS_PER_BLOCK = 64 * 1500;
const server = await Memcached.start(["-t", "1"]);
const mc = new Client([server.address], { timeout: 5000 });
const value = "x".repeat(100);
const quiet = { noreply: true };

/** 64 lanes, each awaiting its call before the next. */
async function inFlight(call) {
  const started = performance.now();
  let issued = 0;
  const lane = async () => { while (issued < CALLS_PER_BLOCK) { const i = issued++; await call(i); } };
  await Promise.all(Array.from({ length: 64 }, lane));
  return CALLS_PER_BLOCK / ((performance.now() - started) / 1000);
}

/** Bursts of 1,000 calls made in one tick, awaited together. */
async function bursts(call) {
  const started = performance.now();
  for (let done = 0; done < CALLS_PER_BLOCK; done += 1000) {
    const calls = new Array(1000);
    for (let i = 0; i < 1000; i++) calls[i] = call(done + i);
    await Promise.all(calls);
  }
  return CALLS_PER_BLOCK / ((performance.now() - started) / 1000);
}

const loud = (i) => mc.set(`k${i & 1023}`, value, 0);
const silent = (i) => mc.set(`k${i & 1023}`, value, 0, quiet);
const rates = { loud64: [], quiet64: [], loudBurst: [], quietBurst: [] };
try {
  await inFlight(loud); await inFlight(silent);
  for (let b = 0; b < BLOCKS; b++) {
    rates.loud64.push(await inFlight(loud));
    rates.quiet64.push(await inFlight(silent));
    rates.loudBurst.push(await bursts(loud));
    rates.quietBurst.push(await bursts(silent));
  }
} finally {
  await mc.close();
  await server.stop();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const k = (x) => `${Math.round(x / 1000)}k/s`;
const [l64, q64, lb, qb] = [rates.loud64, rates.quiet64, rates.loudBurst, rates.quietBurst].map(median);
console.log(`64 in flight: set ${k(l64)}, set noreply ${k(q64)}: ${(q64 / l64).toFixed(2)}x`);
console.log(`1,000 per tick: set ${k(lb)}, set noreply ${k(qb)}: ${(qb / lb).toFixed(2)}x`);
console.log(`(medians of ${BLOCKS} alternating blocks of ${CALLS_PER_BLOCK} calls; load average ${(await import("node:os")).loadavg()[0].toFixed(1)})`);
