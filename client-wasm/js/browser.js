// The browser entry point: talks to memcached through a memcache-bridge WebSocket. No Node
// imports and no top-level await, so a plain <script type="module">, an import map and every
// bundler load it as it is; the wasm engine loads on the first call (or init()), from the
// bytes embedded in the package unless init({ wasm }) names a URL, bytes, a Response or a Module.
import { setHost } from "./engine.js";
import { WebSocketTransport } from "./websocket-transport.js";

setHost({
  tcp: false,
  openTransport(address, sink, { bridge, token }) {
    return new WebSocketTransport(address, sink, { bridge, token, WebSocket: globalThis.WebSocket, isNodeWs: false });
  },
});

export { Client } from "./lazy-client.js";
export { init } from "./engine.js";
export {
  MemcacheError, BadKeyError, ValueTooLargeError, NotSerializableError, DecodeError, ProtocolError,
  UnknownCommandError, ClientError, ServerError, NoServerError, BadArgumentError, MetadumpRefusedError,
  ConnectionError, TimeoutError, NotStoredError, BridgeRefusedError, AuthFailedError, NotRelayedError, ClosedError, EngineLoadError, EngineNotReadyError,
} from "./errors.js";
