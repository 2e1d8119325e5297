// The browser entry point in a real browser (Debian's chromium, headless, via playwright-core):
// a page loads js/browser.js as a plain ES module, fetches the .wasm beside it, and runs
// the API through a real memcache-bridge, the token riding as a subprotocol entry.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startMemcacheds } from "./support/servers.mjs";
import { Bridge } from "./support/bridge.mjs";
import { rawGet } from "./support/raw.mjs";

const PACKAGE = fileURLToPath(new URL("../../client-wasm/", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";

let servers, bridge, browser, page, profile;
const pageErrors = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), "chromium is missing: run scripts/setup.sh");
  servers = await startMemcacheds(3);
  // The bridge serves the package folder, so the page's origin is the bridge's own.
  bridge = await Bridge.start({ upstreams: servers.map((s) => s.address), tokens: ["browser-token"], www: PACKAGE });
  profile = mkdtempSync(join(tmpdir(), "memcache-wasm-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    // refused.test is the bridge under a DNS name it does not trust as its own origin.
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--host-resolver-rules=MAP refused.test 127.0.0.1"],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`http://127.0.0.1:${bridge.port}/README.md`);
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
  await servers?.stopAll();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test("a page imports js/browser.js and runs the API through the bridge on three servers", async () => {
  const addresses = servers.map((s) => s.address);
  const result = await page.evaluate(async ({ addresses, bridge }) => {
    const { Client } = await import("/js/browser.js");
    const mc = new Client(addresses, { bridge, token: "browser-token" });
    const rows = [{ title: "Alien", year: 1979 }, { title: "Parasite", year: 2019 }];
    const out = {};
    out.set = await mc.set("top5films", rows, 60);
    out.films = await mc.get("top5films");
    await mc.setMulti({ a: "Ada", b: new Uint8Array([1, 2, 3]), n: 41 }, { keyPrefix: "users:" });
    const users = await mc.getMulti(["a", "b", "n", "missing"], { keyPrefix: "users:" });
    out.users = { a: users.a, b: Array.from(users.b), n: users.n, keys: Object.keys(users).sort() };
    out.incr = await mc.incr("users:n");
    out.big = String(await mc.incr("users:n", 2n ** 60n));
    out.stats = Object.keys(await mc.stats()).sort();
    try { await mc.set("bad key", 1); } catch (e) { out.badKey = e.code; }
    try { new Client(addresses); } catch (e) { out.noBridge = e.code; }
    const denied = new Client(addresses, { bridge, token: "wrong" });
    try { await denied.get("k"); } catch (e) { out.denied = e.code; out.deniedMessage = e.message; out.deniedCloseCode = e.closeCode; }
    mc.close();
    return out;
  }, { addresses, bridge: bridge.url });
  assert.deepEqual(pageErrors, []);
  assert.equal(result.set, true);
  assert.deepEqual(result.films, [{ title: "Alien", year: 1979 }, { title: "Parasite", year: 2019 }]);
  assert.deepEqual(result.users, { a: "Ada", b: [1, 2, 3], n: 41, keys: ["a", "b", "n"] });
  assert.equal(result.incr, 42);
  assert.equal(result.big, String(2n ** 60n + 42n));
  assert.deepEqual(result.stats, [...addresses].sort());
  assert.equal(result.badKey, "BAD_KEY");
  assert.equal(result.noBridge, "BAD_ARGUMENT");
  // Browsers hide why a handshake failed, so the bridge accepts a page's handshake and
  // closes it at once with 4401 and a reason: the page learns that its token was refused.
  assert.equal(result.denied, "BRIDGE_REFUSED");
  assert.equal(result.deniedCloseCode, 4401);
  assert.match(result.deniedMessage, /token was refused/);
  // What the page stored is what python-memcached would have stored.
  const stored = await Promise.all(addresses.map((a) => rawGet(a, "users:a")));
  assert.deepEqual(stored.filter(Boolean).map((s) => [s.flags, s.data.toString()]), [[16, "Ada"]]);
});

test("a page whose Origin the bridge refuses is told so (close code 4403), not a bare 1006", async () => {
  const other = await browser.newPage();
  try {
    const errors = [];
    other.on("pageerror", (e) => errors.push(String(e)));
    // Same bridge, reached by a name: its Origin is neither listed nor an IP or localhost.
    const origin = `http://refused.test:${bridge.port}`;
    await other.goto(`${origin}/README.md`);
    const result = await other.evaluate(async ({ addresses, bridge }) => {
      const { Client } = await import("/js/browser.js");
      const mc = new Client(addresses, { bridge, token: "browser-token", timeout: 3000 });
      try {
        await mc.get("k");
        return { resolved: true };
      } catch (e) {
        return { code: e.code, closeCode: e.closeCode, message: e.message };
      } finally {
        mc.close();
      }
    }, { addresses: servers.map((s) => s.address), bridge: origin.replace("http:", "ws:") });
    assert.deepEqual(errors, []);
    assert.equal(result.code, "BRIDGE_REFUSED", JSON.stringify(result));
    assert.equal(result.closeCode, 4403);
    assert.match(result.message, /Origin was refused/);
  } finally {
    await other.close();
  }
});
