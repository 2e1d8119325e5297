// The Client: python-memcached's API as Promises over the wasm engine. Calls made in one
// tick are written into one batch that crosses into the engine once; each received chunk,
// each socket event and each timer crosses once. Every crossing comes back as one output
// buffer (client-wasm/src/engine/mod.rs) that this file carries out: outcomes settle the
// calls, WRITE / CONNECT / CLOSE drive the sockets, SERVER_DOWN / SERVER_UP become events,
// and `wake` arms the one timer. What a reply means and when a server is retried are the
// engine's rules, not this file's.
import { BatchWriter, MemoryViews, ResultReader } from "./batch.js";
import { BadArgumentError, ClosedError, MemcacheError } from "./errors.js";
import {
  OpTable, Operation, checkCas, checkDelta, checkExpiry, checkKey, checkPrefix, readError, thrownError, writeValue,
} from "./operations.js";
import { normalizeServers, readOptions, serverSettings } from "./options.js";
import { ServerConnection } from "./server-connection.js";
import * as meta from "./meta-calls.js";
import { Entry, LinkFailure, MetadumpScope, OP_HASHED, OP_NOREPLY, Op } from "./wire.js";

/** setTimeout's longest delay; a longer one would fire at once (the engine asks again). */
const MAX_TIMER_MS = 0x7fffffff;
/** What Engine.submit and Engine.receive return when they failed (Engine.takeError() says why). */
const CROSSING_FAILED = 0xffffffff;
/** Op ids wrap within u32. */
const MAX_OP_ID = 0xffffffff;
/**
 * The engine's input buffer is asked for at least this size, so that the chunks and batches
 * of steady traffic are written where it already lies, with no crossing to ask for room.
 */
const MIN_INPUT_BYTES = 64 * 1024;
/** Up to this many bytes (a get's batch) a loop copies faster than a subarray and set(). */
const SMALL_COPY_BYTES = 64;


/** The events a Client emits (client.on(name, listener)). */
const EVENTS = new Set(["serverDown", "serverUp", "refreshError"]);

let platform = null;

/**
 * Set by the entry point (node.js or browser.js) once the wasm module is initialized:
 * { Engine, memory (the module's WebAssembly.Memory), tcp, openTransport(address, sink, options) }.
 */
export function setPlatform(p) { platform = p; }

/**
 * The flush of a tick's batch is queued as a reaction to this settled Promise: the same
 * microtask queue as queueMicrotask's, without the AsyncResource and bound function Node's
 * queueMicrotask makes per call.
 */
const SETTLED = Promise.resolve();

/** The engine's clock: monotonic milliseconds. */
const now = typeof performance !== "undefined" && typeof performance.now === "function"
  ? () => performance.now()
  : () => Date.now();

/**
 * The caller's hash function as the engine calls it during python-memcached's re-hash past
 * a down server (str(hash) + str(i) hashed again): the checked hash, or, when the function
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

/** A Promise's settlers, captured without a closure per call. */
const settlers = { resolve: null, reject: null };
function captureSettlers(resolve, reject) {
  settlers.resolve = resolve;
  settlers.reject = reject;
}

/** Refuses an event name or listener `on` cannot take (BAD_ARGUMENT). */
export function checkListener(event, listener) {
  if (!EVENTS.has(event)) throw new BadArgumentError(`unknown event ${JSON.stringify(event)}: "serverDown", "serverUp" or "refreshError"`);
  if (typeof listener !== "function") throw new BadArgumentError("a listener must be a function");
}

function closedPromise() { return Promise.reject(new ClosedError("the client is closed")); }

function withErrorsOption(options) {
  const v = options?.withErrors;
  if (v !== undefined && typeof v !== "boolean") throw new BadArgumentError("withErrors must be true or false");
  return v === true;
}

function prefixOption(options) {
  if (options == null) return "";
  return checkPrefix(options.keyPrefix ?? options.key_prefix ?? "");
}

export class Client {
  /**
   * @param {Array<string | {address: string, weight?: number} | [string, number]>} servers
   * @param {object} [options] see README.md (bridge, token, timeout, connectTimeout, deadRetry, ...)
   */
  constructor(servers, options = {}) {
    if (!platform) throw new MemcacheError("CLOSED", "memcache-wasm is not initialized: import it from the package entry point");
    const given = normalizeServers(servers);
    const config = readOptions(options, { canTcp: platform.tcp });
    const list = serverSettings(given, config);
    this._bridge = config.bridge;
    this._token = config.token;
    this._timeout = config.timeoutMs;
    this._minCompressLen = config.minCompressLen;
    this._hashFunction = config.hashFunction;
    this._serializer = config.customSerializer;
    this._log = config.log;
    try {
      this._engine = new platform.Engine(
        list.map((s) => s.address), Uint32Array.from(list.map((s) => s.weight)),
        config.distribution, config.hashName, config.serializerName, config.minCompressLen,
        config.maxValueSize, config.maxItemSize, config.failover,
        config.timeoutMs, config.connectTimeoutMs, config.deadRetryMs, config.behindProxy,
        this._hashFunction === null ? undefined : rehashFunction(this),
      );
      list.forEach((s, i) => {
        if (s.auth !== null) this._engine.setAuth(i, s.auth.username, s.auth.password);
        if (s.tls !== null) this._engine.setTls(i, true);
      });
    } catch (e) {
      throw thrownError(e);
    }
    this._config = config;
    /** Every server the engine knows, by its index (a server setServers removed stays
     *  until its last reply is in); `_members` are the indices of the current list. */
    this._servers = list.map((s, i) => new ServerConnection(this, i, s.address, s.weight, s.tls));
    this._members = list.map((s, i) => i);
    this._writer = new BatchWriter();
    this._batch = [];
    this._ops = new OpTable();
    this._scheduled = false;
    this._nextId = 1;
    this._closed = false;
    this._crossing = false;
    this._encoding = false;
    /** Op flags for the next call begun (OP_NOREPLY from a { noreply: true } option). */
    this._nextOpFlags = 0;
    this._busy = false;
    this._timer = null;
    this._timerAt = Infinity;
    this._inputAt = 0;
    this._inputCapacity = 0;
    this._reader = new ResultReader(platform.views ??= new MemoryViews(platform.memory));
    this._listeners = { serverDown: [], serverUp: [], refreshError: [] };
    this._flush = this._flush.bind(this);
    this._onTimer = this._onTimer.bind(this);
  }

  /** The servers as configured: [{address, weight, up, dead, status}] (dead: skipped by routing now). */
  get servers() {
    return this._members.map((i) => this._servers[i]).map((s) => {
      const up = !this._closed && this._engine.isUp(s.index);
      return { address: s.address, weight: s.weight, up, dead: !up, status: s.status };
    });
  }

  // ---- events --------------------------------------------------------------------

  /** Listens to "serverDown" ({ server, error }) or "serverUp" ({ server }). */
  on(event, listener) {
    checkListener(event, listener);
    this._listeners[event].push(listener);
    return this;
  }

  off(event, listener) {
    const list = this._listeners[event];
    if (list !== undefined) {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  _emit(event, payload) {
    for (const listener of [...this._listeners[event]]) {
      try {
        listener(payload);
      } catch (e) {
        // A listener's bug must not break the client's bookkeeping; it surfaces as the
        // uncaught exception it is, after this turn.
        queueMicrotask(() => { throw e; });
      }
    }
  }

  // ---- the API -------------------------------------------------------------------

  /** The value stored under `key`, or undefined. */
  get(key) { return this._single(Op.GET, key); }

  /** {value, cas} for `key`, or undefined; pass `cas` to cas(). */
  gets(key) { return this._single(Op.GETS, key); }

  /**
   * The values found, as an object keyed like `keys` (without the prefix), with no
   * prototype. One request per server; the keys of a server that fails are left out (with
   * `{ withErrors: true }` the result is `{ values, errors }`, errors naming them).
   */
  getMulti(keys, options) {
    return this._multiKeys(Op.GET_MULTI, keys, options);
  }

  // Every write takes { noreply: true } (python-memcached's noreply): it is sent quietly
  // (meta `q`), memcached answers only what did not succeed, and one `mn` per server and
  // tick closes the run. The promise still settles as the loud call's would, once memcached
  // has gone past the write; a fire-and-forget caller needs no await, only a .catch.

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

  /**
   * Sets every entry of `mapping` (an object or a Map); resolves to the keys not stored
   * (python-memcached's contract: too large, refused by memcached, or their server failed),
   * the others stored. With `{ withErrors: true }`: `{ notStored, errors }`.
   */
  setMulti(mapping, options) {
    if (typeof options === "number") options = { expiry: options };
    if (!this._quietly(options)) return this._noreplyRefused(options);
    return this._call(Op.SET_MULTI, [], (op, w) => {
      if (mapping === null || typeof mapping !== "object") throw new BadArgumentError("setMulti takes an object or a Map of keys to values");
      const entries = mapping instanceof Map ? [...mapping] : Object.entries(mapping);
      const prefix = prefixOption(options);
      const expiry = checkExpiry(options?.expiry ?? options?.time ?? 0);
      const minCompressLen = this._compressArg(options?.minCompressLen ?? options?.min_compress_len);
      op.withErrors = withErrorsOption(options);
      const keys = new Array(entries.length);
      for (let i = 0; i < entries.length; i++) keys[i] = checkKey(entries[i][0]);
      op.keys = keys;
      w.str(prefix);
      w.u32(expiry);
      w.u32(minCompressLen);
      w.u32(entries.length);
      for (let i = 0; i < entries.length; i++) {
        this._writeKey(w, prefix, keys[i]);
        writeValue(w, entries[i][1], this._serializer);
      }
    });
  }

  /** true when the key was deleted, false when it was not there. */
  delete(key, options) {
    if (options !== undefined && !this._quietly(options)) return this._noreplyRefused(options);
    return this._single(Op.DELETE, key);
  }

  /** Deletes every key; true when every server answered (a missing key is no failure). */
  deleteMulti(keys, options) {
    if (!this._quietly(options)) return this._noreplyRefused(options);
    return this._multiKeys(Op.DELETE_MULTI, keys, options);
  }

  /**
   * The new value (a BigInt above 2^53-1), or undefined when the key is missing. With
   * { initial, ttl } a missing counter is created; with { noreply: true }: true when
   * applied, false when the key is missing (memcached sends no value back).
   */
  incr(key, delta, options) { return this._counterCall(true, key, delta, options); }
  decr(key, delta, options) { return this._counterCall(false, key, delta, options); }

  _counterCall(incr, key, delta, options) {
    const opcode = incr ? Op.INCR : Op.DECR;
    if (options === undefined) return this._counter(opcode, key, delta);
    if (options?.initial !== undefined || options?.ttl !== undefined) {
      if (options.noreply !== undefined && options.noreply !== false) {
        return Promise.reject(new BadArgumentError("noreply cannot be combined with { initial, ttl }: a self-creating counter is read back"));
      }
      return meta.counter(this, incr, key, delta, options);
    }
    if (!this._quietly(options)) return this._noreplyRefused(options);
    return this._counter(opcode, key, delta);
  }

  /** Sets a new expiry on `key`: true when it exists. */
  touch(key, expiry, options) {
    if (!this._quietly(options)) return this._noreplyRefused(options);
    return this._call(Op.TOUCH, undefined, (op, w) => {
      const k = checkKey(key);
      const e = checkExpiry(expiry);
      this._writeKey(w, "", k);
      w.u32(e);
    });
  }

  // ---- the meta protocol (meta-calls.js) ----

  /**
   * Cache-aside that cannot stampede: the value under `key`; on a miss exactly one caller
   * across every client on these servers runs `loader()` and stores its result for `ttl`
   * seconds, the others wait (up to `timeout` ms) and get that value. With `staleTtl`, a
   * value in its last `staleTtl` seconds is served while one caller refreshes it.
   */
  getOrSet(key, loader, options) {
    if (this._closed) return closedPromise();
    return meta.getOrSet(this, key, loader, options);
  }

  /** Marks the value stale (meta `md <key> I`): getOrSet serves it while one caller refreshes it. */
  invalidate(key) { return meta.invalidate(this, key); }

  /** `{ value, ttl }` (seconds left, -1 when it never expires), or undefined on a miss. */
  getWithTtl(key) { return meta.getWithTtl(this, key); }

  /** The value, its expiry set to `ttl` seconds from now (gat), or undefined on a miss. */
  getAndTouch(key, ttl) { return meta.getAndTouch(this, key, ttl); }

  /** Invalidates every item on every live server; true when all answered OK. */
  flushAll(delay) {
    return this._call(Op.FLUSH_ALL, undefined, (op, w) => { w.u32(checkExpiry(delay)); });
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
   * (distribution, hash function, down servers re-hashed past or refused). Synchronous;
   * throws BAD_KEY for a bad key, NO_SERVER when no live server is left for it.
   */
  serverForKey(key) {
    if (this._closed) throw new ClosedError("the client is closed");
    const k = checkKey(key);
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
      throw thrownError(e);
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
   * size=...`), each key once. `scope`: "all" (default), "hash", or a slab class number.
   * The engine sends the line alone once the server's earlier replies are in and holds
   * later requests to that server until the dump ends (memcached's rules for metadump).
   * A refusal (BUSY, BADCLASS, NOTSTARTED, ERROR ...) rejects with METADUMP_REFUSED.
   */
  metadump({ server, scope = "all" } = {}) {
    if (this._closed) return closedPromise();
    const target = this._members.map((i) => this._servers[i]).find((s) => s.address === server);
    if (target === undefined) {
      return Promise.reject(new BadArgumentError(
        `metadump needs one of this client's servers ({ server: "host:port" }), got ${JSON.stringify(server)}`));
    }
    let kind, slabClass = 0;
    if (scope === "all") kind = MetadumpScope.ALL;
    else if (scope === "hash") kind = MetadumpScope.HASH;
    else if (Number.isInteger(scope) && scope >= 0 && scope <= 0xffffffff) { kind = MetadumpScope.CLASS; slabClass = scope; }
    else return Promise.reject(new BadArgumentError(`metadump scope must be "all", "hash" or a slab class number, got ${JSON.stringify(scope)}`));
    return this._call(Op.METADUMP, undefined, (op, w) => {
      w.u16(target.index);
      w.u8(kind);
      w.u32(slabClass);
    }).catch((e) => {
      // Every failure of a metadump is about the server named (NO_SERVER when it is down too).
      if (e instanceof MemcacheError && e.server === undefined) e.server = target.address;
      throw e;
    });
  }

  /**
   * Replaces the server list (python-memcached's set_servers), in the constructor's forms.
   * Keys are placed over the new list from now on (under ketama about 1/n of them move when
   * one server is added; under modula most do). Calls made before this one are sent first,
   * to the servers of the old list, and finish there, also on a server that left (closed
   * once its last reply is in). A server kept keeps its connection. Bad input throws
   * BAD_ARGUMENT and changes nothing.
   */
  setServers(servers) {
    if (this._closed) throw new ClosedError("the client is closed");
    if (this._crossing || this._encoding) {
      throw new BadArgumentError("setServers was called from inside a serializer, hash function or listener while the client was busy; call it after that returns");
    }
    const list = serverSettings(normalizeServers(servers), this._config);
    // The calls of this tick go out first, routed by the old list.
    if (this._scheduled) this._flush();
    let length;
    try {
      length = this._engine.setServers(now(), list.map((s) => s.address), Uint32Array.from(list.map((s) => s.weight)));
    } catch (e) {
      throw thrownError(e);
    }
    const members = Array.from(this._engine.members());
    members.forEach((index, i) => {
      const spec = list[i];
      let server = this._servers[index];
      if (server === undefined) {
        server = new ServerConnection(this, index, spec.address, spec.weight, spec.tls);
        this._servers[index] = server;
      }
      server.weight = spec.weight;
      server.tls = spec.tls;
      if (spec.auth !== null) this._engine.setAuth(index, spec.auth.username, spec.auth.password);
      else this._engine.clearAuth(index);
      this._engine.setTls(index, spec.tls !== null);
    });
    this._members = members;
    this._carryOut(length);
  }

  /** Closes every connection; pending and later calls reject with CLOSED. */
  close() {
    if (this._closed) return Promise.resolve();
    this._closed = true;
    const error = new ClosedError("the client was closed");
    for (const op of this._batch) op.fail(error);
    this._batch = [];
    for (const op of this._ops.values()) op.fail(error);
    this._ops.clear();
    for (const server of this._servers) server.close();
    if (this._timer !== null) { clearTimeout(this._timer); this._timer = null; }
    if (!this._crossing) this._engine.free();
    return Promise.resolve();
  }

  // ---- writing one call into the batch ------------------------------------------

  // The hot calls encode without a closure per call: begin, write, then queue or abort.

  _single(opcode, key) {
    const op = this._begin(opcode, undefined);
    if (op === null) return this._refused();
    try {
      this._writeKey(this._writer, "", checkKey(key));
    } catch (e) {
      return this._abort(op, e);
    }
    return this._queue(op);
  }

  _counter(opcode, key, delta) {
    const op = this._begin(opcode, undefined);
    if (op === null) return this._refused();
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

  /**
   * Reads { noreply } of `options` (an object, or a number/undefined for no options): when
   * true the next call begun is sent quietly. false when the option is not a boolean.
   */
  _quietly(options) {
    if (options === undefined || options === null || typeof options !== "object") return true;
    const v = options.noreply;
    if (v === undefined || v === false) return true;
    if (v !== true) return false;
    this._nextOpFlags = OP_NOREPLY;
    return true;
  }

  _noreplyRefused(options) {
    return Promise.reject(new BadArgumentError(`noreply must be true or false, got ${String(options?.noreply)}`));
  }

  _store(opcode, key, value, expiry, options, cas) {
    if (options !== undefined && !this._quietly(options)) return this._noreplyRefused(options);
    const op = this._begin(opcode, undefined);
    if (op === null) return this._refused();
    const w = this._writer;
    try {
      const k = checkKey(key);
      const e = checkExpiry(expiry);
      const mcl = options === undefined ? this._minCompressLen
        : this._compressArg(typeof options === "number" ? options : (options?.minCompressLen ?? options?.min_compress_len));
      this._writeKey(w, "", k);
      w.u32(e);
      w.u32(mcl);
      if (cas !== undefined) w.u64(cas);
      writeValue(w, value, this._serializer);
    } catch (e) {
      return this._abort(op, e);
    }
    return this._queue(op);
  }

  _multiKeys(opcode, keys, options) {
    return this._call(opcode, opcode === Op.GET_MULTI ? Object.create(null) : undefined, (op, w) => {
      if (!Array.isArray(keys)) throw new BadArgumentError("keys must be an array");
      const prefix = prefixOption(options);
      op.withErrors = withErrorsOption(options);
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

  /** Starts an op in the batch: its header is written, its body comes next (null: closed). */
  _begin(opcode, initial) {
    // Closed, or called by user code (a serializer, toJSON, a hash function, a mapping's
    // getter) while another call is being written: its bytes would land inside that
    // call's. Both answer through _refused().
    const extraFlags = this._nextOpFlags;
    this._nextOpFlags = 0;
    if (this._closed || this._encoding) return null;
    this._encoding = true;
    const id = this._nextId;
    this._nextId = id >= MAX_OP_ID ? 1 : id + 1;
    const op = new Operation(opcode, id);
    op.result = initial;
    op.start = this._writer.length;
    this._writer.op(opcode, id, (this._hashFunction !== null ? OP_HASHED : 0) | extraFlags);
    return op;
  }

  /** Why a call could not begin: the client is closed, or a call is being written. */
  _refused() {
    if (this._closed) return closedPromise();
    return Promise.reject(new BadArgumentError("a client call was made from inside a serializer, toJSON or hash function while another call was being written; make it after that call returns"));
  }

  /** Takes a half-written op out of the batch and rejects it: nothing of it is sent. */
  _abort(op, e) {
    this._encoding = false;
    this._writer.length = op.start;
    return Promise.reject(e instanceof MemcacheError ? e : new BadArgumentError(e?.message ?? String(e), { cause: e }));
  }

  /** The op is in the batch: it crosses with the others of this tick. */
  _queue(op) {
    this._encoding = false;
    const promise = new Promise(captureSettlers);
    op.resolve = settlers.resolve;
    op.reject = settlers.reject;
    this._batch.push(op);
    if (!this._scheduled) {
      this._scheduled = true;
      SETTLED.then(this._flush);
    }
    return promise;
  }

  /** Writes one call with `encode(op, writer)` (the calls that are not on the hot path). */
  _call(opcode, initial, encode) {
    const op = this._begin(opcode, initial);
    if (op === null) return this._refused();
    try {
      encode(op, this._writer);
    } catch (e) {
      return this._abort(op, e);
    }
    return this._queue(op);
  }

  // ---- crossings -----------------------------------------------------------------

  _flush() {
    this._scheduled = false;
    const ops = this._batch;
    if (ops.length === 0 || this._closed) return;
    this._batch = [];
    for (let i = 0; i < ops.length; i++) this._ops.set(ops[i].id, ops[i]);
    this._setBusy(true);
    const n = this._input(this._writer.bytes, this._writer.length);
    this._writer.reset();
    let length, failure;
    try {
      length = this._engine.submit(now(), n);
      if (length === CROSSING_FAILED) failure = this._engine.takeError();
    } catch (e) {
      // A trap in the engine throws; the calls fail the same way.
      length = CROSSING_FAILED;
      failure = e;
    }
    if (length === CROSSING_FAILED) {
      // The batch itself was refused (a bug on this side of the wire): its calls fail.
      const error = thrownError(failure);
      for (const op of ops) { this._ops.delete(op.id); op.fail(error); }
      this._idleCheck();
      return;
    }
    this._carryOut(length);
  }

  _received(server, chunk) {
    if (this._closed) return;
    const n = this._input(chunk);
    let length, failure;
    try {
      length = this._engine.receive(now(), server.index, n);
      if (length === CROSSING_FAILED) failure = this._engine.takeError();
    } catch (e) {
      length = CROSSING_FAILED;
      failure = e;
    }
    if (length === CROSSING_FAILED) {
      this._lost(server, thrownError(failure));
      return;
    }
    this._carryOut(length);
  }

  _connected(server, info) {
    if (this._closed) return;
    if (this._log) {
      const how = info?.tls ? (info.resumed ? " (TLS, session resumed)" : " (TLS)") : "";
      this._log(`MemCached: connected to ${server.address}${how}`);
    }
    this._carryOut(this._engine.connected(now(), server.index));
  }

  _lost(server, error) {
    if (this._closed) return;
    const kind = error?.code === "BRIDGE_REFUSED" ? LinkFailure.BRIDGE_REFUSED : LinkFailure.CONNECTION;
    const message = error?.message ?? String(error);
    this._carryOut(this._engine.connectionLost(now(), server.index, kind, message));
  }

  _onTimer() {
    this._timer = null;
    this._timerAt = Infinity;
    if (this._closed) return;
    this._carryOut(this._engine.handleTimeout(now()));
  }

  /**
   * Copies `bytes` into the engine's input buffer; returns their length. The buffer's address
   * holds until it is asked to grow (memory growing does not move it), so the engine is
   * asked only for more room than it has.
   */
  _input(bytes, n = bytes.length) {
    if (n > this._inputCapacity) {
      const capacity = Math.max(n, MIN_INPUT_BYTES, this._inputCapacity * 2);
      this._inputAt = this._engine.input(capacity);
      this._inputCapacity = capacity;
    }
    const memory = this._reader.views.current();
    const at = this._inputAt;
    if (n <= SMALL_COPY_BYTES) {
      for (let i = 0; i < n; i++) memory[at + i] = bytes[i];
    } else {
      memory.set(n === bytes.length ? bytes : bytes.subarray(0, n), at);
    }
    return n;
  }

  /**
   * Carries out the output of the crossing that just returned `n`: it is read where it lies
   * in wasm memory (valid until the next crossing).
   */
  _carryOut(n) {
    const engine = this._engine;
    // The one reader is reused; a crossing inside another (none is known) gets its own.
    const r = this._crossing ? new ResultReader(this._reader.views) : this._reader;
    this._crossing = true;
    let events = null;
    try {
      // Memory views are checked after the call: wasm memory may have grown during it.
      r.reset(engine.output(), n);
      const wake = r.f64();
      const ops = this._ops;
      const servers = this._servers;
      // A client closed during this crossing (by a serializer it called) stops here: its
      // calls have failed, its sockets are closed.
      while (!r.done && !this._closed) {
        switch (r.u8()) {
          case Entry.OUTCOME: {
            const id = r.u32();
            const record = r.u8();
            let op = ops.get(id);
            if (op === undefined) {
              // Only a client closed during this crossing (by a serializer it called) has
              // outcomes for calls it already failed: read them past.
              if (!this._closed) throw new MemcacheError("PROTOCOL_ERROR", `engine answered call ${id}, which is not waiting`);
              op = new Operation(0, id);
              op.settled = true;
            }
            op.apply(record, r, this);
            if (op.settled) ops.delete(id);
            break;
          }
          case Entry.WRITE: {
            const server = servers[r.u16()];
            // A copy: the view into wasm memory is overwritten by the next crossing, and a
            // socket may still hold the bytes then.
            server.write(r.copy());
            break;
          }
          case Entry.CONNECT: {
            const server = servers[r.u16()];
            if (this._log) this._log(`MemCached: connecting to ${server.address}${this._bridge ? ` through ${this._bridge}` : ""}`);
            server.connect(platform.openTransport, { bridge: this._bridge, token: this._token }, this._busy);
            break;
          }
          case Entry.CLOSE: servers[r.u16()].close(); break;
          case Entry.SERVER_DOWN: {
            const server = servers[r.u16()];
            const error = readError(r, servers);
            (events ??= []).push(["serverDown", { server: server.address, error }]);
            if (this._log) this._log(`MemCached: ${server.address}: ${error.message}.  Marking dead; probing it in the background.`);
            break;
          }
          case Entry.SERVER_UP: {
            const server = servers[r.u16()];
            (events ??= []).push(["serverUp", { server: server.address }]);
            if (this._log) this._log(`MemCached: ${server.address} answered a probe: alive again.`);
            break;
          }
          default:
            throw new MemcacheError("PROTOCOL_ERROR", "unknown engine output entry: the JavaScript and wasm files are of different builds");
        }
      }
      this._arm(wake);
    } finally {
      this._crossing = false;
      if (this._closed) engine.free();
    }
    this._idleCheck();
    // Listeners run after the output is carried out: they may call the client again.
    if (events !== null) for (const [name, payload] of events) this._emit(name, payload);
  }

  /** Arms the one timer for `wake` (engine clock ms), unless it already fires by then. */
  _arm(wake) {
    if (wake < 0 || this._closed) return;
    if (this._timer !== null && this._timerAt <= wake) return;
    if (this._timer !== null) clearTimeout(this._timer);
    // +1: a timer may fire within the millisecond it was asked for; the engine counts whole ms.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(wake - now()) + 1));
    this._timerAt = wake;
    const timer = setTimeout(this._onTimer, delay);
    // Sockets with calls in flight keep Node alive (setBusy); the timer alone does not, so a
    // script whose calls are all answered exits at once.
    if (typeof timer === "object" && typeof timer.unref === "function") timer.unref();
    this._timer = timer;
  }

  /**
   * Nothing in flight: the sockets let Node exit. At once, on every idle transition: a
   * socket's ref() and unref() together cost about 30 ns (Node 20), less than a timer that
   * would defer the unref (measured for issue 9).
   */
  _idleCheck() {
    if (this._busy && this._ops.size === 0) this._setBusy(false);
  }

  _setBusy(busy) {
    if (this._busy === busy) return;
    this._busy = busy;
    for (const server of this._servers) server.setBusy(busy);
  }
}

// python-memcached's names, for code ported from Python.
Client.prototype.get_multi = Client.prototype.getMulti;
Client.prototype.set_multi = Client.prototype.setMulti;
Client.prototype.delete_multi = Client.prototype.deleteMulti;
Client.prototype.flush_all = Client.prototype.flushAll;
Client.prototype.get_stats = Client.prototype.stats;
Client.prototype.disconnect_all = Client.prototype.close;
Client.prototype.set_servers = Client.prototype.setServers;
