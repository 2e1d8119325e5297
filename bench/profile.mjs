#!/usr/bin/env node
// Where a memcache-wasm get spends its time: each workload runs in a child process against a
// memcached of its own, with V8's CPU profiler (what `node --cpu-prof` runs, here started
// through node:inspector around the timed loop only, so start-up, filling and warm-up stay
// out) and counters on every crossing into wasm (Engine.submit, Engine.receive), every socket
// write and every chunk received. The same runs on the raw socket client give the floor.
// The parent sorts self time into the client's JavaScript, wasm-bindgen's glue, the wasm
// engine, Node's socket code, GC and idle, and writes bench/results/profile.md.
//
//   node bench/profile.mjs [--ops N] [--size BYTES] [--out DIR]
import { spawn } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
// The workloads profiled: the gets the targets name, and concurrent sets.
const PROFILED = [
  { id: 'seq-get', kind: 'get', inFlight: 1, ops: 20_000 },
  { id: 'get-64', kind: 'get', inFlight: 64, ops: 200_000 },
  { id: 'multi-get', kind: 'multi', inFlight: 1, ops: 4_000 },
  { id: 'set-64', kind: 'set', inFlight: 64, ops: 100_000 },
];
// A child that has not finished in this time is stuck; its profile would be useless anyway.
const CHILD_TIMEOUT_MS = 120_000;
const TOP_FUNCTIONS = 12;
// 100 µs between samples: fine enough for a 25 µs operation to show up over 20,000 of them.
const SAMPLING_INTERVAL_US = 100;
const PROFILED_CONTENDERS = ['wasm-tcp', 'raw'];

function parseArgs(argv) {
  const opts = { ops: null, size: 100, out: path.join(ROOT, 'bench/results'), child: null, contender: 'wasm-tcp', profile: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--ops') opts.ops = Number(argv[++i]);
    else if (a === '--size') opts.size = Number(argv[++i]);
    else if (a === '--out') opts.out = path.resolve(argv[++i]);
    else if (a === '--child') opts.child = argv[++i];
    else if (a === '--contender') opts.contender = argv[++i];
    else if (a === '--profile') opts.profile = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

/** Child: run one workload with counters on, print the counts as JSON on stdout. */
async function child(opts) {
  const { startMemcached } = await import('./servers.mjs');
  const { dataset, populate, warmUp, timeOperations } = await import('./workloads.mjs');
  const { CONTENDERS, WASM_PACKAGE } = await import('./contenders.mjs');
  const workload = PROFILED.find((w) => w.id === opts.child);
  const ops = opts.ops ?? workload.ops;
  const glue = await import(pathToFileURL(path.join(WASM_PACKAGE, 'pkg/memcache_wasm.js')).href);

  const counts = { submit: 0, receive: 0, submitMs: 0, receiveMs: 0, bytesIn: 0, writes: 0, bytesOut: 0 };
  const proto = glue.Engine.prototype;
  const submit = proto.submit;
  const receive = proto.receive;
  // Pass every argument through: the engine's calls take the clock first (submit(now, len),
  // receive(now, server, len)).
  proto.submit = function countedSubmit(...args) {
    const t0 = performance.now();
    try {
      return submit.apply(this, args);
    } finally {
      counts.submitMs += performance.now() - t0;
      counts.submit++;
    }
  };
  proto.receive = function countedReceive(...args) {
    const t0 = performance.now();
    try {
      return receive.apply(this, args);
    } finally {
      counts.receiveMs += performance.now() - t0;
      counts.receive++;
      // the last argument: the chunk's length in the engine's input buffer
      counts.bytesIn += args[args.length - 1];
    }
  };
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function countedWrite(data, ...rest) {
    counts.writes++;
    counts.bytesOut += data.length;
    return write.call(this, data, ...rest);
  };

  const server = await startMemcached();
  try {
    // the same adapter the benchmark measures (a thin pass-through to Client)
    const client = await CONTENDERS.find((c) => c.id === opts.contender).connect({ addresses: [server.address] });
    const data = dataset(opts.size);
    await populate(client, data, 60_000);
    await warmUp(client, data, { smoke: false, timeLimitMs: 30_000 });
    for (const key of Object.keys(counts)) counts[key] = 0;
    const get = async (i) => {
      const v = await client.get(data.keys[i % data.keys.length]);
      if (v === undefined || v.length !== data.valueSize) throw new Error('bad get');
    };
    const multi = async (i) => {
      const list = data.multiKeys[i % data.multiKeys.length];
      if ((await client.getMulti(list)) !== list.length) throw new Error('bad multi-get');
    };
    const set = async (i) => {
      if ((await client.set(data.keys[i % data.keys.length], data.value)) !== true) throw new Error('bad set');
    };
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US });
    await session.post('Profiler.start');
    const run = await timeOperations({ get, multi, set }[workload.kind], {
      ops,
      inFlight: workload.inFlight,
      timeLimitMs: 60_000,
    });
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    await writeFile(opts.profile, JSON.stringify(profile));
    await client.close();
    process.stdout.write(`${JSON.stringify({ workload: workload.id, contender: opts.contender, ops: run.ops, elapsedMs: run.elapsedMs, counts })}\n`);
  } finally {
    await server.stop();
  }
}

/** Self time (ms) of each profile node, summed by category and by function. */
function digest(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0) / 1000);
  }
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // A builtin (no script URL: promise machinery, typed arrays, TextDecoder's native half)
  // counts for whoever called it, so that the categories say whose work it was.
  const categoryOf = new Map();
  const category = (id) => {
    if (categoryOf.has(id)) return categoryOf.get(id);
    const { functionName, url } = byId.get(id).callFrame;
    let c = classify(functionName, url);
    if (c === null) c = parent.has(id) ? category(parent.get(id)) : 'V8 builtins';
    categoryOf.set(id, c);
    return c;
  };
  const categories = {};
  const functions = new Map();
  let total = 0;
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const cat = category(id);
    categories[cat] = (categories[cat] ?? 0) + ms;
    total += ms;
    const name = `${functionName || '(anonymous)'} ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`;
    const f = functions.get(name) ?? { name, category: cat, ms: 0 };
    f.ms += ms;
    functions.set(name, f);
  }
  const top = [...functions.values()].sort((a, b) => b.ms - a.ms).slice(0, TOP_FUNCTIONS);
  return { total, categories, top };
}

function shortUrl(url) {
  if (!url) return '';
  return url.replace(pathToFileURL(ROOT).href + '/', '').replace(/^wasm:\/\/wasm\/.*$/, 'wasm');
}

const IDLE = 'idle (waiting for memcached)';
// The measured package (client-wasm/, or MEMCACHE_WASM_PACKAGE), as profile URLs name it.
const PACKAGE_URL = pathToFileURL(
  path.resolve(process.env.MEMCACHE_WASM_PACKAGE ?? path.join(ROOT, 'client-wasm')),
).href;

/** The category of a profile node, or null for a builtin that counts for its caller. */
function classify(name, url) {
  if (name === '(idle)') return IDLE;
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)') return 'V8/native (program)';
  if (name === '(root)') return 'V8 builtins';
  if (/^(writeBuffer|writev|write\w*String|readStart|readStop)$/.test(name) && url === '') {
    return 'socket syscalls (incl. loopback delivery)';
  }
  if (url.startsWith('wasm://') || /^(\$?wasm-function|\$)/.test(name)) return 'wasm engine';
  if (url.startsWith(PACKAGE_URL + '/pkg/')) return 'wasm-bindgen glue (copies in/out)';
  if (url.startsWith(PACKAGE_URL + '/js/')) return 'memcache-wasm JavaScript';
  if (url.includes('/bench/raw-client')) return 'raw client JavaScript';
  if (url.includes('/bench/') || url.startsWith('node:inspector')) return 'benchmark harness';
  if (url.startsWith('node:')) return 'Node net/stream/timers/encoding';
  if (url === '') return null;
  return 'other';
}

function runChild(workload, contender, opts, profileFile) {
  const args = [
    new URL(import.meta.url).pathname,
    '--child', workload.id,
    '--contender', contender,
    '--profile', profileFile,
    '--size', String(opts.size),
  ];
  if (opts.ops) args.push('--ops', String(opts.ops));
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`profile child ${workload.id} exited ${code ?? signal}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

async function parent(opts) {
  const profileDir = path.join(opts.out, 'profile');
  await rm(profileDir, { recursive: true, force: true });
  await mkdir(profileDir, { recursive: true });
  const lines = [`# memcache-wasm hot path profile (${opts.size}-byte values, one memcached)`, ''];
  lines.push(
    `command: \`node bench/profile.mjs${opts.size !== 100 ? ` --size ${opts.size}` : ''}${opts.ops ? ` --ops ${opts.ops}` : ''}\`; CPU profiles (open in Chrome DevTools) in ${path.relative(ROOT, profileDir)}/. Self time per operation, sampled every ${SAMPLING_INTERVAL_US} µs over the timed loop only; "idle" is the client waiting for memcached.`,
  );
  lines.push('');
  const summary = [];
  for (const workload of PROFILED) {
    const results = {};
    for (const contender of PROFILED_CONTENDERS) {
      const file = path.join(profileDir, `${workload.id}.${contender}.cpuprofile`);
      const result = await runChild(workload, contender, opts, file);
      result.digest = digest(JSON.parse(await readFile(file, 'utf8')));
      results[contender] = result;
      summary.push(result);
    }
    const ours = results['wasm-tcp'];
    const raw = results.raw;
    const c = ours.counts;
    const perOp = (r, n) => (n / r.ops).toFixed(3);
    const usPerOp = (r, ms) => ((ms * 1000) / r.ops).toFixed(2);
    const rateOf = (r) => Math.round(r.ops / (r.elapsedMs / 1000));
    lines.push(`## ${workload.id}: ${ours.ops} ops, ${workload.inFlight} in flight`);
    lines.push('');
    lines.push(`- memcache-wasm TCP ${rateOf(ours)} ops/s (${usPerOp(ours, ours.elapsedMs)} µs wall per op); raw socket ${rateOf(raw)} ops/s (${usPerOp(raw, raw.elapsedMs)} µs)`);
    lines.push(`- memcache-wasm crossings per op: submit ${perOp(ours, c.submit)}, receive ${perOp(ours, c.receive)}; time inside them ${usPerOp(ours, c.submitMs)} + ${usPerOp(ours, c.receiveMs)} µs per op (timed around the calls, wasm-bindgen's copies included)`);
    lines.push(`- socket writes per op: memcache-wasm ${perOp(ours, c.writes)}, raw ${perOp(raw, raw.counts.writes)}; memcache-wasm reads ${Math.round(c.bytesIn / Math.max(1, c.receive))} bytes per chunk`);
    lines.push('');
    lines.push('| where (self time, µs per op) | memcache-wasm TCP | raw socket |');
    lines.push('|---|--:|--:|');
    const cats = [...new Set([...Object.keys(ours.digest.categories), ...Object.keys(raw.digest.categories)])];
    cats.sort((a, b) => (ours.digest.categories[b] ?? 0) - (ours.digest.categories[a] ?? 0));
    for (const cat of cats) {
      lines.push(`| ${cat} | ${usPerOp(ours, ours.digest.categories[cat] ?? 0)} | ${usPerOp(raw, raw.digest.categories[cat] ?? 0)} |`);
    }
    const busy = (r) => r.digest.total - (r.digest.categories[IDLE] ?? 0);
    lines.push(`| **busy (all but idle)** | **${usPerOp(ours, busy(ours))}** | **${usPerOp(raw, busy(raw))}** |`);
    lines.push('');
    lines.push('| memcache-wasm top functions (self time) | category | µs per op | share of busy |');
    lines.push('|---|---|--:|--:|');
    for (const f of ours.digest.top.filter((t) => t.category !== IDLE)) {
      lines.push(`| \`${f.name}\` | ${f.category} | ${usPerOp(ours, f.ms)} | ${((f.ms / busy(ours)) * 100).toFixed(1)}% |`);
    }
    lines.push('');
  }
  const text = `${lines.join('\n')}\n`;
  await writeFile(path.join(opts.out, 'profile.md'), text);
  await writeFile(path.join(opts.out, 'profile.json'), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(text);
}

const opts = parseArgs(process.argv.slice(2));
(opts.child ? child(opts) : parent(opts)).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[profile] ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
