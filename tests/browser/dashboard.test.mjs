// The dashboard in a real browser (Debian's chromium, headless, through playwright-core)
// against a real memcache-bridge and two real memcached servers started here: the overview,
// setting, reading and deleting keys, a value python-memcached pickled, the key browser, a
// read-only bridge, and a server stopped and restarted while the page watches.
//
// Needs: the bridge's release build (see fleet.mjs) and www/vendor (scripts/build-www.sh).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, copyFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

import {
  ROOT, startMemcached, startBridge, seedWithPython, pythonGet, rawGet, generateTraffic, stop, stopAll, memcachedExchange,
} from "./fleet.mjs";
import * as format from "../../www/format.js";

/** How long the page may take to show a change: a few of its 2 s refreshes, plus the
 *  client's 3 s request timeout for a server that stopped answering. */
const UI_TIMEOUT_MS = 15_000;
/** How long the overview test sends traffic, and how many page refreshes it waits for
 *  (the screenshot is taken then, with the charts showing that traffic). */
const TRAFFIC_MS = 24_000;
const TRAFFIC_REFRESHES = 9;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const ARTIFACTS = path.join(ROOT, "tests", "artifacts");

let servers;
let bridge;
let readOnlyBridge;
let seeded;
let browser;
let userDataDir;
let page;
/** Uncaught exceptions in the page: every failure must reach the person, not only the console. */
const pageErrors = [];
/** Every URL the main page fetched or opened a WebSocket to. */
const requested = [];

before(async () => {
  assert.ok(
    existsSync(path.join(ROOT, "www", "vendor", "memcache-wasm", "js", "browser.js")),
    "www/vendor/memcache-wasm is missing: run scripts/build-wasm.sh and scripts/build-www.sh",
  );
  servers = [await startMemcached(), await startMemcached()];
  const addresses = servers.map((s) => s.address);
  seeded = await seedWithPython(addresses);
  bridge = await startBridge(addresses);
  readOnlyBridge = await startBridge(addresses, ["--read-only"]);
  userDataDir = await mkdtemp(path.join(os.tmpdir(), "dashboard-chromium-"));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    viewport: DESKTOP,
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("request", (request) => requested.push(request.url()));
  page.on("websocket", (socket) => requested.push(socket.url()));
  await page.goto(bridge.url);
});

after(async () => {
  await browser?.close();
  await stopAll();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

/** A server's card; with `status`, only while it shows that status ("up", "down"). */
const card = (p, address, status) =>
  p.locator(`article.server[data-server="${address}"]${status ? `[data-status="${status}"]` : ""}`);

async function lookUp(p, key) {
  await p.fill("#key-input", key);
  await p.click("#lookup-button");
}

test("the overview shows both servers' stats, rates and charts", async () => {
  const version = execFileSync("memcached", ["-V"]).toString().trim().split(" ")[1];
  for (const server of servers) {
    const c = card(page, server.address, "up");
    await c.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await c.locator('[data-stat="version"]').textContent(), version);
    const items = Number((await c.locator('[data-stat="items"]').textContent()).replace(/,/g, ""));
    const seededHere = Object.values(seeded).filter((a) => a === server.address).length;
    assert.ok(items >= seededHere, `${server.address} shows ${items} items, python-memcached stored ${seededHere} there`);
    assert.match(await c.locator('[data-stat="memory"]').textContent(), /of 64 MiB/);
  }
  assert.equal(await page.locator('[data-figure="servers-up"] .figure-value').textContent(), "2 of 2");

  // Real traffic while the page watches, so the rates and charts have something to show.
  const refreshes = async () => Number(await page.evaluate(() => document.body.dataset.refreshes));
  const before = await refreshes();
  const traffic = generateTraffic(servers.map((s) => s.port), { durationMs: TRAFFIC_MS, maxRounds: 400 });
  await page.waitForFunction((n) => Number(document.body.dataset.refreshes) >= n, before + TRAFFIC_REFRESHES, {
    timeout: TRAFFIC_MS + UI_TIMEOUT_MS,
  });
  for (const server of servers) {
    assert.match(await card(page, server.address).locator('[data-stat="gets"]').textContent(), /^[1-9][\d.]*k?\/s$/);
    assert.match(await card(page, server.address).locator('[data-stat="sets"]').textContent(), /^[1-9][\d.]*k?\/s$/);
  }
  assert.match(await page.locator('[data-figure="gets"] .figure-value').textContent(), /^[1-9][\d.]*k?\/s$/);
  for (const chart of ["#chart-gets", "#chart-sets", "#chart-hits", "#chart-evictions", "#chart-bytes-in", "#chart-bytes-out", "#chart-connections"]) {
    assert.ok(await page.locator(`${chart} path[data-series="fleet"]`).count(), `${chart} draws the fleet's line`);
    for (const server of servers) {
      assert.ok(await page.locator(`${chart} path[data-series="${server.address}"]`).count(), `${chart} draws ${server.address}`);
    }
  }

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-desktop.png") });
  // The README's screenshot is refreshed on request only, so a test run leaves the tree clean.
  if (process.env.UPDATE_DOCS_SCREENSHOT === "1") {
    await mkdir(path.join(ROOT, "docs"), { recursive: true });
    await copyFile(path.join(ARTIFACTS, "dashboard-desktop.png"), path.join(ROOT, "docs", "dashboard.png"));
  }
  const phone = await browser.newPage();
  await phone.setViewportSize(PHONE);
  await phone.goto(bridge.url);
  await card(phone, servers[1].address, "up").waitFor({ timeout: UI_TIMEOUT_MS });
  // A few refreshes, so the phone's picture shows rates and lines too.
  await phone.waitForFunction(() => Number(document.body.dataset.refreshes) >= 4, null, { timeout: UI_TIMEOUT_MS });
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `the page fits a phone's width (scrollWidth ${width})`);
  await phone.screenshot({ path: path.join(ARTIFACTS, "dashboard-phone.png"), fullPage: true });
  await phone.close();
  await traffic;
});

test("the charts' history survives a reload of the page", async () => {
  const from = await page.evaluate(() => document.body.dataset.historyFrom);
  assert.match(from, /^\d+$/, "the page has history to keep");
  await page.reload();
  // The first refresh after the reload draws from the same oldest point as before it.
  await page.waitForFunction(() => Number(document.body.dataset.refreshes) >= 1, null, { timeout: UI_TIMEOUT_MS });
  assert.equal(await page.evaluate(() => document.body.dataset.historyFrom), from);
  const oldest = await page.locator("#chart-gets path[data-series=\"fleet\"]").count();
  assert.ok(oldest > 0, "the gets chart draws the fleet's line from the kept history");
});

test("the memory view shows the slab classes memcached reports for the chosen server", async () => {
  const server = servers[0];
  await page.selectOption("#slab-server", server.address);
  const stats = async (args) => Object.fromEntries(
    (await memcachedExchange(server.port, `stats ${args}\r\n`)).toString("latin1").split("\r\n")
      .map((line) => /^STAT (\S+) (.*)$/.exec(line)).filter(Boolean).map((m) => [m[1], m[2]]),
  );
  const slabs = await stats("slabs");
  const items = await stats("items");
  const classes = Object.keys(slabs).map((k) => /^(\d+):chunk_size$/.exec(k)).filter(Boolean).map((m) => Number(m[1]));
  assert.ok(classes.length > 0, "python-memcached's keys are in some slab class");
  for (const cls of classes) {
    const row = page.locator(`#slab-table tr[data-class="${cls}"]`);
    await row.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await row.locator('[data-slab="chunk-size"]').textContent(), format.bytes(Number(slabs[`${cls}:chunk_size`])));
    const count = format.count(Number(items[`items:${cls}:number`] ?? 0));
    await row.locator('[data-slab="items"]', { hasText: count }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await row.locator('[data-slab="evictions"]').textContent(), format.count(Number(items[`items:${cls}:evicted`] ?? 0)));
  }
  assert.equal(await page.locator("#slab-table tbody tr").count(), classes.length);
});

test("a key set in the page reads back, in the page and in python-memcached", async () => {
  const key = "dashboard:greeting";
  const value = "hello from the browser ✓";
  await page.fill("#key-input", key);
  await page.fill("#value-input", value);
  await page.selectOption("#format-input", "text");
  await page.fill("#expiry-input", "300");
  await page.click("#set-button");
  await page.locator('#key-status [data-outcome="ok"]', { hasText: "Stored" }).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await page.locator('[data-item="value"]').textContent(), value);
  assert.match(await page.locator('[data-item="flags"]').textContent(), /^16 \(text/);
  // The remaining TTL, read with the meta protocol (expiry 300 s, a second or two gone).
  assert.match(await page.locator('[data-item="ttl"]').textContent(), / left \((29\d|300) s\)$/);

  // Read it back in the page after clearing the result, then outside the browser.
  await page.fill("#value-input", "");
  await lookUp(page, key);
  await page.locator('[data-item="value"]', { hasText: value }).waitFor({ timeout: UI_TIMEOUT_MS });
  const holder = await page.locator('[data-item="server"]').textContent();
  assert.equal(holder, pythonServerFor(key), "the page names the server python-memcached would use");
  const raw = await rawGet(servers.find((s) => s.address === holder).port, key);
  assert.equal(raw.value.toString("utf8"), value);
  assert.equal(await pythonGet(servers.map((s) => s.address), key), `'${value}'`);

  // JSON is stored serialized and shown pretty-printed.
  await page.fill("#key-input", "dashboard:settings");
  await page.selectOption("#format-input", "json");
  await page.fill("#value-input", '{"theme":"dark","limits":[1,2]}');
  await page.click("#set-button");
  await page.locator('#key-status [data-outcome="ok"]', { hasText: "Stored" }).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await page.locator('[data-item="value"]').textContent(), '{\n  "theme": "dark",\n  "limits": [1, 2]\n}');

  // A counter python-memcached stored goes up by the amount asked.
  await page.fill("#key-input", "counter:visits");
  await page.fill("#delta-input", "5");
  await page.click("#incr-button");
  await page.locator('#key-status [data-outcome="ok"]', { hasText: "is now 46" }).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await pythonGet(servers.map((s) => s.address), "counter:visits"), "46");
});

/** The server python-memcached's hashing picks for `key`, asked of python-memcached itself. */
function pythonServerFor(key) {
  const python = process.env.MEMCACHE_WASM_PYTHON ?? path.join(ROOT, ".venv", "bin", "python");
  const script = "import sys, memcache; s, _ = memcache.Client(sys.argv[2:])._get_server(sys.argv[1].encode()); print('%s:%d' % s.address)";
  return execFileSync(python, ["-c", script, key, ...servers.map((s) => s.address)]).toString().trim();
}

test("a looked-up value is edited in place: JSON stays JSON, a counter stays an integer, bad input is explained", async () => {
  await lookUp(page, "dashboard:settings");
  await page.locator('[data-item="value"]', { hasText: '"theme"' }).waitFor({ timeout: UI_TIMEOUT_MS });
  await page.click("#edit-button");
  // The editor takes the value's place, holding what is stored.
  assert.equal(await page.locator('#key-result [data-item="value"]').count(), 0);
  assert.match(await page.inputValue("#value-editor"), /"theme": "dark"/);
  await page.fill("#value-editor", "{ not json");
  await page.click("#edit-save");
  await page.locator('#key-status [data-outcome="error"]', { hasText: "not valid JSON" }).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await page.inputValue("#value-editor"), "{ not json", "the edit is kept to fix");
  await page.fill("#value-editor", '{"theme": "light", "limits": [3]}');
  await page.click("#edit-save");
  await page.locator('#key-status [data-outcome="ok"]', { hasText: 'Saved "dashboard:settings"' }).waitFor({ timeout: UI_TIMEOUT_MS });
  await page.locator('[data-item="value"]', { hasText: '"light"' }).waitFor({ timeout: UI_TIMEOUT_MS });
  const stored = (await Promise.all(servers.map((s) => rawGet(s.port, "dashboard:settings")))).find(Boolean);
  assert.equal(stored.flags, 1);
  assert.deepEqual(JSON.parse(stored.value.toString()), { theme: "light", limits: [3] });

  await lookUp(page, "counter:visits");
  await page.locator('[data-item="flags"]', { hasText: /^2 / }).waitFor({ timeout: UI_TIMEOUT_MS });
  await page.click("#edit-button");
  await page.fill("#value-editor", "100");
  await page.click("#edit-save");
  await page.locator('[data-item="value"]', { hasText: "100" }).waitFor({ timeout: UI_TIMEOUT_MS });
  const counter = (await Promise.all(servers.map((s) => rawGet(s.port, "counter:visits")))).find(Boolean);
  assert.deepEqual([counter.flags, counter.value.toString()], [2, "100"]);
  // incr works on what was saved: it is still memcached's integer.
  const delta = Number(await page.inputValue("#delta-input"));
  await page.click("#incr-button");
  await page.locator('#key-status [data-outcome="ok"]', { hasText: `is now ${100 + delta}` }).waitFor({ timeout: UI_TIMEOUT_MS });
});

test("top5films, pickled by python-memcached, is shown decoded", async () => {
  await lookUp(page, "top5films");
  const value = page.locator('[data-item="value"]', { hasText: "The Godfather" });
  await value.waitFor({ timeout: UI_TIMEOUT_MS });
  const text = await value.textContent();
  const rows = JSON.parse(text);
  assert.deepEqual(rows[1], ["The Godfather", 1972, 9.2]);
  assert.equal(rows.length, 5);
  assert.match(await page.locator('[data-item="flags"]').textContent(), /^1 \(serialized\)/);
  assert.equal(await page.locator('[data-item="server"]').textContent(), seeded.top5films);
});

test("delete removes the key from memcached", async () => {
  const key = "dashboard:greeting";
  await page.fill("#key-input", key);
  await page.click("#delete-button");
  await page.locator('#key-status [data-outcome="ok"]', { hasText: `Deleted "${key}"` }).waitFor({ timeout: UI_TIMEOUT_MS });
  await page.locator('[data-outcome="miss"]').waitFor({ timeout: UI_TIMEOUT_MS });
  for (const server of servers) assert.equal(await rawGet(server.port, key), undefined);

  // Deleting again says there was nothing to delete, in words.
  await page.click("#delete-button");
  await page.locator('#key-status [data-outcome="ok"]', { hasText: "no item" }).waitFor({ timeout: UI_TIMEOUT_MS });
});

test("a bad key is explained in the page, and the previous key's item leaves the screen", async () => {
  // First a key that is there, so value, server and flags are on screen ...
  await lookUp(page, "dashboard:settings");
  await page.locator('[data-item="value"]', { hasText: '"theme": ' }).waitFor({ timeout: UI_TIMEOUT_MS });
  // ... then a bad key: its error, and nothing of the previous item under the new name.
  await lookUp(page, "two words");
  const problem = page.locator('#key-status [data-outcome="error"]');
  await problem.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.match(await problem.textContent(), /cannot be used.*no spaces or control characters/s);
  assert.equal(await page.locator("#key-result [data-item]").count(), 0, "no value, server, flags or size is left from dashboard:settings");
  assert.equal(await page.locator("#key-result").textContent(), "");
});

test("the key browser lists keys by prefix, a page at a time, and opens one", async () => {
  const server = seeded["user:001"];
  const userKeysThere = Object.entries(seeded).filter(([k, a]) => k.startsWith("user:") && a === server).map(([k]) => k).sort();
  await page.selectOption("#browser-server", server);
  await page.fill("#browser-prefix", "user:");
  await page.click("#browser-load");
  await page.locator("#browser-status", { hasText: `${userKeysThere.length} of` }).waitFor({ timeout: UI_TIMEOUT_MS });
  const listed = await page.locator("#browser-table tbody td.key").allTextContents();
  assert.deepEqual(listed, userKeysThere.slice(0, 25));
  await page.locator("#browser-table tbody button", { hasText: "user:001" }).click();
  await page.locator('[data-item="value"]', { hasText: '"name": "user 1"' }).waitFor({ timeout: UI_TIMEOUT_MS });
});

test("the key browser searches every server by substring, sorts by a column and shows the time left", async () => {
  // An item with a TTL, so the Expires column has a remaining time to show.
  await memcachedExchange(servers[0].port, "set ttl:probe 0 600 2\r\nhi\r\n", "STORED\r\n");
  await page.selectOption("#browser-server", "*");
  await page.fill("#browser-prefix", "user:01");
  await page.click("#browser-load");
  const expected = Object.keys(seeded).filter((k) => k.includes("user:01")).sort();
  await page.locator("#browser-status", { hasText: `${expected.length} of` }).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.match(await page.locator("#browser-status").textContent(), /on all 2 servers/);
  const rows = async () => page.$$eval("#browser-table tbody tr", (trs) => trs.map((tr) => ({
    key: tr.querySelector("td.key").textContent, server: tr.querySelector("td.server").textContent, size: Number(tr.dataset.size),
  })));
  const listed = await rows();
  assert.deepEqual(listed.map((r) => r.key), expected);
  // Both servers' keys, each named with the server python-memcached put it on.
  assert.deepEqual(listed.map((r) => r.server), expected.map((k) => seeded[k]));
  assert.equal(new Set(listed.map((r) => r.server)).size, 2);

  await page.click('#browser-table th button[data-sort="size"]');
  await page.click('#browser-table th button[data-sort="size"]');
  assert.equal(await page.locator('#browser-table th:has(button[data-sort="size"])').getAttribute("aria-sort"), "descending");
  const sizes = (await rows()).map((r) => r.size);
  assert.deepEqual(sizes, [...sizes].sort((a, b) => b - a));

  await page.fill("#browser-prefix", "ttl:probe");
  assert.match(await page.locator("#browser-table tbody td.ttl").textContent(), /^in (9m \d+s|10m 0s)$/);
  assert.equal(await page.locator("#browser-table tbody td.server").textContent(), servers[0].address);
});

test("the key browser deletes by prefix after a confirmation, leaving keys that only contain it; a read-only bridge refuses, and says why", async () => {
  const purge = ["purge:a", "purge:b", "purge:c", "purge:d"];
  // Holds "purge:" but does not start with it: a delete by prefix leaves it.
  const decoy = "keep:purge:e";
  const setAll = () => Promise.all([...purge, decoy].map((key, i) =>
    memcachedExchange(servers[i % 2].port, `set ${key} 0 0 1\r\nx\r\n`, "STORED\r\n")));
  const present = async () => (await Promise.all(purge.map((key, i) => rawGet(servers[i % 2].port, key)))).filter(Boolean).length;

  const listAndConfirm = async (p) => {
    await p.selectOption("#browser-server", "*");
    await p.fill("#browser-prefix", "purge:");
    await p.click("#browser-load");
    await p.locator("#browser-status", { hasText: '5 of' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await p.selectOption("#browser-match", "prefix");
    await p.locator("#browser-status", { hasText: '4 of' }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await p.locator("#browser-delete").textContent(), /Delete the 4 keys that start with "purge:"/);
    await p.click("#browser-delete");
    // Nothing is deleted before the confirmation, which says what will go.
    assert.match(await p.locator("#browser-confirm").textContent(), /Delete 4 keys that start with "purge:" from 2 servers\? memcached cannot undo this/);
    assert.equal(await present(), 4);
    await p.click("#browser-delete-confirm");
  };

  await setAll();
  await listAndConfirm(page);
  await page.locator('#browser-confirm [data-outcome="ok"]', { hasText: "Deleted 4 keys." }).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await present(), 0);
  assert.ok(await rawGet(servers[0].port, decoy), "the key that only contains the prefix is still there");
  assert.equal(await page.locator("#browser-table tbody tr").count(), 0, "the deleted keys leave the list");
  await page.selectOption("#browser-match", "contains");

  // Through the read-only bridge the same steps are refused by the bridge, with its reason.
  await setAll();
  const ro = await browser.newPage();
  try {
    await ro.goto(readOnlyBridge.url);
    await listAndConfirm(ro);
    const refused = ro.locator('#browser-confirm [data-outcome="error"]');
    await refused.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await refused.textContent(), /Deleted 0 keys\. 4 could not be deleted: The bridge is read-only and refused the write: .*delete.*without --read-only/s);
    assert.equal(await present(), 4, "memcached still holds every key");
  } finally {
    await ro.close();
  }
});

test("the key browser says why a server cannot list its keys", async () => {
  const crawlerless = await startMemcached(undefined, ["-o", "no_lru_crawler"]);
  const lone = await startBridge([crawlerless.address]);
  const p = await browser.newPage();
  try {
    await p.goto(lone.url);
    await card(p, crawlerless.address, "up").waitFor({ timeout: UI_TIMEOUT_MS });
    await p.click("#browser-load");
    const problem = p.locator('#browser-status [data-outcome="error"]');
    await problem.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await problem.textContent(), /Cannot list the keys of .*lru crawler disabled.*-o no_lru_crawler/s);
  } finally {
    await p.close();
    await stop(lone.process);
    await stop(crawlerless.process);
  }
});

test("a read-only bridge hides the writes and says why", async () => {
  const ro = await browser.newPage();
  try {
    await ro.goto(readOnlyBridge.url);
    await ro.locator("#read-only-note", { hasText: "read-only" }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await ro.locator("#write-form").isVisible(), false);
    assert.equal(await ro.locator("#set-button").isVisible(), false);
    assert.equal(await ro.locator("#delete-button").isVisible(), false);
    assert.match(await ro.locator("#read-only-note").textContent(), /without --read-only/);
    // Reads still work through it, with no way to edit what they show.
    await lookUp(ro, "top5films");
    await ro.locator('[data-item="value"]', { hasText: "The Godfather" }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await ro.locator("#edit-button").count(), 0);
  } finally {
    await ro.close();
  }
});

test("a bridge that wants a token asks for it, explains a wrong one, and works with the right one", async () => {
  const tokenFile = path.join(userDataDir, "tokens");
  await writeFile(tokenFile, "# dashboard test\nright-token\n");
  const guarded = await startBridge(servers.map((s) => s.address), ["--token-file", tokenFile]);
  const p = await browser.newPage();
  try {
    await p.goto(guarded.url);
    await p.locator("#token-form").waitFor({ timeout: UI_TIMEOUT_MS });
    await p.fill("#token-input", "wrong-token");
    await p.click('#token-form button[type="submit"]');
    const refused = card(p, servers[0].address, "down");
    await refused.waitFor({ timeout: UI_TIMEOUT_MS });
    // The bridge tells the page why (close code 4401), and the page passes it on.
    assert.match(await refused.textContent(), /refused the token.*token was refused.*--token-file/s);

    await p.click("#change-token");
    await p.locator("#token-form").waitFor({ timeout: UI_TIMEOUT_MS });
    await p.fill("#token-input", "right-token");
    await p.click('#token-form button[type="submit"]');
    for (const server of servers) await card(p, server.address, "up").waitFor({ timeout: UI_TIMEOUT_MS });
  } finally {
    await p.close();
    await stop(guarded.process);
  }
});

test("a server stopped during the test shows as down with the reason, then comes back", async () => {
  const victim = servers[1];
  await stop(victim.process);
  const down = card(page, victim.address, "down");
  await down.waitFor({ timeout: UI_TIMEOUT_MS });
  const reason = await down.locator(".reason").textContent();
  assert.match(reason, new RegExp(`Cannot reach memcached at ${victim.address.replace(/\./g, "\\.")}`));
  assert.equal(await page.locator('[data-figure="servers-up"] .figure-value').textContent(), "1 of 2");
  assert.equal(await card(page, servers[0].address).getAttribute("data-status"), "up");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-server-down.png") });

  servers[1] = await startMemcached(victim.port);
  await card(page, victim.address, "up").waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await page.locator('[data-figure="servers-up"] .figure-value').textContent(), "2 of 2");
});

test("the page loads everything from the bridge itself (no CDN, works offline on a LAN)", () => {
  const origin = new URL(bridge.url);
  const mine = requested.filter((url) => {
    const u = new URL(url);
    return u.host === origin.host && ["http:", "ws:"].includes(u.protocol);
  });
  assert.deepEqual(requested.filter((url) => !mine.includes(url)), []);
  assert.ok(requested.some((url) => url.endsWith("/vendor/memcache-wasm/pkg/memcache_wasm_bytes.js")), "the engine came from www/vendor");
  assert.ok(!requested.some((url) => url.endsWith(".wasm")), "one copy of the engine is downloaded, not two");
  assert.ok(requested.some((url) => new URL(url).pathname.startsWith("/memcached/")), "WebSockets went to the bridge's relay");
});

test("no exception escaped the page's handlers", () => {
  assert.deepEqual(pageErrors, []);
});
