#!/usr/bin/env node
// Where a memcache-wasm get spends its time: each workload runs in a child process under
// `node --cpu-prof` against a memcached of its own, with counters on every crossing into wasm
// (Engine.submit, Engine.receive), every socket write and every chunk received. The parent
// sorts the profile's self time into JavaScript of the client, wasm-bindgen's glue, the wasm
// engine, Node's socket and stream code, GC and idle, and writes bench/results/profile.md.
//
//   node bench/profile.mjs [--ops N] [--size BYTES] [--out DIR]
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
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

function parseArgs(argv) {
  const opts = { ops: null, size: 100, out: path.join(ROOT, 'bench/results'), child: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--ops') opts.ops = Number(argv[++i]);
    else if (a === '--size') opts.size = Number(argv[++i]);
    else if (a === '--out') opts.out = path.resolve(argv[++i]);
    else if (a === '--child') opts.child = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

/** Child: run one workload with counters on, print the counts as JSON on stdout. */
async function child(opts) {
  const { startMemcached } = await import('./servers.mjs');
  const { dataset, populate, warmUp, timeOperations } = await import('./workloads.mjs');
  const { wasmClientEntry } = await import('./contenders.mjs');
  const workload = PROFILED.find((w) => w.id === opts.child);
  const ops = opts.ops ?? workload.ops;
  const glue = await import(pathToFileURL(path.join(ROOT, 'client-wasm/pkg/memcache_wasm.js')).href);
  const { Client } = await import(pathToFileURL(wasmClientEntry()).href);

  const counts = { submit: 0, receive: 0, submitMs: 0, receiveMs: 0, bytesIn: 0, writes: 0, bytesOut: 0 };
  const proto = glue.Engine.prototype;
  const submit = proto.submit;
  const receive = proto.receive;
  proto.submit = function countedSubmit(batch) {
    const t0 = performance.now();
    try {
      return submit.call(this, batch);
    } finally {
      counts.submitMs += performance.now() - t0;
      counts.submit++;
    }
  };
  proto.receive = function countedReceive(server, chunk) {
    const t0 = performance.now();
    try {
      return receive.call(this, server, chunk);
    } finally {
      counts.receiveMs += performance.now() - t0;
      counts.receive++;
      counts.bytesIn += chunk.length;
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
    const client = new Client([server.address], { timeout: 10_000 });
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
      const found = await client.getMulti(list);
      if (Object.keys(found).length !== list.length) throw new Error('bad multi-get');
    };
    const set = async (i) => {
      if ((await client.set(data.keys[i % data.keys.length], data.value, 0)) !== true) throw new Error('bad set');
    };
    const run = await timeOperations({ get, multi, set }[workload.kind], {
      ops,
      inFlight: workload.inFlight,
      timeLimitMs: 60_000,
    });
    await client.close();
    process.stdout.write(`${JSON.stringify({ workload: workload.id, ops: run.ops, elapsedMs: run.elapsedMs, counts })}\n`);
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
  const categories = {};
  const functions = new Map();
  let total = 0;
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const category = classify(functionName, url);
    categories[category] = (categories[category] ?? 0) + ms;
    total += ms;
    const name = `${functionName || '(anonymous)'} ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`;
    const f = functions.get(name) ?? { name, category, ms: 0 };
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

function classify(name, url) {
  if (name === '(idle)') return 'idle (waiting for the socket)';
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)') return 'V8/native (program)';
  if (url.startsWith('wasm://') || /^(\$?wasm-function|\$)/.test(name)) return 'wasm engine';
  if (url.includes('/client-wasm/pkg/')) return 'wasm-bindgen glue (copies in/out)';
  if (url.includes('/client-wasm/js/')) return 'memcache-wasm JavaScript';
  if (url.includes('/bench/')) return 'benchmark harness';
  if (url.startsWith('node:')) return 'Node net/stream/timers';
  if (url === '') return 'native (builtins, promise machinery)';
  return 'other';
}

function runChild(workload, opts, profileDir) {
  const args = [
    '--cpu-prof',
    '--cpu-prof-dir', profileDir,
    '--cpu-prof-name', `${workload.id}.cpuprofile`,
    new URL(import.meta.url).pathname,
    '--child', workload.id,
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
  lines.push(`command: \`node bench/profile.mjs${opts.size !== 100 ? ` --size ${opts.size}` : ''}${opts.ops ? ` --ops ${opts.ops}` : ''}\`; CPU profiles in ${path.relative(ROOT, profileDir)}/`);
  lines.push('');
  const summary = [];
  for (const workload of PROFILED) {
    const result = await runChild(workload, opts, profileDir);
    const files = (await readdir(profileDir)).filter((f) => f.startsWith(workload.id));
    const profile = JSON.parse(await readFile(path.join(profileDir, files[0]), 'utf8'));
    const d = digest(profile);
    const c = result.counts;
    const perOp = (n) => (n / result.ops).toFixed(3);
    const usPerOp = (ms) => ((ms * 1000) / result.ops).toFixed(2);
    summary.push({ ...result, digest: d });
    lines.push(`## ${workload.id}: ${result.ops} ops, ${workload.inFlight} in flight, ${Math.round(result.ops / (result.elapsedMs / 1000))} ops/s`);
    lines.push('');
    lines.push(`- wall time per op: ${usPerOp(result.elapsedMs)} µs`);
    lines.push(`- crossings per op: submit ${perOp(c.submit)}, receive ${perOp(c.receive)} (submit ${usPerOp(c.submitMs)} µs/op, receive ${usPerOp(c.receiveMs)} µs/op, measured around the calls, glue copies included)`);
    lines.push(`- socket writes per op ${perOp(c.writes)}, chunks received per op ${perOp(c.receive)}, bytes in per chunk ${Math.round(c.bytesIn / Math.max(1, c.receive))}`);
    lines.push('');
    lines.push('| where (self time) | ms | share | µs per op |');
    lines.push('|---|--:|--:|--:|');
    for (const [cat, ms] of Object.entries(d.categories).sort((a, b) => b[1] - a[1])) {
      lines.push(`| ${cat} | ${ms.toFixed(0)} | ${((ms / d.total) * 100).toFixed(1)}% | ${usPerOp(ms)} |`);
    }
    lines.push('');
    lines.push('| top functions (self time) | category | ms | share |');
    lines.push('|---|---|--:|--:|');
    for (const f of d.top) {
      lines.push(`| \`${f.name}\` | ${f.category} | ${f.ms.toFixed(0)} | ${((f.ms / d.total) * 100).toFixed(1)}% |`);
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
