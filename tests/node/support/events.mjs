// The client's server events as the tests wait on them: the next `serverDown` or `serverUp`
// (optionally for one server) with a deadline, and a log of every event with its time.

/** How long a test waits for an event it expects, unless it says otherwise. */
const EVENT_TIMEOUT_MS = 10000;

/**
 * Resolves with the next `name` event's payload plus `at` (Date.now() when it came), or
 * rejects after `within` ms. The rejection is pre-handled, so a test that fails before it
 * awaits the event does not leave an unhandled rejection behind.
 */
export function nextEvent(client, name, { server, within = EVENT_TIMEOUT_MS } = {}) {
  let listener;
  let timer;
  const promise = new Promise((resolve, reject) => {
    listener = (payload) => {
      if (server !== undefined && payload?.server !== server) return;
      clearTimeout(timer);
      client.off(name, listener);
      resolve({ ...payload, at: Date.now() });
    };
    timer = setTimeout(() => {
      client.off(name, listener);
      reject(new Error(`no ${name} event${server ? ` for ${server}` : ""} within ${within} ms`));
    }, within);
    timer.unref();
    client.on(name, listener);
  });
  promise.catch(() => {});
  return promise;
}

/** Every serverDown / serverUp the client emits from now on: [{ name, at, server, error }]. */
export function recordEvents(client) {
  const log = [];
  for (const name of ["serverDown", "serverUp"]) {
    client.on(name, (payload) => log.push({ name, at: Date.now(), ...payload }));
  }
  return log;
}
