// The calls memcached's meta protocol makes possible: getOrSet (cache-aside that cannot
// stampede), invalidate, getWithTtl, getAndTouch, and counters that create themselves. What
// a reply means (who won, who waits, what is stale) and the waits between re-reads are
// decided by the engine (client-wasm/src/meta.rs, engine/meta_ops.rs); this side runs the
// loader and stores what it returned.
import { BadArgumentError, MemcacheError } from "./errors.js";
import { checkDelta, checkExpiry, checkKey, writeValue } from "./operations.js";
import { Lease, MetaDelete, Op } from "./wire.js";

/** How long a win lasts when its process dies before storing a value (lockTtl, seconds). */
export const DEFAULT_LOCK_TTL = 30;
/** How long a caller waits for another caller's loader before TIMEOUT (timeout, ms). */
export const DEFAULT_LEASE_WAIT_MS = 10_000;

function seconds(name, v, fallback, min = 0) {
  if (v === undefined || v === null) return fallback;
  if (!Number.isInteger(v) || v < min || v > 0x7fffffff) {
    throw new BadArgumentError(`${name} must be an integer number of seconds of at least ${min}, got ${String(v)}`);
  }
  return v;
}

function leaseOptions(options) {
  if (options !== undefined && (options === null || typeof options !== "object")) {
    throw new BadArgumentError("getOrSet options must be an object: { ttl, staleTtl, lockTtl, timeout }");
  }
  const ttl = seconds("ttl", options?.ttl, 0);
  const staleTtl = seconds("staleTtl", options?.staleTtl, 0);
  const lockTtl = seconds("lockTtl", options?.lockTtl, DEFAULT_LOCK_TTL, 1);
  const timeout = options?.timeout ?? DEFAULT_LEASE_WAIT_MS;
  if (!Number.isInteger(timeout) || timeout < 0 || timeout > 0xffffffff) {
    throw new BadArgumentError(`timeout must be a non-negative integer number of milliseconds, got ${String(timeout)}`);
  }
  if (staleTtl > 0 && ttl === 0) {
    throw new BadArgumentError("staleTtl needs a ttl: a value that never expires never turns stale (invalidate() still works)");
  }
  // The item lives for ttl + staleTtl; once fewer than staleTtl seconds are left it is
  // stale: served while one caller refreshes it (mg's R flag).
  return { ttl, staleTtl, lockTtl, timeout, storeTtl: staleTtl > 0 ? ttl + staleTtl : ttl };
}

function leaseGet(client, key, o) {
  return client._call(Op.LEASE_GET, undefined, (op, w) => {
    client._writeKey(w, "", key);
    w.u32(o.lockTtl);
    w.u32(o.staleTtl);
    w.u32(o.timeout);
  });
}

function metaSet(client, key, value, ttl) {
  return client._call(Op.META_SET, undefined, (op, w) => {
    client._writeKey(w, "", key);
    w.u32(ttl);
    w.u32(client._minCompressLen);
    writeValue(w, value, client._serializer);
  });
}

function metaDelete(client, key, mode) {
  return client._call(Op.META_DELETE, undefined, (op, w) => {
    client._writeKey(w, "", checkKey(key));
    w.u8(mode);
  });
}

async function load(loader) {
  return await loader();
}

/** Runs the loader for a win and stores its value; a loader or store that fails releases
 * the win (`release`: delete the placeholder, or mark the stale value stale again). */
async function loadAndStore(client, key, loader, o, release) {
  let value;
  try {
    value = await load(loader);
  } catch (e) {
    await metaDelete(client, key, release).catch(() => {});
    throw e;
  }
  try {
    await metaSet(client, key, value, o.storeTtl);
  } catch (e) {
    await metaDelete(client, key, release).catch(() => {});
    throw e;
  }
  return value;
}

/** Client.prototype.getOrSet. */
export async function getOrSet(client, key, loader, options) {
  if (typeof loader !== "function") throw new BadArgumentError("getOrSet needs a loader function");
  const k = checkKey(key);
  const o = leaseOptions(options);
  const { lease, value } = await leaseGet(client, k, o);
  switch (lease) {
    case Lease.HIT:
    case Lease.SERVE_STALE:
      return value;
    case Lease.WON_MISS:
      return loadAndStore(client, k, loader, o, MetaDelete.DELETE);
    case Lease.WON_STALE:
      // Everyone (this caller too) gets the stale value while this refresh runs.
      loadAndStore(client, k, loader, o, MetaDelete.INVALIDATE).catch((error) => {
        client._emit("refreshError", { key: k, error });
      });
      return value;
    default:
      throw new MemcacheError("PROTOCOL_ERROR", `unknown lease outcome ${lease}`);
  }
}

export function invalidate(client, key) {
  return metaDelete(client, key, MetaDelete.INVALIDATE);
}

export function getWithTtl(client, key) {
  return client._call(Op.GET_WITH_TTL, undefined, (op, w) => client._writeKey(w, "", checkKey(key)));
}

export function getAndTouch(client, key, ttl) {
  return client._call(Op.GET_AND_TOUCH, undefined, (op, w) => {
    const k = checkKey(key);
    const e = checkExpiry(ttl);
    client._writeKey(w, "", k);
    w.u32(e);
  });
}

/** incr/decr with { initial, ttl }: a missing counter is created at `initial` (`ma ... N J`). */
export function counter(client, incr, key, delta, options) {
  return client._call(Op.META_COUNTER, undefined, (op, w) => {
    const k = checkKey(key);
    const d = checkDelta(delta);
    const initial = checkDelta(options.initial ?? 0);
    const ttl = checkExpiry(options.ttl ?? 0);
    client._writeKey(w, "", k);
    w.u64(d);
    w.u64(initial);
    w.u32(ttl);
    w.u8(incr ? 1 : 0);
  });
}
