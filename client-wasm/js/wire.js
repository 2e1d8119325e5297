// GENERATED from client-wasm/src/wire.rs by `cargo run --example wire_js`: do not edit.
// The numbers the engine and this layer exchange (formats: client-wasm/src/engine/mod.rs).

export const Op = Object.freeze({
  GET: 1,
  GETS: 2,
  GET_MULTI: 3,
  SET: 4,
  ADD: 5,
  REPLACE: 6,
  APPEND: 7,
  PREPEND: 8,
  CAS: 9,
  SET_MULTI: 10,
  DELETE: 11,
  DELETE_MULTI: 12,
  INCR: 13,
  DECR: 14,
  TOUCH: 15,
  FLUSH_ALL: 16,
  STATS: 17,
  VERSION: 18,
  INSPECT: 19,
  METADUMP: 20,
  LEASE_GET: 21,
  META_SET: 22,
  META_DELETE: 23,
  GET_WITH_TTL: 24,
  GET_AND_TOUCH: 25,
  META_COUNTER: 26,
});

export const Record = Object.freeze({
  MISS: 0,
  VALUE: 1,
  CAS_VALUE: 2,
  TRUE: 3,
  FALSE: 4,
  NUMBER: 5,
  KEY_VALUES: 6,
  KEY_ERROR: 7,
  SERVER_STATS: 8,
  SERVER_TEXT: 9,
  ERROR: 10,
  ITEM: 11,
  LINES: 12,
  DONE: 13,
  LEASE: 14,
  TTL_VALUE: 15,
});

export const ValueKind = Object.freeze({
  BYTES: 0,
  TEXT: 1,
  INT: 2,
  LONG: 3,
  JSON: 4,
  SERIALIZED: 5,
});

export const Entry = Object.freeze({
  OUTCOME: 0,
  WRITE: 1,
  CONNECT: 2,
  CLOSE: 3,
  SERVER_DOWN: 4,
  SERVER_UP: 5,
});

export const MetadumpScope = Object.freeze({
  ALL: 0,
  HASH: 1,
  CLASS: 2,
});

export const LinkFailure = Object.freeze({
  CONNECTION: 0,
  BRIDGE_REFUSED: 1,
});

export const Lease = Object.freeze({
  HIT: 0,
  WON_MISS: 1,
  WON_STALE: 2,
  SERVE_STALE: 3,
});

export const MetaDelete = Object.freeze({
  DELETE: 0,
  INVALIDATE: 1,
});

/** Error codes by their number on the wire. */
export const ERROR_CODES = Object.freeze([
  "BAD_KEY",
  "VALUE_TOO_LARGE",
  "NOT_SERIALIZABLE",
  "DECODE_ERROR",
  "PROTOCOL_ERROR",
  "UNKNOWN_COMMAND",
  "CLIENT_ERROR",
  "SERVER_ERROR",
  "NO_SERVER",
  "BAD_ARGUMENT",
  "METADUMP_REFUSED",
  "CONNECTION_ERROR",
  "TIMEOUT",
  "NOT_STORED",
  "BRIDGE_REFUSED",
  "AUTH_FAILED",
  "NOT_RELAYED",
]);

export const OP_HASHED = 1;
export const OP_NOREPLY = 2;
export const NO_SERVER_INDEX = 65535;
export const NO_WAKE = -1;
