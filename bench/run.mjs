#!/usr/bin/env node
// The benchmark, in one command: builds what it measures, starts its own memcached instances and
// a memcache-bridge on loopback, runs every workload on every contender (repetitions interleaved
// so that drift hits all alike), runs the relay comparison of bench/relay, and writes a Markdown
// report, JSON and a PNG chart to bench/results/. `--smoke` touches everything once, in seconds.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { CONTENDERS, WASM_PACKAGE } from './contenders.mjs';
import { RawClient } from './raw-client.mjs';
import { MEMCACHED_ARGS, startBridge, startMemcached } from './servers.mjs';
import {
  SERVER_COUNTS,
  VALUE_SIZES,
  WORKLOADS,
  dataset,
  populate,
  runWorkload,
  warmUp,
} from './workloads.mjs';
import { checkTargets, markdown, setupName, summarise, summaryMarkdown } from './report.mjs';
import { PAIRED_KEYSPACE, pairedSequentialGet } from './paired.mjs';
import { chartSvg, renderChart } from './chart.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const USAGE = `usage: node bench/run.mjs [options]

  --smoke              tiny counts, one repetition, every contender and workload once (seconds);
                       exits non-zero on any error. What scripts/test.sh runs.
  --reps N             repetitions of the full run (default 3; medians are over these)
  --only a,b           only these contenders (${CONTENDERS.map((c) => c.id).join(', ')})
  --no-build           use client-wasm/pkg and the bridge binary as they are
  --no-relay           skip the relay comparison (bench/relay)
  --bridge-bin PATH    the memcache-bridge binary (default: target/release, built with cargo)
  --time-limit S       bound on each timed workload, in seconds (default 20; smoke 5)
  --out DIR            where results go (default bench/results)
  --help               this text

environment: MEMCACHE_WASM_PACKAGE=DIR measures another build of the package (a folder with
its package.json, js/ and pkg/) instead of client-wasm/, for before/after comparisons.`;

// Full runs take medians over at least this many repetitions (issue 6).
const DEFAULT_REPS = 3;
const DEFAULT_TIME_LIMIT_S = 20;
const SMOKE_TIME_LIMIT_S = 5;
// Populating 5,000 keys takes well under a second; this bounds a stuck client.
const POPULATE_LIMIT_MS = 60_000;
// The relay comparison is bounded on its own side; this bounds a hung child process.
const RELAY_TIMEOUT_MS = { smoke: 60_000, full: 15 * 60_000 };

function parseArgs(argv) {
  const opts = {
    smoke: false,
    reps: DEFAULT_REPS,
    only: null,
    build: true,
    relay: true,
    bridgeBin: null,
    timeLimitS: null,
    out: path.join(ROOT, 'bench/results'),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--smoke') opts.smoke = true;
    else if (arg === '--reps') opts.reps = Number(value());
    else if (arg === '--only') opts.only = value().split(',');
    else if (arg === '--no-build') opts.build = false;
    else if (arg === '--no-relay') opts.relay = false;
    else if (arg === '--bridge-bin') opts.bridgeBin = path.resolve(value());
    else if (arg === '--time-limit') opts.timeLimitS = Number(value());
    else if (arg === '--out') opts.out = path.resolve(value());
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  if (!Number.isInteger(opts.reps) || opts.reps < 1) throw new Error('--reps needs a positive integer');
  if (opts.smoke) opts.reps = 1;
  opts.timeLimitS ??= opts.smoke ? SMOKE_TIME_LIMIT_S : DEFAULT_TIME_LIMIT_S;
  if (!(opts.timeLimitS > 0)) throw new Error('--time-limit needs a positive number of seconds');
  if (opts.only) {
    for (const id of opts.only) {
      if (!CONTENDERS.some((c) => c.id === id)) throw new Error(`unknown contender ${id}`);
    }
  }
  return opts;
}

function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  let memcached = 'memcached';
  try {
    memcached = execFileSync('memcached', ['-V'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as plain "memcached"; starting it below fails loudly if it is missing
  }
  return { cpu: model, nproc: os.availableParallelism(), node: process.version, memcached };
}

function cargoTargetDir() {
  return process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
}

/** Builds the wasm package and the bridge (release: the relay comparison builds the same). */
function build(opts) {
  const buildWasm = path.join(ROOT, 'scripts/build-wasm.sh');
  if (!existsSync(buildWasm)) throw new Error('scripts/build-wasm.sh is missing: cannot build memcache-wasm');
  log('building memcache-wasm (scripts/build-wasm.sh)');
  execFileSync(buildWasm, [], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (!opts.bridgeBin) {
    log('building memcache-bridge (cargo build --release -p memcache-bridge)');
    execFileSync('cargo', ['build', '-q', '--release', '-p', 'memcache-bridge'], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }
}

function bridgeBinary(opts) {
  const bin = opts.bridgeBin ?? path.join(cargoTargetDir(), 'release', 'memcache-bridge');
  if (!existsSync(bin)) throw new Error(`no memcache-bridge binary at ${bin} (run without --no-build, or pass --bridge-bin)`);
  return bin;
}

function wasmSize() {
  const dir = path.join(WASM_PACKAGE, 'pkg');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.wasm')) : [];
  if (files.length !== 1) throw new Error(`expected one .wasm in client-wasm/pkg, found ${files.length}`);
  const bytes = readFileSync(path.join(dir, files[0]));
  return { file: path.join(path.relative(ROOT, dir), files[0]), rawBytes: bytes.length, gzipBytes: gzipSync(bytes, { level: 9 }).length };
}

/** Runs bench/relay (the relay comparison) as a child process; resolves with its Markdown. */
function runRelay(opts) {
  const entry = path.join(ROOT, 'bench/relay/run.mjs');
  if (!existsSync(entry)) return Promise.reject(new Error('bench/relay/run.mjs is missing'));
  const args = [entry, '--json', path.join(opts.out, opts.smoke ? 'relay-smoke.json' : 'relay.json')];
  if (opts.smoke) args.push('--smoke');
  log(`relay comparison: node ${path.relative(ROOT, entry)} ${args.slice(1).join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.smoke ? RELAY_TIMEOUT_MS.smoke : RELAY_TIMEOUT_MS.full);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`bench/relay exited ${code ?? signal}`));
    });
  });
}

/** One contender on one setup: connect, fill, warm up, then every workload in order. */
async function measureContender(contender, setup, ctx) {
  const { addresses, data, opts, rep } = ctx;
  const samples = [];
  const flusher = await RawClient.connect(addresses);
  try {
    await flusher.flushAll();
  } finally {
    flusher.close();
  }
  const client = await contender.connect({ addresses, bridgeUrl: ctx.bridgeUrl });
  try {
    const timeLimitMs = opts.timeLimitS * 1000;
    await populate(client, data, POPULATE_LIMIT_MS);
    await warmUp(client, data, { smoke: opts.smoke, timeLimitMs });
    for (const workload of WORKLOADS) {
      const result = await runWorkload(client, workload, data, { smoke: opts.smoke, timeLimitMs });
      samples.push({ rep, contender: contender.id, ...setup, workload: workload.id, ...result });
    }
  } finally {
    await client.close();
  }
  return samples;
}

/** Every contender at once on the first server, sequential gets in alternating blocks. */
async function measurePaired(contenders, valueSize, { servers, bridge, opts }) {
  const addresses = [servers[0].address];
  const flusher = await RawClient.connect(addresses);
  try {
    await flusher.flushAll();
  } finally {
    flusher.close();
  }
  const clients = [];
  try {
    for (const contender of contenders) {
      if (contender.id === 'wasm-bridge' && !bridge) continue;
      const client = await contender.connect({ addresses, bridgeUrl: bridge?.url });
      const data = dataset(valueSize, PAIRED_KEYSPACE, `paired-${contender.id}`);
      clients.push({ id: contender.id, client, data });
      await populate(client, data, POPULATE_LIMIT_MS);
    }
    return await pairedSequentialGet(clients, { smoke: opts.smoke });
  } finally {
    for (const { client } of clients) await client.close();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const contenders = CONTENDERS.filter((c) => !opts.only || opts.only.includes(c.id));
  await mkdir(opts.out, { recursive: true });
  if (opts.build && process.env.MEMCACHE_WASM_PACKAGE) {
    throw new Error('MEMCACHE_WASM_PACKAGE names a prebuilt package: add --no-build');
  }
  if (opts.build) build(opts);
  const meta = {
    command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    smoke: opts.smoke,
    reps: opts.reps,
    startedAt,
    machine: machine(),
    memcachedArgs: MEMCACHED_ARGS,
    wasmPackage: path.relative(ROOT, WASM_PACKAGE) || '.',
    wasmSize: null,
    timeLimitS: opts.timeLimitS,
    loadAverageAtStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
  const errors = [];
  try {
    meta.wasmSize = wasmSize();
  } catch (err) {
    errors.push(`wasm size: ${err.message}`);
  }

  const servers = [];
  let bridge = null;
  const samples = [];
  const paired = [];
  try {
    for (let i = 0; i < Math.max(...SERVER_COUNTS); i++) servers.push(await startMemcached());
    log(`memcached on ${servers.map((s) => s.address).join(', ')}`);
    if (contenders.some((c) => c.id === 'wasm-bridge')) {
      try {
        bridge = await startBridge(bridgeBinary(opts), servers.map((s) => s.address));
        log(`memcache-bridge on ${bridge.url}`);
      } catch (err) {
        errors.push(`memcache-bridge: ${err.message}`);
      }
    }
    const datasets = new Map(VALUE_SIZES.map((size) => [size, dataset(size)]));
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const count of SERVER_COUNTS) {
        const addresses = servers.slice(0, count).map((s) => s.address);
        for (const valueSize of VALUE_SIZES) {
          const setup = { servers: count, valueSize };
          // rotate the order each repetition, so no contender always runs first or last
          const order = contenders.map((_, i) => contenders[(i + rep) % contenders.length]);
          for (const contender of order) {
            if (contender.id === 'wasm-bridge' && !bridge) continue;
            const t0 = performance.now();
            try {
              const got = await measureContender(contender, setup, {
                addresses,
                data: datasets.get(valueSize),
                opts,
                rep,
                bridgeUrl: bridge?.url,
              });
              samples.push(...got);
              const brief = got.map((s) => `${s.workload} ${Math.round(s.opsPerSec)}/s`).join(', ');
              log(`rep ${rep + 1}/${opts.reps} ${setupName(setup)} ${contender.id}: ${brief} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
            } catch (err) {
              errors.push(`${contender.id} on ${setupName(setup)}, rep ${rep + 1}: ${err.stack ?? err.message}`);
              log(`ERROR ${contender.id} on ${setupName(setup)}: ${err.message}`);
            }
          }
        }
      }
    }
    for (const valueSize of VALUE_SIZES) {
      try {
        const result = await measurePaired(contenders, valueSize, { servers, bridge, opts });
        paired.push({ valueSize, ...result });
        log(`paired sequential get, ${setupName({ servers: 1, valueSize })}: ${result.results.map((r) => `${r.contender} ${Math.round(r.opsPerSec)}/s`).join(', ')}`);
      } catch (err) {
        errors.push(`paired sequential get, ${setupName({ servers: 1, valueSize })}: ${err.stack ?? err.message}`);
        log(`ERROR paired sequential get: ${err.message}`);
      }
    }
  } finally {
    await bridge?.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }

  let relay = null;
  if (opts.relay) {
    try {
      relay = await runRelay(opts);
    } catch (err) {
      errors.push(`relay comparison: ${err.message}`);
    }
  }

  meta.durationMs = performance.now() - started;
  meta.loadAverageAtEnd = os.loadavg().map((l) => Number(l.toFixed(2)));
  const rows = summarise(samples);
  const checks = checkTargets(rows, meta.wasmSize, paired);
  const base = path.join(opts.out, opts.smoke ? 'smoke' : 'bench');
  const report = markdown({ meta, rows, checks, contenders, relay, paired });
  const withErrors = errors.length
    ? `${report}\n## Errors\n\n${errors.map((e) => `- ${e.split('\n')[0]}`).join('\n')}\n`
    : report;
  await writeFile(`${base}.md`, withErrors);
  await writeFile(`${base}-summary.md`, summaryMarkdown({ meta, rows, checks, contenders, paired }));
  await writeFile(`${base}.json`, `${JSON.stringify({ meta, rows, checks, paired, samples, relay, errors }, null, 2)}\n`);
  try {
    const chart = chartSvg({
      rows,
      paired,
      contenders,
      title: `memcache-wasm vs peers, ${meta.machine.nproc} cores ${meta.machine.cpu}, Node ${meta.machine.node}${opts.smoke ? ' (SMOKE: not figures)' : ''}`,
    });
    await renderChart(chart, { svgPath: `${base}.svg`, pngPath: `${base}.png` });
  } catch (err) {
    errors.push(`chart: ${err.message}`);
  }
  process.stdout.write(withErrors);
  log(`wrote ${path.relative(ROOT, base)}.{md,json,svg,png} and ${path.basename(base)}-summary.md in ${(meta.durationMs / 1000).toFixed(1)} s`);
  if (errors.length) {
    for (const e of errors) log(`ERROR ${e}`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((err) => {
  log(`ERROR ${err.stack ?? err.message}`);
  process.exit(1);
});
