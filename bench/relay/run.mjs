#!/usr/bin/env node
// The relay benchmark: one raw pipelined memcached client (get requests written by hand,
// replies counted by their known length) measures three paths to the same memcached:
//   direct TCP, WebSocket through memcache-bridge (release build), WebSocket through
//   websockify (the PyPI package in .venv).
// Workloads: sequential round trip on one connection; 64 requests in flight on one socket;
// 200 connections each doing sequential gets. Medians of several repetitions, and the
// bridge's resident memory with 1,000 idle WebSocket connections.
//
//   node bench/relay/run.mjs            full run (about 2.5 minutes), prints a Markdown report
//   node bench/relay/run.mjs --smoke    a few seconds: every path and workload runs once
//   node bench/relay/run.mjs --json F   also writes the figures to F
// For investigating: --repetitions N, --seconds S, --only WORKLOAD, --paths tcp,bridge,
// BRIDGE_FLAGS="--threads 1" (extra bridge flags), MEMCACHED_FLAGS="-R 100".
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const SMOKE = args.includes('--smoke');
const JSON_OUT = args.includes('--json') ? args[args.indexOf('--json') + 1] : null;

// Durations and sizes. Each measurement runs for a fixed time after a warm-up, so every path
// gets the same budget. Many short repetitions, with the paths taking turns in each, let a
// machine whose load changes from second to second (a shared one) hit every path alike; the
// smoke run only proves that everything works.
const PLAN = SMOKE
  ? { repetitions: 1, warmupMs: 100, seconds: 0.3, connections: 20, idle: 100 }
  : { repetitions: 9, warmupMs: 300, seconds: 1.5, connections: 200, idle: 1000 };
if (args.includes('--seconds')) PLAN.seconds = Number(args[args.indexOf('--seconds') + 1]);
if (args.includes('--repetitions')) PLAN.repetitions = Number(args[args.indexOf('--repetitions') + 1]);
// Extra bridge flags, for trying settings such as --threads: BRIDGE_FLAGS="--threads 1".
const BRIDGE_FLAGS = (process.env.BRIDGE_FLAGS || '').split(' ').filter(Boolean);
const IN_FLIGHT = 64;
const VALUE_SIZE = 100;
const KEY = 'relay-bench-key';
const REQUEST = Buffer.from(`get ${KEY}\r\n`);
const REPLY_SIZE = Buffer.byteLength(`VALUE ${KEY} 0 ${VALUE_SIZE}\r\n`) + VALUE_SIZE + 2 + 'END\r\n'.length;
// A server that has not come up in this time is a broken setup, not a slow one.
const START_TIMEOUT_MS = 10000;

const children = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(1));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForPort(port) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function start(command, argv, options = {}) {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.push(child);
  child.stderr.on('data', () => {});
  return child;
}

async function startMemcached() {
  const port = await freePort();
  const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  start('/usr/bin/memcached', ['-U', '0', '-l', '127.0.0.1', '-p', String(port), '-c', '4096', '-t', '4', ...(process.env.MEMCACHED_FLAGS || '').split(' ').filter(Boolean), ...user]);
  await waitForPort(port);
  return port;
}

function buildBridge() {
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
  execFileSync('cargo', ['build', '--release', '-q', '-p', 'memcache-bridge'], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
  });
  return path.join(targetDir, 'release', 'memcache-bridge');
}

async function startBridge(binary, upstreamPort) {
  const child = start(binary, ['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, ...BRIDGE_FLAGS], {
    env: { ...process.env, RUST_LOG: 'memcache_bridge=warn' },
  });
  const line = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      if (text.includes('\n')) resolve(text.split('\n')[0]);
    });
    child.on('exit', (code) => reject(new Error(`memcache-bridge exited with ${code}`)));
  });
  const address = line.replace('memcache-bridge listening on http://', '');
  return { child, url: `ws://${address}/memcached/127.0.0.1:${upstreamPort}` };
}

async function startWebsockify(upstreamPort) {
  const binary = path.join(ROOT, '.venv', 'bin', 'websockify');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run scripts/setup.sh`);
  const port = await freePort();
  const child = start(binary, [`127.0.0.1:${port}`, `127.0.0.1:${upstreamPort}`]);
  await waitForPort(port);
  return { child, url: `ws://127.0.0.1:${port}/` };
}

/** One connection of the raw client: writes requests, counts replies by their length. */
class Connection {
  static tcp(port) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        const conn = new Connection((bytes) => socket.write(bytes), () => socket.destroy());
        socket.on('data', (chunk) => conn.received(chunk));
        resolve(conn);
      });
    });
  }

  static ws(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, ['binary'], { perMessageDeflate: false });
      ws.binaryType = 'nodebuffer';
      ws.once('error', reject);
      ws.once('open', () => {
        ws._socket.setNoDelay(true);
        const conn = new Connection((bytes) => ws.send(bytes, { binary: true }), () => ws.terminate());
        ws.on('message', (chunk) => conn.received(chunk));
        ws.on('close', (code, reason) => {
          if (!conn.closing) conn.fail(new Error(`closed ${code} ${reason}`));
        });
        resolve(conn);
      });
    });
  }

  constructor(write, destroy) {
    this.write = write;
    this.destroy = destroy;
    this.partial = 0; // bytes of a reply not yet complete
    this.onReplies = null; // (count) => void
    this.checked = false;
    this.closing = false;
  }

  received(chunk) {
    if (!this.checked) {
      // The first reply proves the path relays real memcached answers.
      if (!chunk.subarray(0, 6).equals(Buffer.from('VALUE '))) this.fail(new Error(`unexpected reply ${chunk}`));
      this.checked = true;
    }
    const total = this.partial + chunk.length;
    const complete = Math.floor(total / REPLY_SIZE);
    this.partial = total % REPLY_SIZE;
    if (complete > 0 && this.onReplies) this.onReplies(complete);
  }

  fail(error) {
    console.error(error);
    process.exit(1);
  }

  close() {
    this.closing = true;
    this.destroy();
  }
}

const open = (pathName, target) => (pathName === 'tcp' ? Connection.tcp(target) : Connection.ws(target));

/** Sequential round trips: returns the median round trip in microseconds. */
async function sequential(pathName, target) {
  const conn = await open(pathName, target);
  const samples = [];
  const warmupEnd = performance.now() + PLAN.warmupMs;
  const end = warmupEnd + PLAN.seconds * 1000;
  await new Promise((resolve) => {
    let sent = 0;
    const next = () => {
      sent = performance.now();
      conn.write(REQUEST);
    };
    conn.onReplies = () => {
      const now = performance.now();
      if (now > warmupEnd) samples.push(now - sent);
      if (now > end) resolve();
      else next();
    };
    next();
  });
  conn.close();
  return median(samples) * 1000;
}

/** `depth` requests in flight on `count` connections: returns requests per second. */
async function pipelined(pathName, target, count, depth) {
  const conns = await Promise.all(Array.from({ length: count }, () => open(pathName, target)));
  const batch = (n) => (n === 1 ? REQUEST : Buffer.concat(Array(n).fill(REQUEST)));
  let done = 0;
  let measuring = false;
  let t0 = 0;
  let t1 = 0;
  const finished = new Promise((resolve) => {
    let stopped = false;
    for (const conn of conns) {
      // Like any pipelining client, requests made in one tick go out in one write: replies
      // counted while one chunk of input is processed are answered together.
      let owed = 0;
      conn.onReplies = (n) => {
        if (measuring) done += n;
        if (stopped) return;
        if (owed === 0) {
          queueMicrotask(() => {
            const count = owed;
            owed = 0;
            if (!stopped) conn.write(batch(count));
          });
        }
        owed += n;
      };
      conn.write(batch(depth));
    }
    setTimeout(() => {
      measuring = true;
      t0 = performance.now();
      setTimeout(() => {
        measuring = false;
        t1 = performance.now();
        stopped = true;
        resolve();
      }, PLAN.seconds * 1000);
    }, PLAN.warmupMs);
  });
  await finished;
  const elapsed = (t1 - t0) / 1000;
  conns.forEach((conn) => conn.close());
  return done / elapsed;
}

/** The bridge's resident memory (KiB) with `count` idle WebSocket connections open. */
async function idleMemory(bridge, count) {
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${bridge.child.pid}/status`, 'utf8'))[1]);
  const before = rss();
  const conns = [];
  for (let i = 0; i < count; i += 100) {
    conns.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => Connection.ws(bridge.url)))));
  }
  // One round trip each, so every relay has its upstream connection and buffers in use.
  await Promise.all(
    conns.map((conn) => new Promise((resolve) => {
      conn.onReplies = resolve;
      conn.write(REQUEST);
    })),
  );
  await new Promise((r) => setTimeout(r, 500));
  const after = rss();
  conns.forEach((conn) => conn.close());
  return { before, after, perConnection: ((after - before) * 1024) / count };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main() {
  const memcachedPort = await startMemcached();
  const seed = await Connection.tcp(memcachedPort);
  await new Promise((resolve) => {
    seed.received = (chunk) => (chunk.toString().includes('STORED') ? resolve() : seed.fail(new Error(`${chunk}`)));
    seed.write(Buffer.from(`set ${KEY} 0 0 ${VALUE_SIZE}\r\n${'x'.repeat(VALUE_SIZE)}\r\n`));
  });
  seed.close();

  const binary = buildBridge();
  const bridge = await startBridge(binary, memcachedPort);
  const websockify = await startWebsockify(memcachedPort);
  const paths = { tcp: memcachedPort, bridge: bridge.url, websockify: websockify.url };
  const workloads = {
    sequential: (p, t) => sequential(p, t),
    inflight64: (p, t) => pipelined(p, t, 1, IN_FLIGHT),
    connections: (p, t) => pipelined(p, t, PLAN.connections, 1),
  };

  // --only WORKLOAD and --paths a,b narrow a run down while investigating one figure.
  if (args.includes('--only')) {
    const only = args[args.indexOf('--only') + 1];
    for (const w of Object.keys(workloads)) if (w !== only) delete workloads[w];
  }
  if (args.includes('--paths')) {
    const keep = args[args.indexOf('--paths') + 1].split(',');
    for (const p of Object.keys(paths)) if (!keep.includes(p)) delete paths[p];
  }
  const runs = {};
  for (const w of Object.keys(workloads)) for (const p of Object.keys(paths)) runs[`${w}/${p}`] = [];
  for (let rep = 0; rep < PLAN.repetitions; rep++) {
    for (const [w, measure] of Object.entries(workloads)) {
      // Paths take turns within a repetition, so drift on the machine hits all of them.
      for (const [p, target] of Object.entries(paths)) {
        runs[`${w}/${p}`].push(await measure(p, target));
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    process.stderr.write(`repetition ${rep + 1}/${PLAN.repetitions} done\n`);
  }
  const m = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)]));
  if (args.includes('--only') || args.includes('--paths')) {
    console.log(m);
    process.exit(0);
  }
  const idle = await idleMemory(bridge, PLAN.idle);

  const added = (p) => m[`sequential/${p}`] - m['sequential/tcp'];
  const figures = {
    plan: PLAN,
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    medians: m,
    runs,
    sequentialAddedUs: { bridge: added('bridge'), websockify: added('websockify') },
    inflight64OfDirect: { bridge: m['inflight64/bridge'] / m['inflight64/tcp'], websockify: m['inflight64/websockify'] / m['inflight64/tcp'] },
    connectionsVsWebsockify: m['connections/bridge'] / m['connections/websockify'],
    idle,
  };
  const targets = {
    sequential: figures.sequentialAddedUs.bridge <= figures.sequentialAddedUs.websockify / 2,
    inflight64: figures.inflight64OfDirect.bridge >= 0.95,
    connections: figures.connectionsVsWebsockify >= 2,
  };
  figures.targets = targets;

  const us = (v) => `${v.toFixed(1)} µs`;
  const ops = (v) => `${Math.round(v).toLocaleString('en-US')} req/s`;
  const pct = (v) => `${(v * 100).toFixed(1)}%`;
  const lines = [
    `Relay benchmark (${SMOKE ? 'SMOKE run, not figures' : `medians of ${PLAN.repetitions} runs of ${PLAN.seconds} s`}; ${figures.cpus} CPUs, Node ${process.version}, ${VALUE_SIZE}-byte values)`,
    '',
    '| workload | direct TCP | memcache-bridge | websockify 0.13 | bridge vs target |',
    '| --- | --- | --- | --- | --- |',
    `| sequential round trip | ${us(m['sequential/tcp'])} | ${us(m['sequential/bridge'])} (+${us(added('bridge'))}) | ${us(m['sequential/websockify'])} (+${us(added('websockify'))}) | adds ${(added('bridge') / added('websockify') * 100).toFixed(0)}% of websockify's overhead (target ≤ 50%): ${targets.sequential ? 'met' : 'NOT met'} |`,
    `| 64 in flight, one socket | ${ops(m['inflight64/tcp'])} | ${ops(m['inflight64/bridge'])} (${pct(figures.inflight64OfDirect.bridge)}) | ${ops(m['inflight64/websockify'])} (${pct(figures.inflight64OfDirect.websockify)}) | ${pct(figures.inflight64OfDirect.bridge)} of direct (target ≥ 95%): ${targets.inflight64 ? 'met' : 'NOT met'} |`,
    `| ${PLAN.connections} connections, sequential gets | ${ops(m['connections/tcp'])} | ${ops(m['connections/bridge'])} | ${ops(m['connections/websockify'])} | ${figures.connectionsVsWebsockify.toFixed(2)}x websockify (target ≥ 2x): ${targets.connections ? 'met' : 'NOT met'} |`,
    '',
    `memcache-bridge resident memory: ${(idle.before / 1024).toFixed(1)} MiB at rest, ${(idle.after / 1024).toFixed(1)} MiB with ${PLAN.idle} idle WebSocket connections (${(idle.perConnection / 1024).toFixed(1)} KiB each)`,
  ];
  console.log(lines.join('\n'));
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(figures, null, 2));
  if (SMOKE) {
    const all = Object.values(m).every((v) => Number.isFinite(v) && v > 0);
    if (!all) throw new Error('a smoke measurement came out empty');
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
