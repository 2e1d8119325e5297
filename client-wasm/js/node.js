// The Node entry point: loads the wasm engine synchronously from the package files, and
// opens TCP sockets (or WebSockets through a bridge, with the global WebSocket when Node
// has one and the `ws` package otherwise).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Engine, initSync } from "../pkg/memcache_wasm.js";
import { setPlatform } from "./client.js";
import { TcpTransport } from "./tcp-transport.js";
import { WebSocketTransport } from "./websocket-transport.js";
import { BadArgumentError } from "./errors.js";

const wasm = initSync({ module: readFileSync(new URL("../pkg/memcache_wasm_bg.wasm", import.meta.url)) });

let webSocketClass = null;
let isNodeWs = false;
function nodeWebSocket() {
  if (webSocketClass !== null) return webSocketClass;
  // The `ws` package sends the bridge token as an Authorization header, which scripts
  // prefer to a subprotocol entry; fall back to a global WebSocket (Node 22+) without it.
  try {
    webSocketClass = createRequire(import.meta.url)("ws");
    isNodeWs = true;
  } catch {
    if (typeof globalThis.WebSocket !== "function") {
      throw new BadArgumentError("a bridge needs a WebSocket: install the `ws` package (npm install ws)");
    }
    webSocketClass = globalThis.WebSocket;
  }
  return webSocketClass;
}

setPlatform({
  Engine,
  memory: wasm.memory,
  tcp: true,
  openTransport(address, sink, { bridge, token }) {
    if (bridge === undefined) return new TcpTransport(address, sink);
    const WebSocket = nodeWebSocket();
    return new WebSocketTransport(address, sink, { bridge, token, WebSocket, isNodeWs });
  },
});

export { Client } from "./client.js";
export * from "./errors.js";
