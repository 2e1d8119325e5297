// Turns the raw samples of a run (one per repetition, contender, setup and workload) into
// medians, spreads and ratios, checks them against the targets of issues 3 and 4, and writes
// the Markdown table a person reads and the JSON a later run compares with.
import { WORKLOADS } from './workloads.mjs';

// The targets of issue 4 (the client) as ratios; each is checked on every setup measured.
export const TARGETS = {
  concurrentVsBestPeer: 1.5,
  multiGetVsBestPeer: 2,
  sequentialGetVsRaw: 0.95,
  bridgeVsTcp: 0.5,
  wasmGzipBytes: 150 * 1024,
};
const PEERS = ['memjs', 'memcached'];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function setupName({ servers, valueSize }) {
  const size = valueSize >= 1024 ? `${Math.round(valueSize / 1024)} KB` : `${valueSize} B`;
  return `${servers} server${servers > 1 ? 's' : ''}, ${size} values`;
}

/** Groups samples by (contender, servers, valueSize, workload) into medians and ratios. */
export function summarise(samples) {
  const groups = new Map();
  for (const s of samples) {
    const key = `${s.contender}|${s.servers}|${s.valueSize}|${s.workload}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(s);
  }
  const rows = [];
  for (const list of groups.values()) {
    const { contender, servers, valueSize, workload } = list[0];
    const rates = list.map((s) => s.opsPerSec);
    const opsPerSec = median(rates);
    rows.push({
      contender,
      servers,
      valueSize,
      workload,
      reps: list.length,
      opsPerSec,
      keysPerSec: median(list.map((s) => s.keysPerSec)),
      minOpsPerSec: Math.min(...rates),
      maxOpsPerSec: Math.max(...rates),
      spreadPct: ((Math.max(...rates) - Math.min(...rates)) / opsPerSec) * 100,
      p50Us: median(list.map((s) => s.p50Us)),
      p99Us: median(list.map((s) => s.p99Us)),
      timeCapped: list.some((s) => s.timeCapped),
    });
  }
  const find = (r, contender) =>
    rows.find(
      (o) =>
        o.contender === contender &&
        o.servers === r.servers &&
        o.valueSize === r.valueSize &&
        o.workload === r.workload,
    );
  for (const r of rows) {
    r.vsRaw = find(r, 'raw') ? r.opsPerSec / find(r, 'raw').opsPerSec : null;
    r.vsWasmTcp = find(r, 'wasm-tcp') ? r.opsPerSec / find(r, 'wasm-tcp').opsPerSec : null;
  }
  return rows;
}

/** Every target of issue 4 on every setup: {target, setup, measured, required, met}. */
export function checkTargets(rows, wasmSize, paired = []) {
  const checks = [];
  const setups = [...new Set(rows.map((r) => `${r.servers}|${r.valueSize}`))].map((k) => {
    const [servers, valueSize] = k.split('|').map(Number);
    return { servers, valueSize };
  });
  const get = (setup, contender, workload) =>
    rows.find(
      (r) =>
        r.contender === contender &&
        r.servers === setup.servers &&
        r.valueSize === setup.valueSize &&
        r.workload === workload,
    );
  for (const setup of setups) {
    const vsPeers = (workload, required, label) => {
      const ours = get(setup, 'wasm-tcp', workload);
      const peers = PEERS.map((p) => get(setup, p, workload)).filter(Boolean);
      if (!ours || peers.length === 0) return;
      const best = peers.reduce((a, b) => (a.opsPerSec >= b.opsPerSec ? a : b));
      checks.push({
        target: `${label}: memcache-wasm TCP >= ${required}x the better peer (${best.contender})`,
        setup: setupName(setup),
        measured: ours.opsPerSec / best.opsPerSec,
        required,
        met: ours.opsPerSec / best.opsPerSec >= required,
      });
    };
    vsPeers('get-64', TARGETS.concurrentVsBestPeer, 'get, 64 in flight');
    vsPeers('set-64', TARGETS.concurrentVsBestPeer, 'set, 64 in flight');
    vsPeers('multi-get', TARGETS.multiGetVsBestPeer, 'multi-get');
    const ours = get(setup, 'wasm-tcp', 'seq-get');
    const raw = get(setup, 'raw', 'seq-get');
    if (ours && raw) {
      checks.push({
        target: `sequential get: memcache-wasm TCP >= ${TARGETS.sequentialGetVsRaw}x raw socket`,
        setup: setupName(setup),
        measured: ours.opsPerSec / raw.opsPerSec,
        required: TARGETS.sequentialGetVsRaw,
        met: ours.opsPerSec / raw.opsPerSec >= TARGETS.sequentialGetVsRaw,
      });
    }
    for (const w of WORKLOADS) {
      const tcp = get(setup, 'wasm-tcp', w.id);
      const bridge = get(setup, 'wasm-bridge', w.id);
      if (!tcp || !bridge) continue;
      checks.push({
        target: `${w.title}: through the bridge >= ${TARGETS.bridgeVsTcp}x memcache-wasm TCP`,
        setup: setupName(setup),
        measured: bridge.opsPerSec / tcp.opsPerSec,
        required: TARGETS.bridgeVsTcp,
        met: bridge.opsPerSec / tcp.opsPerSec >= TARGETS.bridgeVsTcp,
      });
    }
  }
  for (const p of paired) {
    const ours = p.results.find((r) => r.contender === 'wasm-tcp');
    if (!ours || ours.vsRaw === null) continue;
    checks.push({
      target: `sequential get, paired blocks: memcache-wasm TCP >= ${TARGETS.sequentialGetVsRaw}x raw socket`,
      setup: setupName({ servers: 1, valueSize: p.valueSize }),
      measured: ours.vsRaw,
      required: TARGETS.sequentialGetVsRaw,
      met: ours.vsRaw >= TARGETS.sequentialGetVsRaw,
    });
    checks.push({
      target: `sequential get, paired blocks, median latency: raw p50 / memcache-wasm TCP p50 >= ${TARGETS.sequentialGetVsRaw}`,
      setup: setupName({ servers: 1, valueSize: p.valueSize }),
      measured: ours.p50VsRaw,
      required: TARGETS.sequentialGetVsRaw,
      met: ours.p50VsRaw >= TARGETS.sequentialGetVsRaw,
    });
  }
  if (wasmSize) {
    checks.push({
      target: `.wasm gzipped < ${TARGETS.wasmGzipBytes / 1024} KB`,
      setup: `${(wasmSize.rawBytes / 1024).toFixed(1)} KB raw`,
      measured: wasmSize.gzipBytes / 1024,
      required: TARGETS.wasmGzipBytes / 1024,
      met: wasmSize.gzipBytes < TARGETS.wasmGzipBytes,
      unit: 'KB',
    });
  }
  return checks;
}

function rate(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

function micros(n) {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function ratio(r) {
  return r === null ? '' : `${r.toFixed(2)}x`;
}

/** The Markdown report: the run's context, the targets, then one table per setup. */
export function markdown({ meta, rows, checks, contenders, relay, paired = [] }) {
  const out = [];
  out.push(`# memcache-wasm benchmark${meta.smoke ? ' (smoke run: tiny counts, not figures)' : ''}`);
  out.push('');
  out.push(`- command: \`${meta.command}\``);
  out.push(`- when: ${meta.startedAt}, ${(meta.durationMs / 1000).toFixed(0)} s`);
  out.push(`- machine: ${meta.machine.cpu}, ${meta.machine.nproc} cores, Node ${meta.machine.node}, ${meta.machine.memcached}`);
  if (meta.loadAverageAtStart) {
    out.push(
      `- load average (1, 5, 15 min) at start ${meta.loadAverageAtStart.join(', ')}, at end ${meta.loadAverageAtEnd?.join(', ')}: anything above ~1 is other work sharing the 2 cores`,
    );
  }
  if (meta.wasmPackage && meta.wasmPackage !== 'client-wasm') out.push(`- memcache-wasm measured from: ${meta.wasmPackage} (MEMCACHE_WASM_PACKAGE)`);
  out.push(`- memcached: \`memcached ${meta.memcachedArgs.join(' ')} -p PORT\`, one process per server, all on loopback`);
  out.push(`- ${meta.reps} repetitions; each figure is the median, spread = (max - min) / median of ops/s`);
  out.push(`- latency p50/p99 is per operation (per multi-get for multi-get), from issue to reply`);
  if (meta.wasmSize) {
    out.push(
      `- .wasm: ${(meta.wasmSize.rawBytes / 1024).toFixed(1)} KB raw, ${(meta.wasmSize.gzipBytes / 1024).toFixed(1)} KB gzipped (level 9)`,
    );
  }
  out.push('');
  out.push('Contenders:');
  out.push('');
  for (const c of contenders) out.push(`- **${c.label}**: ${c.note}`);
  out.push('');
  if (checks.length) {
    out.push('## Targets (issue 4)');
    out.push('');
    out.push('| target | setup | measured | required | met |');
    out.push('|---|---|--:|--:|:-:|');
    for (const c of checks) {
      const fmt = (v) => (c.unit ? `${v.toFixed(1)} ${c.unit}` : `${v.toFixed(2)}x`);
      out.push(`| ${c.target} | ${c.setup} | ${fmt(c.measured)} | ${fmt(c.required)} | ${c.met ? 'yes' : '**no**'} |`);
    }
    out.push('');
  }
  const labels = Object.fromEntries(contenders.map((c) => [c.id, c.label]));
  const order = contenders.map((c) => c.id);
  const setups = [...new Set(rows.map((r) => `${r.servers}|${r.valueSize}`))];
  for (const key of setups) {
    const [servers, valueSize] = key.split('|').map(Number);
    out.push(`## ${setupName({ servers, valueSize })}`);
    out.push('');
    out.push('| workload | contender | ops/s | keys/s | spread | p50 µs | p99 µs | vs raw | vs memcache-wasm TCP |');
    out.push('|---|---|--:|--:|--:|--:|--:|--:|--:|');
    for (const w of WORKLOADS) {
      const list = rows
        .filter((r) => r.servers === servers && r.valueSize === valueSize && r.workload === w.id)
        .sort((a, b) => order.indexOf(a.contender) - order.indexOf(b.contender));
      for (const r of list) {
        out.push(
          `| ${w.title} | ${labels[r.contender]} | ${rate(r.opsPerSec)}${r.timeCapped ? ' (time-capped)' : ''} | ${w.kind === 'multi' ? rate(r.keysPerSec) : ''} | ${r.spreadPct.toFixed(1)}% | ${micros(r.p50Us)} | ${micros(r.p99Us)} | ${ratio(r.vsRaw)} | ${ratio(r.vsWasmTcp)} |`,
        );
      }
    }
    out.push('');
  }
  for (const p of paired) {
    out.push(`## Sequential get, paired blocks (${setupName({ servers: 1, valueSize: p.valueSize })})`);
    out.push('');
    out.push(
      `All contenders connected at once; ${p.rounds} rounds of ${p.opsPerBlock} sequential gets each, taken in turn; ops/s and p50 are medians over the blocks, the ratios to the raw socket medians of the round-by-round ratios. This cancels the drift of round-trip times over seconds that separate runs pick up.`,
    );
    out.push('');
    out.push('| contender | ops/s | p50 µs | ops/s vs raw | p50 speed vs raw (raw p50 / p50) | ops/s vs memcache-wasm TCP |');
    out.push('|---|--:|--:|--:|--:|--:|');
    const ours = p.results.find((r) => r.contender === 'wasm-tcp');
    for (const r of p.results) {
      out.push(
        `| ${labels[r.contender]} | ${rate(r.opsPerSec)} | ${micros(r.p50Us)} | ${ratio(r.vsRaw)} | ${r.p50VsRaw === null ? '' : ratio(r.p50VsRaw)} | ${ours ? ratio(r.opsPerSec / ours.opsPerSec) : ''} |`,
      );
    }
    out.push('');
  }
  if (relay) {
    out.push('## Relays (bench/relay)');
    out.push('');
    out.push(relay.trim());
    out.push('');
  }
  return `${out.join('\n')}\n`;
}

/**
 * The short form for a README: the main workloads on one server (ops/s, or keys/s for the
 * multi-get, with the ratio to memcache-wasm TCP) and every target with its verdict.
 */
export function summaryMarkdown({ meta, rows, checks, contenders, paired = [] }) {
  const out = [];
  const labels = Object.fromEntries(contenders.map((c) => [c.id, c.label]));
  out.push(
    `Command \`${meta.command}\`, ${meta.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${meta.reps} repetitions (medians); ${meta.machine.nproc} cores ${meta.machine.cpu}, Node ${meta.machine.node}, ${meta.machine.memcached}; load average at start ${meta.loadAverageAtStart?.join(', ') ?? 'not recorded'}.`,
  );
  out.push('');
  for (const valueSize of [...new Set(rows.map((r) => r.valueSize))].sort((a, b) => a - b)) {
    const seq = paired.find((p) => p.valueSize === valueSize);
    out.push(`**${setupName({ servers: 1, valueSize })}** (x = ratio to memcache-wasm TCP)`);
    out.push('');
    out.push(`| contender | sequential get${seq ? ' (paired)' : ''} | get, 64 in flight | multi-get, keys/s | set, 64 in flight |`);
    out.push('|---|--:|--:|--:|--:|');
    for (const c of contenders) {
      const cell = (workload, field = 'opsPerSec') => {
        const r = rows.find((o) => o.contender === c.id && o.servers === 1 && o.valueSize === valueSize && o.workload === workload);
        const ours = rows.find((o) => o.contender === 'wasm-tcp' && o.servers === 1 && o.valueSize === valueSize && o.workload === workload);
        if (!r) return '';
        return `${rate(r[field])} (${ours ? (r[field] / ours[field]).toFixed(2) : '?'}x)`;
      };
      let seqCell = cell('seq-get');
      if (seq) {
        const r = seq.results.find((o) => o.contender === c.id);
        const ours = seq.results.find((o) => o.contender === 'wasm-tcp');
        seqCell = r ? `${rate(r.opsPerSec)}, p50 ${micros(r.p50Us)} µs (${ours ? (r.opsPerSec / ours.opsPerSec).toFixed(2) : '?'}x)` : '';
      }
      out.push(`| ${labels[c.id]} | ${seqCell} | ${cell('get-64')} | ${cell('multi-get', 'keysPerSec')} | ${cell('set-64')} |`);
    }
    out.push('');
  }
  const met = checks.filter((c) => c.met).length;
  out.push(`Targets: ${met} of ${checks.length} checks met.`);
  out.push('');
  out.push('| target | setup | measured | met |');
  out.push('|---|---|--:|:-:|');
  for (const c of checks) {
    const fmt = (v) => (c.unit ? `${v.toFixed(1)} ${c.unit}` : `${v.toFixed(2)}x`);
    out.push(`| ${c.target} | ${c.setup} | ${fmt(c.measured)} | ${c.met ? 'yes' : '**no**'} |`);
  }
  return `${out.join('\n')}\n`;
}
