// The ceiling every client is measured against: memcached's text protocol written by hand on a
// socket, with pipelining (requests made in one tick go out in one write) and the least parsing
// that still checks each reply. It carries TCP or a WebSocket (binary frames), so the same code
// measures a relay.
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';

const CR = 13;
const LF = 10;
const CRLF = '\r\n';
// A connection attempt that takes longer than this is a broken benchmark setup, not a slow one.
const CONNECT_TIMEOUT_MS = 5000;
// String values at least this long are encoded to bytes before they are queued (see set).
const LARGE_STRING = 1024;

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** python-memcached's server hash: ((crc32(key) & 0xffffffff) >> 16) & 0x7fff, ASCII keys. */
export function serverHash(key) {
  let crc = -1;
  for (let i = 0; i < key.length; i++) crc = CRC_TABLE[(crc ^ key.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  return (((crc ^ -1) >>> 16) & 0x7fff) >>> 0;
}

const GET = 0;
const MULTI = 1;
const STORE = 2;
const LINE = 3;

/** One pipelined connection to one memcached, over any byte transport. */
export class RawConnection {
  /** Opens a TCP connection to host:port. */
  static tcp(host, port) {
    return RawConnection.socket(net.createConnection({ host, port, noDelay: true }), 'connect', `${host}:${port}`);
  }

  /** Opens a TLS connection to host:port; options: tls.connect's (ca, servername, ...). */
  static tls(host, port, options) {
    const socket = tls.connect({ host, port, ...options });
    socket.setNoDelay(true);
    return RawConnection.socket(socket, 'secureConnect', `tls ${host}:${port}`);
  }

  /** Resolves with a connection over `socket` once it emits `ready` (bounded in time). */
  static socket(socket, ready, name) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect ${name}: timeout`));
      }, CONNECT_TIMEOUT_MS);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once(ready, () => {
        clearTimeout(timer);
        const conn = new RawConnection(
          (bytes) => socket.write(bytes),
          () => socket.destroy(),
          name,
        );
        socket.removeAllListeners('error');
        socket.on('data', (chunk) => conn.receive(chunk));
        socket.on('error', (err) => conn.fail(err));
        socket.on('close', () => conn.fail(new Error(`${conn.name}: connection closed`)));
        resolve(conn);
      });
    });
  }

  /** Opens a WebSocket (binary frames carry the protocol bytes) to a relay URL. */
  static websocket(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`connect ${url}: timeout`));
      }, CONNECT_TIMEOUT_MS);
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`connect ${url}: HTTP ${res.statusCode}`));
      });
      ws.once('open', () => {
        clearTimeout(timer);
        const conn = new RawConnection(
          (bytes) => ws.send(bytes, { binary: true }),
          () => ws.terminate(),
          url,
        );
        ws.removeAllListeners('error');
        ws.on('message', (data) => conn.receive(data));
        ws.on('error', (err) => conn.fail(err));
        ws.on('close', (code, reason) =>
          conn.fail(new Error(`${url}: closed ${code} ${reason.toString()}`)),
        );
        resolve(conn);
      });
    });
  }

  constructor(write, destroy, name) {
    this.write = write;
    this.destroy = destroy;
    this.name = name;
    // Requests in the order they were sent; replies come back in the same order.
    this.pending = [];
    this.head = 0;
    this.out = [];
    this.outHasBuffer = false;
    this.flushScheduled = false;
    this.buf = null;
    this.closed = null;
    this.flush = this.flush.bind(this);
  }

  get(key) {
    return this.request(`get ${key}${CRLF}`, GET);
  }

  /** Resolves with a Map of the keys found to their values. */
  getMulti(keys) {
    return this.request(`get ${keys.join(' ')}${CRLF}`, MULTI);
  }

  /** value: a string (sent as UTF-8) or a Buffer; resolves true when stored. */
  set(key, value, flags = 0, exptime = 0) {
    // Node writes a large joined string much slower than the same bytes as Buffers (measured:
    // 10 KB values, 64 in flight, about half the rate), so large values go out as bytes.
    const bytes =
      typeof value === 'string' && value.length >= LARGE_STRING ? Buffer.from(value, 'utf8') : value;
    const length = typeof bytes === 'string' ? Buffer.byteLength(bytes, 'utf8') : bytes.length;
    this.queue(`set ${key} ${flags} ${exptime} ${length}${CRLF}`);
    this.queue(bytes);
    return this.request(CRLF, STORE);
  }

  /** Sends one command whose reply is one line; resolves with that line. */
  command(line) {
    return this.request(`${line}${CRLF}`, LINE);
  }

  close() {
    this.fail(new Error(`${this.name}: closed by the client`));
    this.destroy();
  }

  queue(part) {
    if (typeof part !== 'string') this.outHasBuffer = true;
    this.out.push(part);
  }

  request(text, kind) {
    if (this.closed) return Promise.reject(this.closed);
    this.queue(text);
    return new Promise((resolve, reject) => {
      this.pending.push({ kind, resolve, reject, values: kind === MULTI ? new Map() : undefined });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(this.flush);
      }
    });
  }

  flush() {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.closed) return;
    const parts = this.out;
    this.out = [];
    if (this.outHasBuffer) {
      this.outHasBuffer = false;
      this.write(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p))));
    } else {
      this.write(parts.length === 1 ? parts[0] : parts.join(''));
    }
  }

  fail(err) {
    if (this.closed) return;
    this.closed = err;
    for (let i = this.head; i < this.pending.length; i++) this.pending[i].reject(err);
    this.pending = [];
    this.head = 0;
  }

  receive(chunk) {
    let buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    for (;;) {
      const req = this.pending[this.head];
      if (req === undefined) {
        if (pos < buf.length) this.fail(new Error(`${this.name}: reply with no request`));
        break;
      }
      const eol = buf.indexOf(LF, pos);
      if (eol < 0) break;
      if (eol === pos || buf[eol - 1] !== CR) {
        this.fail(new Error(`${this.name}: malformed line`));
        return;
      }
      // "VALUE key flags bytes": the only line that carries a data block
      if (buf[pos] === 0x56 /* V */ && buf[pos + 1] === 0x41 /* A */) {
        if (req.kind !== GET && req.kind !== MULTI) {
          this.fail(new Error(`${this.name}: VALUE in reply to a store`));
          return;
        }
        let bytes = 0;
        let scale = 1;
        let i = eol - 2;
        for (; i > pos && buf[i] !== 0x20; i--) {
          bytes += (buf[i] - 48) * scale;
          scale *= 10;
        }
        const dataStart = eol + 1;
        const dataEnd = dataStart + bytes;
        if (buf.length < dataEnd + 2) break;
        const value = buf.subarray(dataStart, dataEnd);
        if (req.kind === GET) {
          req.value = value;
        } else {
          // key is the second word: "VALUE " is 6 bytes
          const keyEnd = buf.indexOf(0x20, pos + 6);
          req.values.set(buf.toString('latin1', pos + 6, keyEnd), value);
        }
        pos = dataEnd + 2;
        continue;
      }
      const line = buf.toString('latin1', pos, eol - 1);
      pos = eol + 1;
      this.head++;
      if (req.kind === GET || req.kind === MULTI) {
        if (line !== 'END') {
          req.reject(new Error(`${this.name}: get: ${line}`));
        } else {
          req.resolve(req.kind === GET ? req.value : req.values);
        }
      } else if (req.kind === STORE) {
        if (line === 'STORED') req.resolve(true);
        else if (line === 'NOT_STORED') req.resolve(false);
        else req.reject(new Error(`${this.name}: set: ${line}`));
      } else {
        req.resolve(line);
      }
    }
    if (this.head === this.pending.length) {
      this.pending.length = 0;
      this.head = 0;
    } else if (this.head > 1024) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    this.buf = pos < buf.length ? buf.subarray(pos) : null;
  }
}

/** Several servers, each key on the server python-memcached would choose (weight 1 each). */
export class RawClient {
  /** addresses: ["127.0.0.1:11211", ...]; bridge: a ws:// URL to relay through, or undefined. */
  static async connect(addresses, { bridge } = {}) {
    const conns = await Promise.all(
      addresses.map((address) => {
        if (bridge) return RawConnection.websocket(`${bridge}/memcached/${address}`);
        const [host, port] = address.split(':');
        return RawConnection.tcp(host, Number(port));
      }),
    );
    return new RawClient(conns);
  }

  constructor(conns) {
    this.conns = conns;
  }

  conn(key) {
    return this.conns.length === 1 ? this.conns[0] : this.conns[serverHash(key) % this.conns.length];
  }

  get(key) {
    return this.conn(key).get(key);
  }

  set(key, value) {
    return this.conn(key).set(key, value);
  }

  /** Resolves with a Map of the keys found; one request per server. */
  async getMulti(keys) {
    if (this.conns.length === 1) return this.conns[0].getMulti(keys);
    const byConn = new Map();
    for (const key of keys) {
      const conn = this.conn(key);
      let list = byConn.get(conn);
      if (list === undefined) byConn.set(conn, (list = []));
      list.push(key);
    }
    const parts = await Promise.all([...byConn].map(([conn, list]) => conn.getMulti(list)));
    const merged = parts[0];
    for (let i = 1; i < parts.length; i++) for (const [k, v] of parts[i]) merged.set(k, v);
    return merged;
  }

  /** Sends flush_all to every server; rejects unless each answers OK. */
  async flushAll() {
    const replies = await Promise.all(this.conns.map((conn) => conn.command('flush_all')));
    for (const reply of replies) if (reply !== 'OK') throw new Error(`flush_all: ${reply}`);
  }

  close() {
    for (const conn of this.conns) conn.close();
  }
}
