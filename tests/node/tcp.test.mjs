// The whole API over TCP, against one real memcached and against three.
import { Client } from "../../client-wasm/js/node.js";
import { startMemcacheds } from "./support/servers.mjs";
import { apiSuite } from "./support/api-suite.mjs";

for (const n of [1, 3]) {
  apiSuite(`tcp, ${n} server${n > 1 ? "s" : ""}`, async () => {
    const servers = await startMemcacheds(n);
    const addresses = servers.map((s) => s.address);
    const mc = new Client(addresses, { timeout: 2000 });
    return { mc, addresses, cleanup: async () => { mc.close(); await servers.stopAll(); } };
  });
}
