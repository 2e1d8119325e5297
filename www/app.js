// The dashboard's entry: asks the bridge that served the page for its servers and policy,
// loads memcache-wasm from the bridge itself (www/vendor, copied there by
// scripts/build-www.sh), and wires the overview, charts, key panel and key browser to it.

import { el, replaceChildren } from "./dom.js";
import { explain } from "./error-advice.js";
import { Overview } from "./overview.js";
import { RateHistory } from "./stats-delta.js";
import { drawTrafficCharts, FLEET } from "./traffic-charts.js";
import { KeyPanel } from "./key-panel.js";
import { KeyBrowser } from "./key-browser.js";
import { SlabView } from "./slabs.js";

/** How often the overview asks every server for `stats`: often enough that rates follow
 *  load changes, rare enough that the dashboard's own gets do not show in them. */
const REFRESH_MS = 2000;
/** How much history the charts show. */
const HISTORY_MS = 10 * 60 * 1000;
/** A server that does not answer `stats` within this is shown as down. */
const REQUEST_TIMEOUT_MS = 3000;
/** Listing keys walks the server's whole cache; a large one takes seconds, not milliseconds. */
const METADUMP_TIMEOUT_MS = 30_000;
/** The package's browser build, served by the bridge from www/vendor (never a CDN). */
const PACKAGE_ENTRY = "./vendor/memcache-wasm/js/browser.js";
/** Where the chart history is kept across a reload (per bridge and page path). */
const HISTORY_STORAGE = `memcache-dashboard-history:${location.host}${location.pathname}`;
/** Where the token a person typed is kept: for this tab only, gone when it closes. */
const TOKEN_STORAGE = "memcache-bridge-token";

const $ = (id) => document.getElementById(id);

function notice(kind, summary, advice) {
  const node = el("p", { class: `notice ${kind}` }, summary, advice && el("span", { class: "advice" }, advice));
  $("notices").appendChild(node);
  return node;
}

async function loadBridgeConfig() {
  let response;
  try {
    response = await fetch("servers", { cache: "no-store" });
  } catch (error) {
    throw new Error(`Cannot reach the bridge for its server list (/servers): ${error.message}. Check that memcache-bridge is running and reload.`);
  }
  if (!response.ok) {
    throw new Error(`The bridge answered /servers with HTTP ${response.status}. Check that this page is served by memcache-bridge (--www) and reload.`);
  }
  const config = await response.json();
  if (!Array.isArray(config.servers) || config.servers.length === 0) {
    throw new Error("The bridge lists no memcached servers. Start it with at least one --upstream HOST:PORT.");
  }
  return config;
}

async function loadPackage() {
  let pkg;
  try {
    pkg = await import(PACKAGE_ENTRY);
  } catch (error) {
    throw new Error(`Cannot load memcache-wasm from ${new URL(PACKAGE_ENTRY, location.href).pathname} (${error.message}). Run scripts/build-www.sh to copy the package into www/vendor, then reload.`);
  }
  // The engine the package embeds (its only copy the page downloads), loaded before the
  // panels start so the first click never waits for it and a failure is said at once.
  try {
    await pkg.init();
  } catch (error) {
    throw new Error(`Cannot load the memcache-wasm engine (${error.message}). Run scripts/build-www.sh, then reload.`);
  }
  return pkg;
}

/** Resolves to the token to send: none when the bridge asks none, else the one the person gives. */
function askToken(config) {
  if (!config.tokenRequired) return Promise.resolve(undefined);
  const saved = sessionStorage.getItem(TOKEN_STORAGE);
  if (saved) return Promise.resolve(saved);
  const form = $("token-form");
  form.hidden = false;
  $("token-input").focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", function submitted(event) {
      event.preventDefault();
      const token = $("token-input").value;
      sessionStorage.setItem(TOKEN_STORAGE, token);
      form.hidden = true;
      form.removeEventListener("submit", submitted);
      resolve(token);
    });
  });
}

function showBridge(config) {
  replaceChildren(
    $("bridge-status"),
    `Bridge ${location.host} · ${config.servers.length} server${config.servers.length === 1 ? "" : "s"}`,
    config.readOnly && el("span", { class: "tag", "data-read-only": "" }, "read-only"),
    config.tokenRequired &&
      el(
        "button",
        {
          type: "button",
          id: "change-token",
          class: "tag-button",
          title: "Forget the token of this tab and ask for it again",
          onclick: () => {
            sessionStorage.removeItem(TOKEN_STORAGE);
            location.reload();
          },
        },
        "Change token",
      ),
  );
}

/** A read-only bridge refuses every write, so the page does not offer them and says why. */
function hideWrites() {
  $("write-form").hidden = true;
  const note = $("read-only-note");
  note.hidden = false;
  replaceChildren(
    note,
    "This bridge is read-only: it passes lookups and stats but refuses set, delete, touch, incr and decr, so those controls are hidden. ",
    el("span", { class: "advice" }, "To change keys, use a bridge started without --read-only."),
  );
}

/** `stats` of one server through its own client, as an object of memcached's names. */
async function statsOf(client, address) {
  const stats = (await client.stats())[address];
  if (stats === undefined) throw new Error(`the stats answer has no entry for ${address}`);
  return stats;
}

/**
 * One server's metadump lines, on a connection of its own: requests behind a metadump on
 * the same connection wait until the dump ends, and the key panel should not wait for a
 * long listing.
 */
async function listKeys(Client, server, options) {
  const client = new Client([server], { ...options, timeout: METADUMP_TIMEOUT_MS, deadRetry: 0 });
  try {
    return await client.metadump({ server });
  } finally {
    await client.close();
  }
}

/**
 * Deletes `keys` on `server`, each with its own `delete` (they leave in one write), through a
 * client of their own, so a bridge's refusal (read-only) never touches the overview's clients.
 * Resolves to `{deleted, missing, failed: [{key, error}]}`; never rejects.
 */
async function deleteKeys(Client, server, keys, options) {
  const client = new Client([server], { ...options, deadRetry: 0 });
  try {
    const outcomes = await Promise.allSettled(keys.map((key) => client.delete(key)));
    const result = { deleted: 0, missing: 0, failed: [] };
    outcomes.forEach((o, i) => {
      if (o.status === "rejected") result.failed.push({ key: keys[i], error: o.reason });
      else if (o.value) result.deleted += 1;
      else result.missing += 1;
    });
    return result;
  } finally {
    await client.close();
  }
}

async function main() {
  const config = await loadBridgeConfig();
  showBridge(config);
  if (config.readOnly) hideWrites();
  const [{ Client }, token] = await Promise.all([loadPackage(), askToken(config)]);
  // The bridge's WebSocket path sits beside the page, so the dashboard also works behind a
  // reverse proxy that serves the bridge under a path prefix.
  const here = location.pathname.replace(/[^/]*$/, "");
  const bridge = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${here}`;
  const options = { bridge, timeout: REQUEST_TIMEOUT_MS };
  if (token !== undefined) options.token = token;

  // The key panel goes through one client over the whole fleet, so keys land where every
  // python-memcached and memcache-wasm program puts them. The overview gives each server a
  // client of its own, so one server's failure is reported as that server's, with its reason,
  // and it is tried again at every refresh (deadRetry 0) to notice when it is back.
  const fleet = new Client(config.servers, options);
  const single = new Map(config.servers.map((address) => [address, new Client([address], { ...options, deadRetry: 0 })]));

  const advice = { origin: location.origin, tokenRequired: config.tokenRequired };
  const overview = new Overview({
    servers: config.servers,
    statsOf: (address) => statsOf(single.get(address), address),
    cards: $("server-cards"),
    fleetSummary: $("fleet-summary"),
    context: advice,
  });
  const history = restoreHistory([...config.servers, FLEET]);
  const charts = {
    gets: $("chart-gets"), sets: $("chart-sets"), hits: $("chart-hits"), evictions: $("chart-evictions"),
    bytesIn: $("chart-bytes-in"), bytesOut: $("chart-bytes-out"), connections: $("chart-connections"),
  };
  const slabView = new SlabView({
    servers: config.servers,
    statsOf: async (address, args) => (await single.get(address).stats(args))[address],
    context: advice,
    elements: { server: $("slab-server"), status: $("slab-status"), table: $("slab-table"), tbody: $("slab-table").querySelector("tbody") },
  });

  const keyPanel = new KeyPanel({
    client: fleet,
    readOnly: config.readOnly,
    context: advice,
    elements: {
      panel: $("keys"),
      keyInput: $("key-input"),
      lookupForm: $("lookup-form"),
      result: $("key-result"),
      status: $("key-status"),
      writeForm: $("write-form"),
      valueInput: $("value-input"),
      formatInput: $("format-input"),
      expiryInput: $("expiry-input"),
      deltaInput: $("delta-input"),
      deleteButton: $("delete-button"),
      touchButton: $("touch-button"),
      incrButton: $("incr-button"),
      decrButton: $("decr-button"),
    },
  });
  new KeyBrowser({
    servers: config.servers,
    metadump: (server) => listKeys(Client, server, options),
    serverTimeNow: (server) => overview.watch(server).serverTimeNow(Date.now()),
    open: (key) => keyPanel.show(key),
    deleteKeys: (server, keys) => deleteKeys(Client, server, keys, options),
    context: advice,
    elements: {
      form: $("browser-form"),
      deleteMatching: $("browser-delete"),
      confirm: $("browser-confirm"),
      server: $("browser-server"),
      prefix: $("browser-prefix"),
      match: $("browser-match"),
      load: $("browser-load"),
      status: $("browser-status"),
      table: $("browser-table"),
      tbody: $("browser-table").querySelector("tbody"),
      pager: $("browser-pager"),
      pageLabel: $("browser-page"),
      prev: $("browser-prev"),
      next: $("browser-next"),
    },
  });

  // Each refresh starts when the previous one has finished, so a slow server never piles up
  // requests behind itself.
  let drawProblem = null;
  const refresh = async () => {
    try {
      await overview.refresh();
      const now = Date.now();
      for (const watch of overview.watches) history.record(watch.address, now, watch.rates);
      history.record(FLEET, now, overview.fleet.serversCounted > 0 ? overview.fleet : null);
      drawTrafficCharts(charts, history, config.servers, now);
      saveHistory(history);
      document.body.dataset.historyFrom = String(history.oldest());
      await slabView.refresh();
      replaceChildren($("refresh-note"), `updated ${new Date(now).toLocaleTimeString()}, every ${REFRESH_MS / 1000} s`);
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
      drawProblem?.remove();
      drawProblem = null;
    } catch (error) {
      drawProblem ??= notice("error", `The overview could not be drawn: ${error.message}.`, "This is a dashboard bug; reloading the page may help.");
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  };
  await refresh();
}

/** The charts' history as an earlier page of this tab's browser left it, with a gap for
 *  the time the page was away; an empty one when there is none or it cannot be read. */
function restoreHistory(names) {
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(HISTORY_STORAGE) ?? "null");
  } catch {
    saved = null;
  }
  const now = Date.now();
  const history = RateHistory.restore(saved, HISTORY_MS, names, now);
  for (const name of history.names()) history.record(name, now, null);
  return history;
}

function saveHistory(history) {
  try {
    localStorage.setItem(HISTORY_STORAGE, JSON.stringify(history));
  } catch {
    // Storage full or disabled: the charts still work, they start afresh on a reload.
  }
}

main().catch((error) => {
  const problem = error.code ? explain(error, { origin: location.origin }) : { summary: error.message, advice: "" };
  notice("error", problem.summary, problem.advice);
  replaceChildren($("bridge-status"), "Not connected");
});
