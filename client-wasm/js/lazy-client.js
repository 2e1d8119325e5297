// The Client the package exports. Its options are checked at once, in plain JavaScript; the
// engine-backed client of client.js is made once the wasm engine has loaded (engine.js).
// Until then every call waits for the load, in order, and then runs as if made at that
// moment (calls of one tick still leave as one batch); a failed load rejects them with
// ENGINE_LOAD_FAILED, and waiting longer than `timeout` with TIMEOUT.
import { Client as EngineClient, checkListener } from "./client.js";
import { engineLoaded, hostHasTcp, loadEngine, loadEngineNow } from "./engine.js";
import { ClosedError, EngineNotReadyError, TimeoutError } from "./errors.js";
import { normalizeServers, readOptions, serverSettings } from "./options.js";

/** The methods that answer at once (no Promise): before the load they cannot wait, so Node
 *  loads the engine there and then, and a browser throws ENGINE_NOT_READY. */
const SYNC_METHODS = new Set(["serverForKey"]);

export class Client {
  /**
   * @param {Array<string | {address: string, weight?: number} | [string, number]>} servers
   * @param {object} [options] see README.md (bridge, token, timeout, deadRetry, failover, ...)
   */
  constructor(servers, options = {}) {
    // Throws BAD_ARGUMENT now for what plain JavaScript can check; what only the engine can
    // check rejects the first calls instead when the engine is not loaded yet.
    const list = normalizeServers(servers);
    const settings = readOptions(options, { canTcp: hostHasTcp() });
    serverSettings(list, settings);
    this._client = null;
    this._closed = false;
    // Listeners added and calls made before the load, handed to the engine-backed client
    // when it exists.
    this._listeners = [];
    this._waiting = [];
    if (engineLoaded()) {
      this._attach(new EngineClient(servers, options));
      return;
    }
    this._args = [servers, options];
    this._list = list;
    this._timeout = settings.timeoutMs;
    this._ready = null;
  }

  /** The servers as configured: up, with no socket yet, before the load. */
  get servers() {
    if (this._client !== null) return this._client.servers;
    return this._list.map((s) => ({ address: s.address, weight: s.weight, up: true, dead: false, status: "closed" }));
  }

  /** Listens to "serverDown" or "serverUp" (see client.js); works before the load too. */
  on(event, listener) {
    checkListener(event, listener);
    if (this._client !== null) this._client.on(event, listener);
    else this._listeners.push([event, listener]);
    return this;
  }

  off(event, listener) {
    if (this._client !== null) this._client.off(event, listener);
    else this._listeners = this._listeners.filter(([e, l]) => e !== event || l !== listener);
    return this;
  }

  /** The engine-backed client is there: it gets the listeners added so far, then the calls
   *  that waited, in the order they were made (or CLOSED if close() came meanwhile). */
  _attach(client) {
    this._client = client;
    this._args = null;
    for (const [event, listener] of this._listeners) client.on(event, listener);
    this._listeners = [];
    if (this._closed) client.close();
    for (const call of this._waiting.splice(0)) {
      let result;
      try {
        result = Promise.resolve(client[call.name](...call.args));
      } catch (e) {
        result = Promise.reject(e);
      }
      call.settle(result);
    }
    return client;
  }

  /** A new server list (see client.js); before the load it replaces the list the engine-backed
   *  client will be made with, so the calls waiting for the load go by it. */
  setServers(servers) {
    if (this._client !== null) return this._client.setServers(servers);
    if (this._closed) throw new ClosedError("the client is closed");
    const list = normalizeServers(servers);
    serverSettings(list, readOptions(this._args[1], { canTcp: hostHasTcp() }));
    this._args = [servers, this._args[1]];
    this._list = list;
  }

  /** Closes every connection; pending and later calls reject with CLOSED. */
  close() {
    this._closed = true;
    if (this._client !== null) return this._client.close();
    for (const call of this._waiting.splice(0)) call.settle(Promise.reject(new ClosedError("the client was closed")));
    return Promise.resolve();
  }

  /** The engine-backed client, once the engine has loaded (one load per client waits). */
  _whenReady() {
    if (this._ready === null) {
      this._ready = loadEngine().then(
        () => {
          if (this._client === null) this._attach(new EngineClient(...this._args));
        },
        (e) => {
          // A failed load fails the calls waiting for it; the next call tries again.
          this._ready = null;
          for (const call of this._waiting.splice(0)) call.settle(Promise.reject(e));
        },
      );
    }
    return this._ready;
  }

  /**
   * One call made before the load: it waits in order with the others, bounded by the
   * client's timeout, and runs as soon as the engine-backed client exists (_attach issues
   * every waiting call at once, so a later call cannot overtake it).
   */
  _waitThen(name, args) {
    if (this._closed) return Promise.reject(new ClosedError("the client is closed"));
    return new Promise((resolve, reject) => {
      const call = {
        name,
        args,
        settle: (result) => { clearTimeout(call.timer); result.then(resolve, reject); },
        timer: setTimeout(() => {
          this._waiting = this._waiting.filter((c) => c !== call);
          reject(new TimeoutError(`the memcache-wasm engine did not load within ${this._timeout} ms`));
        }, this._timeout),
      };
      if (typeof call.timer === "object" && typeof call.timer.unref === "function") call.timer.unref();
      this._waiting.push(call);
      this._whenReady();
    });
  }
}

Client.prototype.disconnect_all = Client.prototype.close;
Client.prototype.set_servers = Client.prototype.setServers;

// Every public method of the engine-backed client (python-memcached's aliases included),
// forwarded as it is once the engine is there, so both classes keep one list of methods.
for (const name of Object.getOwnPropertyNames(EngineClient.prototype)) {
  if (name === "constructor" || name.startsWith("_") || Object.hasOwn(Client.prototype, name)) continue;
  const descriptor = Object.getOwnPropertyDescriptor(EngineClient.prototype, name);
  if (typeof descriptor.value !== "function") continue;
  const target = descriptor.value;
  const method = SYNC_METHODS.has(name)
    ? function (...args) {
      if (this._client !== null) return this._client[name](...args);
      if (this._closed) throw new ClosedError("the client is closed");
      if (loadEngineNow()) return this._attach(new EngineClient(...this._args))[name](...args);
      throw new EngineNotReadyError(`${name}() needs the engine: await init() first (or any call)`);
    }
    // Five parameters cover every method (cas has the most); a rest parameter would
    // allocate an array on each call of the hot path. The method itself is called, not
    // looked up by name: every forwarder shares this code, and a lookup by a name that
    // differs from one forwarder to the next is a megamorphic property load on each call.
    : function (a, b, c, d, e) {
      const client = this._client;
      return client !== null ? target.call(client, a, b, c, d, e) : this._waitThen(name, [a, b, c, d, e]);
    };
  Object.defineProperty(method, "name", { value: name });
  Object.defineProperty(Client.prototype, name, { value: method, writable: true, configurable: true });
}
