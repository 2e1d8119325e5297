#!/usr/bin/env node
// The relay benchmark: one raw pipelined memcached client (get requests written by hand,
// replies counted by their known length) measures three paths to the same memcached:
//   direct TCP, WebSocket through memcache-bridge (release build), WebSocket through
//   websockify (the PyPI package in .venv).
// Workloads: sequential round trip on one connection; 64 requests in flight on one socket;
// 64 awaiting callers on one socket (each awaits its reply, then sends its next request;
// requests of one tick go out in one write); 10 KB sets, 64 in flight on one socket; 200
// connections each doing sequential gets. Medians of several repetitions, and the bridge's
// resident memory with 9,900 idle relays (two descriptors each: 10,000 do not fit the
// 20,000-descriptor limit of the machine this was written on).
//
//   node bench/relay/run.mjs            full run (about 2.5 minutes), prints a Markdown report
//   node bench/relay/run.mjs --smoke    a few seconds: every path and workload runs once
//   node bench/relay/run.mjs --json F   also writes the figures to F
// For investigating: --repetitions N, --seconds S, --only WORKLOAD, --paths tcp,bridge,
// BRIDGE_FLAGS="--threads 1" (extra bridge flags), MEMCACHED_FLAGS="-R 100", and for an A/B
// comparison taking turns with the others, COMPARE_BRIDGE=path/to/memcache-bridge (with
// COMPARE_BRIDGE_FLAGS) adds the path `compare`: another build or setting of the bridge.
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
  : { repetitions: 9, warmupMs: 300, seconds: 1.5, connections: 200, idle: 9900 };
if (args.includes('--idle')) PLAN.idle = Number(args[args.indexOf('--idle') + 1]);
if (args.includes('--seconds')) PLAN.seconds = Number(args[args.indexOf('--seconds') + 1]);
if (args.includes('--repetitions')) PLAN.repetitions = Number(args[args.indexOf('--repetitions') + 1]);
// Extra bridge flags, for trying settings such as --threads: BRIDGE_FLAGS="--threads 1".
const BRIDGE_FLAGS = (process.env.BRIDGE_FLAGS || '').split(' ').filter(Boolean);
const COMPARE_BRIDGE = process.env.COMPARE_BRIDGE;
const COMPARE_BRIDGE_FLAGS = (process.env.COMPARE_BRIDGE_FLAGS || '').split(' ').filter(Boolean);
// The WebSocket client's masking key. A browser masks in native code; `ws` masks in a
// JavaScript loop (without the optional bufferutil addon) that took 42% of the client's CPU
// in the 10 KB set workload, so the client, not the relay, set that figure. An all-zero key
// (valid: RFC 6455 only asks that it be unpredictable to scripts) lets ws skip the loop, and
// the relays still unmask every byte. BENCH_WS_MASK=random measures with ws's own masking.
const ZERO_MASK = process.env.BENCH_WS_MASK !== 'random';
const IN_FLIGHT = 64;
const VALUE_SIZE = 100;
const KEY = 'relay-bench-key';
const REQUEST = Buffer.from(`get ${KEY}\r\n`);
const REPLY_SIZE = Buffer.byteLength(`VALUE ${KEY} 0 ${VALUE_SIZE}\r\n`) + VALUE_SIZE + 2 + 'END\r\n'.length;
const GET = { request: REQUEST, replySize: REPLY_SIZE, replyStart: 'VALUE ' };
const SET_SIZE = 10 * 1024;
const SET = {
  request: Buffer.from(`set relay-bench-set 0 0 ${SET_SIZE}\r\n${'s'.repeat(SET_SIZE)}\r\n`),
  replySize: 'STORED\r\n'.length,
  replyStart: 'STORED',
};
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

async function startMemcached(extra = []) {
  const port = await freePort();
  const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  start('/usr/bin/memcached', ['-U', '0', '-l', '127.0.0.1', '-p', String(port), '-c', '4096', '-t', '4', ...(process.env.MEMCACHED_FLAGS || '').split(' ').filter(Boolean), ...extra, ...user]);
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

async function startBridge(binary, upstreamPort, extra = [], flags = BRIDGE_FLAGS) {
  const child = start(binary, ['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, ...flags, ...extra], {
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
  static tcp(port, kind = GET) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        const conn = new Connection((bytes) => socket.write(bytes), () => socket.destroy(), kind);
        socket.on('data', (chunk) => conn.received(chunk));
        resolve(conn);
      });
    });
  }

  static ws(url, kind = GET) {
    return new Promise((resolve, reject) => {
      const options = { perMessageDeflate: false };
      if (ZERO_MASK) options.generateMask = (mask) => mask.fill(0);
      const ws = new WebSocket(url, ['binary'], options);
      ws.binaryType = 'nodebuffer';
      ws.once('error', reject);
      ws.once('open', () => {
        ws._socket.setNoDelay(true);
        const conn = new Connection((bytes) => ws.send(bytes, { binary: true }), () => ws.terminate(), kind);
        ws.on('message', (chunk) => conn.received(chunk));
        ws.on('close', (code, reason) => {
          if (!conn.closing) conn.fail(new Error(`closed ${code} ${reason}`));
        });
        resolve(conn);
      });
    });
  }

  constructor(write, destroy, kind) {
    this.write = write;
    this.destroy = destroy;
    this.kind = kind;
    this.partial = 0; // bytes of a reply not yet complete
    this.onReplies = null; // (count) => void
    this.checked = false;
    this.closing = false;
  }

  received(chunk) {
    if (!this.checked) {
      // The first reply proves the path relays real memcached answers.
      const start = this.kind.replyStart;
      if (!chunk.subarray(0, start.length).equals(Buffer.from(start))) this.fail(new Error(`unexpected reply ${chunk}`));
      this.checked = true;
    }
    const size = this.kind.replySize;
    const total = this.partial + chunk.length;
    const complete = Math.floor(total / size);
    this.partial = total % size;
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

const open = (pathName, target, kind = GET) => (pathName === 'tcp' ? Connection.tcp(target, kind) : Connection.ws(target, kind));

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
async function pipelined(pathName, target, count, depth, kind = GET) {
  const conns = await Promise.all(Array.from({ length: count }, () => open(pathName, target, kind)));
  const batch = (n) => (n === 1 ? kind.request : Buffer.concat(Array(n).fill(kind.request)));
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

/**
 * `callers` async callers on one connection, as an application's concurrent requests are:
 * each awaits its own reply (a Promise), then makes its next request; the requests made in
 * one tick go out in one write (one frame). Returns requests per second.
 */
async function awaitingCallers(pathName, target, callers) {
  const conn = await open(pathName, target);
  const waiting = []; // resolvers, in request order
  let queued = 0;
  let flushScheduled = false;
  const flush = () => {
    flushScheduled = false;
    const n = queued;
    queued = 0;
    conn.write(n === 1 ? REQUEST : Buffer.concat(Array(n).fill(REQUEST)));
  };
  const call = () => new Promise((resolve) => {
    waiting.push(resolve);
    queued += 1;
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  });
  conn.onReplies = (n) => {
    for (const resolve of waiting.splice(0, n)) resolve();
  };
  let done = 0;
  let measuring = false;
  let stopped = false;
  const caller = async () => {
    while (!stopped) {
      await call();
      if (measuring) done += 1;
    }
  };
  const running = Array.from({ length: callers }, caller);
  await new Promise((r) => setTimeout(r, PLAN.warmupMs));
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, PLAN.seconds * 1000));
  measuring = false;
  const t1 = performance.now();
  stopped = true;
  await Promise.all(running);
  conn.close();
  return done / ((t1 - t0) / 1000);
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
  return { count, before, after, perConnection: ((after - before) * 1024) / count };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Stores the value the gets read. */
async function seedKey(memcachedPort) {
  const seed = await Connection.tcp(memcachedPort);
  await new Promise((resolve) => {
    seed.received = (chunk) => (chunk.toString().includes('STORED') ? resolve() : seed.fail(new Error(`${chunk}`)));
    seed.write(Buffer.from(`set ${KEY} 0 0 ${VALUE_SIZE}\r\n${'x'.repeat(VALUE_SIZE)}\r\n`));
  });
  seed.close();
}

async function main() {
  const memcachedPort = await startMemcached();
  await seedKey(memcachedPort);

  const binary = buildBridge();
  const bridge = await startBridge(binary, memcachedPort);
  const websockify = await startWebsockify(memcachedPort);
  const paths = { tcp: memcachedPort, bridge: bridge.url, websockify: websockify.url };
  if (COMPARE_BRIDGE) paths.compare = (await startBridge(COMPARE_BRIDGE, memcachedPort, [], COMPARE_BRIDGE_FLAGS)).url;
  const workloads = {
    sequential: (p, t) => sequential(p, t),
    inflight64: (p, t) => pipelined(p, t, 1, IN_FLIGHT),
    callers64: (p, t) => awaitingCallers(p, t, IN_FLIGHT),
    set10k: (p, t) => pipelined(p, t, 1, IN_FLIGHT, SET),
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
    if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ medians: m, runs }, null, 2));
    process.exit(0);
  }
  // Idle relays on a bridge of their own, allowed that many (memcached too).
  bridge.child.kill('SIGKILL');
  const idleMemcached = await startMemcached(['-c', String(PLAN.idle + 1000)]);
  await seedKey(idleMemcached);
  const idleBridge = await startBridge(binary, idleMemcached, [
    '--max-connections', String(PLAN.idle + 100),
    '--max-connections-per-client', String(PLAN.idle + 100),
    '--max-upstream-connections', String(PLAN.idle + 100),
  ]);
  const idle = await idleMemory(idleBridge, PLAN.idle);

  const added = (p) => m[`sequential/${p}`] - m['sequential/tcp'];
  const figures = {
    plan: PLAN,
    zeroMask: ZERO_MASK,
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    medians: m,
    runs,
    sequentialAddedUs: { bridge: added('bridge'), websockify: added('websockify') },
    inflight64OfDirect: { bridge: m['inflight64/bridge'] / m['inflight64/tcp'], websockify: m['inflight64/websockify'] / m['inflight64/tcp'] },
    callers64OfDirect: { bridge: m['callers64/bridge'] / m['callers64/tcp'], websockify: m['callers64/websockify'] / m['callers64/tcp'] },
    set10kOfDirect: { bridge: m['set10k/bridge'] / m['set10k/tcp'], websockify: m['set10k/websockify'] / m['set10k/tcp'] },
    connectionsVsWebsockify: m['connections/bridge'] / m['connections/websockify'],
    idle,
  };
  const targets = {
    sequential: figures.sequentialAddedUs.bridge <= figures.sequentialAddedUs.websockify / 2,
    inflight64: figures.inflight64OfDirect.bridge >= 0.95,
    callers64: figures.callers64OfDirect.bridge >= figures.callers64OfDirect.websockify,
    set10k: figures.set10kOfDirect.bridge >= 0.5,
    idle: idle.perConnection <= 10 * 1024,
    connections: figures.connectionsVsWebsockify >= 2,
  };
  figures.targets = targets;

  const us = (v) => `${v.toFixed(1)} µs`;
  const ops = (v) => `${Math.round(v).toLocaleString('en-US')} req/s`;
  const pct = (v) => `${(v * 100).toFixed(1)}%`;
  const lines = [
    `Relay benchmark (${SMOKE ? 'SMOKE run, not figures' : `medians of ${PLAN.repetitions} runs of ${PLAN.seconds} s`}; ${figures.cpus} CPUs, Node ${process.version}, ${VALUE_SIZE}-byte values; WebSocket masking key ${ZERO_MASK ? 'all zero' : 'random (ws masks in JavaScript)'})`,
    '',
    '| workload | direct TCP | memcache-bridge | websockify 0.13 | bridge vs target |',
    '| --- | --- | --- | --- | --- |',
    `| sequential round trip | ${us(m['sequential/tcp'])} | ${us(m['sequential/bridge'])} (+${us(added('bridge'))}) | ${us(m['sequential/websockify'])} (+${us(added('websockify'))}) | adds ${(added('bridge') / added('websockify') * 100).toFixed(0)}% of websockify's overhead (target ≤ 50%): ${targets.sequential ? 'met' : 'NOT met'} |`,
    `| 64 in flight, one socket | ${ops(m['inflight64/tcp'])} | ${ops(m['inflight64/bridge'])} (${pct(figures.inflight64OfDirect.bridge)}) | ${ops(m['inflight64/websockify'])} (${pct(figures.inflight64OfDirect.websockify)}) | ${pct(figures.inflight64OfDirect.bridge)} of direct (target ≥ 95%): ${targets.inflight64 ? 'met' : 'NOT met'} |`,
    `| 64 awaiting callers, one socket | ${ops(m['callers64/tcp'])} | ${ops(m['callers64/bridge'])} (${pct(figures.callers64OfDirect.bridge)}) | ${ops(m['callers64/websockify'])} (${pct(figures.callers64OfDirect.websockify)}) | at least websockify's: ${targets.callers64 ? 'met' : 'NOT met'} |`,
    `| 10 KB sets, 64 in flight | ${ops(m['set10k/tcp'])} | ${ops(m['set10k/bridge'])} (${pct(figures.set10kOfDirect.bridge)}) | ${ops(m['set10k/websockify'])} (${pct(figures.set10kOfDirect.websockify)}) | ${pct(figures.set10kOfDirect.bridge)} of direct (target ≥ 50%): ${targets.set10k ? 'met' : 'NOT met'} |`,
    `| ${PLAN.connections} connections, sequential gets | ${ops(m['connections/tcp'])} | ${ops(m['connections/bridge'])} | ${ops(m['connections/websockify'])} | ${figures.connectionsVsWebsockify.toFixed(2)}x websockify (target ≥ 2x): ${targets.connections ? 'met' : 'NOT met'} |`,
    '',
    `memcache-bridge resident memory: ${(idle.before / 1024).toFixed(1)} MiB at rest, ${(idle.after / 1024).toFixed(1)} MiB with ${PLAN.idle} idle relays (${(idle.perConnection / 1024).toFixed(1)} KiB each; target ≤ 10 KiB: ${targets.idle ? 'met' : 'NOT met'})`,
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
