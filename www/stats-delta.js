// Turns successive `stats` answers of memcached servers into what the overview shows: the
// gauges of one answer (items, memory, connections) and per-second rates from the counter
// deltas between two answers, per server and summed for the fleet. Pure functions over plain
// objects, so the same code runs in the page and under `node --test`.

/** The counters whose per-second rate the dashboard shows, named as memcached names them. */
export const RATE_COUNTERS = ["cmd_get", "cmd_set", "get_hits", "get_misses", "evictions", "bytes_read", "bytes_written"];

/** memcached's stat values arrive as text; counters are 64-bit, so read them as Numbers
 *  (exact up to 2^53, far beyond what a counter reaches between two refreshes). */
function num(stats, name) {
  const raw = stats[name];
  if (raw === undefined || raw === null || raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * The gauges of one `stats` answer. Fields memcached did not send are `undefined` and the
 * page shows a dash for them; `hitRatio` is `undefined` while the server has served no get.
 */
export function summarize(stats) {
  const hits = num(stats, "get_hits");
  const misses = num(stats, "get_misses");
  const bytes = num(stats, "bytes");
  const limit = num(stats, "limit_maxbytes");
  const lookups = hits !== undefined && misses !== undefined ? hits + misses : undefined;
  return {
    version: stats.version === undefined ? undefined : String(stats.version),
    pid: num(stats, "pid"),
    uptime: num(stats, "uptime"),
    time: num(stats, "time"),
    items: num(stats, "curr_items"),
    bytes,
    limitBytes: limit,
    memoryFraction: bytes !== undefined && limit ? bytes / limit : undefined,
    hitRatio: lookups ? hits / lookups : undefined,
    evictions: num(stats, "evictions"),
    connections: num(stats, "curr_connections"),
    getHits: hits,
    getMisses: misses,
  };
}

/**
 * Per-second rates between two samples of one server, each `{at, stats}` with `at` in
 * milliseconds (when the answer arrived). Returns `null` when there is nothing to compare:
 * no earlier sample, no time between them, or the server restarted in between (its pid
 * changed, its uptime went back, or a counter went down), since a delta across a restart
 * would be a large negative or a meaningless number.
 *
 * The result has `getsPerSec`, `setsPerSec`, `hitsPerSec`, `missesPerSec`,
 * `evictionsPerSec`, `bytesInPerSec` and `bytesOutPerSec` (what memcached read and wrote),
 * the interval's `hitRatio` (undefined when no get happened in it), `connections` (the open
 * connections at the second sample, a gauge), and the raw `deltas` and `seconds` so the
 * fleet can sum them.
 */
export function ratesBetween(previous, current) {
  if (!previous || !current) return null;
  const seconds = (current.at - previous.at) / 1000;
  if (!(seconds > 0)) return null;
  const before = previous.stats;
  const after = current.stats;
  if (num(before, "pid") !== num(after, "pid")) return null;
  if (num(after, "uptime") < num(before, "uptime")) return null;
  const deltas = {};
  for (const name of RATE_COUNTERS) {
    const a = num(before, name);
    const b = num(after, name);
    if (a === undefined || b === undefined) {
      deltas[name] = undefined;
      continue;
    }
    if (b < a) return null;
    deltas[name] = b - a;
  }
  return { ...ratesFromDeltas(deltas, seconds), connections: num(after, "curr_connections") };
}

function ratesFromDeltas(deltas, seconds) {
  const per = (name) => (deltas[name] === undefined ? undefined : deltas[name] / seconds);
  const lookups = (deltas.get_hits ?? 0) + (deltas.get_misses ?? 0);
  return {
    seconds,
    deltas,
    getsPerSec: per("cmd_get"),
    setsPerSec: per("cmd_set"),
    hitsPerSec: per("get_hits"),
    missesPerSec: per("get_misses"),
    evictionsPerSec: per("evictions"),
    bytesInPerSec: per("bytes_read"),
    bytesOutPerSec: per("bytes_written"),
    hitRatio: lookups > 0 ? deltas.get_hits / lookups : undefined,
  };
}

/**
 * The fleet's rates: the sum of the servers' rates (each server's own interval, so servers
 * polled at slightly different moments still add up), and the hit ratio of the summed hits
 * and misses. Servers without rates this round (down, or first sample) are left out and
 * counted in `serversMissing`, so the page can say the total is partial.
 */
export function fleetRates(ratesByServer) {
  const present = Object.values(ratesByServer).filter((r) => r !== null && r !== undefined);
  const missing = Object.keys(ratesByServer).length - present.length;
  if (present.length === 0) return { serversMissing: missing, serversCounted: 0 };
  const sum = (field) => present.reduce((total, r) => total + (r[field] ?? 0), 0);
  const hitsPerSec = sum("hitsPerSec");
  const missesPerSec = sum("missesPerSec");
  const lookupsPerSec = hitsPerSec + missesPerSec;
  return {
    serversCounted: present.length,
    serversMissing: missing,
    getsPerSec: sum("getsPerSec"),
    setsPerSec: sum("setsPerSec"),
    hitsPerSec,
    missesPerSec,
    evictionsPerSec: sum("evictionsPerSec"),
    bytesInPerSec: sum("bytesInPerSec"),
    bytesOutPerSec: sum("bytesOutPerSec"),
    connections: sum("connections"),
    hitRatio: lookupsPerSec > 0 ? hitsPerSec / lookupsPerSec : undefined,
  };
}

/** The fields the charts draw: all a saved history keeps of each point. */
export const CHART_FIELDS = [
  "getsPerSec", "setsPerSec", "hitRatio", "evictionsPerSec", "bytesInPerSec", "bytesOutPerSec", "connections",
];

/**
 * The last `windowMs` of rate points per series (a server address, or "fleet"), for the
 * charts. A point with no rates (server down or restarted) is kept as a gap, so a line
 * breaks where the server was away instead of joining across the outage.
 */
export class RateHistory {
  constructor(windowMs) {
    this.windowMs = windowMs;
    this.points = new Map();
  }

  /** Records the rates (or `null` for a gap) of `series` at time `at` (ms). */
  record(series, at, rates) {
    if (!this.points.has(series)) this.points.set(series, []);
    const list = this.points.get(series);
    list.push({ at, rates });
    const oldest = at - this.windowMs;
    let drop = 0;
    while (drop < list.length && list[drop].at < oldest) drop += 1;
    if (drop > 0) list.splice(0, drop);
  }

  /** `[[at, value-or-null], ...]` of one field of one series, oldest first. */
  series(series, field) {
    const list = this.points.get(series) ?? [];
    return list.map(({ at, rates }) => {
      const value = rates ? rates[field] : undefined;
      return [at, value === undefined ? null : value];
    });
  }

  /** The time (ms) of the oldest point still kept, or undefined before the first one. */
  oldest() {
    let oldest;
    for (const list of this.points.values()) {
      if (list.length > 0 && (oldest === undefined || list[0].at < oldest)) oldest = list[0].at;
    }
    return oldest;
  }

  /** The series names recorded so far, in the order they first appeared. */
  names() {
    return [...this.points.keys()];
  }

  /** The history as plain data (the chart fields only), for saving across a reload. */
  toJSON() {
    const series = {};
    for (const [name, list] of this.points) {
      series[name] = list.map(({ at, rates }) => [at, rates === null ? null : CHART_FIELDS.map((f) => rates[f] ?? null)]);
    }
    return { version: 1, series };
  }

  /**
   * A history rebuilt from `saved` (what toJSON returned, perhaps from an older page),
   * keeping only the points of `names` (the servers the bridge lists now, and the fleet)
   * within the window ending `now`. Anything unreadable gives an empty history: a reload
   * must never fail on what an earlier page left.
   */
  static restore(saved, windowMs, names, now) {
    const history = new RateHistory(windowMs);
    if (!saved || saved.version !== 1 || typeof saved.series !== "object" || saved.series === null) return history;
    const oldest = now - windowMs;
    for (const name of names) {
      const list = saved.series[name];
      if (!Array.isArray(list)) continue;
      const points = [];
      for (const point of list) {
        if (!Array.isArray(point) || typeof point[0] !== "number" || point[0] < oldest || point[0] > now) continue;
        const values = point[1];
        const rates = Array.isArray(values) ? Object.fromEntries(CHART_FIELDS.map((f, i) => [f, typeof values[i] === "number" ? values[i] : undefined])) : null;
        points.push({ at: point[0], rates });
      }
      if (points.length > 0) history.points.set(name, points);
    }
    return history;
  }
}
