// WebSocket transport through a memcache-bridge: one WebSocket per memcached server
// (`<bridge>/memcached/<host:port>`, subprotocol "binary"), binary frames carrying the raw
// memcached bytes both ways. Works with the browser's WebSocket and with the `ws` package
// in Node (the entry point passes the constructor).
import { BridgeRefusedError, ConnectionError } from "./errors.js";

/** The close code the bridge uses when it refuses a command (policy violation). */
const CLOSE_POLICY_VIOLATION = 1008;
/**
 * Application close codes (4000 + the HTTP status) a bridge sends a browser whose handshake
 * it refused, before any connection to memcached: a page cannot read a refused handshake's
 * HTTP answer, but it can read a close frame. Each says what was refused.
 */
const HANDSHAKE_REFUSALS = new Map([
  [4401, "the token was refused (missing or not valid)"],
  [4403, "this page's Origin was refused (the bridge's --allow-origin does not list it)"],
]);
/** The subprotocol the bridge speaks: raw bytes in binary frames. */
const BINARY_PROTOCOL = "binary";
/**
 * Largest frame sent: a batch is cut into frames of at most this size (the bridge relays a
 * byte stream, so cuts may fall anywhere), well under the bridge's default 2 MiB limit.
 */
const MAX_FRAME_BYTES = 256 * 1024;
/** Longest refusal text read from a bridge's HTTP answer to a refused handshake. */
const MAX_REFUSAL_TEXT = 512;

/** The WebSocket URL of one upstream server behind a bridge. */
export function bridgeUrl(bridge, address) {
  return `${bridge.replace(/\/+$/, "")}/memcached/${encodeURIComponent(address).replace(/%3A/gi, ":")}`;
}

export class WebSocketTransport {
  /**
   * @param {string} address  the memcached server the bridge relays to ("host:port")
   * @param {object} sink     gets `received(Uint8Array)` and `failed(MemcacheError)`
   * @param {object} options  { bridge, token, WebSocket, isNodeWs }
   */
  constructor(address, sink, { bridge, token, WebSocket, isNodeWs }) {
    this.address = address;
    this.sink = sink;
    this.closed = false;
    this.open = false;
    this.queued = [];
    this.url = bridgeUrl(bridge, address);
    let socket;
    if (isNodeWs) {
      // Scripts send the token as a header, which never lands in URLs or logs.
      const headers = token !== undefined ? { Authorization: `Bearer ${token}` } : {};
      socket = new WebSocket(this.url, [BINARY_PROTOCOL], { headers, perMessageDeflate: false });
      // A refused handshake is an HTTP answer (401, 403, ...) whose body says why.
      socket.on("unexpected-response", (request, response) => this.refusedHandshake(response));
    } else if (token !== undefined) {
      // Browsers cannot set headers on a WebSocket: the token rides as a subprotocol entry.
      socket = new WebSocket(this.url, [BINARY_PROTOCOL, `token.${token}`]);
    } else {
      socket = new WebSocket(this.url, [BINARY_PROTOCOL]);
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.open = true;
      if (!this.closed) this.sink.connected();
      const queued = this.queued;
      this.queued = [];
      for (const bytes of queued) this.write(bytes);
    };
    socket.onmessage = (event) => {
      // Nothing from a socket given up on may reach the server's next connection.
      if (this.closed) return;
      const data = event.data;
      this.sink.received(data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
    socket.onerror = () => {
      // The close event that follows carries the code and reason; report from there.
    };
    socket.onclose = (event) => {
      const refused = HANDSHAKE_REFUSALS.get(event.code);
      if (refused !== undefined) {
        const why = event.reason ? `: ${event.reason}` : "";
        this.fail(new BridgeRefusedError(`bridge refused ${address}: ${refused}${why}`,
          { server: address, reason: event.reason, closeCode: event.code }));
      } else if (event.code === CLOSE_POLICY_VIOLATION) {
        this.fail(new BridgeRefusedError(`bridge refused ${address}: ${event.reason || "no reason given"}`,
          { server: address, reason: event.reason, closeCode: event.code }));
      } else if (!this.open) {
        // Browsers hide why a handshake failed (refused by the bridge or unreachable).
        this.fail(new ConnectionError(`could not open a WebSocket to ${this.url} (refused by the bridge or unreachable; code ${event.code})`,
          { server: address, reason: event.reason, closeCode: event.code }));
      } else {
        const why = event.reason ? `: ${event.reason}` : "";
        this.fail(new ConnectionError(`bridge connection to ${address} closed (code ${event.code})${why}`,
          { server: address, reason: event.reason, closeCode: event.code }));
      }
    };
  }

  refusedHandshake(response) {
    let text = "";
    response.setEncoding("utf8");
    response.on("data", (chunk) => { if (text.length < MAX_REFUSAL_TEXT) text += chunk; });
    const report = () => {
      const reason = text.trim().slice(0, MAX_REFUSAL_TEXT) || response.statusMessage || "";
      this.fail(new BridgeRefusedError(`bridge refused ${this.address}: HTTP ${response.statusCode} ${reason}`,
        { server: this.address, reason, status: response.statusCode }));
    };
    response.on("end", report);
    response.on("error", report);
  }

  write(bytes) {
    if (!this.open) {
      this.queued.push(bytes.slice());
      return;
    }
    if (bytes.length <= MAX_FRAME_BYTES) {
      this.socket.send(bytes);
      return;
    }
    for (let at = 0; at < bytes.length; at += MAX_FRAME_BYTES) {
      this.socket.send(bytes.subarray(at, at + MAX_FRAME_BYTES));
    }
  }

  setBusy() {}

  fail(error) {
    if (this.closed) return;
    this.closed = true;
    try { this.socket.close(); } catch { /* closing a socket that never opened */ }
    this.sink.failed(error);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    try { this.socket.close(); } catch { /* closing a socket that never opened */ }
  }
}

