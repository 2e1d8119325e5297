// The errors the client rejects with: one MemcacheError class per failure kind, each with
// a stable `code` string (documented in README.md). Every code but CLOSED is the core's
// `Error::code()` (client-wasm/src/error.rs); operations.js maps the engine's codes here.

export class MemcacheError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = "MemcacheError";
    this.code = code;
    if (details !== undefined) Object.assign(this, details);
  }
}

/** A key broke python-memcached's key rules (empty, over 250 bytes, space or control character). */
export class BadKeyError extends MemcacheError {
  constructor(message, details) { super("BAD_KEY", message, details); this.name = "BadKeyError"; }
}
/** A value is larger than `maxValueSize` (after compression). */
export class ValueTooLargeError extends MemcacheError {
  constructor(message, details) { super("VALUE_TOO_LARGE", message, details); this.name = "ValueTooLargeError"; }
}
/** A value cannot be serialized (a function, a symbol, undefined, a cycle, ...). */
export class NotSerializableError extends MemcacheError {
  constructor(message, details) { super("NOT_SERIALIZABLE", message, details); this.name = "NotSerializableError"; }
}
/** A stored value cannot be decoded according to its flags. */
export class DecodeError extends MemcacheError {
  constructor(message, details) { super("DECODE_ERROR", message, details); this.name = "DecodeError"; }
}
/** The server sent bytes that are not the memcached text protocol; the connection was dropped. */
export class ProtocolError extends MemcacheError {
  constructor(message, details) { super("PROTOCOL_ERROR", message, details); this.name = "ProtocolError"; }
}
/** memcached answered ERROR: it does not know the command. */
export class UnknownCommandError extends MemcacheError {
  constructor(message, details) { super("UNKNOWN_COMMAND", message, details); this.name = "UnknownCommandError"; }
}
/** memcached answered CLIENT_ERROR with its text. */
export class ClientError extends MemcacheError {
  constructor(message, details) { super("CLIENT_ERROR", message, details); this.name = "ClientError"; }
}
/** memcached answered SERVER_ERROR with its text (out of memory, object too large, ...). */
export class ServerError extends MemcacheError {
  constructor(message, details) { super("SERVER_ERROR", message, details); this.name = "ServerError"; }
}
/** No live server is left for the key (all dead, or `failover` is off and its server is dead). */
export class NoServerError extends MemcacheError {
  constructor(message, details) { super("NO_SERVER", message, details); this.name = "NoServerError"; }
}
/** An argument has the wrong type or range. */
export class BadArgumentError extends MemcacheError {
  constructor(message, details) { super("BAD_ARGUMENT", message, details); this.name = "BadArgumentError"; }
}
/** memcached would not run an `lru_crawler metadump`; the message holds its line (BUSY,
 * BADCLASS, NOTSTARTED, or ERROR with its reason). */
export class MetadumpRefusedError extends MemcacheError {
  constructor(message, details) { super("METADUMP_REFUSED", message, details); this.name = "MetadumpRefusedError"; }
}
/** memcached did not store one key of a setMulti (NOT_STORED, EXISTS or NOT_FOUND). */
export class NotStoredError extends MemcacheError {
  constructor(message, details) { super("NOT_STORED", message, details); this.name = "NotStoredError"; }
}
/** The connection to a server failed or broke; `server` names it, `cause` is the socket's error. */
export class ConnectionError extends MemcacheError {
  constructor(message, details) { super("CONNECTION_ERROR", message, details); this.name = "ConnectionError"; }
}
/** A request got no answer within `timeout` ms, or a connection was not made within
 * `connectTimeout` ms; the connection was dropped and the server is probed again. */
export class TimeoutError extends MemcacheError {
  constructor(message, details) { super("TIMEOUT", message, details); this.name = "TimeoutError"; }
}
/** The bridge refused the WebSocket: its Origin (close code 4403) or token (4401), or its policy (1008, e.g. a write through a read-only bridge); `reason` is its close reason, `status` the HTTP status of a refused handshake (Node). */
export class BridgeRefusedError extends MemcacheError {
  constructor(message, details) { super("BRIDGE_REFUSED", message, details); this.name = "BridgeRefusedError"; }
}
/** The client was closed; requests pending on it, or made after, reject with this. */
/** memcached (-Y) refused the credentials of option `auth`; the server is retried with the dead-server backoff. The message never holds the credentials. */
export class AuthFailedError extends MemcacheError {
  constructor(message, details) { super("AUTH_FAILED", message, details); this.name = "AuthFailedError"; }
}
/** With `behindProxy: true`, a command the proxy (twemproxy) does not relay; nothing was sent. */
export class NotRelayedError extends MemcacheError {
  constructor(message, details) { super("NOT_RELAYED", message, details); this.name = "NotRelayedError"; }
}
export class ClosedError extends MemcacheError {
  constructor(message, details) { super("CLOSED", message, details); this.name = "ClosedError"; }
}
/** The wasm engine could not be loaded (a bad `init({ wasm })` source, a failed fetch, a
 * module that does not compile, a CSP without 'wasm-unsafe-eval'); `cause` holds the reason.
 * Calls made meanwhile reject with it; the next call (or init()) tries again. */
export class EngineLoadError extends MemcacheError {
  constructor(message, details) { super("ENGINE_LOAD_FAILED", message, details); this.name = "EngineLoadError"; }
}
/** A synchronous method that needs the engine (serverForKey) was called in a browser before
 * it loaded (or in Node while an asynchronous load was under way): `await init()` first. */
export class EngineNotReadyError extends MemcacheError {
  constructor(message, details) { super("ENGINE_NOT_READY", message, details); this.name = "EngineNotReadyError"; }
}

