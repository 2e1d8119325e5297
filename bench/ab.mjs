#!/usr/bin/env node
// Before/after for a change to memcache-wasm: two builds of the package (folders with
// package.json, js/ and pkg/, e.g. from bench/wasm-variant.sh) loaded in one process, both
// connected to the same memcached, each workload run in short blocks taken in turn, medians
// over the blocks. Side by side, the drift of this shared VM cancels out of the ratio.
//
//   node bench/ab.mjs BEFORE_DIR AFTER_DIR [--size BYTES] [--rounds N]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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
  if (dirs.length !== 2) throw new Error('usage: node bench/ab.mjs BEFORE_DIR AFTER_DIR [--size BYTES] [--rounds N]');
  const size = args.includes('--size') ? Number(args[args.indexOf('--size') + 1]) : 100;
  const rounds = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : DEFAULT_ROUNDS;
  const server = await startMemcached();
  const sides = [];
  try {
    for (const [i, dir] of dirs.entries()) {
      const Client = await loadClient(path.resolve(dir));
      const client = adapter(new Client([server.address], { timeout: 10_000 }));
      const data = dataset(size, 1_000, `ab${i}`);
      await populate(client, data, 60_000);
      await warmUp(client, data, { smoke: false, timeLimitMs: 30_000 });
      sides.push({ name: i === 0 ? 'before' : 'after', dir, client, data, rates: {} });
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
          side.rates[block.id].push(run.ops / (run.elapsedMs / 1000));
        }
      }
    }
  } finally {
    for (const side of sides) await side.client.close();
    await server.stop();
  }
  console.log(`| workload (${size}-byte values, ${rounds} rounds) | before ops/s | after ops/s | after / before |`);
  console.log('|---|--:|--:|--:|');
  for (const block of BLOCKS) {
    const [a, b] = sides.map((s) => median(s.rates[block.id]));
    console.log(`| ${block.id} | ${Math.round(a)} | ${Math.round(b)} | ${(b / a).toFixed(2)}x |`);
  }
  console.log(`\nbefore: ${sides[0].dir}\nafter: ${sides[1].dir}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[ab] ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
