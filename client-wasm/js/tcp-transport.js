// Node TCP transport: one socket per memcached server (TCP, IPv6 or a unix socket, plain or
// TLS), Nagle off so a batch leaves at once, TCP keepalive on so a peer that vanished
// without a FIN is noticed on an idle connection. It only moves bytes; the sink (the
// client's per-server connection) gets `connected(info)`, `received(chunk)`,
// `failed(error)` and, under TLS, `tlsSession(session)` to hand back on the next connect
// (a resumed handshake). Every decision (timeouts, retries, authentication) stays in the
// engine.
import net from "node:net";
import tls from "node:tls";
import { ConnectionError } from "./errors.js";
import { parseAddress } from "./options.js";

/**
 * Idle time before the first keepalive probe. Linux's default is two hours; a minute
 * finds a dead peer (a host that rebooted, a dropped NAT entry) while the connection is
 * idle, long before a request would have to time out on it.
 */
const KEEPALIVE_DELAY_MS = 60_000;

/** Why a TLS handshake failed, in a person's words, with OpenSSL's or Node's code. */
function tlsReason(err) {
  const code = err.code && !err.message.includes(err.code) ? ` (${err.code})` : "";
  return `${err.message}${code}`;
}

export class TcpTransport {
  /** `options.tls`: tls.connect's settings (null: plain TCP); `options.session`: the last
   *  TLS session of this server, to resume. */
  constructor(address, sink, { tls: tlsOptions = null, session } = {}) {
    this.address = address;
    this.sink = sink;
    this.closed = false;
    this.secure = tlsOptions !== null;
    this.handshaken = false;
    const target = parseAddress(address);
    if (this.secure) {
      // Certificate checks stay on unless the caller turned them off; the name checked is
      // the address's host unless `servername` says otherwise. Never plain TCP instead.
      const settings = { ...target, ...tlsOptions };
      if (session !== undefined) settings.session = session;
      if (settings.servername === undefined && target.host !== undefined && net.isIP(target.host) === 0) {
        settings.servername = target.host;
      }
      this.socket = tls.connect(settings);
      this.socket.on("secureConnect", () => {
        this.handshaken = true;
        if (!this.closed) this.sink.connected({ tls: true, resumed: this.socket.isSessionReused() });
      });
      this.socket.on("session", (s) => { if (!this.closed) this.sink.tlsSession?.(s); });
    } else {
      this.socket = net.connect(target);
      this.socket.on("connect", () => { if (!this.closed) this.sink.connected({ tls: false, resumed: false }); });
    }
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    // Nothing from a socket given up on may reach the server's next connection.
    this.socket.on("data", (chunk) => { if (!this.closed) this.sink.received(chunk); });
    this.socket.on("error", (err) => {
      if (this.secure) this.fail(`TLS connection to ${address} failed: ${tlsReason(err)}`, err);
      else this.fail(`connection to ${address} failed: ${err.code ?? err.message}`, err);
    });
    this.socket.on("close", () => {
      // A server that hangs up during the handshake (memcached refusing a client without
      // a certificate it trusts) is a TLS failure, not an idle close.
      if (this.secure && !this.handshaken) this.fail(`TLS connection to ${address} failed: the server closed the connection during the handshake`);
      else this.fail(`${this.secure ? "TLS connection" : "connection"} to ${address} closed`);
    });
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
