// A quick throughput check, not a test: gets and sets per second with 64 in flight and
// multi-gets of 100 keys (100-byte values, one memcached) for this client and for memjs, in
// one run. The full benchmark is bench/.
// The bridge line runs the same client through a real memcache-bridge (MEMCACHE_BRIDGE_BIN).
//   node tests/node/support/throughput.mjs [calls-per-round]
import { createRequire } from "node:module";
import { Client } from "../../../client-wasm/js/node.js";
import { Memcached } from "./servers.mjs";
import { Bridge } from "./bridge.mjs";

const require = createRequire(import.meta.url);
const memjs = require("memjs");

/** Calls per round and rounds per measure: bounded, about a second per round. */
const GETS = Number(process.argv[2] ?? 100_000);
const ROUNDS = 3;
const IN_FLIGHT = 64;
const KEYS = 1000;
const VALUE = "v".repeat(100);

/** Runs `GETS` calls of `call(i)` with IN_FLIGHT outstanding; calls per second. */
async function round(call) {
  let issued = 0;
  const started = process.hrtime.bigint();
  async function worker() {
    while (issued < GETS) await call(issued++);
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return GETS / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** Multi-gets of 100 keys, one after another; keys per second. */
async function multiRound(getMany) {
  const rounds = Math.max(1, Math.floor(GETS / 100 / 5));
  const keys = Array.from({ length: 100 }, (_, i) => `bench:${i}`);
  const started = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) {
    const found = await getMany(keys);
    if (found !== 100) throw new Error(`multi-get found ${found} of 100`);
  }
  return (rounds * 100) / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function median(run) {
  await run(); // warm-up
  const rates = [];
  for (let i = 0; i < ROUNDS; i++) rates.push(await run());
  rates.sort((a, b) => a - b);
  return Math.round(rates[Math.floor(ROUNDS / 2)]);
}

const checkHit = (v, key) => { if (v === undefined || v === null) throw new Error(`miss on ${key}`); };

const server = await Memcached.start();
try {
  const measureOurs = async (mc) => ({
    get: await median(() => round(async (i) => { const k = `bench:${i % KEYS}`; checkHit(await mc.get(k), k); })),
    set: await median(() => round((i) => mc.set(`bench:${i % KEYS}`, VALUE))),
    multi: await median(() => multiRound(async (keys) => Object.keys(await mc.getMulti(keys)).length)),
  });
  const mc = new Client([server.address]);
  await mc.setMulti(Object.fromEntries(Array.from({ length: KEYS }, (_, i) => [`bench:${i}`, VALUE])));
  const ours = await measureOurs(mc);
  mc.close();
  const bridge = await Bridge.start({ upstreams: [server.address] });
  let viaBridge;
  try {
    const bridged = new Client([server.address], { bridge: bridge.url });
    viaBridge = await measureOurs(bridged);
    bridged.close();
  } finally {
    await bridge.stop();
  }
  const mj = memjs.Client.create(server.address, { logger: { log() {} } });
  const theirs = {
    get: await median(() => round(async (i) => { const k = `bench:${i % KEYS}`; checkHit((await mj.get(k)).value, k); })),
    set: await median(() => round((i) => mj.set(`bench:${i % KEYS}`, VALUE))),
    multi: await median(() => multiRound(async (keys) => (await Promise.all(keys.map((k) => mj.get(k)))).filter((r) => r.value).length)),
  };
  mj.close();
  const line = (what, unit, a, b) => console.log(`${what.padEnd(40)} memcache-wasm ${String(a).padStart(8)}  memjs ${String(b).padStart(8)} ${unit}  (${(a / b).toFixed(2)}x)`);
  console.log(`median of ${ROUNDS} rounds of ${GETS} calls, ${IN_FLIGHT} in flight, 100-byte values, one memcached, TCP`);
  line("get, 64 in flight", "gets/s", ours.get, theirs.get);
  line("set, 64 in flight", "sets/s", ours.set, theirs.set);
  line("multi-get of 100 keys (memjs: 100 gets)", "keys/s", ours.multi, theirs.multi);
  const half = (what, unit, a, b) => console.log(`${what.padEnd(40)} through the bridge ${String(a).padStart(8)} ${unit}  (${(a / b).toFixed(2)} of TCP)`);
  half("get, 64 in flight", "gets/s", viaBridge.get, ours.get);
  half("set, 64 in flight", "sets/s", viaBridge.set, ours.set);
  half("multi-get of 100 keys", "keys/s", viaBridge.multi, ours.multi);
} finally {
  await server.stop();
}
