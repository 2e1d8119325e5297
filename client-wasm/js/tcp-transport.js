// Node TCP transport: one socket per memcached server, Nagle off so a batch leaves at
// once, TCP keepalive on so a peer that vanished without a FIN is noticed on an idle
// connection. It only moves bytes; the sink (the client's per-server connection) gets
// `connected()`, `received(chunk)` and `failed(error)`, and every decision (timeouts,
// retries) stays in the engine.
import net from "node:net";
import { ConnectionError } from "./errors.js";
import { parseAddress } from "./options.js";

/**
 * Idle time before the first keepalive probe. Linux's default is two hours; a minute
 * finds a dead peer (a host that rebooted, a dropped NAT entry) while the connection is
 * idle, long before a request would have to time out on it.
 */
const KEEPALIVE_DELAY_MS = 60_000;

export class TcpTransport {
  constructor(address, sink) {
    this.address = address;
    this.sink = sink;
    this.closed = false;
    this.socket = net.connect(parseAddress(address));
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.socket.on("connect", () => { if (!this.closed) this.sink.connected(); });
    // Nothing from a socket given up on may reach the server's next connection.
    this.socket.on("data", (chunk) => { if (!this.closed) this.sink.received(chunk); });
    this.socket.on("error", (err) => this.fail(`connection to ${address} failed: ${err.code ?? err.message}`, err));
    this.socket.on("close", () => this.fail(`connection to ${address} closed`));
  }

  write(bytes) { this.socket.write(bytes); }

  /** While requests are pending the socket keeps Node alive; idle, it lets a script exit. */
  setBusy(busy) { if (busy) this.socket.ref(); else this.socket.unref(); }

  fail(message, cause) {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.sink.failed(new ConnectionError(message, { server: this.address, cause }));
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
  }
}
