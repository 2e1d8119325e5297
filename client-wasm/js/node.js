// The Node entry point: TCP sockets to memcached (or WebSockets through a bridge, with the
// `ws` package, or the global WebSocket when Node has one). The wasm engine loads on the
// first call (or init()), from the bytes embedded in the package, so a script bundled by
// esbuild or another bundler (ESM or CJS) needs no .wasm file beside it.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { setHost } from "./engine.js";
import { TcpTransport } from "./tcp-transport.js";
import { WebSocketTransport } from "./websocket-transport.js";
import { BadArgumentError } from "./errors.js";

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

setHost({
  tcp: true,
  openTransport(address, sink, { bridge, token, tls, session }) {
    if (bridge === undefined) return new TcpTransport(address, sink, { tls, session });
    const WebSocket = nodeWebSocket();
    return new WebSocketTransport(address, sink, { bridge, token, WebSocket, isNodeWs });
  },
  readFile: (url) => readFile(url),
  // serverForKey() before any call: Node compiles the embedded engine synchronously.
  syncCompile: true,
});

export { Client } from "./lazy-client.js";
export { init } from "./engine.js";
export {
  MemcacheError, BadKeyError, ValueTooLargeError, NotSerializableError, DecodeError, ProtocolError,
  UnknownCommandError, ClientError, ServerError, NoServerError, BadArgumentError, MetadumpRefusedError,
  ConnectionError, TimeoutError, NotStoredError, BridgeRefusedError, AuthFailedError, NotRelayedError, ClosedError, EngineLoadError, EngineNotReadyError,
} from "./errors.js";
