// The clients under test, each behind the same small surface (get, set, getMulti, close) so
// that a workload runs identically on every one. Each uses its own defaults and its own key
// distribution, as its users would; only timeouts are raised so that none fails under load.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { RawClient } from './raw-client.mjs';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
// The package measured: client-wasm/, or another build of it (a before/after comparison)
// named by MEMCACHE_WASM_PACKAGE: a folder with the same package.json, js/ and pkg/.
export const WASM_PACKAGE = path.resolve(process.env.MEMCACHE_WASM_PACKAGE ?? path.join(ROOT, 'client-wasm'));

/** The Node entry of the npm package memcache-wasm, as its package.json exports it. */
export function wasmClientEntry() {
  const pkg = JSON.parse(readFileSync(path.join(WASM_PACKAGE, 'package.json'), 'utf8'));
  const entry = pkg.exports?.['.']?.node ?? pkg.main;
  if (typeof entry !== 'string') throw new Error('client-wasm/package.json names no Node entry');
  return path.join(WASM_PACKAGE, entry);
}

// Generous per-request timeouts: a benchmark must not turn a slow reply into a retry or an
// error that changes what is measured; a hung run is still ended by the per-cell time bound.
const REQUEST_TIMEOUT_MS = 10_000;

let wasmModule;
async function wasmClientClass() {
  wasmModule ??= await import(pathToFileURL(wasmClientEntry()).href);
  return wasmModule.Client;
}

function countFound(found) {
  return found instanceof Map ? found.size : Object.keys(found).length;
}

/**
 * Every contender: id (stable, used in JSON), label (for tables), and
 * connect({addresses, bridgeUrl}) resolving with {get, set, getMulti, close}.
 * get resolves with the value (string or Buffer) or undefined on a miss; set with true when
 * stored; getMulti with the number of keys found.
 */
export const CONTENDERS = [
  {
    id: 'raw',
    label: 'raw socket',
    note: 'hand-written text protocol on net.Socket, pipelined, one connection per server',
    async connect({ addresses }) {
      const client = await RawClient.connect(addresses);
      return {
        get: (key) => client.get(key),
        set: (key, value) => client.set(key, value),
        getMulti: async (keys) => countFound(await client.getMulti(keys)),
        close: () => client.close(),
      };
    },
  },
  {
    id: 'wasm-tcp',
    label: 'memcache-wasm TCP',
    note: 'this project, Node TCP transport',
    async connect({ addresses }) {
      const Client = await wasmClientClass();
      const client = new Client(addresses, { timeout: REQUEST_TIMEOUT_MS });
      return wasmAdapter(client);
    },
  },
  {
    id: 'wasm-bridge',
    label: 'memcache-wasm bridge',
    note: 'this project through memcache-bridge (release build), WebSocket from the ws package',
    async connect({ addresses, bridgeUrl }) {
      if (!bridgeUrl) throw new Error('wasm-bridge needs a running memcache-bridge');
      const Client = await wasmClientClass();
      const client = new Client(addresses, { bridge: bridgeUrl, timeout: REQUEST_TIMEOUT_MS });
      return wasmAdapter(client);
    },
  },
  {
    id: 'memjs',
    label: 'memjs',
    note: 'memjs 1.3.2, binary protocol, one connection per server; no multi-get, so parallel gets',
    async connect({ addresses }) {
      const memjs = require('memjs');
      const client = memjs.Client.create(addresses.join(','), {
        timeout: REQUEST_TIMEOUT_MS / 1000,
        retries: 0,
        logger: { log() {} },
      });
      return {
        get: async (key) => {
          const { value } = await client.get(key);
          return value === null ? undefined : value;
        },
        set: (key, value) => client.set(key, value, { expires: 0 }),
        getMulti: async (keys) => {
          const replies = await Promise.all(keys.map((key) => client.get(key)));
          let found = 0;
          for (const reply of replies) if (reply.value !== null) found++;
          return found;
        },
        close: () => client.close(),
      };
    },
  },
  {
    id: 'memcached',
    label: 'memcached (npm)',
    note: 'memcached 2.2.2, text protocol, its default pool of up to 10 connections per server',
    async connect({ addresses }) {
      const Memcached = require('memcached');
      const client = new Memcached(addresses, { timeout: REQUEST_TIMEOUT_MS });
      return {
        get: (key) =>
          new Promise((resolve, reject) =>
            client.get(key, (err, value) => (err ? reject(err) : resolve(value))),
          ),
        set: (key, value) =>
          new Promise((resolve, reject) =>
            client.set(key, value, 0, (err, ok) => (err ? reject(err) : resolve(ok))),
          ),
        getMulti: (keys) =>
          new Promise((resolve, reject) =>
            client.getMulti(keys, (err, data) => (err ? reject(err) : resolve(countFound(data)))),
          ),
        close: () => client.end(),
      };
    },
  },
];

function wasmAdapter(client) {
  return {
    get: (key) => client.get(key),
    set: (key, value) => client.set(key, value, 0),
    getMulti: async (keys) => countFound(await client.getMulti(keys)),
    close: () => client.close(),
  };
}
