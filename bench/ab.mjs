#!/usr/bin/env node
// Before/after for a change to memcache-wasm: two builds of the package (folders with
// package.json, js/ and pkg/, e.g. from bench/wasm-variant.sh or a git worktree of the old
// commit) loaded in one process beside the raw socket client, all connected to the same
// memcached servers, each workload run in short blocks taken in turn, medians over the
// blocks. Side by side, the drift of this shared VM cancels out of the ratios: after/before
// and after/raw are medians of the round-by-round ratios.
//
//   node bench/ab.mjs BEFORE_DIR AFTER_DIR [--size BYTES] [--rounds N] [--servers N]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RawClient } from './raw-client.mjs';
import { startMemcached } from './servers.mjs';
import { dataset, populate, timeOperations, warmUp } from './workloads.mjs';

// Blocks: long enough to be a few milliseconds each, short enough that drift is shared.
const BLOCKS = [
  { id: 'seq-get', kind: 'get', inFlight: 1, ops: 500 },
  { id: 'get-64', kind: 'get', inFlight: 64, ops: 5_000 },
  { id: 'multi-get', kind: 'multi', inFlight: 1, ops: 50 },
  { id: 'set-64', kind: 'set', inFlight: 64, ops: 5_000 },
];
const DEFAULT_ROUNDS = 20;
const BLOCK_LIMIT_MS = 10_000;

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function loadClient(dir) {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const entry = path.resolve(dir, pkg.exports?.['.']?.node ?? pkg.main);
  return (await import(pathToFileURL(entry).href)).Client;
}

function adapter(client) {
  return {
    get: (key) => client.get(key),
    set: (key, value) => client.set(key, value, 0),
    getMulti: async (keys) => Object.keys(await client.getMulti(keys)).length,
    close: () => client.close(),
  };
}

function rawAdapter(client) {
  return {
    get: (key) => client.get(key),
    set: (key, value) => client.set(key, value),
    getMulti: async (keys) => (await client.getMulti(keys)).size,
    close: () => client.close(),
  };
}

function operation(client, kind, data) {
  if (kind === 'get') {
    return async (i) => {
      const v = await client.get(data.keys[i % data.keys.length]);
      if (v === undefined || v.length !== data.valueSize) throw new Error('wrong value');
    };
  }
  if (kind === 'set') {
    return async (i) => {
      if ((await client.set(data.keys[i % data.keys.length], data.value)) !== true) throw new Error('not stored');
    };
  }
  return async (i) => {
    const list = data.multiKeys[i % data.multiKeys.length];
    if ((await client.getMulti(list)) !== list.length) throw new Error('multi-get missed keys');
  };
}

async function main() {
  const args = process.argv.slice(2);
  const dirs = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  if (dirs.length !== 2) throw new Error('usage: node bench/ab.mjs BEFORE_DIR AFTER_DIR [--size BYTES] [--rounds N] [--servers N]');
  const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
  const size = option('--size', 100);
  const rounds = option('--rounds', DEFAULT_ROUNDS);
  const serverCount = option('--servers', 1);
  const servers = [];
  for (let i = 0; i < serverCount; i++) servers.push(await startMemcached());
  const addresses = servers.map((s) => s.address);
  const sides = [];
  try {
    const clients = [];
    for (const dir of dirs) {
      const Client = await loadClient(path.resolve(dir));
      clients.push(adapter(new Client(addresses, { timeout: 10_000 })));
    }
    clients.push(rawAdapter(await RawClient.connect(addresses)));
    for (const [i, client] of clients.entries()) {
      const data = dataset(size, 1_000, `ab${i}`);
      await populate(client, data, 60_000);
      await warmUp(client, data, { smoke: false, timeLimitMs: 30_000 });
      sides.push({ name: ['before', 'after', 'raw'][i], dir: dirs[i] ?? 'raw socket', client, data, rates: {} });
    }
    for (const block of BLOCKS) {
      for (const side of sides) side.rates[block.id] = [];
      for (let r = 0; r < rounds; r++) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(k + r) % sides.length];
          const run = await timeOperations(operation(side.client, block.kind, side.data), {
            ops: block.ops,
            inFlight: block.inFlight,
            timeLimitMs: BLOCK_LIMIT_MS,
          });
          // A multi-get's rate counts keys, as the issues' keys/s figures do.
          const perOp = block.kind === 'multi' ? side.data.multiKeys[0].length : 1;
          side.rates[block.id].push((run.ops * perOp) / (run.elapsedMs / 1000));
        }
      }
    }
  } finally {
    for (const side of sides) await side.client.close();
    for (const server of servers) await server.stop();
  }
  const ratio = (a, b, id) => median(a.rates[id].map((v, i) => v / b.rates[id][i]));
  const [before, after, raw] = sides;
  console.log(`| workload (${size}-byte values, ${serverCount} server${serverCount > 1 ? 's' : ''}, ${rounds} rounds) | before | after | raw socket | after / before | after / raw |`);
  console.log('|---|--:|--:|--:|--:|--:|');
  for (const block of BLOCKS) {
    const unit = block.kind === 'multi' ? ' keys/s' : ' ops/s';
    const [a, b, c] = sides.map((s) => Math.round(median(s.rates[block.id])));
    console.log(`| ${block.id} | ${a}${unit} | ${b}${unit} | ${c}${unit} | ${ratio(after, before, block.id).toFixed(2)}x | ${ratio(after, raw, block.id).toFixed(2)}x |`);
  }
  console.log(`\nbefore: ${dirs[0]}\nafter: ${dirs[1]}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[ab] ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
