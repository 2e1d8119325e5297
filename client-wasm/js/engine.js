// Loads the wasm engine once, when the first call needs it or init() asks: from what
// init({ wasm }) was given (a URL, bytes, a Response or a WebAssembly.Module), else from the
// bytes embedded in the package, so that no bundler has to handle a .wasm file and no module
// has a top-level await. A failed load rejects with ENGINE_LOAD_FAILED, and the next try
// starts again.
import initGlue, { Engine, initSync } from "../pkg/memcache_wasm.js";
import { wasmBase64 } from "../pkg/memcache_wasm_bytes.js";
import { setPlatform } from "./client.js";
import { BadArgumentError, EngineLoadError } from "./errors.js";

/** Set by the entry point: { tcp, openTransport(address, sink, options), readFile?(url),
 * syncCompile? (the platform compiles a module of any size synchronously: Node) }. */
let host = null;
/** What init({ wasm }) was given (undefined: the embedded bytes). */
let source;
/** The load under way or done (a Promise), null before the first try or after a failure. */
let loading = null;
let loaded = false;

/** Called once by node.js or browser.js before anything else. */
export function setHost(h) { host = h; }

/** Whether this platform opens TCP sockets (Node) or needs a bridge (browsers). */
export function hostHasTcp() { return host !== null && host.tcp; }

/** True once the engine is ready: clients made from then on need no waiting. */
export function engineLoaded() { return loaded; }

/**
 * Loads the engine now (a Promise of undefined). `wasm`: a URL (string or URL; a file path
 * or file: URL in Node), bytes (ArrayBuffer, typed array), a Response or a Promise of one,
 * or a WebAssembly.Module. Without it, the bytes embedded in the package. A second init()
 * after a load has started may not name another source.
 */
export function init(options = {}) {
  const wasm = options?.wasm;
  if (wasm !== undefined) {
    if (loading !== null && wasm !== source) {
      return Promise.reject(new BadArgumentError("init({ wasm }) came after the engine began loading from another source: call it before the first request"));
    }
    source = wasm;
  }
  return loadEngine();
}

/** The engine's load, started on the first call. */
export function loadEngine() {
  if (loading === null) {
    loading = load(source).then(
      () => { loaded = true; },
      (e) => {
        loading = null;
        if (e instanceof EngineLoadError || e instanceof BadArgumentError) throw e;
        const reason = e?.message ?? String(e);
        // A page's CSP blocks wasm compilation unless script-src has 'wasm-unsafe-eval'.
        const hint = /unsafe-eval|Content Security Policy/i.test(reason)
          ? " (the page's Content-Security-Policy needs script-src 'wasm-unsafe-eval')" : "";
        throw new EngineLoadError(`the memcache-wasm engine did not load: ${reason}${hint}`, { cause: e });
      },
    );
  }
  return loading;
}

/**
 * Loads the engine at once, for a synchronous method called before any load began (Node
 * only: browsers limit synchronous compiles on the main thread). True when the engine is
 * loaded now; false when it cannot be here (a browser, a load already under way, whose
 * instance must stay the only one, or a source that needs fetching), or failed, in which case
 * the next asynchronous call reports why.
 */
export function loadEngineNow() {
  if (loaded) return true;
  if (loading !== null || host === null || !host.syncCompile) return false;
  const bytes = source === undefined ? decodeBase64(wasmBase64) : source;
  const compiled = typeof WebAssembly.Module === "function" && bytes instanceof WebAssembly.Module;
  if (!compiled && !(bytes instanceof ArrayBuffer || ArrayBuffer.isView(bytes))) return false;
  let exports;
  try {
    exports = initSync({ module: bytes });
  } catch {
    return false;
  }
  setPlatform({ Engine, memory: exports.memory, tcp: host.tcp, openTransport: host.openTransport });
  loaded = true;
  loading = Promise.resolve();
  return true;
}

async function load(wasm) {
  if (host === null) throw new EngineLoadError("memcache-wasm is not initialized: import it from the package entry point");
  const exports = await initGlue({ module_or_path: await resolveSource(wasm) });
  setPlatform({ Engine, memory: exports.memory, tcp: host.tcp, openTransport: host.openTransport });
}

/** What the glue can instantiate: bytes, a Module, or a Response (fetched here). */
async function resolveSource(wasm) {
  if (wasm === undefined) return decodeBase64(wasmBase64);
  if (typeof WebAssembly.Module === "function" && wasm instanceof WebAssembly.Module) return wasm;
  if (wasm instanceof ArrayBuffer || ArrayBuffer.isView(wasm)) return wasm;
  if (typeof Response === "function" && wasm instanceof Response) return wasm;
  if (wasm && typeof wasm.then === "function") return resolveSource(await wasm);
  if (typeof wasm === "string" || wasm instanceof URL) {
    // Node's fetch reads no files: a path or file: URL is read from disk there.
    if (host.readFile && (wasm instanceof URL ? wasm.protocol === "file:" : !/^[a-z][a-z0-9+.-]*:/i.test(wasm) || wasm.startsWith("file:"))) {
      return host.readFile(wasm);
    }
    return fetch(wasm);
  }
  throw new BadArgumentError("init({ wasm }) takes a URL, bytes (ArrayBuffer or typed array), a Response or a WebAssembly.Module");
}

function decodeBase64(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
