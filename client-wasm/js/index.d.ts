// Types of memcache-wasm: the Client (python-memcached's API as Promises) and its errors.

/** A key: a string, or a number or BigInt (stored as its decimal string, as python's str()). */
export type Key = string | number | bigint;

/** A server: "host:port", "[::1]:port", "inet6:[::1]:port" or "unix:/path", or with a weight
 * (a server of weight w gets w buckets) and its own tls / auth (over the client's). */
export type ServerSpec = string | { address: string; weight?: number; tls?: boolean | TlsOptions; auth?: AuthOptions | null } | [address: string, weight: number];

/** TLS to memcached (-Z), checked against `ca` (default: Node's CAs) and the host name. */
export interface TlsOptions {
  /** The CA(s) that signed the server's certificate (PEM). */
  ca?: string | Uint8Array | (string | Uint8Array)[];
  /** A client certificate and its key (PEM), for a server run with ssl_verify_mode=2. */
  cert?: string | Uint8Array | (string | Uint8Array)[];
  key?: string | Uint8Array | (string | Uint8Array)[];
  /** The name the certificate must hold (default: the address's host name; an IP is checked as an IP). */
  servername?: string;
  /** false turns the certificate checks off (default true). */
  rejectUnauthorized?: boolean;
}

/** memcached's text-protocol authentication (-Y authfile). */
export interface AuthOptions {
  username: string;
  password: string;
}

/** A value that can be stored. Strings, bytes, safe integers and BigInts keep their type;
 * anything else goes through the serializer (JSON by default). */
export type Value = unknown;

export interface Serializer {
  serialize(value: unknown): Uint8Array | string;
  deserialize(bytes: Uint8Array): unknown;
}

export interface ClientOptions {
  /** A ws:// or wss:// memcache-bridge URL. Without it Node uses TCP; a browser needs one. */
  bridge?: string;
  /** The token for a bridge that asks one (header in Node, subprotocol entry in browsers). */
  token?: string;
  /** Log python-memcached style debug lines: true (console.error), a function, or a logger with log(). */
  debug?: boolean | ((line: string) => void) | { log(line: string): void };
  /** "crc32" (python-memcached's cmemcache_hash, the default), "crc32-old", or a function of the full key. */
  hashFunction?: "crc32" | "crc32-old" | ((key: string) => number);
  /** "modula" (python-memcached's, the default) or "ketama" (libmemcached's consistent hashing). */
  distribution?: "modula" | "ketama";
  /** How objects are stored (flag 1): "json" (default), "pickle", or your own. */
  serializer?: "json" | "pickle" | Serializer;
  /** Compress values longer than this many bytes with zlib (0, the default: never). */
  minCompressLen?: number;
  /** Largest value stored, after compression (default 1 MiB, memcached's default item size). */
  maxValueSize?: number;
  /** Accepted for python-memcached parity; keys are always checked (a bad key would break the protocol). */
  checkKeys?: boolean;
  /** Milliseconds a request may wait for its answer (default 3000). */
  timeout?: number;
  /** Milliseconds a new connection may take to open (default 1000). */
  connectTimeout?: number;
  /** Seconds: the longest wait between background probes of a down server (default 30). */
  deadRetry?: number;
  /** Largest value read back (default 64 MiB); a larger item fails its key alone with VALUE_TOO_LARGE. */
  maxItemSize?: number;
  /** Re-hash a dead server's keys to another server, as python-memcached does (default true). */
  failover?: boolean;
  /** TLS on every server (Node TCP only; a bridge makes the upstream TLS itself). A failed check is CONNECTION_ERROR; never plain TCP instead. */
  tls?: boolean | TlsOptions;
  /** Credentials every new connection authenticates with before anything else (memcached -Y); refused ones reject with AUTH_FAILED. */
  auth?: AuthOptions;
  /** The servers are a twemproxy (nutcracker) pool: stats, flushAll, metadump and the meta calls are refused with NOT_RELAYED instead of being sent. */
  behindProxy?: boolean;
  /** snake_case spellings are accepted too. */
  min_compress_len?: number;
  /** python-memcached's units: seconds. */
  dead_retry?: number;
  /** Seconds, as python-memcached's. */
  socket_timeout?: number;
  /** Seconds. */
  connect_timeout?: number;
  check_keys?: boolean;
  server_max_value_length?: number;
}

export interface PrefixOptions {
  keyPrefix?: string;
  key_prefix?: string;
}

/**
 * `noreply: true` sends the write quietly (meta `q`, python-memcached's noreply): memcached
 * answers only what did not succeed and one `mn` per server closes each tick's run. The
 * promise still settles as the loud call's would (a refused write is never reported as
 * stored); a fire-and-forget caller attaches only a `.catch`.
 */
export interface NoreplyOptions {
  noreply?: boolean;
}

export interface StoreOptions extends NoreplyOptions {
  minCompressLen?: number;
  min_compress_len?: number;
}

export interface SetMultiOptions extends PrefixOptions, StoreOptions, NoreplyOptions {
  expiry?: number;
  time?: number;
  /** Resolve with `{ notStored, errors }` instead of the keys not stored. */
  withErrors?: boolean;
}

/** Keys to their errors (a null-prototype object). */
export type KeyErrors = Record<string, MemcacheError>;

/** What getMulti resolves to with `{ withErrors: true }`. */
export interface GetMultiResult<T = unknown> {
  /** The keys found (a null-prototype object). */
  values: Record<string, T>;
  /** Each key that could not be read: its server failed, timed out or is down, the item is over maxItemSize, or it cannot be decoded. */
  errors: KeyErrors;
}

/** What setMulti resolves to with `{ withErrors: true }`. */
export interface SetMultiResult {
  notStored: string[];
  errors: KeyErrors;
}

export interface ServerDownEvent {
  server: string;
  /** Why: CONNECTION_ERROR, TIMEOUT or PROTOCOL_ERROR. */
  error: MemcacheError;
}

export interface ServerUpEvent {
  server: string;
}

export interface CasResult<T = unknown> {
  value: T;
  /** The cas unique to pass to cas(). */
  cas: bigint;
}

/** What inspect() resolves to on a hit. */
export interface InspectResult<T = unknown> {
  /** The value, decoded as get() decodes it. */
  value: T;
  /** The flags memcached holds for the item (16 text, 2 int, 4 long, 1 serialized, 0 bytes, +8 compressed). */
  flags: number;
  /** The stored length in bytes, as memcached holds it (before decompression). */
  size: number;
  /** The address ("host:port") of the server that answered. */
  server: string;
  /** The cas unique (inspect is sent as gets). */
  cas: bigint;
}

export interface MetadumpOptions {
  /** One of this client's server addresses, as given to the constructor. */
  server: string;
  /** "all" (the default), "hash" (walk the hash table), or a slab class number. */
  scope?: "all" | "hash" | number;
}

/** Where init() loads the engine from. */
export interface InitOptions {
  /** A URL (in Node also a file path), the .wasm bytes, a Response (or a Promise of one) or
   * a compiled WebAssembly.Module. Without it: the bytes embedded in the package. */
  wasm?: string | URL | ArrayBuffer | ArrayBufferView | Response | PromiseLike<Response> | WebAssembly.Module;
}

/** Loads the wasm engine now instead of on the first call. Rejects with ENGINE_LOAD_FAILED
 * (EngineLoadError) when it cannot; calls made meanwhile reject the same way. */
export function init(options?: InitOptions): Promise<void>;

/** Per server address ("host:port"). */
export type PerServer<T> = Record<string, T>;

export class Client {
  /** Works before the engine has loaded: bad plain options throw BAD_ARGUMENT here, and calls
   * wait for the load (ENGINE_LOAD_FAILED if it fails, TIMEOUT past `timeout`). */
  constructor(servers: ServerSpec | ServerSpec[], options?: ClientOptions);

  /** The servers as configured: whether routing sends keys to each now (`up`; `dead` is its
   * opposite, python-memcached's word) and the state of its socket. */
  readonly servers: { address: string; weight: number; up: boolean; dead: boolean; status: "closed" | "connecting" | "open" }[];

  /** Replaces the server list (python-memcached's set_servers): keys are placed over the new
   * list from now on; calls made before finish on the servers they were sent to. Throws
   * BAD_ARGUMENT for a bad list (and changes nothing). */
  setServers(servers: ServerSpec | ServerSpec[]): void;
  set_servers(servers: ServerSpec | ServerSpec[]): void;

  /** A server went down (its keys re-hash to the others; it is probed in the background). */
  on(event: "serverDown", listener: (event: ServerDownEvent) => void): this;
  /** A down server answered a probe and takes keys again. */
  on(event: "serverUp", listener: (event: ServerUpEvent) => void): this;
  off(event: "serverDown" | "serverUp", listener: (...args: any[]) => void): this;
  /** A background refresh getOrSet started for a stale value failed (the stale value was served). */
  on(event: "refreshError", listener: (event: RefreshErrorEvent) => void): this;
  off(event: "refreshError", listener: (...args: any[]) => void): this;

  /** The value, or undefined on a miss. */
  get<T = unknown>(key: Key): Promise<T | undefined>;
  gets<T = unknown>(key: Key): Promise<CasResult<T> | undefined>;
  /** The values found, keyed as given (without the prefix), in a null-prototype object. One
   * request per server; the keys of a server that fails are left out (or named, withErrors). */
  getMulti<T = unknown>(keys: Key[], options: PrefixOptions & { withErrors: true }): Promise<GetMultiResult<T>>;
  getMulti<T = unknown>(keys: Key[], options?: PrefixOptions & { withErrors?: false }): Promise<Record<string, T>>;

  /** true when stored. `expiry` in seconds (or a unix time), 0 for none. */
  set(key: Key, value: Value, expiry?: number, options?: StoreOptions | number): Promise<boolean>;
  add(key: Key, value: Value, expiry?: number, options?: StoreOptions | number): Promise<boolean>;
  replace(key: Key, value: Value, expiry?: number, options?: StoreOptions | number): Promise<boolean>;
  append(key: Key, value: Value, expiry?: number, options?: NoreplyOptions): Promise<boolean>;
  prepend(key: Key, value: Value, expiry?: number, options?: NoreplyOptions): Promise<boolean>;
  /** Stores only if unchanged since gets() returned `cas`: true when stored. */
  cas(key: Key, value: Value, cas: bigint | number | string, expiry?: number, options?: StoreOptions | number): Promise<boolean>;
  /** The keys not stored (too large, refused, or their server failed); the others are stored. */
  setMulti(mapping: Record<string, Value> | Map<Key, Value>, options: SetMultiOptions & { withErrors: true }): Promise<SetMultiResult>;
  setMulti(mapping: Record<string, Value> | Map<Key, Value>, options?: (SetMultiOptions & { withErrors?: false }) | number): Promise<string[]>;

  /** true when deleted, false when it was not there. */
  delete(key: Key, options?: NoreplyOptions): Promise<boolean>;
  /** true when every server answered (a missing key is no failure). */
  deleteMulti(keys: Key[], options?: PrefixOptions & NoreplyOptions): Promise<boolean>;

  /** The new value (a BigInt above 2^53-1), or undefined when the key is missing. */
  incr(key: Key, delta?: number | bigint): Promise<number | bigint | undefined>;
  decr(key: Key, delta?: number | bigint): Promise<number | bigint | undefined>;
  /** Quietly (no value comes back): true when applied, false when the key is missing. */
  incr(key: Key, delta: number | bigint | undefined, options: { noreply: true }): Promise<boolean>;
  decr(key: Key, delta: number | bigint | undefined, options: { noreply: true }): Promise<boolean>;
  /** With options (meta `ma`): a missing counter is created at `initial` (returned as is) with `ttl`. */
  incr(key: Key, delta: number | bigint | undefined, options: CounterOptions): Promise<number | bigint>;
  decr(key: Key, delta: number | bigint | undefined, options: CounterOptions): Promise<number | bigint>;
  /** true when the key exists. */
  touch(key: Key, expiry: number, options?: NoreplyOptions): Promise<boolean>;

  /** Invalidates every item on every live server (after `delay` seconds). */
  flushAll(delay?: number): Promise<boolean>;
  /** memcached's statistics per server; `args` as memcached's ("items", "slabs", "settings", ...). */
  stats(args?: string): Promise<PerServer<Record<string, string>>>;
  version(): Promise<PerServer<string>>;

  /** The address of the server `key` goes to now (routing as a request would). Throws
   * BAD_KEY for a bad key, NO_SERVER when no live server is left for it, and in a browser
   * ENGINE_NOT_READY before the engine has loaded (await init() first; Node loads it here). */
  serverForKey(key: Key): string;
  /** Like get(), with the flags, stored size, server and cas beside the value; undefined on a miss. */
  inspect<T = unknown>(key: Key): Promise<InspectResult<T> | undefined>;
  /** The item lines of `lru_crawler metadump` on one server, as memcached sends them
   * (`key=<url-encoded> exp=... la=... cas=... fetch=... cls=... size=...`). A refusal
   * (BUSY, BADCLASS, NOTSTARTED, ERROR ...) rejects with METADUMP_REFUSED. */
  metadump(options: MetadumpOptions): Promise<string[]>;
  /** Closes every connection; pending and later calls reject with CLOSED. */
  close(): Promise<void>;

  /** Cache-aside that cannot stampede (meta protocol): the value under `key`; on a miss one
   * caller in the whole fleet runs `loader()` and stores its result, the others wait (up to
   * `timeout` ms) and get it. A loader that throws rejects its own caller and releases the win. */
  getOrSet<T = unknown>(key: Key, loader: () => T | Promise<T>, options?: GetOrSetOptions): Promise<T>;
  /** Marks the value stale (`md <key> I`): getOrSet serves it while one caller refreshes it.
   * true when the key existed. */
  invalidate(key: Key): Promise<boolean>;
  /** The value and its remaining TTL in seconds (-1: never expires), or undefined on a miss. */
  getWithTtl<T = unknown>(key: Key): Promise<{ value: T; ttl: number } | undefined>;
  /** The value, with its expiry reset to `ttl` seconds (gat); undefined on a miss. */
  getAndTouch<T = unknown>(key: Key, ttl: number): Promise<T | undefined>;

  // python-memcached's names
  get_multi: Client["getMulti"];
  set_multi: Client["setMulti"];
  delete_multi: Client["deleteMulti"];
  flush_all: Client["flushAll"];
  get_stats: Client["stats"];
  disconnect_all: Client["close"];
}

export type ErrorCode =
  | "BAD_KEY" | "VALUE_TOO_LARGE" | "NOT_SERIALIZABLE" | "DECODE_ERROR" | "PROTOCOL_ERROR"
  | "UNKNOWN_COMMAND" | "CLIENT_ERROR" | "SERVER_ERROR" | "NO_SERVER" | "BAD_ARGUMENT"
  | "METADUMP_REFUSED" | "CONNECTION_ERROR" | "TIMEOUT" | "NOT_STORED" | "BRIDGE_REFUSED" | "AUTH_FAILED" | "NOT_RELAYED" | "CLOSED"
  | "ENGINE_LOAD_FAILED" | "ENGINE_NOT_READY";

export class MemcacheError extends Error {
  constructor(code: ErrorCode, message: string, details?: object);
  readonly code: ErrorCode;
  /** The server concerned, for errors that come from one. */
  readonly server?: string;
  /** The key concerned (as the caller named it), for errors about one key. */
  readonly key?: string;
  /** The bridge's close reason or refusal text (BRIDGE_REFUSED, CONNECTION_ERROR through a bridge). */
  readonly reason?: string;
  readonly closeCode?: number;
  /** HTTP status of a refused bridge handshake. */
  readonly status?: number;
}
export class BadKeyError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "BAD_KEY";
}
export class ValueTooLargeError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "VALUE_TOO_LARGE";
}
export class NotSerializableError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "NOT_SERIALIZABLE";
}
export class DecodeError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "DECODE_ERROR";
}
export class ProtocolError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "PROTOCOL_ERROR";
}
export class UnknownCommandError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "UNKNOWN_COMMAND";
}
export class ClientError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "CLIENT_ERROR";
}
export class ServerError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "SERVER_ERROR";
}
export class NoServerError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "NO_SERVER";
}
export class BadArgumentError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "BAD_ARGUMENT";
}
export class MetadumpRefusedError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "METADUMP_REFUSED";
}
export class ConnectionError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "CONNECTION_ERROR";
}
export class TimeoutError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "TIMEOUT";
}
export class NotStoredError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "NOT_STORED";
}
export class BridgeRefusedError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "BRIDGE_REFUSED";
}
/** memcached (-Y) refused the credentials of `auth`; never holds them. */
export class AuthFailedError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "AUTH_FAILED";
}
/** With `behindProxy: true`: a command twemproxy does not relay (stats, flush_all, metadump, meta calls); nothing was sent. */
export class NotRelayedError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "NOT_RELAYED";
}
export class ClosedError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "CLOSED";
}
export class EngineLoadError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "ENGINE_LOAD_FAILED";
}
export class EngineNotReadyError extends MemcacheError {
  constructor(message: string, details?: object);
  readonly code: "ENGINE_NOT_READY";
}

/** getOrSet's options. */
export interface GetOrSetOptions {
  /** Seconds the loaded value is fresh (0: never expires). */
  ttl?: number;
  /** Seconds past `ttl` the value is still served, stale, while one caller refreshes it. */
  staleTtl?: number;
  /** Seconds a win lasts if its holder dies before storing (default 30). */
  lockTtl?: number;
  /** Milliseconds a caller waits for another caller's loader before TIMEOUT (default 10000). */
  timeout?: number;
}

/** incr/decr's options for a counter that creates itself. */
export interface CounterOptions {
  /** The value a missing counter is created with (default 0). */
  initial?: number | bigint;
  /** The created counter's expiry in seconds (default 0: none). */
  ttl?: number;
}

/** A background refresh of a stale value failed. */
export interface RefreshErrorEvent {
  key: string;
  error: unknown;
}
