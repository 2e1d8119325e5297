// A quick throughput check, not a test: gets per second with 64 in flight (100-byte values,
// one memcached) for this client and for memjs, in one run. The full benchmark is bench/.
//   node tests/node/support/throughput.mjs [gets-per-round]
import { createRequire } from "node:module";
import { Client } from "../../../client-wasm/js/node.js";
import { Memcached } from "./servers.mjs";

const require = createRequire(import.meta.url);
const memjs = require("memjs");

/** Gets per round and rounds per client: bounded, about a second per round. */
const GETS = Number(process.argv[2] ?? 100_000);
const ROUNDS = 3;
const IN_FLIGHT = 64;
const KEYS = 1000;
const VALUE = "v".repeat(100);

async function round(get) {
  let issued = 0;
  const started = process.hrtime.bigint();
  async function worker() {
    while (issued < GETS) {
      const key = `bench:${issued++ % KEYS}`;
      const v = await get(key);
      if (v === undefined || v === null) throw new Error(`miss on ${key}`);
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return GETS / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function measure(name, get) {
  await round(get); // warm-up
  const rates = [];
  for (let i = 0; i < ROUNDS; i++) rates.push(await round(get));
  rates.sort((a, b) => a - b);
  return { name, median: Math.round(rates[Math.floor(ROUNDS / 2)]) };
}

const server = await Memcached.start();
try {
  const mc = new Client([server.address]);
  await mc.setMulti(Object.fromEntries(Array.from({ length: KEYS }, (_, i) => [`bench:${i}`, VALUE])));
  const ours = await measure("memcache-wasm (TCP)", (k) => mc.get(k));
  mc.close();
  const mj = memjs.Client.create(server.address, { logger: { log() {} } });
  const theirs = await measure("memjs", async (k) => (await mj.get(k)).value);
  mj.close();
  for (const r of [ours, theirs]) console.log(`${r.name.padEnd(22)} ${String(r.median).padStart(8)} gets/s (median of ${ROUNDS} x ${GETS}, ${IN_FLIGHT} in flight, 100-byte values)`);
  console.log(`ratio ${(ours.median / theirs.median).toFixed(2)}x`);
} finally {
  await server.stop();
}
