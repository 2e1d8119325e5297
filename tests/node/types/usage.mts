// Compiled by tests/node/package.test.mjs with tsc --strict against the packed package's
// types: what must type-check does, and each `@ts-expect-error` line must be an error.
import {
  Client, init, MemcacheError, BadKeyError, TimeoutError, EngineLoadError, type ErrorCode, type Key,
} from "memcache-wasm";

await init();
await init({ wasm: new URL("https://example.com/memcache_wasm_bg.wasm") });
await init({ wasm: new Uint8Array(8) });

const mc = new Client(["127.0.0.1:11211", { address: "10.0.0.2:11211", weight: 2 }, ["10.0.0.3:11211", 1]]);

// Keys as the run time takes them: strings, numbers and BigInts.
const keys: Key[] = ["a", 1, 2n];
await mc.get(42);
await mc.get(2n ** 64n);
await mc.set(7, "seven", 60);
await mc.getMulti(keys, { keyPrefix: "p:" });
await mc.setMulti(new Map<Key, unknown>([[1, "one"], ["two", 2]]));
// noreply writes: the same results, a quiet counter says only whether it applied.
const stored: boolean = await mc.set("q", 1, 0, { noreply: true });
const applied: boolean = await mc.incr("n", 1, { noreply: true });
await mc.delete("q", { noreply: true });
await mc.deleteMulti(["q"], { keyPrefix: "p:", noreply: true });
await mc.touch("q", 5, { noreply: true });
void stored; void applied;
// @ts-expect-error noreply is a boolean
await mc.delete("q", { noreply: "yes" });
const server: string = mc.serverForKey(99);
void server;
// @ts-expect-error a key is not an object
await mc.get({ key: "a" });
// @ts-expect-error nor a boolean
await mc.delete(true);

// Each error class narrows `code` to its literal.
try {
  await mc.get("bad key");
} catch (e) {
  if (e instanceof BadKeyError) {
    const code: "BAD_KEY" = e.code;
    void code;
    // @ts-expect-error a BadKeyError's code is not TIMEOUT
    const wrong: "TIMEOUT" = e.code;
    void wrong;
  } else if (e instanceof TimeoutError) {
    const code: "TIMEOUT" = e.code;
    void code;
  } else if (e instanceof EngineLoadError) {
    const code: "ENGINE_LOAD_FAILED" = e.code;
    void code;
  } else if (e instanceof MemcacheError) {
    const code: ErrorCode = e.code;
    switch (e.code) {
      case "CONNECTION_ERROR": break;
      // @ts-expect-error not a code of this package
      case "NO_SUCH_CODE": break;
    }
    void code;
  }
}

// @ts-expect-error an internal table, not part of the package's API
import { CORE_ERROR_CLASSES } from "memcache-wasm";
void CORE_ERROR_CLASSES;

await mc.close();

// TLS, authentication, unix and IPv6 servers, twemproxy, live server changes.
const fleet = new Client(
  ["unix:/run/memcached.sock", "inet6:[::1]:11211", { address: "10.0.0.4:11211", tls: { ca: "PEM", servername: "cache" }, auth: { username: "u", password: "p" } }],
  { tls: true, auth: { username: "app", password: "s3cret" }, distribution: "ketama" },
);
fleet.setServers(["[::1]:11211"]);
fleet.set_servers(["[::1]:11212"]);
void new Client(["127.0.0.1:22121"], { behindProxy: true });
// @ts-expect-error auth needs a password
void new Client(["127.0.0.1:11211"], { auth: { username: "app" } });
// @ts-expect-error tls settings have tls.connect's names
void new Client(["127.0.0.1:11211"], { tls: { verify: false } });
const authCode: ErrorCode = "AUTH_FAILED";
const relayCode: ErrorCode = "NOT_RELAYED";
void authCode;
void relayCode;
