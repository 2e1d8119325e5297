// One server's socket on the JavaScript side, with an explicit status. The engine says
// when to open it (CONNECT), what to write (WRITE) and when to give up on it (CLOSE);
// this object opens the transport (TCP or a bridge WebSocket), passes what happens on it
// back to the client, and keeps only what a person debugging wants to see: the status
// and the last socket error. Every rule (timeouts, retries, health) is the engine's.

/** The socket's states: no socket, handshake under way, bytes can flow. */
export const Status = Object.freeze({ CLOSED: "closed", CONNECTING: "connecting", OPEN: "open" });

export class ServerConnection {
  constructor(client, index, address, weight, tls = null) {
    this.client = client;
    this.index = index;
    this.address = address;
    this.weight = weight;
    /** tls.connect's settings for this server (null: plain TCP). */
    this.tls = tls;
    /** The last TLS session the server gave, offered on the next connect to resume. */
    this.tlsSession = undefined;
    this.status = Status.CLOSED;
    this.transport = null;
    /** The last error the socket reported (its errno, TLS or bridge reason), or null. */
    this.lastError = null;
  }

  /** Opens a new socket; the old one, if any, is closed first. */
  connect(openTransport, options, busy) {
    this.close();
    this.status = Status.CONNECTING;
    // Events of a socket given up on must never reach the next one's state.
    let transport = null;
    const sink = {
      connected: (info) => { if (this.transport === transport) this.opened(info); },
      tlsSession: (session) => { if (this.transport === transport) this.tlsSession = session; },
      received: (chunk) => { if (this.transport === transport) this.client._received(this, chunk); },
      failed: (error) => { if (this.transport === transport) this.lost(error); },
    };
    try {
      transport = openTransport(this.address, sink, { ...options, tls: this.tls, session: this.tlsSession });
    } catch (error) {
      // An address the transport cannot use fails like a refused connection, after this
      // crossing (the engine is not re-entered from inside one).
      transport = { write() {}, setBusy() {}, close() {} };
      queueMicrotask(() => sink.failed(error));
    }
    this.transport = transport;
    transport.setBusy(busy);
  }

  opened(info) {
    this.status = Status.OPEN;
    this.lastError = null;
    this.client._connected(this, info);
  }

  lost(error) {
    this.transport = null;
    this.status = Status.CLOSED;
    this.lastError = error;
    this.client._lost(this, error);
  }

  write(bytes) {
    if (this.transport !== null) this.transport.write(bytes);
  }

  /** While calls are pending a Node socket keeps the process alive; idle, it lets a script exit. */
  setBusy(busy) {
    if (this.transport !== null) this.transport.setBusy(busy);
  }

  close() {
    const transport = this.transport;
    this.transport = null;
    this.status = Status.CLOSED;
    if (transport !== null) transport.close();
  }
}
