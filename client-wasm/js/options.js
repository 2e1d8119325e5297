// The Client's options, checked once when the client is made: a wrong type, NaN, a
// negative or out-of-range number, or an unknown name is a BAD_ARGUMENT that names the
// option. python-memcached's snake_case names keep python-memcached's units (seconds).
import { BadArgumentError } from "./errors.js";

/** python-memcached's socket_timeout (3 s), here per request in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 3000;
/** How long a connection may take to open; a blackholed server fails this fast. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
/** python-memcached's dead_retry: the longest wait between probes of a down server. */
export const DEFAULT_DEAD_RETRY_S = 30;
/** memcached's default item size limit (-I 1m): larger values are refused before sending. */
export const DEFAULT_MAX_VALUE_SIZE = 1024 * 1024;
/**
 * The largest value read back. Far above memcached's default 1 MiB so that a server run
 * with a larger `-I` (up to its 1 GiB ceiling, 64 MiB is common for big pages) reads
 * what other clients stored; a larger item fails that one key with VALUE_TOO_LARGE.
 */
export const DEFAULT_MAX_ITEM_SIZE = 64 * 1024 * 1024;
/** setTimeout's ceiling (2^31-1 ms, about 24.8 days): a longer delay fires at once. */
const MAX_TIMER_MS = 0x7fffffff;
const MAX_U32 = 0xffffffff;

/** Every option name, camelCase and python-memcached's. */
const KNOWN = new Set([
  "bridge", "token", "debug", "hashFunction", "hash_function", "distribution", "serializer",
  "minCompressLen", "min_compress_len", "maxValueSize", "server_max_value_length", "maxItemSize",
  "checkKeys", "check_keys", "timeout", "socket_timeout", "connectTimeout", "connect_timeout",
  "deadRetry", "dead_retry", "failover", "tls", "auth", "behindProxy",
]);

/** The keys a `tls` object may have (tls.connect's names). */
const TLS_KEYS = new Set(["ca", "cert", "key", "servername", "rejectUnauthorized"]);

/** A PEM text, bytes, or a list of either (what tls.connect takes for ca/cert/key). */
function isPem(v) {
  const one = (x) => typeof x === "string" || ArrayBuffer.isView(x);
  return one(v) || (Array.isArray(v) && v.length > 0 && v.every(one));
}

/**
 * `tls: true | { ca, cert, key, servername, rejectUnauthorized }` checked: null when off,
 * else the tls.connect options it stands for (certificate checks on unless
 * rejectUnauthorized is false).
 */
export function checkTls(value, where) {
  if (value === undefined || value === false) return null;
  if (value === true) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new BadArgumentError(`${where} tls must be true, false or { ca, cert, key, servername, rejectUnauthorized }, got ${describe(value)}`);
  }
  const out = {};
  for (const [name, v] of Object.entries(value)) {
    if (!TLS_KEYS.has(name)) throw new BadArgumentError(`${where} tls has unknown setting ${JSON.stringify(name)} (ca, cert, key, servername, rejectUnauthorized)`);
    if (v === undefined) continue;
    if ((name === "ca" || name === "cert" || name === "key") && !isPem(v)) {
      throw new BadArgumentError(`${where} tls.${name} must be PEM text or bytes (or a list of them), got ${describe(v)}`);
    }
    if (name === "servername" && (typeof v !== "string" || v.length === 0)) throw new BadArgumentError(`${where} tls.servername must be a non-empty string`);
    if (name === "rejectUnauthorized" && typeof v !== "boolean") throw new BadArgumentError(`${where} tls.rejectUnauthorized must be true or false`);
    out[name] = v;
  }
  if ((out.cert === undefined) !== (out.key === undefined)) throw new BadArgumentError(`${where} tls needs cert and key together (a client certificate and its key)`);
  return out;
}

/**
 * `auth: { username, password }` checked, for memcached's text-protocol authentication
 * (-Y): the engine sends "<username> <password>" as one line of data, which memcached
 * splits at spaces, so neither may hold a space, a line break or another control character. The
 * message never repeats what was given.
 */
export function checkAuth(value, where) {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) throw new BadArgumentError(`${where} auth must be { username, password }`);
  for (const name of Object.keys(value)) {
    if (name !== "username" && name !== "password") throw new BadArgumentError(`${where} auth has unknown setting ${JSON.stringify(name)} (username, password)`);
  }
  const { username, password } = value;
  if (typeof username !== "string" || !/^[\x21-\x7e\u0080-\uffff]+$/.test(username)) {
    throw new BadArgumentError(`${where} auth.username must be a non-empty string without spaces or control characters`);
  }
  if (typeof password !== "string" || !/^[\x21-\x7e\u0080-\uffff]+$/.test(password)) {
    throw new BadArgumentError(`${where} auth.password must be a non-empty string without spaces, line breaks or control characters (memcached -Y compares space-separated tokens)`);
  }
  return { username, password };
}

/** The option under its camelCase name, else its python-memcached name (and that name's unit). */
function pick(options, camel, snake) {
  if (options[camel] !== undefined) return { name: camel, value: options[camel], snake: false };
  if (snake !== undefined && options[snake] !== undefined) return { name: snake, value: options[snake], snake: true };
  return { name: camel, value: undefined, snake: false };
}

function number(option, { min, max, integer, fallback }) {
  const { name, value } = option;
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new BadArgumentError(`option ${name} must be a number, got ${describe(value)}`);
  }
  if (integer && !Number.isInteger(value)) throw new BadArgumentError(`option ${name} must be an integer, got ${value}`);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new BadArgumentError(`option ${name} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

/** A duration given in milliseconds (camelCase) or seconds (python-memcached's name), in ms. */
function duration(options, camel, snake, { fallbackMs, min }) {
  const option = pick(options, camel, snake);
  if (option.value === undefined) return fallbackMs;
  const scale = option.snake ? 1000 : 1;
  const value = number(option, { min: min / scale, max: MAX_TIMER_MS / scale, integer: false });
  return value * scale;
}

function boolean(option, fallback) {
  if (option.value === undefined) return fallback;
  if (typeof option.value !== "boolean") throw new BadArgumentError(`option ${option.name} must be true or false, got ${describe(option.value)}`);
  return option.value;
}

function describe(value) {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null) return "null";
  return typeof value === "object" || typeof value === "function" ? typeof value : String(value);
}

/** memcached's well-known port, used when an address names none (as python-memcached). */
const DEFAULT_PORT = 11211;

/**
 * "host:port", "[v6]:port", "inet:host:port", "inet6:[v6]:port" or "unix:/path" (the forms
 * python-memcached reads) to `net.connect` options; anything else is BAD_ARGUMENT.
 */
export function parseAddress(address) {
  let m = /^unix:(.+)$/.exec(address);
  if (m) return { path: m[1] };
  m = /^(?:inet6:)?\[([^\]]+)\](?::(\d+))?$/.exec(address) ?? /^(?:inet:)?([^:\s\[\]]+)(?::(\d+))?$/.exec(address);
  if (m) {
    const port = m[2] ? Number(m[2]) : DEFAULT_PORT;
    if (port >= 1 && port <= 65535) return { host: m[1], port };
  }
  throw new BadArgumentError(`bad server address ${JSON.stringify(address)}: expected "host:port", "[v6]:port" or "unix:/path" (port 1-65535)`);
}

/**
 * servers as python-memcached takes them: "host:port", ["host:port", weight], or
 * {address, weight, tls, auth} (tls and auth for this server, over the client's).
 */
export function normalizeServers(servers) {
  if (typeof servers === "string") servers = [servers];
  if (!Array.isArray(servers) || servers.length === 0) {
    throw new BadArgumentError("servers must be a non-empty array of \"host:port\" strings or {address, weight} objects");
  }
  return servers.map((s) => {
    let address, weight = 1, tls, auth;
    if (typeof s === "string") address = s;
    else if (Array.isArray(s)) [address, weight] = s; // python-memcached's ("host:port", weight)
    else if (s && typeof s === "object") {
      for (const name of Object.keys(s)) {
        if (!["address", "weight", "tls", "auth"].includes(name)) {
          throw new BadArgumentError(`bad server entry: unknown setting ${JSON.stringify(name)} (address, weight, tls, auth)`);
        }
      }
      address = s.address;
      weight = s.weight ?? 1;
      tls = s.tls;
      auth = s.auth;
    }
    if (typeof address !== "string" || address.length === 0) {
      throw new BadArgumentError(`bad server entry ${JSON.stringify(s)}: expected "host:port" or {address, weight}`);
    }
    if (!Number.isInteger(weight) || weight < 1 || weight > 0xffff) {
      throw new BadArgumentError(`bad weight ${weight} for server ${address}: an integer from 1 to 65535`);
    }
    parseAddress(address);
    // undefined: the client's setting applies.
    return {
      address, weight,
      tls: tls === undefined ? undefined : checkTls(tls, `server ${address}:`),
      auth: auth === undefined ? undefined : checkAuth(auth, `server ${address}:`),
    };
  });
}

/**
 * The checked configuration of a Client. `canTcp` says whether this platform has TCP (Node)
 * or needs a bridge (browsers).
 */
export function readOptions(options, { canTcp }) {
  if (options === undefined || options === null) options = {};
  if (typeof options !== "object") throw new BadArgumentError(`options must be an object, got ${describe(options)}`);
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) throw new BadArgumentError(`unknown option ${JSON.stringify(name)} (see the options in README.md)`);
  }

  const bridge = options.bridge;
  if (bridge !== undefined && (typeof bridge !== "string" || !/^wss?:\/\//.test(bridge))) {
    throw new BadArgumentError(`option bridge must be a ws:// or wss:// URL, got ${describe(bridge)}`);
  }
  if (bridge === undefined && !canTcp) {
    throw new BadArgumentError("in a browser the client needs a bridge: new Client(servers, { bridge: \"wss://host/...\" })");
  }
  const token = options.token;
  if (token !== undefined && (typeof token !== "string" || token.length === 0)) {
    throw new BadArgumentError("option token must be a non-empty string");
  }

  const tls = checkTls(options.tls, "option");
  if (tls !== null && bridge !== undefined) {
    throw new BadArgumentError("option tls cannot be used with a bridge: the bridge makes the TLS connection to memcached (start memcache-bridge with its upstream TLS settings) and wss:// protects the browser's side");
  }
  const auth = checkAuth(options.auth, "option");
  if (auth !== null && bridge !== undefined) {
    throw new BadArgumentError("option auth cannot be used with a bridge: the bridge holds memcached's credentials (memcache-bridge's upstream auth settings), never the page");
  }
  const behindProxy = boolean(pick(options, "behindProxy"), false);
  if (behindProxy && auth !== null) {
    throw new BadArgumentError("options auth and behindProxy cannot go together: twemproxy does not relay memcached's authentication (it closes the connection on it)");
  }

  const timeoutMs = duration(options, "timeout", "socket_timeout", { fallbackMs: DEFAULT_TIMEOUT_MS, min: 1 });
  const connectTimeoutMs = duration(options, "connectTimeout", "connect_timeout", { fallbackMs: DEFAULT_CONNECT_TIMEOUT_MS, min: 1 });
  // deadRetry is seconds under both names, as python-memcached's dead_retry.
  const deadRetry = pick(options, "deadRetry", "dead_retry");
  const deadRetryMs = number(deadRetry, { min: 0, max: MAX_TIMER_MS / 1000, integer: false, fallback: DEFAULT_DEAD_RETRY_S }) * 1000;

  const failover = boolean(pick(options, "failover"), true);
  // Keys are always checked: a key that breaks python-memcached's rules would also break
  // the protocol's line framing. `checkKeys: false` is accepted for parity and changes nothing.
  boolean(pick(options, "checkKeys", "check_keys"), true);
  const minCompressLen = number(pick(options, "minCompressLen", "min_compress_len"), { min: 0, max: MAX_U32, integer: true, fallback: 0 });
  // 0 is python-memcached's "no limit".
  const maxValueSize = number(pick(options, "maxValueSize", "server_max_value_length"), { min: 0, max: MAX_U32, integer: true, fallback: DEFAULT_MAX_VALUE_SIZE });
  const maxItemSize = number(pick(options, "maxItemSize"), { min: 1, max: MAX_U32, integer: true, fallback: DEFAULT_MAX_ITEM_SIZE });

  const hash = pick(options, "hashFunction", "hash_function").value ?? "crc32";
  let hashFunction = null;
  let hashName = hash;
  if (typeof hash === "function") { hashFunction = hash; hashName = "custom"; }
  else if (hash !== "crc32" && hash !== "crc32-old") throw new BadArgumentError(`option hashFunction must be "crc32", "crc32-old" or a function, got ${describe(hash)}`);
  const distribution = options.distribution ?? "modula";
  if (distribution !== "modula" && distribution !== "ketama") throw new BadArgumentError(`option distribution must be "modula" or "ketama", got ${describe(distribution)}`);
  if (distribution === "ketama" && hashName !== "crc32") {
    throw new BadArgumentError("ketama hashes keys with md5 as libmemcached does: option hashFunction applies to the modula distribution only");
  }

  const serializer = options.serializer ?? "json";
  let customSerializer = null;
  let serializerName = serializer;
  if (serializer && typeof serializer === "object") {
    if (typeof serializer.serialize !== "function" || typeof serializer.deserialize !== "function") {
      throw new BadArgumentError("a custom serializer needs serialize(value) and deserialize(bytes) functions");
    }
    customSerializer = serializer;
    serializerName = "custom";
  } else if (serializer !== "json" && serializer !== "pickle") {
    throw new BadArgumentError(`option serializer must be "json", "pickle" or {serialize, deserialize}, got ${describe(serializer)}`);
  }

  const debug = options.debug ?? false;
  const log = !debug ? null
    : typeof debug === "function" ? debug
    : typeof debug.log === "function" ? (m) => debug.log(m)
    : (m) => console.error(m);

  return {
    bridge, token, timeoutMs, connectTimeoutMs, deadRetryMs, failover, minCompressLen, maxValueSize,
    maxItemSize, hashFunction, hashName, distribution, customSerializer, serializerName, log,
    tls, auth, behindProxy,
  };
}

/**
 * Each server's TLS and auth settings: its own, else the client's. A bridge makes the
 * upstream connection itself, so neither may be asked of a server behind one.
 */
export function serverSettings(list, config) {
  return list.map((s) => {
    const tls = s.tls !== undefined ? s.tls : config.tls;
    const auth = s.auth !== undefined ? s.auth : config.auth;
    if (config.bridge !== undefined && tls !== null) {
      throw new BadArgumentError(`server ${s.address}: tls cannot be used with a bridge: the bridge makes the TLS connection to memcached (memcache-bridge's upstream TLS settings) and wss:// protects the browser's side`);
    }
    if (config.bridge !== undefined && auth !== null) {
      throw new BadArgumentError(`server ${s.address}: auth cannot be used with a bridge: the bridge holds memcached's credentials (memcache-bridge's upstream auth settings), never the page`);
    }
    if (config.behindProxy && auth !== null) {
      throw new BadArgumentError(`server ${s.address}: auth cannot be used with behindProxy: twemproxy does not relay memcached's authentication`);
    }
    return { ...s, tls, auth };
  });
}
