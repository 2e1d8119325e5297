// The Client: python-memcached's API as Promises. Calls made in one tick are encoded into
// one batch that crosses into the wasm engine once (keys, hashing, values, framing happen
// there) and leave as one write per server; each received chunk crosses once and comes
// back as the finished results, matched to the waiting calls by a FIFO per server.
import {
  BatchWriter, CONNECTION_BROKEN_ID, MetadumpScope, OP_HASHED, Op, Record, ResultReader, Status, ValueKind, decodeText,
} from "./batch.js";
import {
  BadArgumentError, CORE_ERROR_CLASSES, ClosedError, DecodeError, MemcacheError, NotSerializableError,
  ProtocolError, TimeoutError,
} from "./errors.js";
import { PendingQueue } from "./fifo.js";

/** python-memcached's socket_timeout (3 s), here per request in milliseconds. */
const DEFAULT_TIMEOUT_MS = 3000;
/** python-memcached's dead_retry: seconds a failed server is skipped. */
const DEFAULT_DEAD_RETRY_S = 30;
/** memcached's default item size limit (-I 1m); larger values are refused before sending. */
const DEFAULT_MAX_VALUE_SIZE = 1024 * 1024;
/** Op ids wrap within u32; CONNECTION_BROKEN_ID is reserved by the engine. */
const MAX_OP_ID = 0xfffffffe;

let platform = null;

/**
 * Set by the entry point (node.js or browser.js) once the wasm module is initialized:
 * { Engine, memory (the module's WebAssembly.Memory), tcp, openTransport(address, sink, options) }.
 */
export function setPlatform(p) { platform = p; }

function coreError(code, message) {
  const Cls = CORE_ERROR_CLASSES[code];
  return Cls ? new Cls(message) : new MemcacheError("PROTOCOL_ERROR", `unknown engine error code ${code}: ${message}`);
}

/** An error the binding threw ("CODE: message") as the MemcacheError subclass of its code. */
function engineError(e) {
  const text = e?.message ?? String(e);
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(text);
  const Cls = m && CORE_ERROR_CLASSES.find((C) => new C("").code === m[1]);
  return Cls ? new Cls(m[2]) : new ProtocolError(`engine failed: ${text}`, { cause: e });
}

function pick(options, camel, snake, fallback) {
  if (options == null) return fallback;
  if (options[camel] !== undefined) return options[camel];
  if (snake !== undefined && options[snake] !== undefined) return options[snake];
  return fallback;
}

function normalizeServers(servers) {
  if (typeof servers === "string") servers = [servers];
  if (!Array.isArray(servers) || servers.length === 0) {
    throw new BadArgumentError("servers must be a non-empty array of \"host:port\" strings or {address, weight} objects");
  }
  return servers.map((s) => {
    let address, weight = 1;
    if (typeof s === "string") address = s;
    else if (Array.isArray(s)) [address, weight] = s; // python-memcached's ("host:port", weight)
    else if (s && typeof s === "object") { address = s.address; weight = s.weight ?? 1; }
    if (typeof address !== "string" || address.length === 0) {
      throw new BadArgumentError(`bad server entry ${JSON.stringify(s)}: expected "host:port" or {address, weight}`);
    }
    if (!Number.isInteger(weight) || weight < 1 || weight > 0xffff) {
      throw new BadArgumentError(`bad weight ${weight} for server ${address}: an integer from 1 to 65535`);
    }
    return { address, weight };
  });
}

function checkExpiry(expiry) {
  if (expiry === undefined || expiry === null) return 0;
  if (!Number.isInteger(expiry) || expiry < 0 || expiry > 0xffffffff) {
    throw new BadArgumentError(`expiry must be a non-negative integer number of seconds (or a unix time), got ${String(expiry)}`);
  }
  return expiry;
}

function checkKey(key) {
  if (typeof key !== "string") {
    if (typeof key === "number" || typeof key === "bigint") return String(key); // python's str()-able keys
    throw new BadArgumentError(`a key must be a string, got ${typeof key}`);
  }
  return key;
}

function checkDelta(delta) {
  if (delta === undefined) return 1n;
  if (typeof delta === "bigint") {
    if (delta < 0n || delta > 0xffffffffffffffffn) throw new BadArgumentError("delta must be between 0 and 2^64-1");
    return delta;
  }
  if (!Number.isSafeInteger(delta) || delta < 0) throw new BadArgumentError(`delta must be a non-negative integer, got ${String(delta)}`);
  return BigInt(delta);
}

function checkCas(cas) {
  if (typeof cas === "bigint") return cas;
  if (typeof cas === "number" && Number.isSafeInteger(cas) && cas >= 0) return BigInt(cas);
  if (typeof cas === "string" && /^\d+$/.test(cas)) return BigInt(cas);
  throw new BadArgumentError(`cas must be the token gets() returned (a BigInt), got ${String(cas)}`);
}

/** Digits of a flag-2 integer: a number when it is safe, a BigInt above 2^53-1. */
function parseInteger(bytes) {
  if (bytes.length > 0 && bytes.length <= 15) {
    let neg = false, i = 0, n = 0;
    if (bytes[0] === 45) { neg = true; i = 1; }
    if (i < bytes.length) {
      for (; i < bytes.length; i++) {
        const d = bytes[i] - 48;
        if (d < 0 || d > 9) break;
        n = n * 10 + d;
      }
      if (i === bytes.length) return neg ? -n : n;
    }
  }
  const text = decodeText(bytes).trim();
  if (!/^-?\d+$/.test(text)) throw new DecodeError(`integer value ${JSON.stringify(text)} is not a decimal number`);
  const big = BigInt(text);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/**
 * The caller's hash function as the engine calls it during python-memcached's re-hash past
 * a dead server (str(hash) + str(i) hashed again): the checked hash, or, when the function
 * throws or returns something that is not a u32, the reason as a string, which the engine
 * turns into a BAD_ARGUMENT rejection of the call (no exception unwinds through wasm).
 */
function rehashFunction(client) {
  return (input) => {
    try {
      return client._hashOf(input);
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
  };
}

/**
 * The per-connection deadline timer. In Node it does not keep the process alive by itself:
 * a socket with requests in flight does (TcpTransport.setBusy), so a script whose calls
 * are all answered exits at once instead of waiting for the timer.
 */
function armTimer(fn, ms, server) {
  const timer = setTimeout(fn, ms, server);
  if (typeof timer === "object" && typeof timer.unref === "function") timer.unref();
  return timer;
}

/** A Promise's settlers, captured without a closure per call. */
const settlers = { resolve: null, reject: null };
function captureSettlers(resolve, reject) {
  settlers.resolve = resolve;
  settlers.reject = reject;
}

function closedPromise() { return Promise.reject(new ClosedError("the client is closed")); }

/** One call waiting for its results; `parts` is how many servers still owe a record. */
class Operation {
  constructor(kind, id) {
    this.kind = kind;
    this.id = id;
    this.start = 0;       // where its bytes begin in the batch being built
    this.parts = 0;
    this.deadline = 0;
    this.settled = false;
    this.keys = null;     // the caller's keys, for multi ops (results name keys by index)
    this.result = undefined;
    this.resolve = null;
    this.reject = null;
  }
  fail(error) {
    if (this.settled) return;
    this.settled = true;
    this.reject(error);
  }
  done(value) {
    if (this.settled) return;
    this.settled = true;
    this.resolve(value);
  }
}

/** A server's connection state on the JavaScript side: its transport and pending FIFO. */
class ServerState {
  constructor(client, index, address, weight) {
    this.client = client;
    this.index = index;
    this.address = address;
    this.weight = weight;
    this.transport = null;
    this.pending = new PendingQueue();
    this.timer = null;
    this.deadUntil = 0;
    // A metadump owns the connection from its line's write to its reply (see metadump()):
    // `metadump` is that op; `held` are writes {bytes, metadump} waiting their turn.
    this.metadump = null;
    this.held = [];
  }
  received(chunk) { this.client._received(this, chunk); }
  failed(error) { this.client._serverFailed(this, error); }
}

/**
 * The constructor's options, checked and defaulted in plain JavaScript (no engine needed),
 * so `new Client(...)` throws BAD_ARGUMENT at once even before the engine has loaded
 * (lazy-client.js calls it for that). `tcp`: whether this platform can open TCP sockets.
 */
export function clientSettings(servers, options, tcp) {
  const list = normalizeServers(servers);
  const bridge = pick(options, "bridge", undefined, undefined);
  const token = pick(options, "token", undefined, undefined);
  if (bridge !== undefined && !/^wss?:\/\//.test(bridge)) {
    throw new BadArgumentError(`bridge must be a ws:// or wss:// URL, got ${JSON.stringify(bridge)}`);
  }
  if (bridge === undefined && !tcp) {
    throw new BadArgumentError("in a browser the client needs a bridge: new Client(servers, { bridge: \"wss://host/...\" })");
  }
  const timeout = pick(options, "timeout", "socket_timeout", DEFAULT_TIMEOUT_MS);
  const deadRetry = pick(options, "deadRetry", "dead_retry", DEFAULT_DEAD_RETRY_S);
  if (!(timeout > 0)) throw new BadArgumentError("timeout must be a positive number of milliseconds");
  if (!(deadRetry >= 0)) throw new BadArgumentError("deadRetry must be a non-negative number of seconds");
  const failover = pick(options, "failover", undefined, true);
  // Keys are always checked: a key that breaks python-memcached's rules would also break
  // the protocol's line framing. `checkKeys: false` is accepted for parity and changes nothing.
  pick(options, "checkKeys", "check_keys", true);
  const minCompressLen = pick(options, "minCompressLen", "min_compress_len", 0);
  const maxValueSize = pick(options, "maxValueSize", "server_max_value_length", DEFAULT_MAX_VALUE_SIZE);
  if (!Number.isInteger(minCompressLen) || minCompressLen < 0) throw new BadArgumentError("minCompressLen must be a non-negative integer");
  if (!Number.isInteger(maxValueSize) || maxValueSize < 1 || maxValueSize > 0xffffffff) throw new BadArgumentError("maxValueSize must be a positive integer");

  const hash = pick(options, "hashFunction", "hash_function", "crc32");
  let hashFunction = null;
  let hashName = hash;
  if (typeof hash === "function") { hashFunction = hash; hashName = "custom"; }
  else if (hash !== "crc32" && hash !== "crc32-old") throw new BadArgumentError(`hashFunction must be "crc32", "crc32-old" or a function, got ${String(hash)}`);
  const distribution = pick(options, "distribution", undefined, "modula");
  if (distribution !== "modula" && distribution !== "ketama") throw new BadArgumentError(`distribution must be "modula" or "ketama", got ${String(distribution)}`);

  const serializerOption = pick(options, "serializer", undefined, "json");
  let serializer = null;
  let serializerName = serializerOption;
  if (serializerOption && typeof serializerOption === "object") {
    if (typeof serializerOption.serialize !== "function" || typeof serializerOption.deserialize !== "function") {
      throw new BadArgumentError("a custom serializer needs serialize(value) and deserialize(bytes) functions");
    }
    serializer = serializerOption;
    serializerName = "custom";
  } else if (serializerOption !== "json" && serializerOption !== "pickle") {
    throw new BadArgumentError(`serializer must be "json", "pickle" or {serialize, deserialize}, got ${String(serializerOption)}`);
  }

  const debug = pick(options, "debug", undefined, false);
  const log = !debug ? null
    : typeof debug === "function" ? debug
    : typeof debug.log === "function" ? (m) => debug.log(m)
    : (m) => console.error(m);
  return {
    list, bridge, token, timeout, deadRetry, failover, minCompressLen, maxValueSize,
    hashFunction, hashName, distribution, serializer, serializerName, log,
  };
}

export class Client {
  /**
   * @param {Array<string | {address: string, weight?: number} | [string, number]>} servers
   * @param {object} [options] see README.md (bridge, token, timeout, deadRetry, failover, ...)
   */
  constructor(servers, options = {}) {
    if (!platform) throw new MemcacheError("CLOSED", "memcache-wasm is not initialized: import it from the package entry point");
    const {
      list, bridge, token, timeout, deadRetry, failover, minCompressLen, maxValueSize,
      hashFunction, hashName, distribution, serializer, serializerName, log,
    } = clientSettings(servers, options, platform.tcp);
    this._bridge = bridge;
    this._token = token;
    this._timeout = timeout;
    this._deadRetry = deadRetry;
    this._minCompressLen = minCompressLen;
    this._hashFunction = hashFunction;
    this._serializer = serializer;
    this._log = log;

    try {
      this._engine = new platform.Engine(
        list.map((s) => s.address), Uint32Array.from(list.map((s) => s.weight)),
        distribution, hashName, serializerName, minCompressLen, maxValueSize, failover,
        this._hashFunction === null ? undefined : rehashFunction(this),
      );
    } catch (e) {
      throw engineError(e);
    }
    this._servers = list.map((s, i) => new ServerState(this, i, s.address, s.weight));
    this._writer = new BatchWriter();
    this._batch = [];
    this._scheduled = false;
    this._nextId = 1;
    this._deadCount = 0;
    this._closed = false;
    this._flush = this._flush.bind(this);
    this._onTimer = this._onTimer.bind(this);
  }

  /** The servers as configured: [{address, weight, dead}] (dead: skipped until it retries). */
  get servers() {
    const now = Date.now();
    return this._servers.map((s) => ({ address: s.address, weight: s.weight, dead: s.deadUntil > now }));
  }

  // ---- the API -------------------------------------------------------------------

  /** The value stored under `key`, or undefined. */
  get(key) { return this._single(Op.GET, key); }

  /** {value, cas} for `key`, or undefined; pass `cas` to cas(). */
  gets(key) { return this._single(Op.GETS, key); }

  /** The values found, as an object keyed like `keys` (without the prefix). One request per server. */
  getMulti(keys, options) {
    return this._multiKeys(Op.GET_MULTI, keys, pick(options, "keyPrefix", "key_prefix", ""), {});
  }

  set(key, value, expiry, options) { return this._store(Op.SET, key, value, expiry, options); }
  add(key, value, expiry, options) { return this._store(Op.ADD, key, value, expiry, options); }
  replace(key, value, expiry, options) { return this._store(Op.REPLACE, key, value, expiry, options); }
  append(key, value, expiry, options) { return this._store(Op.APPEND, key, value, expiry, options); }
  prepend(key, value, expiry, options) { return this._store(Op.PREPEND, key, value, expiry, options); }

  /** Stores only if the item is unchanged since gets() returned `cas`: true when stored. */
  cas(key, value, cas, expiry, options) {
    let token;
    try { token = checkCas(cas); } catch (e) { return Promise.reject(e); }
    return this._store(Op.CAS, key, value, expiry, options, token);
  }

  /** Sets every entry of `mapping` (an object or a Map); resolves to the keys not stored. */
  setMulti(mapping, options) {
    if (typeof options === "number") options = { expiry: options };
    return this._call(Op.SET_MULTI, [], (op, w) => {
      const entries = mapping instanceof Map ? [...mapping] : Object.entries(mapping ?? {});
      const prefix = pick(options, "keyPrefix", "key_prefix", "");
      const expiry = checkExpiry(pick(options, "expiry", "time", 0));
      const minCompressLen = this._compressArg(pick(options, "minCompressLen", "min_compress_len", undefined));
      const keys = new Array(entries.length);
      for (let i = 0; i < entries.length; i++) keys[i] = checkKey(entries[i][0]);
      op.keys = keys;
      w.str(prefix);
      w.u32(expiry);
      w.u32(minCompressLen);
      w.u32(entries.length);
      for (let i = 0; i < entries.length; i++) {
        this._writeKey(w, prefix, keys[i]);
        this._writeValue(w, entries[i][1]);
      }
    });
  }

  /** true when the key was deleted, false when it was not there. */
  delete(key) { return this._single(Op.DELETE, key); }

  /** Deletes every key; true when every server answered (a missing key is no failure). */
  deleteMulti(keys, options) {
    return this._multiKeys(Op.DELETE_MULTI, keys, pick(options, "keyPrefix", "key_prefix", ""), true);
  }

  /** The new value (a BigInt above 2^53-1), or undefined when the key is missing. */
  incr(key, delta) { return this._counter(Op.INCR, key, delta); }
  decr(key, delta) { return this._counter(Op.DECR, key, delta); }

  /** Sets a new expiry on `key`: true when it exists. */
  touch(key, expiry) {
    return this._call(Op.TOUCH, undefined, (op, w) => {
      const k = checkKey(key);
      const e = checkExpiry(expiry);
      this._writeKey(w, "", k);
      w.u32(e);
    });
  }

  /** Invalidates every item on every live server; true when all answered OK. */
  flushAll(delay) {
    return this._call(Op.FLUSH_ALL, true, (op, w) => { w.u32(checkExpiry(delay)); });
  }

  /** Statistics per live server: { "host:port": { name: value, ... } }; args as memcached's (e.g. "items"). */
  stats(args) {
    return this._call(Op.STATS, {}, (op, w) => {
      if (args !== undefined && typeof args !== "string") throw new BadArgumentError("stats args must be a string such as \"items\" or \"slabs\"");
      w.str(args ?? "");
    });
  }

  /** memcached's version per live server: { "host:port": "1.6.21" }. */
  version() { return this._call(Op.VERSION, {}, () => {}); }

  /**
   * The address of the server `key` goes to now, routed as a request would be this moment
   * (distribution, hash function, dead servers re-hashed past or refused). Synchronous;
   * throws BAD_KEY for a bad key, NO_SERVER when no live server is left for it.
   */
  serverForKey(key) {
    if (this._closed) throw new ClosedError("the client is closed");
    const k = checkKey(key);
    // Servers whose deadRetry has passed are live again for the next request, so here too.
    if (this._deadCount > 0) this._reviveServers();
    let hash;
    try {
      hash = this._hashFunction === null ? undefined : this._hashOf(k);
    } catch (e) {
      // The caller's hash function threw: the same error a request for the key rejects with.
      throw e instanceof MemcacheError ? e : new BadArgumentError(e?.message ?? String(e), { cause: e });
    }
    let index;
    try {
      index = this._engine.serverForKey(k, hash);
    } catch (e) {
      throw engineError(e);
    }
    return this._servers[index].address;
  }

  /**
   * Like get(), with what memcached holds beside the value: `{ value, flags, size, server,
   * cas }` (flags as stored, size the stored byte length before decompression, server the
   * address that answered), or undefined on a miss. Sent as `gets`.
   */
  inspect(key) { return this._single(Op.INSPECT, key); }

  /**
   * The item lines of `lru_crawler metadump <scope>` on one of this client's servers, as
   * memcached sends them (`key=<url-encoded> exp=... la=... cas=... fetch=... cls=...
   * size=...`). `scope`: "all" (default), "hash", or a slab class number. memcached
   * refuses a metadump while replies are pending on the connection and leaves requests
   * that arrive with its line unread, so the line goes out alone once the server's earlier
   * replies are in, and this client's later requests to that server wait until the dump
   * ends. A refusal (BUSY, BADCLASS, NOTSTARTED, ERROR ...) rejects with METADUMP_REFUSED.
   */
  metadump({ server, scope = "all" } = {}) {
    if (this._closed) return closedPromise();
    const target = this._servers.find((s) => s.address === server);
    if (target === undefined) {
      return Promise.reject(new BadArgumentError(
        `metadump needs one of this client's servers ({ server: "host:port" }), got ${JSON.stringify(server)}`));
    }
    let kind, slabClass = 0;
    if (scope === "all") kind = MetadumpScope.ALL;
    else if (scope === "hash") kind = MetadumpScope.HASH;
    else if (Number.isInteger(scope) && scope >= 0 && scope <= 0xffffffff) { kind = MetadumpScope.CLASS; slabClass = scope; }
    else return Promise.reject(new BadArgumentError(`metadump scope must be "all", "hash" or a slab class number, got ${JSON.stringify(scope)}`));
    // The engine takes a metadump only alone in its batch: what this tick queued before
    // crosses first, then the metadump crosses at once on its own.
    if (this._batch.length > 0) this._flush();
    const op = this._begin(Op.METADUMP, undefined);
    const w = this._writer;
    w.u16(target.index);
    w.u8(kind);
    w.u32(slabClass);
    const promise = this._queue(op);
    this._flush();
    // Every failure of a metadump is about the server named (NO_SERVER when it is dead too).
    return promise.catch((e) => {
      if (e instanceof MemcacheError && e.server === undefined) e.server = target.address;
      throw e;
    });
  }

  /** Closes every connection; pending and later calls reject with CLOSED. */
  close() {
    if (this._closed) return Promise.resolve();
    this._closed = true;
    const error = new ClosedError("the client was closed");
    for (const op of this._batch) op.fail(error);
    this._batch = [];
    for (const server of this._servers) this._dropServer(server, error);
    this._engine.free();
    return Promise.resolve();
  }

  // ---- encoding one call into the batch -----------------------------------------

  // The hot calls encode without a closure per call: begin, write, then queue or abort.

  _single(opcode, key) {
    const op = this._begin(opcode, undefined);
    if (op === null) return closedPromise();
    try {
      this._writeKey(this._writer, "", checkKey(key));
    } catch (e) {
      return this._abort(op, e);
    }
    return this._queue(op);
  }

  _counter(opcode, key, delta) {
    const op = this._begin(opcode, undefined);
    if (op === null) return closedPromise();
    try {
      const k = checkKey(key);
      const d = checkDelta(delta);
      this._writeKey(this._writer, "", k);
      this._writer.u64(d);
    } catch (e) {
      return this._abort(op, e);
    }
    return this._queue(op);
  }

  _store(opcode, key, value, expiry, options, cas) {
    const op = this._begin(opcode, undefined);
    if (op === null) return closedPromise();
    const w = this._writer;
    try {
      const k = checkKey(key);
      const e = checkExpiry(expiry);
      const mcl = options === undefined ? this._minCompressLen
        : this._compressArg(typeof options === "number" ? options : pick(options, "minCompressLen", "min_compress_len", undefined));
      this._writeKey(w, "", k);
      w.u32(e);
      w.u32(mcl);
      if (cas !== undefined) w.u64(cas);
      this._writeValue(w, value);
    } catch (e) {
      return this._abort(op, e);
    }
    return this._queue(op);
  }

  _multiKeys(opcode, keys, prefix, initial) {
    return this._call(opcode, initial, (op, w) => {
      if (!Array.isArray(keys)) throw new BadArgumentError("keys must be an array");
      if (typeof prefix !== "string") throw new BadArgumentError("keyPrefix must be a string");
      const list = new Array(keys.length);
      for (let i = 0; i < keys.length; i++) list[i] = checkKey(keys[i]);
      op.keys = list;
      w.str(prefix);
      w.u32(list.length);
      for (let i = 0; i < list.length; i++) this._writeKey(w, prefix, list[i]);
    });
  }

  _compressArg(v) {
    if (v === undefined || v === null) return this._minCompressLen;
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new BadArgumentError("minCompressLen must be a non-negative integer");
    return v;
  }

  _writeKey(w, prefix, key) {
    if (this._hashFunction !== null) w.u32(this._hashOf(prefix + key));
    w.str(key);
  }

  /** The caller's hash of a full key, checked (an out-of-range result rejects the call). */
  _hashOf(full) {
    const h = this._hashFunction(full);
    if (!Number.isInteger(h) || h < 0 || h > 0xffffffff) {
      throw new BadArgumentError(`hashFunction must return an integer from 0 to 2^32-1, got ${String(h)} for key ${JSON.stringify(full)}`);
    }
    return h;
  }

  _writeValue(w, value) {
    switch (typeof value) {
      case "string": w.u8(ValueKind.TEXT); w.str(value); return;
      case "number":
        if (Number.isSafeInteger(value)) { w.u8(ValueKind.INT); w.u32(8); w.f64(value); return; }
        if (!Number.isFinite(value)) throw new NotSerializableError(`${value} cannot be stored (not a finite number)`);
        break;
      case "bigint": w.u8(ValueKind.LONG); w.str(value.toString()); return;
      case "object":
        if (value instanceof Uint8Array) { w.u8(ValueKind.BYTES); w.bytesField(value); return; }
        if (value instanceof ArrayBuffer) { w.u8(ValueKind.BYTES); w.bytesField(new Uint8Array(value)); return; }
        break;
      case "undefined": case "function": case "symbol":
        throw new NotSerializableError(`a value of type ${typeof value} cannot be stored`);
      default: break;
    }
    if (this._serializer !== null) {
      let out;
      try { out = this._serializer.serialize(value); } catch (e) {
        throw new NotSerializableError(`the serializer failed: ${e?.message ?? e}`, { cause: e });
      }
      if (typeof out === "string") out = new TextEncoder().encode(out);
      if (!(out instanceof Uint8Array)) throw new NotSerializableError("serializer.serialize must return a Uint8Array or a string");
      w.u8(ValueKind.SERIALIZED);
      w.bytesField(out);
      return;
    }
    let json;
    try { json = JSON.stringify(value); } catch (e) {
      throw new NotSerializableError(`value cannot be serialized as JSON: ${e?.message ?? e}`, { cause: e });
    }
    if (json === undefined) throw new NotSerializableError("value cannot be serialized as JSON");
    w.u8(ValueKind.JSON);
    w.str(json);
  }

  /** Starts an op in the batch: its header is written, its body comes next (null: closed). */
  _begin(opcode, initial) {
    if (this._closed) return null;
    const id = this._nextId;
    this._nextId = id >= MAX_OP_ID ? 1 : id + 1;
    const op = new Operation(opcode, id);
    op.result = initial;
    op.start = this._writer.length;
    this._writer.op(opcode, id, this._hashFunction !== null ? OP_HASHED : 0);
    return op;
  }

  /** Takes a half-written op out of the batch and rejects it: nothing of it is sent. */
  _abort(op, e) {
    this._writer.length = op.start;
    return Promise.reject(e instanceof MemcacheError ? e : new BadArgumentError(e?.message ?? String(e), { cause: e }));
  }

  /** The op is in the batch: it crosses with the others of this tick. */
  _queue(op) {
    const promise = new Promise(captureSettlers);
    op.resolve = settlers.resolve;
    op.reject = settlers.reject;
    this._batch.push(op);
    if (!this._scheduled) {
      this._scheduled = true;
      queueMicrotask(this._flush);
    }
    return promise;
  }

  /** Encodes one call with `encode(op, writer)` (the calls that are not on the hot path). */
  _call(opcode, initial, encode) {
    const op = this._begin(opcode, initial);
    if (op === null) return closedPromise();
    try {
      encode(op, this._writer);
    } catch (e) {
      return this._abort(op, e);
    }
    return this._queue(op);
  }

  // ---- one crossing per batch ----------------------------------------------------

  _flush() {
    this._scheduled = false;
    const ops = this._batch;
    if (ops.length === 0) return;
    this._batch = [];
    if (this._deadCount > 0) this._reviveServers();
    let out;
    try {
      out = this._cross(this._writer.finish(), -1);
    } catch (e) {
      this._writer.reset();
      const error = engineError(e);
      for (const op of ops) op.fail(error);
      return;
    }
    this._writer.reset();
    const r = new ResultReader(out);
    const deadline = Date.now() + this._timeout;
    const servers = this._servers;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      const id = r.u32();
      const status = r.u8();
      if (id !== op.id) throw new ProtocolError(`engine answered op ${id} where ${op.id} was expected`);
      if (status === Status.QUEUED) {
        const n = r.u16();
        op.parts = n;
        op.deadline = deadline;
        for (let j = 0; j < n; j++) servers[r.u16()].pending.push(op);
        if (n === 0) op.done(op.result);
      } else {
        const code = r.u8();
        op.fail(coreError(code, r.text()));
      }
    }
    // A metadump crossed alone (see metadump()): its write is its line and nothing else.
    const metadump = ops.length === 1 && ops[0].kind === Op.METADUMP ? ops[0] : null;
    while (!r.done) {
      const server = servers[r.u16()];
      // A copy: the view into wasm memory is overwritten by the next crossing, and a
      // socket may still hold the bytes then.
      const bytes = r.field().slice();
      if (server.metadump === null && server.held.length === 0 && metadump === null) this._write(server, bytes);
      else this._hold(server, bytes, metadump);
    }
  }

  /**
   * A write that must wait: a metadump line until the server's earlier replies are in
   * (memcached refuses it while replies are pending), and anything after a metadump line
   * until the dump ends (memcached leaves bytes that arrive with the line unread).
   */
  _hold(server, bytes, metadump) {
    server.held.push({ bytes, metadump });
    this._releaseHeld(server);
  }

  /** Writes what may go now: held writes in order, up to a metadump still waiting its turn. */
  _releaseHeld(server) {
    const held = server.held;
    let n = 0;
    while (n < held.length && server.metadump === null) {
      const entry = held[n];
      if (entry.metadump !== null) {
        if (server.pending.peek() !== entry.metadump) break;
        this._write(server, entry.bytes);
        server.metadump = entry.metadump;
        n++;
        continue;
      }
      let end = n;
      let size = 0;
      while (end < held.length && held[end].metadump === null) size += held[end++].bytes.length;
      const bytes = end === n + 1 ? entry.bytes : new Uint8Array(size);
      if (end > n + 1) {
        let at = 0;
        for (let i = n; i < end; i++) { bytes.set(held[i].bytes, at); at += held[i].bytes.length; }
      }
      this._write(server, bytes);
      n = end;
    }
    if (n > 0) held.splice(0, n);
  }

  /**
   * One crossing: `bytes` is copied into the engine's input buffer in wasm memory, then
   * submitted as a batch (server -1) or received from `server`; the result is a view of the
   * engine's output buffer, valid until the next crossing (read it, copy what is kept).
   */
  _cross(bytes, server) {
    const engine = this._engine;
    const memory = platform.memory;
    const at = engine.input(bytes.length);
    new Uint8Array(memory.buffer, at, bytes.length).set(bytes);
    const n = server < 0 ? engine.submit(bytes.length) : engine.receive(server, bytes.length);
    // Views are made after the call: wasm memory may have grown (and moved) during it.
    return new Uint8Array(memory.buffer, engine.output(), n);
  }

  _write(server, bytes) {
    if (server.transport === null) {
      server.transport = platform.openTransport(server.address, server, { bridge: this._bridge, token: this._token });
      if (this._log) this._log(`MemCached: connecting to ${server.address}${this._bridge ? ` through ${this._bridge}` : ""}`);
    }
    server.transport.write(bytes);
    server.transport.setBusy(true);
    if (server.timer === null) server.timer = armTimer(this._onTimer, this._timeout, server);
  }

  _reviveServers() {
    const now = Date.now();
    for (const server of this._servers) {
      if (server.deadUntil !== 0 && server.deadUntil <= now) {
        server.deadUntil = 0;
        this._deadCount--;
        this._engine.markAlive(server.index);
        if (this._log) this._log(`MemCached: ${server.address} retried after deadRetry`);
      }
    }
  }

  // ---- one crossing per received chunk -------------------------------------------

  _received(server, chunk) {
    if (this._closed) return;
    let out;
    try {
      out = this._cross(chunk, server.index);
    } catch (e) {
      const error = engineError(e);
      error.server = server.address;
      this._serverFailed(server, error);
      return;
    }
    const r = new ResultReader(out);
    const pending = server.pending;
    while (!r.done) {
      const id = r.u32();
      const record = r.u8();
      if (id === CONNECTION_BROKEN_ID) {
        const code = r.u8();
        const error = coreError(code, `${server.address}: ${r.text()}`);
        error.server = server.address;
        this._serverFailed(server, error);
        return;
      }
      const op = pending.shift();
      if (op === undefined || op.id !== id) {
        this._serverFailed(server, new ProtocolError(`${server.address}: answer for request ${id} does not match the oldest pending one`, { server: server.address }));
        return;
      }
      if (op === server.metadump) server.metadump = null;
      this._deliver(op, record, r, server);
    }
    if (server.held.length > 0 && server.transport !== null) this._releaseHeld(server);
    if (pending.size === 0 && server.transport !== null) server.transport.setBusy(false);
  }

  _deliver(op, record, r, server) {
    op.parts--;
    if (record === Record.ERROR) {
      const code = r.u8();
      const error = coreError(code, `${server.address}: ${r.text()}`);
      error.server = server.address;
      op.fail(error);
      return;
    }
    try {
      switch (record) {
        case Record.MISS: op.done(undefined); return;
        case Record.VALUE: {
          const kind = r.u8();
          op.done(this._decode(kind, r.field()));
          return;
        }
        case Record.ITEM: {
          const flags = r.u32();
          const size = r.u32();
          const cas = r.u64();
          const kind = r.u8();
          op.done({ value: this._decode(kind, r.field()), flags, size, server: server.address, cas });
          return;
        }
        case Record.LINES: {
          const n = r.u32();
          const lines = new Array(n);
          for (let i = 0; i < n; i++) lines[i] = r.text();
          op.done(lines);
          return;
        }
        case Record.CAS_VALUE: {
          const cas = r.u64();
          const kind = r.u8();
          op.done({ value: this._decode(kind, r.field()), cas });
          return;
        }
        case Record.TRUE:
          if (op.parts === 0) op.done(op.result === undefined ? true : op.result);
          return;
        case Record.FALSE:
          if (op.kind === Op.FLUSH_ALL || op.kind === Op.DELETE_MULTI) op.result = false;
          if (op.parts === 0) op.done(op.result === undefined ? false : op.result);
          return;
        case Record.NUMBER: op.done(parseInteger(r.field())); return;
        case Record.VALUES: {
          // Every value is read off the buffer even when one fails to decode: the
          // records after this one must start where they start.
          const n = r.u32();
          const result = op.result;
          const keys = op.keys;
          let failure = null;
          for (let i = 0; i < n; i++) {
            const index = r.u32();
            const kind = r.u8();
            const data = r.field();
            if (op.settled || failure !== null) continue;
            try {
              result[keys[index]] = this._decode(kind, data);
            } catch (e) {
              failure = e;
            }
          }
          if (failure !== null) throw failure;
          break;
        }
        case Record.KEYS: {
          const n = r.u32();
          for (let i = 0; i < n; i++) {
            const index = r.u32();
            if (op.kind === Op.SET_MULTI) op.result.push(op.keys[index]);
            else op.result = false;
          }
          break;
        }
        case Record.STATS: {
          const n = r.u32();
          const stats = {};
          for (let i = 0; i < n; i++) {
            const name = r.text();
            stats[name] = r.text();
          }
          op.result[server.address] = stats;
          break;
        }
        case Record.TEXT: op.result[server.address] = r.text(); break;
        default:
          throw new ProtocolError(`unknown engine record ${record}`);
      }
    } catch (e) {
      op.fail(e instanceof MemcacheError ? e : new DecodeError(e?.message ?? String(e), { cause: e }));
      return;
    }
    if (op.parts === 0) op.done(op.result);
  }

  _decode(kind, data) {
    switch (kind) {
      case ValueKind.TEXT: return decodeText(data);
      case ValueKind.BYTES: return data.slice();
      case ValueKind.INT: return parseInteger(data);
      case ValueKind.LONG: return BigInt(decodeText(data).trim());
      case ValueKind.JSON: {
        try { return JSON.parse(decodeText(data)); } catch (e) {
          throw new DecodeError(`stored JSON cannot be parsed: ${e.message}`);
        }
      }
      case ValueKind.SERIALIZED: {
        if (this._serializer === null) throw new DecodeError("a serialized value came back without a custom serializer to read it");
        try { return this._serializer.deserialize(data.slice()); } catch (e) {
          throw new DecodeError(`the serializer failed to deserialize: ${e?.message ?? e}`, { cause: e });
        }
      }
      default: throw new DecodeError(`unknown value kind ${kind}`);
    }
  }

  // ---- timeouts and failures -----------------------------------------------------

  /** One timer per connection: it only ever looks at the oldest pending request. */
  _onTimer(server) {
    server.timer = null;
    const head = server.pending.peek();
    if (head === undefined) return;
    const now = Date.now();
    if (head.deadline <= now) {
      this._serverFailed(server, new TimeoutError(`${server.address} did not answer within ${this._timeout} ms`, { server: server.address }));
      return;
    }
    server.timer = armTimer(this._onTimer, head.deadline - now, server);
  }

  _dropServer(server, error) {
    if (server.timer !== null) { clearTimeout(server.timer); server.timer = null; }
    const transport = server.transport;
    server.transport = null;
    // Held writes belong to ops in `pending`, which fail below with the connection.
    server.held = [];
    server.metadump = null;
    if (transport !== null) transport.close();
    if (!this._closed || error instanceof ClosedError) {
      for (const op of server.pending.drain()) op.fail(error);
    }
  }

  _serverFailed(server, error) {
    if (this._closed) return;
    const hadPending = server.pending.size > 0;
    this._dropServer(server, error);
    this._engine.reset(server.index);
    // A socket that closes while idle is no failure (memcached restarts, idle timeouts):
    // reconnect on the next request. One that fails with requests in flight is dead. A
    // bridge's refusal is policy, not a dead server: the next call asks again.
    if (!hadPending && error.code === "CONNECTION_ERROR" && error.cause === undefined) return;
    if (error.code === "BRIDGE_REFUSED") return;
    if (server.deadUntil === 0) this._deadCount++;
    server.deadUntil = Date.now() + this._deadRetry * 1000;
    this._engine.markDead(server.index);
    if (this._log) this._log(`MemCached: ${server.address} marked dead for ${this._deadRetry} s: ${error.message}`);
  }
}

// python-memcached's names, for code ported from Python.
Client.prototype.get_multi = Client.prototype.getMulti;
Client.prototype.set_multi = Client.prototype.setMulti;
Client.prototype.delete_multi = Client.prototype.deleteMulti;
Client.prototype.flush_all = Client.prototype.flushAll;
Client.prototype.get_stats = Client.prototype.stats;
Client.prototype.disconnect_all = Client.prototype.close;
