// The workloads and the loop that times them: a fixed number of operations kept a fixed number
// in flight, each operation timed on its own, each reply checked (a miss or a short value is an
// error, never a fast result). Every loop stops at its count or at its time bound.
import { performance } from 'node:perf_hooks';

// Keys per value size: 5,000 values of 10 KB (50 MB) fit one memcached's 256 MB with room,
// and are far more than a CPU cache holds, so no contender reads a hot handful of keys.
export const KEYSPACE = 5_000;
export const MULTI_GET_KEYS = 100;
export const VALUE_SIZES = [100, 10_240];
export const SERVER_COUNTS = [1, 3];
// Populating and warming up use the same concurrency as the concurrent workloads.
const FILL_IN_FLIGHT = 64;
const WARMUP_OPS = 3_000;

/** Each workload: id, title, kind (get | set | multi), inFlight, and ops (full run, smoke run). */
export const WORKLOADS = [
  { id: 'seq-get', title: 'sequential get', kind: 'get', inFlight: 1, ops: 10_000, smokeOps: 50 },
  { id: 'get-64', title: 'get, 64 in flight', kind: 'get', inFlight: 64, ops: 100_000, smokeOps: 200 },
  { id: 'multi-get', title: 'multi-get of 100 keys', kind: 'multi', inFlight: 1, ops: 2_000, smokeOps: 10 },
  { id: 'seq-set', title: 'sequential set', kind: 'set', inFlight: 1, ops: 10_000, smokeOps: 50 },
  { id: 'set-64', title: 'set, 64 in flight', kind: 'set', inFlight: 64, ops: 100_000, smokeOps: 200 },
];

/** The data of one (value size) block: keys, the multi-get key lists and the value. */
export function dataset(valueSize, keyspace = KEYSPACE, prefix = 'bench') {
  const keys = [];
  for (let i = 0; i < keyspace; i++) keys.push(`${prefix}:${valueSize}:${String(i).padStart(5, '0')}`);
  const multiKeys = [];
  for (let i = 0; i + MULTI_GET_KEYS <= keyspace; i += MULTI_GET_KEYS) {
    multiKeys.push(keys.slice(i, i + MULTI_GET_KEYS));
  }
  // Printable ASCII so that every client stores and returns it byte for byte, whatever its
  // idea of strings; not one repeated character, so nothing compresses it by accident.
  let value = '';
  for (let i = 0; value.length < valueSize; i++) value += String.fromCharCode(33 + ((i * 7) % 94));
  return { keys, multiKeys, value: value.slice(0, valueSize), valueSize };
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** The operation of a workload kind on item i, checking its reply. */
function operation(client, kind, data) {
  const { keys, multiKeys, value, valueSize } = data;
  if (kind === 'get') {
    return async (i) => {
      const key = keys[i % keys.length];
      const got = await client.get(key);
      check(got !== undefined && got !== null, `get ${key}: miss`);
      check(got.length === valueSize, `get ${key}: ${got.length} bytes, expected ${valueSize}`);
    };
  }
  if (kind === 'set') {
    return async (i) => {
      const key = keys[i % keys.length];
      const stored = await client.set(key, value);
      check(stored === true, `set ${key}: not stored (${stored})`);
    };
  }
  if (kind === 'multi') {
    return async (i) => {
      const list = multiKeys[i % multiKeys.length];
      const found = await client.getMulti(list);
      check(found === list.length, `multi-get of ${list.length} keys found ${found}`);
    };
  }
  throw new Error(`unknown workload kind ${kind}`);
}

/**
 * Runs `ops` operations with `inFlight` of them outstanding at any time, stopping early at
 * `timeLimitMs`. Resolves with {ops, elapsedMs, latenciesMs (Float64Array), timeCapped}.
 */
export async function timeOperations(op, { ops, inFlight, timeLimitMs }) {
  const latencies = new Float64Array(ops);
  let next = 0;
  let done = 0;
  let timeCapped = false;
  const start = performance.now();
  const deadline = start + timeLimitMs;
  async function lane() {
    for (;;) {
      const i = next++;
      if (i >= ops) return;
      const t0 = performance.now();
      if (t0 > deadline) {
        timeCapped = true;
        return;
      }
      await op(i);
      latencies[done++] = performance.now() - t0;
    }
  }
  const lanes = [];
  for (let l = 0; l < Math.min(inFlight, ops); l++) lanes.push(lane());
  await Promise.all(lanes);
  const elapsedMs = performance.now() - start;
  return { ops: done, elapsedMs, latenciesMs: latencies.subarray(0, done), timeCapped };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Stores every key of the dataset through the client under test (its own distribution). */
export async function populate(client, data, timeLimitMs) {
  const set = operation(client, 'set', data);
  const run = await timeOperations(set, { ops: data.keys.length, inFlight: FILL_IN_FLIGHT, timeLimitMs });
  check(!run.timeCapped, `populating ${data.keys.length} keys took over ${timeLimitMs} ms`);
}

/** A short untimed run of every kind, so that the JIT has seen the hot paths. */
export async function warmUp(client, data, { smoke, timeLimitMs }) {
  const ops = smoke ? 20 : WARMUP_OPS;
  for (const kind of ['get', 'set', 'multi']) {
    const n = kind === 'multi' ? Math.ceil(ops / MULTI_GET_KEYS) * 4 : ops;
    await timeOperations(operation(client, kind, data), { ops: n, inFlight: 16, timeLimitMs });
  }
}

/** Runs one workload on a connected client and summarises it. */
export async function runWorkload(client, workload, data, { smoke, timeLimitMs }) {
  const ops = smoke ? workload.smokeOps : workload.ops;
  const run = await timeOperations(operation(client, workload.kind, data), {
    ops,
    inFlight: workload.inFlight,
    timeLimitMs,
  });
  check(run.ops > 0, `${workload.id}: no operation completed within ${timeLimitMs} ms`);
  const sorted = Float64Array.from(run.latenciesMs).sort();
  const opsPerSec = run.ops / (run.elapsedMs / 1000);
  const keysPerOp = workload.kind === 'multi' ? MULTI_GET_KEYS : 1;
  return {
    ops: run.ops,
    plannedOps: ops,
    timeCapped: run.timeCapped,
    elapsedMs: run.elapsedMs,
    opsPerSec,
    keysPerSec: opsPerSec * keysPerOp,
    p50Us: percentile(sorted, 50) * 1000,
    p99Us: percentile(sorted, 99) * 1000,
  };
}
