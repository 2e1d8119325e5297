#!/usr/bin/env node
// TLS against plain TCP for this client: two memcached started alike (one with -Z and a
// throwaway certificate), one client on each, 64 calls in flight, get and set blocks taken
// in turn so the drift of a shared VM cancels out of the ratios (medians of round-by-round
// ratios). Goal (issue 10): TLS costs under 15% of throughput at 64 in flight.
//
//   node bench/tls.mjs [--size BYTES] [--rounds N] [--smoke]
import { readFileSync } from 'node:fs';
import os from 'node:os';
import tls from 'node:tls';
import { Client } from '../client-wasm/js/node.js';
import { makeCertificates, tempDir } from '../tests/node/support/secure.mjs';
import { startMemcached } from './servers.mjs';
import { dataset, populate, timeOperations, warmUp } from './workloads.mjs';

const BLOCKS = [
  { id: 'get-64', kind: 'get', inFlight: 64, ops: 5_000 },
  { id: 'set-64', kind: 'set', inFlight: 64, ops: 5_000 },
];
const DEFAULT_ROUNDS = 15;
const BLOCK_LIMIT_MS = 10_000;

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
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
  return async (i) => {
    if ((await client.set(data.keys[i % data.keys.length], data.value)) !== true) throw new Error('not stored');
  };
}

/** A TLS-only memcached is ready when a checked TLS connection answers `version`. */
function tlsReady(ca) {
  return (port) => new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca }, () => s.write('version\r\n'));
    s.setTimeout(500, () => { s.destroy(); reject(new Error('no answer')); });
    s.on('data', (d) => { s.destroy(); String(d).startsWith('VERSION ') ? resolve() : reject(new Error(String(d))); });
    s.on('error', reject);
  });
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
  const smoke = args.includes('--smoke');
  const size = option('--size', 100);
  const rounds = smoke ? 1 : option('--rounds', DEFAULT_ROUNDS);
  const tmp = tempDir('memcache-wasm-bench-tls-');
  const sides = [];
  try {
    const certs = makeCertificates(tmp.dir);
    const ca = readFileSync(certs.ca);
    const plain = await startMemcached();
    const secure = await startMemcached({
      args: ['-Z', '-o', `ssl_chain_cert=${certs.serverCert},ssl_key=${certs.serverKey}`],
      ready: tlsReady(ca),
    });
    for (const [name, server, options] of [['tcp', plain, {}], ['tls', secure, { tls: { ca } }]]) {
      const client = adapter(new Client([server.address], { timeout: 10_000, ...options }));
      const data = dataset(size, 1_000, `tls-${name}`);
      await populate(client, data, 60_000);
      await warmUp(client, data, { smoke, timeLimitMs: 30_000 });
      sides.push({ name, server, client, data, rates: {} });
    }
    for (const block of BLOCKS) {
      for (const side of sides) side.rates[block.id] = [];
      for (let r = 0; r < rounds; r++) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(k + r) % sides.length];
          const run = await timeOperations(operation(side.client, block.kind, side.data), {
            ops: smoke ? 200 : block.ops,
            inFlight: block.inFlight,
            timeLimitMs: BLOCK_LIMIT_MS,
          });
          side.rates[block.id].push(run.ops / (run.elapsedMs / 1000));
        }
      }
    }
  } finally {
    for (const side of sides) {
      await side.client.close();
      await side.server.stop();
    }
    tmp.remove();
  }
  const [tcp, secure] = sides;
  const load = os.loadavg().map((l) => l.toFixed(2)).join(', ');
  console.log(`| workload (${size}-byte values, 1 server, ${rounds} rounds, load average ${load}) | TCP | TLS | TLS / TCP |`);
  console.log('|---|--:|--:|--:|');
  for (const block of BLOCKS) {
    const ratio = median(secure.rates[block.id].map((v, i) => v / tcp.rates[block.id][i]));
    const [a, b] = sides.map((s) => Math.round(median(s.rates[block.id])));
    console.log(`| ${block.id} | ${a} ops/s | ${b} ops/s | ${ratio.toFixed(2)}x |`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[tls] ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
