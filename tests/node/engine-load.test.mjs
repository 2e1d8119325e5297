// The engine loads lazily, with no top-level await: a Client made before the load checks its
// plain options at once and its calls wait for the engine (serverForKey, synchronous, has
// Node compile it there and then); init({ wasm }) takes a file path,
// a file: URL, bytes or a Module in Node; a load that fails rejects calls with
// ENGINE_LOAD_FAILED (catchable, and tried again after), one that hangs with TIMEOUT. Each
// case runs in a fresh Node process, since the engine is loaded once per process.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile as execFileCb } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { startMemcacheds } from "./support/servers.mjs";

const execFile = promisify(execFileCb);
const ENTRY = fileURLToPath(new URL("../../client-wasm/js/node.js", import.meta.url));
const WASM = fileURLToPath(new URL("../../client-wasm/pkg/memcache_wasm_bg.wasm", import.meta.url));
let server;

before(async () => { [server] = await startMemcacheds(1); });
after(async () => { await server?.stop(); });

/** Runs `body` (an async function body with Client, init, errors and SERVER in scope) in a fresh process; returns what it returned. */
async function fresh(body) {
  const script = `
    import * as pkg from ${JSON.stringify(ENTRY)};
    const { Client, init } = pkg;
    const SERVER = ${JSON.stringify(server.address)};
    const WASM = ${JSON.stringify(WASM)};
    const result = await (async () => { ${body} })();
    process.stdout.write(JSON.stringify(result));
  `;
  const { stdout } = await execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 20_000 });
  return JSON.parse(stdout);
}

test("before the engine loads: plain options throw at once, calls wait and run", async () => {
  const out = await fresh(`
    const out = {};
    try { new Client(SERVER, { timeout: -1 }); } catch (e) { out.badOption = e.code; }
    const mc = new Client([SERVER]);
    out.servers = mc.servers;
    // Calls of one tick, made before the load, still run in order once it is done.
    const [stored, value, bad] = await Promise.allSettled([mc.set("lazy", "yes"), mc.get("lazy"), mc.get("bad key")]);
    out.stored = stored.value; out.value = value.value; out.bad = bad.reason.code;
    out.server = mc.serverForKey("lazy");
    await mc.close();
    out.afterClose = await mc.get("lazy").catch((e) => e.code);
    return out;
  `);
  assert.deepEqual(out, {
    badOption: "BAD_ARGUMENT", servers: [{ address: server.address, weight: 1, up: true, dead: false, status: "closed" }],
    stored: true, value: "yes", bad: "BAD_KEY", server: server.address, afterClose: "CLOSED",
  });
});

test("in Node, serverForKey before any call loads the engine synchronously", async () => {
  const out = await fresh(`
    const mc = new Client([SERVER]);
    const server = mc.serverForKey("k");
    await mc.set("k", 1);
    const value = await mc.get("k");
    await mc.close();
    return { server, value };
  `);
  assert.deepEqual(out, { server: server.address, value: 1 });
});

test("while an asynchronous load is under way, serverForKey says ENGINE_NOT_READY instead of loading a second engine", async () => {
  const out = await fresh(`
    const loading = init();
    const mc = new Client([SERVER]);
    let code;
    try { mc.serverForKey("k"); } catch (e) { code = e.code; }
    await loading;
    const server = mc.serverForKey("k");
    await mc.close();
    return { code, server };
  `);
  assert.deepEqual(out, { code: "ENGINE_NOT_READY", server: server.address });
});

test("init({ wasm }) in Node takes a file path, a file: URL, bytes or a compiled Module", async () => {
  for (const source of ["WASM", "new URL('file://' + WASM)", "(await import('node:fs')).readFileSync(WASM)", "await WebAssembly.compile((await import('node:fs')).readFileSync(WASM))"]) {
    const out = await fresh(`
      await init({ wasm: ${source} });
      const mc = new Client([SERVER]);
      const server = mc.serverForKey("k");
      await mc.set("init", "ok");
      const value = await mc.get("init");
      await mc.close();
      return { server, value };
    `);
    assert.deepEqual(out, { server: server.address, value: "ok" }, source);
  }
});

test("a failed load rejects init and waiting calls with ENGINE_LOAD_FAILED; init with a good source then works", async () => {
  const out = await fresh(`
    const out = {};
    const mc = new Client([SERVER]);
    out.init = await init({ wasm: new Uint8Array([0, 97, 115, 109, 9, 9, 9, 9]) }).catch((e) => [e.code, e instanceof pkg.EngineLoadError, e.cause !== undefined]);
    out.call = await mc.get("k").catch((e) => e.code);
    out.missing = await init({ wasm: "/no/such/engine.wasm" }).catch((e) => [e.code, /ENOENT/.test(e.message)]);
    await init({ wasm: WASM });
    out.after = await mc.set("k", 1);
    out.otherSource = await init({ wasm: new Uint8Array(8) }).catch((e) => e.code);
    await mc.close();
    return out;
  `);
  assert.deepEqual(out, {
    init: ["ENGINE_LOAD_FAILED", true, true], call: "ENGINE_LOAD_FAILED", missing: ["ENGINE_LOAD_FAILED", true],
    after: true, otherSource: "BAD_ARGUMENT",
  });
});

test("a load that never finishes rejects waiting calls with TIMEOUT within the client's timeout", async () => {
  const out = await fresh(`
    // A web server that takes the connection and never answers: the engine's fetch hangs.
    const net = await import("node:net");
    const silent = net.createServer(() => {});
    await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
    init({ wasm: "http://127.0.0.1:" + silent.address().port + "/memcache_wasm_bg.wasm" }).catch(() => {});
    const mc = new Client([SERVER], { timeout: 300 });
    const started = Date.now();
    const code = await mc.get("k").catch((e) => e.code);
    const inTime = Date.now() - started < 2000;
    // The hung fetch would keep the process alive: exit once the answer is written.
    process.stdout.write(JSON.stringify({ code, inTime }), () => process.exit(0));
    await new Promise(() => {});
  `);
  assert.deepEqual(out, { code: "TIMEOUT", inTime: true });
});

test("listeners added before the engine loads hear the events, and on/off stay synchronous", async () => {
  const out = await fresh(`
    const mc = new Client(["127.0.0.1:1"], { connectTimeout: 200, timeout: 1000 });
    const heard = [];
    const removed = () => heard.push("removed listener ran");
    const chained = mc.on("serverDown", (e) => heard.push([e.server, e.error.code])).on("serverDown", removed);
    mc.off("serverDown", removed);
    let badEvent;
    try { mc.on("nope", () => {}); } catch (e) { badEvent = e.code; }
    const code = await mc.get("k").then(() => "resolved", (e) => e.code);
    await mc.close();
    return { chained: chained === mc, badEvent, code, heard };
  `);
  assert.deepEqual(out, {
    chained: true, badEvent: "BAD_ARGUMENT", code: "CONNECTION_ERROR",
    heard: [["127.0.0.1:1", "CONNECTION_ERROR"]],
  });
});

test("a call made before the load is sent before a call made after it (no overtaking)", async () => {
  const out = await fresh(`
    const mc = new Client([SERVER]);
    const first = mc.set("order", "first");
    await init();
    const second = mc.set("order", "second");
    const stored = await Promise.all([first, second]);
    const value = await mc.get("order");
    await mc.close();
    return { stored, value };
  `);
  assert.deepEqual(out, { stored: [true, true], value: "second" });
});
