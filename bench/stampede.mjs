// The stampede figure: 4 Node processes x 250 concurrent cache-aside calls on one missing
// key whose loader takes 200 ms, against one memcached. Our getOrSet beside the get-then-set
// pattern written with this client, memjs and memcached (npm). Prints loader runs per
// pattern (one run each). Usage: node bench/stampede.mjs
import { Memcached } from "../tests/node/support/servers.mjs";
import { herd } from "../tests/node/support/herd.mjs";

const server = await Memcached.start();
const rows = [];
try {
  for (const pattern of ["getOrSet", "get-then-set", "memjs", "memcached"]) {
    const started = Date.now();
    const { loads, results, errors } = await herd({
      processes: 4, server: server.address, key: `stampede:${pattern}`, calls: 250, loaderMs: 200, ttl: 60, pattern,
    });
    rows.push({ pattern, loaderRuns: loads.length, calls: results.length, errors: errors.length, ms: Date.now() - started, firstError: errors[0] ?? "" });
  }
} finally {
  await server.stop();
}
console.log("| pattern (4 processes x 250 calls, loader 200 ms) | loader runs | calls resolved | errors (first) | wall ms |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.pattern} | ${r.loaderRuns} | ${r.calls} | ${r.errors}${r.firstError ? ` (${r.firstError})` : ""} | ${r.ms} |`);
