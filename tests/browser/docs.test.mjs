// The documentation runs: every code block fenced as ```js runnable or ```html runnable in
// README.md and client-wasm/README.md is executed against a real memcached, with the packed
// package installed in an empty folder: js blocks by Node, html blocks as a page in chromium
// talking to a real memcache-bridge. The address 127.0.0.1:11211 and the bridge URL
// ws://127.0.0.1:11280 in a block are replaced by the ones started here (pages come from a
// plain static server, the bridge relays); an
// `<!-- output: TEXT -->` line after a block is what it must print (Node) or show (page).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile as execFileCb, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startMemcacheds } from "../node/support/servers.mjs";
import { Bridge } from "../node/support/bridge.mjs";
import { startPageServer } from "./page-server.mjs";

const execFile = promisify(execFileCb);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOCS = ["README.md", "client-wasm/README.md"];
const CHROMIUM = "/usr/bin/chromium";
const DOC_SERVER = "127.0.0.1:11211";
const DOC_BRIDGE = "ws://127.0.0.1:11280";
const RUN_TIMEOUT_MS = 20_000;

/** The runnable blocks of a Markdown file: { doc, line, lang, code, output }. */
function runnableBlocks(doc, text) {
  const blocks = [];
  const re = /^```(js|html) runnable\n([\s\S]*?)^```\n(?:<!-- output: (.*?) -->\n)?/gm;
  for (let m; (m = re.exec(text)) !== null;) {
    blocks.push({ doc, line: text.slice(0, m.index).split("\n").length, lang: m[1], code: m[2], output: m[3] });
  }
  return blocks;
}

const blocks = DOCS.flatMap((doc) => runnableBlocks(doc, readFileSync(join(ROOT, doc), "utf8")));
let work, server, bridge, browser, profile, pages;

before(async () => {
  assert.ok(existsSync(CHROMIUM), "chromium is missing: run scripts/setup.sh");
  work = mkdtempSync(join(tmpdir(), "memcache-wasm-docs-"));
  const [{ filename }] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: join(ROOT, "client-wasm"), encoding: "utf8" }));
  writeFileSync(join(work, "package.json"), JSON.stringify({ name: "docs", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", join(work, filename)], { cwd: work });
  [server] = await startMemcacheds(1);
  // html blocks (an import map is an inline script) are served by a plain server: the
  // bridge's --www answers carry a CSP that refuses inline scripts.
  pages = await startPageServer(work);
  bridge = await Bridge.start({ upstreams: [server.address], allowOrigins: [pages.origin] });
  profile = mkdtempSync(join(tmpdir(), "memcache-wasm-docs-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
  await server?.stop();
  await pages?.close();
  for (const dir of [profile, work]) if (dir) rmSync(dir, { recursive: true, force: true });
});

test("each README has runnable blocks, and each html block says what it shows", () => {
  for (const doc of DOCS) assert.ok(blocks.some((b) => b.doc === doc), `${doc} has no runnable block`);
  for (const b of blocks.filter((b) => b.lang === "html")) assert.ok(b.output, `${b.doc}:${b.line} needs an <!-- output: --> line`);
});

for (const block of blocks) {
  test(`${block.doc}:${block.line} (${block.lang}) runs as written`, async () => {
    const code = block.code.replaceAll(DOC_SERVER, server.address).replaceAll(DOC_BRIDGE, bridge.url);
    const name = `${block.doc.replace(/\W/g, "_")}_${block.line}`;
    if (block.lang === "js") {
      writeFileSync(join(work, `${name}.mjs`), code);
      let result;
      try {
        result = await execFile(process.execPath, [`${name}.mjs`], { cwd: work, timeout: RUN_TIMEOUT_MS });
      } catch (e) {
        assert.fail(`the block failed:\n${e.stderr || e.message}`);
      }
      assert.equal(result.stderr, "");
      if (block.output !== undefined) assert.equal(result.stdout.trim(), block.output);
      return;
    }
    mkdirSync(join(work, "pages"), { recursive: true });
    writeFileSync(join(work, "pages", `${name}.html`), `<!doctype html>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n<body>\n${code}</body>\n`);
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    try {
      await page.goto(`${pages.origin}/pages/${name}.html`);
      await page.waitForFunction((text) => document.body.textContent.includes(text), block.output, { timeout: RUN_TIMEOUT_MS })
        .catch(async (e) => { throw new Error(`the page shows ${JSON.stringify(await page.textContent("body"))}, errors ${JSON.stringify(errors)}: ${e.message}`); });
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
}
