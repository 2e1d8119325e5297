#!/usr/bin/env node
// Reproduces a stall of memcached 1.6.18's TLS (-Z) with no memcache-wasm code involved: a raw
// TLS socket keeps 64 sets of 10 KB in flight (a new one per reply), 3,000 in all; in about
// one run of three the reply to the last set never comes until more bytes are sent (here a
// `version`), which is what a client sees as a TIMEOUT at the end of a burst of large sets.
// Plain TCP never stalls. Bounded: at most RUNS runs, each given up after 2 s without progress.
//
//   node bench/tls-stall.mjs [--runs N]
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { makeCertificates, tempDir, startTlsMemcached } from '../tests/node/support/secure.mjs';

const args = process.argv.slice(2);
const RUNS = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 10;
const SIZE = 10_240;
const TOTAL = 3_000;
const IN_FLIGHT = 64;
const STALL_MS = 2_000;

const tmp = tempDir('memcache-wasm-tls-stall-');
const certs = makeCertificates(tmp.dir);
const server = await startTlsMemcached(certs, { args: ['-t', '1', '-m', '256'] });
const value = 'x'.repeat(SIZE);
let stalls = 0;
try {
  for (let run = 0; run < RUNS; run++) {
    const s = tls.connect({ host: '127.0.0.1', port: server.port, ca: readFileSync(certs.ca) });
    await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    let sent = 0;
    let stored = 0;
    let tail = '';
    let versioned = false;
    const send = (n) => {
      let batch = '';
      for (let i = 0; i < n && sent < TOTAL; i++, sent++) batch += `set stall:${sent} 0 0 ${SIZE}\r\n${value}\r\n`;
      if (batch) s.write(batch);
    };
    s.on('data', (d) => {
      const text = tail + d.toString('latin1');
      const lines = text.split('\r\n');
      tail = lines.pop();
      let n = 0;
      for (const line of lines) {
        if (line === 'STORED') n++;
        else if (line.startsWith('VERSION')) versioned = true;
      }
      stored += n;
      send(n);
    });
    send(IN_FLIGHT);
    let last = -1;
    let since = Date.now();
    while (stored < TOTAL) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (stored !== last) { last = stored; since = Date.now(); continue; }
      if (Date.now() - since < STALL_MS) continue;
      stalls++;
      const stalledAt = stored;
      s.write('version\r\n');
      const until = Date.now() + STALL_MS;
      while (!versioned && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
      console.log(`run ${run}: stalled at ${stalledAt} of ${TOTAL} replies; after one more request: ${stored} (VERSION ${versioned ? 'answered' : 'not answered'})`);
      break;
    }
    if (stored === TOTAL && !versioned) console.log(`run ${run}: all ${TOTAL} replies`);
    s.destroy();
  }
} finally {
  await server.stop();
  tmp.remove();
}
console.log(`${stalls} of ${RUNS} runs stalled`);
