// The calls and their results: checking a call's arguments and writing it into the batch,
// and turning the engine's outcomes (client-wasm/src/engine/mod.rs) back into what the
// call resolves with. What a reply means was decided by the engine; this side only builds
// JavaScript values (strings, numbers, objects from JSON, the caller's serializer).
import { ERROR_CODES, Lease, NO_SERVER_INDEX, Op, Record, ValueKind } from "./wire.js";
import { decodeText } from "./batch.js";
import {
  AuthFailedError, BadArgumentError, BadKeyError, BridgeRefusedError, NotRelayedError, ClientError, ConnectionError, DecodeError,
  MemcacheError, MetadumpRefusedError, NoServerError, NotSerializableError, NotStoredError,
  ProtocolError, ServerError, TimeoutError, UnknownCommandError, ValueTooLargeError,
} from "./errors.js";

/** The error class of each code the engine can send, in wire order (ERROR_CODES). */
const CLASS_OF_CODE = {
  BAD_KEY: BadKeyError,
  VALUE_TOO_LARGE: ValueTooLargeError,
  NOT_SERIALIZABLE: NotSerializableError,
  DECODE_ERROR: DecodeError,
  PROTOCOL_ERROR: ProtocolError,
  UNKNOWN_COMMAND: UnknownCommandError,
  CLIENT_ERROR: ClientError,
  SERVER_ERROR: ServerError,
  NO_SERVER: NoServerError,
  BAD_ARGUMENT: BadArgumentError,
  METADUMP_REFUSED: MetadumpRefusedError,
  CONNECTION_ERROR: ConnectionError,
  TIMEOUT: TimeoutError,
  NOT_STORED: NotStoredError,
  BRIDGE_REFUSED: BridgeRefusedError,
  AUTH_FAILED: AuthFailedError,
  NOT_RELAYED: NotRelayedError,
};
const ERROR_CLASSES = ERROR_CODES.map((code) => {
  const Cls = CLASS_OF_CODE[code];
  if (Cls === undefined) throw new Error(`memcache-wasm: no error class for the engine's code ${code}`);
  return Cls;
});

/** The codes of errors that come from a server's socket: they carry its error as the cause
 * and its details (a bridge's close code and reason, an HTTP status). */
const SOCKET_CODES = new Set([ERROR_CODES.indexOf("CONNECTION_ERROR"), ERROR_CODES.indexOf("BRIDGE_REFUSED")]);
const OWN_FIELDS = new Set(["name", "message", "stack", "code", "server", "key", "cause"]);

/** An error the engine sent (`code:u8 server:u16 key:str message:str`) as its MemcacheError. */
export function readError(r, servers) {
  const code = r.u8();
  const server = r.u16();
  const key = r.text();
  const message = r.text();
  const Cls = ERROR_CLASSES[code] ?? ProtocolError;
  const details = {};
  if (server !== NO_SERVER_INDEX && servers[server] !== undefined) {
    details.server = servers[server].address;
    const cause = servers[server].lastError;
    if (cause != null && SOCKET_CODES.has(code)) {
      details.cause = cause;
      for (const [name, value] of Object.entries(cause)) if (!OWN_FIELDS.has(name)) details[name] = value;
    }
  }
  if (key !== "") details.key = key;
  return new Cls(ERROR_CLASSES[code] ? message : `unknown engine error code ${code}: ${message}`, details);
}

/** An error the engine threw across the binding (EngineError: code and message, as data). */
export function thrownError(e) {
  const Cls = typeof e?.code === "string" ? CLASS_OF_CODE[e.code] : undefined;
  if (Cls !== undefined) return new Cls(e.message);
  return new ProtocolError(`engine failed: ${e?.message ?? String(e)}`, { cause: e });
}

// ---- arguments -----------------------------------------------------------------------

/** Whether a string is well-formed UTF-16 (no lone surrogate): it then has one UTF-8 form. */
const wellFormed = typeof String.prototype.isWellFormed === "function"
  ? (s) => s.isWellFormed()
  : (s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

export function checkKey(key) {
  if (typeof key !== "string") {
    if (typeof key === "number" || typeof key === "bigint") return String(key); // python's str()-able keys
    throw new BadArgumentError(`a key must be a string, got ${typeof key}`);
  }
  // A lone surrogate has no UTF-8 form: encoding would turn it into U+FFFD, and two
  // different keys would read and write one item.
  if (!wellFormed(key)) throw new BadKeyError(`bad key ${JSON.stringify(key)}: it holds a lone surrogate (not valid UTF-16)`, { key });
  return key;
}

export function checkPrefix(prefix) {
  if (typeof prefix !== "string") throw new BadArgumentError("keyPrefix must be a string");
  if (!wellFormed(prefix)) throw new BadKeyError(`bad keyPrefix ${JSON.stringify(prefix)}: it holds a lone surrogate`);
  return prefix;
}

export function checkExpiry(expiry) {
  if (expiry === undefined || expiry === null) return 0;
  if (!Number.isInteger(expiry) || expiry < 0 || expiry > 0xffffffff) {
    throw new BadArgumentError(`expiry must be a non-negative integer number of seconds (or a unix time), got ${String(expiry)}`);
  }
  return expiry;
}

export function checkDelta(delta) {
  if (delta === undefined) return 1n;
  if (typeof delta === "bigint") {
    if (delta < 0n || delta > 0xffffffffffffffffn) throw new BadArgumentError("delta must be between 0 and 2^64-1");
    return delta;
  }
  if (!Number.isSafeInteger(delta) || delta < 0) throw new BadArgumentError(`delta must be a non-negative integer, got ${String(delta)}`);
  return BigInt(delta);
}

export function checkCas(cas) {
  if (typeof cas === "bigint") return cas;
  if (typeof cas === "number" && Number.isSafeInteger(cas) && cas >= 0) return BigInt(cas);
  if (typeof cas === "string" && /^\d+$/.test(cas)) return BigInt(cas);
  throw new BadArgumentError(`cas must be the token gets() returned (a BigInt), got ${String(cas)}`);
}

/** Writes `kind:u8 str` of a value to store; values that are not strings, bytes, safe
 * integers or BigInts go through the serializer (JSON by default). */
export function writeValue(w, value, serializer) {
  switch (typeof value) {
    case "string":
      if (!wellFormed(value)) throw new NotSerializableError("a string value holds a lone surrogate (not valid UTF-16): it cannot be stored as UTF-8 unchanged");
      w.u8(ValueKind.TEXT); w.str(value); return;
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
  if (serializer !== null) {
    let out;
    try { out = serializer.serialize(value); } catch (e) {
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

// ---- results -------------------------------------------------------------------------

/** Digits of a flag-2 integer: a number when it is safe, a BigInt above 2^53-1. */
export function parseInteger(bytes) {
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

/** The value field the engine sent after its `kind` byte, read off `r`, as the JavaScript value
 * (the field is consumed even when decoding fails, so the records after it stay in place). */
export function decodeValue(kind, r, serializer) {
  switch (kind) {
    case ValueKind.TEXT: return r.text();
    case ValueKind.BYTES: return r.field().slice();
    case ValueKind.INT: return parseInteger(r.field());
    case ValueKind.LONG: return BigInt(r.text().trim());
    case ValueKind.JSON: {
      const text = r.text();
      try { return JSON.parse(text); } catch (e) {
        throw new DecodeError(`stored JSON cannot be parsed: ${e.message}`);
      }
    }
    case ValueKind.SERIALIZED: {
      const bytes = r.field().slice();
      if (serializer === null) throw new DecodeError("a serialized value came back without a custom serializer to read it");
      try { return serializer.deserialize(bytes); } catch (e) {
        throw new DecodeError(`the serializer failed to deserialize: ${e?.message ?? e}`, { cause: e });
      }
    }
    default: r.field(); throw new DecodeError(`unknown value kind ${kind}`);
  }
}

/** What a value that cannot be decoded rejects with (its call, or its key of a multi op). */
function asDecodeError(e) {
  return e instanceof MemcacheError ? e : new DecodeError(e?.message ?? String(e), { cause: e });
}

/** One call waiting for its outcome. */
export class Operation {
  constructor(kind, id) {
    this.kind = kind;
    this.id = id;
    this.start = 0;       // where its bytes begin in the batch being built
    this.settled = false;
    this.keys = null;     // the caller's keys, for multi ops (outcomes name keys by index)
    this.withErrors = false;
    this.result = undefined;
    this.errors = null;
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

  /**
   * Reads one record for this op off `r` (always all of it: the entries after it start
   * where it ends) and settles the op when the record says so. `client` gives the servers
   * and the serializer.
   */
  apply(record, r, client) {
    const serializer = client._serializer;
    switch (record) {
      case Record.MISS: this.done(undefined); return;
      case Record.TRUE: this.done(true); return;
      case Record.FALSE: this.done(false); return;
      case Record.ERROR: this.fail(readError(r, client._servers)); return;
      case Record.VALUE: {
        const kind = r.u8();
        let value;
        try { value = decodeValue(kind, r, serializer); } catch (e) { this.fail(asDecodeError(e)); return; }
        this.done(value);
        return;
      }
      case Record.CAS_VALUE: {
        const cas = r.u64();
        const kind = r.u8();
        let value;
        try { value = decodeValue(kind, r, serializer); } catch (e) { this.fail(asDecodeError(e)); return; }
        this.done({ value, cas });
        return;
      }
      case Record.ITEM: {
        const flags = r.u32();
        const size = r.u32();
        const cas = r.u64();
        const server = client._servers[r.u16()].address;
        const kind = r.u8();
        let value;
        try { value = decodeValue(kind, r, serializer); } catch (e) { this.fail(asDecodeError(e)); return; }
        this.done({ value, flags, size, server, cas });
        return;
      }
      case Record.NUMBER: {
        const digits = r.field();
        let value;
        try { value = parseInteger(digits); } catch (e) { this.fail(asDecodeError(e)); return; }
        this.done(value);
        return;
      }
      case Record.LINES: {
        const n = r.u32();
        const lines = new Array(n);
        for (let i = 0; i < n; i++) lines[i] = r.text();
        this.done(lines);
        return;
      }
      case Record.KEY_VALUES: {
        const n = r.u32();
        const result = this.result;
        const keys = this.keys;
        for (let i = 0; i < n; i++) {
          const index = r.u32();
          const kind = r.u8();
          // Read on even for a settled op: the entries after this one start where it ends.
          try {
            const value = decodeValue(kind, r, serializer);
            if (!this.settled) result[keys[index]] = value;
          } catch (e) {
            this.keyFailed(index, asDecodeError(e));
          }
        }
        return;
      }
      case Record.KEY_ERROR: {
        const index = r.u32();
        const error = readError(r, client._servers);
        this.keyFailed(index, error);
        return;
      }
      case Record.SERVER_STATS: {
        const server = client._servers[r.u16()].address;
        const n = r.u32();
        const stats = {};
        for (let i = 0; i < n; i++) {
          const name = r.text();
          stats[name] = r.text();
        }
        if (this.result !== undefined) this.result[server] = stats;
        return;
      }
      case Record.SERVER_TEXT: {
        const server = client._servers[r.u16()].address;
        const text = r.text();
        if (this.result !== undefined) this.result[server] = text;
        return;
      }
      case Record.DONE: this.done(this.finalResult()); return;
      case Record.LEASE: {
        const lease = r.u8();
        if (lease === Lease.WON_MISS) { this.done({ lease, value: undefined }); return; }
        const kind = r.u8();
        let value;
        try { value = decodeValue(kind, r, serializer); } catch (e) { this.fail(asDecodeError(e)); return; }
        this.done({ lease, value });
        return;
      }
      case Record.TTL_VALUE: {
        const ttl = r.f64();
        const kind = r.u8();
        let value;
        try { value = decodeValue(kind, r, serializer); } catch (e) { this.fail(asDecodeError(e)); return; }
        this.done({ value, ttl });
        return;
      }
      default:
        // The wire tables are generated from one definition; an unknown record means the
        // JavaScript and the wasm of two different builds were mixed.
        throw new ProtocolError(`unknown engine record ${record}`);
    }
  }

  /** A key of a multi op could not be read, or was not stored. */
  keyFailed(index, error) {
    if (this.keys === null) return;
    const key = this.keys[index];
    error.key = key;
    if (this.errors === null) this.errors = Object.create(null);
    this.errors[key] = error;
    if (this.kind === Op.SET_MULTI) this.result.push(index);
  }

  /** What a multi op resolves with once DONE. */
  finalResult() {
    if (this.kind === Op.SET_MULTI) {
      // The keys not stored, in the order they were given.
      const notStored = this.result.sort((a, b) => a - b).map((i) => this.keys[i]);
      return this.withErrors ? { notStored, errors: this.errors ?? Object.create(null) } : notStored;
    }
    if (this.kind === Op.GET_MULTI && this.withErrors) {
      return { values: this.result, errors: this.errors ?? Object.create(null) };
    }
    return this.result;
  }
}

/**
 * The calls waiting for outcomes, by id. Ids are handed out in sequence, so a power-of-two
 * table indexed by the id's low bits finds a call without hashing; when a slot is still
 * taken by an older call the table doubles. Beyond MAX_TABLE_SLOTS (a call left waiting
 * while hundreds of thousands of others passed) the rest wait in a Map.
 */
const INITIAL_TABLE_SLOTS = 1024;
const MAX_TABLE_SLOTS = 1 << 16;

export class OpTable {
  constructor() {
    this.slots = new Array(INITIAL_TABLE_SLOTS).fill(null);
    this.mask = INITIAL_TABLE_SLOTS - 1;
    this.overflow = null;
    this.size = 0;
  }

  set(id, op) {
    let i = id & this.mask;
    if (this.slots[i] !== null && !this.grow(id)) {
      (this.overflow ??= new Map()).set(id, op);
      this.size++;
      return;
    }
    i = id & this.mask;
    this.slots[i] = op;
    this.size++;
  }

  get(id) {
    const op = this.slots[id & this.mask];
    if (op !== null && op.id === id) return op;
    return this.overflow === null ? undefined : this.overflow.get(id);
  }

  delete(id) {
    const i = id & this.mask;
    const op = this.slots[i];
    if (op !== null && op.id === id) {
      this.slots[i] = null;
      this.size--;
    } else if (this.overflow !== null && this.overflow.delete(id)) {
      this.size--;
    }
  }

  /** Doubles until `id` and every call in the table have slots of their own; false at the cap. */
  grow(id) {
    if (this.slots.length >= MAX_TABLE_SLOTS) return false;
    const live = this.slots.filter((op) => op !== null);
    for (let slots = this.slots.length * 2; slots <= MAX_TABLE_SLOTS; slots *= 2) {
      const mask = slots - 1;
      const taken = new Set(live.map((op) => op.id & mask));
      if (taken.size === live.length && !taken.has(id & mask)) {
        this.slots = new Array(slots).fill(null);
        this.mask = mask;
        for (const op of live) this.slots[op.id & mask] = op;
        return true;
      }
    }
    return false;
  }

  values() {
    const live = this.slots.filter((op) => op !== null);
    return this.overflow === null ? live : [...live, ...this.overflow.values()];
  }

  clear() {
    this.slots.fill(null);
    this.overflow = null;
    this.size = 0;
  }
}
