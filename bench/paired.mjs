// Sequential get, measured paired: every contender connected at once to the same memcached,
// short blocks of sequential gets taken in turn (the order rotating each round), medians over
// the blocks. On this VM a sequential round trip wanders by 2x over seconds (host scheduling,
// CPU wake-up), which separate runs cannot tell from a client's cost; blocks side by side can.
import { performance } from 'node:perf_hooks';
import { timeOperations } from './workloads.mjs';

export const PAIRED = { rounds: 40, opsPerBlock: 500, smokeRounds: 2, smokeOpsPerBlock: 20 };
// Each contender reads keys it stored itself (its own flags, its own decoding); 1,000 keys of
// 10 KB for each of five contenders stay far inside one memcached's 256 MB.
export const PAIRED_KEYSPACE = 1_000;
// Bound on each block, so a stuck client cannot hold the run.
const BLOCK_LIMIT_MS = 10_000;

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * clients: [{id, client, data}], each connected and holding its own `data`'s keys. Resolves with
 * {rounds, opsPerBlock, results: [{contender, opsPerSec, p50Us, vsRaw, p50VsRaw}]}: medians over
 * the blocks, and the medians of the round-by-round ratios to the raw socket.
 */
export async function pairedSequentialGet(clients, { smoke }) {
  const rounds = smoke ? PAIRED.smokeRounds : PAIRED.rounds;
  const opsPerBlock = smoke ? PAIRED.smokeOpsPerBlock : PAIRED.opsPerBlock;
  const blocks = new Map(clients.map(({ id }) => [id, { rates: [], p50s: [] }]));
  let offset = 0;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < clients.length; i++) {
      const { id, client, data } = clients[(i + round) % clients.length];
      const base = offset;
      offset += opsPerBlock;
      const lat = [];
      const run = await timeOperations(
        async (n) => {
          const key = data.keys[(base + n) % data.keys.length];
          const t0 = performance.now();
          const got = await client.get(key);
          lat.push(performance.now() - t0);
          if (got === undefined || got === null || got.length !== data.valueSize) {
            throw new Error(`${id}: get ${key} returned a wrong value`);
          }
        },
        { ops: opsPerBlock, inFlight: 1, timeLimitMs: BLOCK_LIMIT_MS },
      );
      blocks.get(id).rates.push(run.ops / (run.elapsedMs / 1000));
      blocks.get(id).p50s.push(median(lat) * 1000);
    }
  }
  const results = clients.map(({ id }) => ({
    contender: id,
    opsPerSec: median(blocks.get(id).rates),
    p50Us: median(blocks.get(id).p50s),
  }));
  // Ratios are taken round by round (blocks minutes apart may sit in different modes of the
  // machine's round trip, blocks of one round mostly share one), then their median.
  const raw = blocks.get('raw');
  for (const r of results) {
    const own = blocks.get(r.contender);
    r.vsRaw = raw ? median(own.rates.map((rate, i) => rate / raw.rates[i])) : null;
    // the median round trip is steadier than the rate: the rate also carries the slow tail
    r.p50VsRaw = raw ? median(own.p50s.map((p50, i) => raw.p50s[i] / p50)) : null;
  }
  return { rounds, opsPerBlock, results };
}
