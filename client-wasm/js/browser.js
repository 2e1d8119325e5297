// The browser entry point: fetches and compiles the wasm engine next to this file (or from
// the URL given to `init`), and talks to memcached through a memcache-bridge WebSocket.
// No Node imports here, so a plain <script type="module"> and bundlers can load it.
import initWasm, { Engine } from "../pkg/memcache_wasm.js";
import { setPlatform } from "./client.js";
import { WebSocketTransport } from "./websocket-transport.js";

const wasm = await initWasm({ module_or_path: new URL("../pkg/memcache_wasm_bg.wasm", import.meta.url) });

setPlatform({
  Engine,
  memory: wasm.memory,
  tcp: false,
  openTransport(address, sink, { bridge, token }) {
    return new WebSocketTransport(address, sink, { bridge, token, WebSocket: globalThis.WebSocket, isNodeWs: false });
  },
});

export { Client } from "./client.js";
export * from "./errors.js";
