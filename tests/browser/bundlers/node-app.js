// The Node script esbuild bundles (as CJS and as ESM): TCP to the memcached in $MEMCACHED.
import { Client } from "memcache-wasm";

const mc = new Client([process.env.MEMCACHED]);
await mc.set("bundle:node", "bundled", 60);
console.log(JSON.stringify({ value: await mc.get("bundle:node"), server: mc.serverForKey("bundle:node") }));
await mc.close();
