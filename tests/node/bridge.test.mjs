// The whole API through a real memcache-bridge (WebSocket, the `ws` package in Node), on one
// server and on three; refusals surface as BRIDGE_REFUSED with the bridge's reason.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import WebSocketNode from "ws";
import { Client } from "../../client-wasm/js/node.js";
import { WebSocketTransport } from "../../client-wasm/js/websocket-transport.js";
import { startMemcacheds } from "./support/servers.mjs";
import { Bridge } from "./support/bridge.mjs";
import { apiSuite } from "./support/api-suite.mjs";

for (const n of [1, 3]) {
  apiSuite(`bridge, ${n} server${n > 1 ? "s" : ""}`, async () => {
    const servers = await startMemcacheds(n);
    const addresses = servers.map((s) => s.address);
    let bridge;
    try {
      bridge = await Bridge.start({ upstreams: addresses, tokens: ["s3cret-token"] });
    } catch (e) {
      await servers.stopAll();
      throw e;
    }
    const mc = new Client(addresses, { bridge: bridge.url, token: "s3cret-token", timeout: 3000 });
    return { mc, addresses, cleanup: async () => { mc.close(); await bridge.stop(); await servers.stopAll(); } };
  });
}

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

async function setup(bridgeOptions = {}) {
  const servers = await startMemcacheds(1);
  cleanup.push(() => servers.stopAll());
  const bridge = await Bridge.start({ upstreams: [servers[0].address], ...bridgeOptions });
  cleanup.push(() => bridge.stop());
  return { address: servers[0].address, bridge, server: servers[0] };
}

function client(address, options) {
  const mc = new Client([address], { timeout: 3000, ...options });
  cleanup.push(async () => mc.close());
  return mc;
}

test("bridge refusals: wrong token, missing token, unknown upstream are BRIDGE_REFUSED with the reason", async () => {
  const { address, bridge } = await setup({ tokens: ["right"] });
  await assert.rejects(client(address, { bridge: bridge.url, token: "wrong" }).get("k"),
    (e) => e.code === "BRIDGE_REFUSED" && e.status === 401 && /not valid/.test(e.reason) && e.server === address);
  await assert.rejects(client(address, { bridge: bridge.url }).get("k"),
    (e) => e.code === "BRIDGE_REFUSED" && e.status === 401 && /token is required/.test(e.reason));
  await assert.rejects(client("127.0.0.1:1", { bridge: bridge.url, token: "right" }).get("k"),
    (e) => e.code === "BRIDGE_REFUSED" && e.status === 403);
  // A refusal is no dead server: the right token works on the same client afterwards.
  const mc = client(address, { bridge: bridge.url, token: "right" });
  assert.equal(await mc.set("k", "v"), true);
  assert.equal(await mc.get("k"), "v");
});

/** memcached's total_connections, over a connection of its own that memcached has closed. */
function totalConnections(address) {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = net.connect(Number(port), host, () => socket.write("stats\r\nquit\r\n"));
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => { text += chunk; });
    socket.on("error", reject);
    socket.on("close", () => resolve(Number(/STAT total_connections (\d+)/.exec(text)[1])));
  });
}

/** A WebSocket that behaves as a browser's: it sends an Origin and cannot see HTTP refusals. */
function pageWebSocket(origin) {
  return class extends WebSocketNode {
    constructor(url, protocols) { super(url, protocols, { origin, perMessageDeflate: false }); }
  };
}

test("a page whose Origin or token the bridge refuses is told which, and memcached is untouched", async () => {
  const { address, bridge } = await setup({ tokens: ["right"] });
  const connectionsBefore = await totalConnections(address);
  const refusal = (origin, token) => new Promise((resolve) => {
    new WebSocketTransport(address, { connected() {}, received() {}, failed: resolve },
      { bridge: bridge.url, token, WebSocket: pageWebSocket(origin), isNodeWs: false });
  });
  const origin = await refusal("https://evil.example", "right");
  assert.equal(origin.code, "BRIDGE_REFUSED");
  assert.equal(origin.closeCode, 4403);
  assert.match(origin.message, /Origin was refused/);
  assert.equal(origin.server, address);
  const token = await refusal(`http://127.0.0.1:${bridge.port}`, "wrong");
  assert.equal(token.code, "BRIDGE_REFUSED");
  assert.equal(token.closeCode, 4401);
  assert.match(token.message, /token was refused/);
  assert.match(token.reason, /not valid/);
  // Only our own stats connections reached memcached: the refusals opened none.
  assert.equal(await totalConnections(address), connectionsBefore + 1);
});

test("a read-only bridge lets reads through and refuses a write with close code 1008", async () => {
  const { address, bridge } = await setup({ readOnly: true });
  const mc = client(address, { bridge: bridge.url });
  assert.equal(await mc.get("k"), undefined);
  await assert.rejects(mc.set("k", "v"), (e) => e.code === "BRIDGE_REFUSED" && e.closeCode === 1008 && e.reason.length > 0);
  assert.equal(await mc.get("k"), undefined, "reads work again on a new connection");
  assert.ok((await mc.stats())[address]);
});

test("large batches are split into frames under the bridge's message limit", async () => {
  const { address, bridge } = await setup();
  const mc = client(address, { bridge: bridge.url, maxValueSize: 1024 * 1024 });
  const big = "x".repeat(900 * 1024);
  const values = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`big${i}`, big]));
  assert.deepEqual(await mc.setMulti(values), []);
  const got = await mc.getMulti(Object.keys(values));
  for (const k of Object.keys(values)) assert.equal(got[k].length, big.length);
});

test("memcached dying behind the bridge rejects pending calls, then the client recovers", async () => {
  const { address, bridge, server } = await setup();
  const mc = client(address, { bridge: bridge.url, deadRetry: 0.2 });
  assert.equal(await mc.set("k", "v"), true);
  await server.pause();
  // The expectation is attached at once: the bridge may report memcached's death (and the
  // call reject) before this process sees memcached exit, and a rejection nobody handles yet
  // fails the run.
  const rejected = assert.rejects(mc.get("k"), (e) => e.code === "CONNECTION_ERROR" && e.server === address);
  await new Promise((r) => setTimeout(r, 100));
  await server.stop();
  await rejected;
  await server.startProcess();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await mc.set("k", "again"), true);
  assert.equal(await mc.get("k"), "again");
});
