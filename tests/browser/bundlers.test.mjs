// The packed package as a new user meets it: installed from its tarball, built unconfigured
// by esbuild (esm and iife), rollup (with node-resolve, its documented way to use npm
// packages), Vite and webpack, loaded by a plain module script with an import map, and
// under a CSP of `script-src 'self' 'wasm-unsafe-eval'`; every page runs in headless
// chromium through the real memcache-bridge to a real memcached. esbuild also bundles a
// Node script (CJS and ESM) that runs with no .wasm file beside it. Prints each bundle's size.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile as execFileCb, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startMemcacheds } from "../node/support/servers.mjs";
import { Bridge } from "../node/support/bridge.mjs";
import { rawGet } from "../node/support/raw.mjs";
import { startPageServer } from "./page-server.mjs";

const execFile = promisify(execFileCb);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PACKAGE = join(ROOT, "client-wasm");
const FIXTURES = fileURLToPath(new URL("./bundlers/", import.meta.url));
// Inside the repository, so each tool resolves from the workspace's node_modules (where
// scripts/setup.sh installed it) and the app's own node_modules holds the packed package.
const WORK = join(ROOT, "tests", "artifacts", "bundlers");
const BIN = join(ROOT, "node_modules", ".bin");
const CHROMIUM = "/usr/bin/chromium";
/** A build on a loaded 2-core machine; webpack is the slowest (about 10 s idle). */
const BUILD_TIMEOUT_MS = 120_000;
const PAGE_TIMEOUT_MS = 20_000;

let server, bridge, browser, profile, pages;
const sizes = [];

function html(script, { csp } = {}) {
  const meta = csp ? `<meta http-equiv="Content-Security-Policy" content="${csp}">\n` : "";
  return `<!doctype html>\n<html><head><meta charset="utf-8">\n<link rel="icon" href="data:,">\n${meta}</head>\n<body><pre id="out"></pre>\n${script}\n</body></html>\n`;
}

function filesUnder(dir) {
  return readdirSync(dir, { recursive: true }).map((f) => join(dir, f)).filter((f) => statSync(f).isFile());
}

/** The JavaScript and wasm a page downloads, raw and gzipped (-9). */
function recordSize(name, dir) {
  const files = filesUnder(dir).filter((f) => /\.(m?js|cjs|wasm)$/.test(f));
  let raw = 0, gz = 0;
  for (const f of files) {
    const bytes = readFileSync(f);
    raw += bytes.length;
    gz += gzipSync(bytes, { level: 9 }).length;
  }
  sizes.push({ name, files: files.length, raw, gzip: gz });
}

async function build(command, args, cwd) {
  try {
    return await execFile(join(BIN, command), args, { cwd, timeout: BUILD_TIMEOUT_MS, env: { ...process.env, NO_COLOR: "1" } });
  } catch (e) {
    throw new Error(`${command} ${args.join(" ")} failed:\n${e.stdout}\n${e.stderr}`);
  }
}

/** A project folder for one tool, holding the unchanged page script. */
function project(name) {
  const dir = join(WORK, name);
  mkdirSync(dir, { recursive: true });
  cpSync(join(FIXTURES, "app.js"), join(dir, "app.js"));
  return dir;
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), "chromium is missing: run scripts/setup.sh");
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const [{ filename }] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", WORK], { cwd: PACKAGE, encoding: "utf8" }));
  writeFileSync(join(WORK, "package.json"), JSON.stringify({ name: "bundler-pages", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", join(WORK, filename)], { cwd: WORK });
  [server] = await startMemcacheds(1);
  // The bridge serves WORK, so each page (and /node_modules for the import map) is same-origin.
  // The pages with inline scripts (the import map, init.html) come from a plain server.
  pages = await startPageServer(WORK);
  bridge = await Bridge.start({ upstreams: [server.address], www: WORK, allowOrigins: [pages.origin] });
  profile = mkdtempSync(join(tmpdir(), "memcache-wasm-bundlers-"));
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
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (sizes.length > 0) {
    writeFileSync(join(ROOT, "tests", "artifacts", "bundle-sizes.json"), JSON.stringify(sizes, null, 2) + "\n");
    console.log("bundle sizes (JavaScript and wasm the page loads):");
    for (const s of sizes) console.log(`  ${s.name.padEnd(16)} ${String(s.raw).padStart(8)} B raw ${String(s.gzip).padStart(8)} B gzip (${s.files} files)`);
  }
});

/** Opens /<path>?... (from the bridge, or from `origin`) and returns what the page wrote into
 *  #out, with its console errors. */
async function runPage(path, params, origin = `http://127.0.0.1:${bridge.port}`) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  try {
    const query = new URLSearchParams({ server: server.address, bridge: bridge.url, ...params });
    await page.goto(`${origin}/${path}?${query}`);
    await page.waitForSelector("body[data-done]", { timeout: PAGE_TIMEOUT_MS });
    return { result: JSON.parse(await page.textContent("#out")), errors };
  } finally {
    await page.close();
  }
}

/** The page of `name` stored its value through the bridge; memcached holds it as JSON (flag 1). */
async function assertPageWorked(name, path, origin) {
  const { result, errors } = await runPage(path, { name }, origin);
  assert.deepEqual(errors, [], `${name}: errors in the page`);
  assert.deepEqual(result, {
    name, stored: true, value: { bundler: name, rows: [1, 2, 3] }, server: server.address, badKey: "BAD_KEY",
  });
  const stored = await rawGet(server.address, `bundle:${name}`);
  assert.equal(stored.flags, 1);
  assert.deepEqual(JSON.parse(stored.data.toString()), { bundler: name, rows: [1, 2, 3] });
}

test("esbuild, --format=esm: the page runs through the bridge", async () => {
  const dir = project("esbuild-esm");
  await build("esbuild", ["app.js", "--bundle", "--format=esm", "--minify", "--outfile=dist/app.js"], dir);
  writeFileSync(join(dir, "dist", "index.html"), html(`<script type="module" src="app.js"></script>`));
  recordSize("esbuild esm", join(dir, "dist"));
  await assertPageWorked("esbuild-esm", "esbuild-esm/dist/index.html");
});

test("esbuild, its default iife format: the page runs through the bridge", async () => {
  const dir = project("esbuild-iife");
  const { stderr } = await build("esbuild", ["app.js", "--bundle", "--minify", "--outfile=dist/app.js"], dir);
  assert.doesNotMatch(stderr, /warning/i, "esbuild builds the iife without warnings");
  writeFileSync(join(dir, "dist", "index.html"), html(`<script src="app.js"></script>`));
  recordSize("esbuild iife", join(dir, "dist"));
  await assertPageWorked("esbuild-iife", "esbuild-iife/dist/index.html");
});

test("rollup with @rollup/plugin-node-resolve: the page runs through the bridge", async () => {
  const dir = project("rollup");
  await build("rollup", ["app.js", "--file", "dist/app.js", "--format", "es", "--plugin", "@rollup/plugin-node-resolve"], dir);
  writeFileSync(join(dir, "dist", "index.html"), html(`<script type="module" src="app.js"></script>`));
  recordSize("rollup", join(dir, "dist"));
  await assertPageWorked("rollup", "rollup/dist/index.html");
});

test("Vite, vite build with no config: the page runs through the bridge", async () => {
  const dir = project("vite");
  writeFileSync(join(dir, "index.html"), html(`<script type="module" src="./app.js"></script>`));
  // --base ./ : the built page sits under /vite/dist/ on the bridge, not at the site root.
  await build("vite", ["build", "--base", "./", "--logLevel", "warn"], dir);
  recordSize("vite", join(dir, "dist"));
  await assertPageWorked("vite", "vite/dist/index.html");
});

test("webpack with no config (src/index.js to dist/main.js): the page runs through the bridge", async () => {
  const dir = project("webpack");
  mkdirSync(join(dir, "src"), { recursive: true });
  cpSync(join(dir, "app.js"), join(dir, "src", "index.js"));
  await build("webpack", ["--mode", "production"], dir);
  writeFileSync(join(dir, "dist", "index.html"), html(`<script src="main.js"></script>`));
  recordSize("webpack", join(dir, "dist"));
  await assertPageWorked("webpack", "webpack/dist/index.html");
});

test("a plain <script type=module> with an import map: the package unbundled, from node_modules", async () => {
  const dir = project("importmap");
  const map = `<script type="importmap">{ "imports": { "memcache-wasm": "/node_modules/memcache-wasm/js/browser.js" } }</script>`;
  writeFileSync(join(dir, "index.html"), html(`${map}\n<script type="module" src="app.js"></script>`));
  await assertPageWorked("importmap", "importmap/index.html", pages.origin);
});

test("init({ wasm }) takes a URL, a Response, bytes or a Module; a failed load is caught by the page", async () => {
  cpSync(join(FIXTURES, "init.html"), join(WORK, "init.html"));
  for (const mode of ["default", "url", "response", "bytes", "module"]) {
    const { result, errors } = await runPage("init.html", { mode }, pages.origin);
    assert.deepEqual(errors, [], `${mode}: errors in the page`);
    assert.deepEqual(result, { mode, early: "ENGINE_NOT_READY", stored: true, value: mode, fetchedWasm: mode !== "default" }, mode);
  }
  const { result, errors } = await runPage("init.html", { mode: "fail" }, pages.origin);
  // The browser logs the missing engine's 404s (init's, then the call's retry), nothing else.
  assert.ok(errors.length >= 1 && errors.every((e) => /404/.test(e)), errors.join("\n"));
  assert.deepEqual(result, {
    mode: "fail", early: "ENGINE_NOT_READY", initError: "ENGINE_LOAD_FAILED", isEngineLoadError: true, callError: "ENGINE_LOAD_FAILED",
    stored: true, value: "fail", fetchedWasm: true,
  });
});

test("CSP script-src 'self' 'wasm-unsafe-eval' runs the page; without 'wasm-unsafe-eval' calls reject with ENGINE_LOAD_FAILED", async () => {
  const bundle = join(WORK, "esbuild-esm", "dist", "app.js");
  assert.ok(existsSync(bundle), "the esbuild esm test builds the bundle first");
  for (const [name, csp] of [["csp", "script-src 'self' 'wasm-unsafe-eval'"], ["csp-strict", "script-src 'self'"]]) {
    mkdirSync(join(WORK, name), { recursive: true });
    cpSync(bundle, join(WORK, name, "app.js"));
    writeFileSync(join(WORK, name, "index.html"), html(`<script type="module" src="app.js"></script>`, { csp }));
  }
  await assertPageWorked("csp", "csp/index.html");
  const { result } = await runPage("csp-strict/index.html", { name: "csp-strict" });
  assert.equal(result.code, "ENGINE_LOAD_FAILED", JSON.stringify(result));
  assert.match(result.error, /violates the following Content Security policy.*needs script-src 'wasm-unsafe-eval'/s);
});

test("esbuild bundles a Node script as CJS and as ESM; each runs alone in an empty folder", async () => {
  const dir = join(WORK, "node");
  mkdirSync(dir, { recursive: true });
  cpSync(join(FIXTURES, "node-app.js"), join(dir, "node-app.js"));
  const alone = mkdtempSync(join(tmpdir(), "memcache-wasm-node-bundle-"));
  try {
    for (const [format, file] of [["cjs", "app.cjs"], ["esm", "app.mjs"]]) {
      // A top-level await in the script needs ESM; the CJS build wraps the same code in a function.
      const entry = format === "cjs" ? "node-app-cjs.js" : "node-app.js";
      if (format === "cjs") {
        writeFileSync(join(dir, entry), `(async () => {\n${readFileSync(join(dir, "node-app.js"), "utf8").replace(/^import (.*);$/m, "const { Client } = require(\"memcache-wasm\");")}\n})();\n`);
      }
      const { stderr } = await build("esbuild", [entry, "--bundle", "--platform=node", `--format=${format}`, `--outfile=dist/${file}`], dir);
      assert.doesNotMatch(stderr, /warning/i, `esbuild ${format}: ${stderr}`);
      cpSync(join(dir, "dist", file), join(alone, file));
      const { size } = statSync(join(alone, file));
      sizes.push({ name: `node ${format}`, files: 1, raw: size, gzip: gzipSync(readFileSync(join(alone, file)), { level: 9 }).length });
      const { stdout } = await execFile(process.execPath, [file], { cwd: alone, timeout: 20_000, env: { ...process.env, MEMCACHED: server.address } });
      assert.deepEqual(JSON.parse(stdout), { value: "bundled", server: server.address }, format);
    }
  } finally {
    rmSync(alone, { recursive: true, force: true });
  }
});
