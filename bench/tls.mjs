#!/usr/bin/env node
// TLS against plain TCP for this client: two memcached started alike (one with -Z and a
// throwaway certificate), one client on each, 64 calls in flight, get and set blocks taken
// in turn so the drift of a shared VM cancels out of the ratios (medians of round-by-round
// ratios). Goal (issue 10): TLS costs under 15% of throughput at 64 in flight. The raw socket
// (bench/raw-client.mjs) runs over TCP and over TLS beside it: what TLS costs Node and memcached
// themselves, the floor under this client's ratio.
//
//   node bench/tls.mjs [--size BYTES] [--rounds N] [--smoke]
import { readFileSync } from 'node:fs';
import os from 'node:os';
import tls from 'node:tls';
import { Client } from '../client-wasm/js/node.js';
import { makeCertificates, tempDir } from '../tests/node/support/secure.mjs';
import { RawConnection } from './raw-client.mjs';
import { startMemcached } from './servers.mjs';
import { dataset, populate, timeOperations, warmUp } from './workloads.mjs';

const BLOCKS = [
  { id: 'get-64', kind: 'get', inFlight: 64, ops: 5_000 },
  { id: 'set-64', kind: 'set', inFlight: 64, ops: 5_000 },
];
const DEFAULT_ROUNDS = 15;
const RAW_MAX_SIZE = 1_024;
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

function rawAdapter(conn) {
  return {
    get: (key) => conn.get(key),
    set: (key, value) => conn.set(key, value),
    getMulti: async (keys) => (await conn.getMulti(keys)).size,
    close: () => conn.close(),
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
  const servers = [];
  try {
    const certs = makeCertificates(tmp.dir);
    const ca = readFileSync(certs.ca);
    const plain = await startMemcached();
    const secure = await startMemcached({
      args: ['-Z', '-o', `ssl_chain_cert=${certs.serverCert},ssl_key=${certs.serverKey}`],
      ready: tlsReady(ca),
    });
    servers.push(plain, secure);
    const contenders = [
      ['tcp', plain, async () => adapter(new Client([plain.address], { timeout: 10_000 }))],
      ['tls', secure, async () => adapter(new Client([secure.address], { timeout: 10_000, tls: { ca } }))],
    ];
    contenders.push(
      ['raw-tcp', plain, async () => rawAdapter(await RawConnection.tcp(plain.host, plain.port))],
      ['raw-tls', secure, async () => rawAdapter(await RawConnection.tls(secure.host, secure.port, { ca, servername: 'localhost' }))],
    );
    for (const [name, server, open] of contenders) {
      const client = await open();
      const data = dataset(size, 1_000, `tls-${name}`);
      // The raw socket has no answer to memcached 1.6.18's TLS stall on large pipelined writes
      // (bench/tls-stall.mjs; this client nudges a silent TLS connection): with large values it
      // reads keys this client stored, and takes no part in the sets.
      const rawLarge = name.startsWith('raw') && size > RAW_MAX_SIZE;
      if (rawLarge) {
        data.keys = sides.find((s) => s.server === server).data.keys;
      } else {
        await populate(client, data, 60_000);
        await warmUp(client, data, { smoke, timeLimitMs: 30_000 });
      }
      sides.push({ name, server, client, data, rates: {}, skip: rawLarge ? 'set' : null });
    }
    for (const block of BLOCKS) {
      for (const side of sides) side.rates[block.id] = [];
      const taking = sides.filter((side) => side.skip !== block.kind);
      for (let r = 0; r < rounds; r++) {
        for (let k = 0; k < taking.length; k++) {
          const side = taking[(k + r) % taking.length];
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
    for (const side of sides) await side.client.close();
    for (const server of servers) await server.stop();
    tmp.remove();
  }
  const [tcp, secure, rawTcp, rawTls] = sides;
  const ratio = (a, b, id) => (a.rates[id].length === 0 ? '-' : `${median(a.rates[id].map((v, i) => v / b.rates[id][i])).toFixed(2)}x`);
  const rate = (side, id) => (side.rates[id].length === 0 ? 'not run' : `${Math.round(median(side.rates[id]))} ops/s`);
  const load = os.loadavg().map((l) => l.toFixed(2)).join(', ');
  console.log(`| workload (${size}-byte values, 1 server, ${rounds} rounds, load average ${load}) | TCP | TLS | TLS / TCP | raw socket TCP | raw socket TLS | raw TLS / raw TCP |`);
  console.log('|---|--:|--:|--:|--:|--:|--:|');
  for (const { id } of BLOCKS) {
    console.log(`| ${id} | ${rate(tcp, id)} | ${rate(secure, id)} | ${ratio(secure, tcp, id)} | ${rate(rawTcp, id)} | ${rate(rawTls, id)} | ${ratio(rawTls, rawTcp, id)} |`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[tls] ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
