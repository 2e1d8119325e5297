// The page every bundler builds, unchanged: it imports the package by its name and runs a
// few calls through the bridge named in the query string, then writes what it saw into
// #out and sets body[data-done] (the test waits on that, never on time).
import { Client, MemcacheError } from "memcache-wasm";

const params = new URLSearchParams(location.search);
const name = params.get("name");

async function run() {
  const mc = new Client([params.get("server")], { bridge: params.get("bridge") });
  const key = `bundle:${name}`;
  const result = { name };
  result.stored = await mc.set(key, { bundler: name, rows: [1, 2, 3] }, 60);
  result.value = await mc.get(key);
  result.server = mc.serverForKey(key);
  try { await mc.get("bad key"); } catch (e) { result.badKey = e instanceof MemcacheError ? e.code : String(e); }
  await mc.close();
  return result;
}

function report(result) {
  document.getElementById("out").textContent = JSON.stringify(result);
  document.body.dataset.done = "true";
}

run().then(report, (e) => report({ error: String(e), code: e?.code }));
