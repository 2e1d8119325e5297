// `npm pack` gives a package that installs into an empty folder, and the README's example
// runs there against a real memcached, as ESM and through require().
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startMemcacheds } from "./support/servers.mjs";

const PACKAGE = fileURLToPath(new URL("../../client-wasm/", import.meta.url));
const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

test("npm pack installs into an empty folder and the example runs there", async () => {
  const work = mkdtempSync(join(tmpdir(), "memcache-wasm-pack-"));
  cleanup.push(() => rmSync(work, { recursive: true, force: true }));
  const [server] = await startMemcacheds(1);
  cleanup.push(() => server.stop());

  const packed = execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: PACKAGE, encoding: "utf8" });
  const [{ filename, files }] = JSON.parse(packed);
  const paths = files.map((f) => f.path);
  for (const must of ["pkg/memcache_wasm_bg.wasm", "pkg/memcache_wasm.js", "js/node.js", "js/browser.js", "js/index.d.ts", "README.md", "package.json"]) {
    assert.ok(paths.includes(must), `${must} missing from the package: ${paths.join(", ")}`);
  }
  assert.ok(!paths.some((p) => p.startsWith("src/") || p.endsWith(".rs")), "no Rust sources in the package");

  const app = join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", join(work, filename)], { cwd: app, encoding: "utf8" });
  assert.ok(readdirSync(join(app, "node_modules")).includes("memcache-wasm"));

  writeFileSync(join(app, "example.mjs"), `
import { Client } from "memcache-wasm";
const mc = new Client([process.env.MEMCACHED]);
const rows = [{ title: "Seven Samurai", year: 1954 }, { title: "Alien", year: 1979 }];
await mc.set("top5films", rows, 60);
await mc.set("users:a", "Ada");
await mc.set("users:b", "Bob");
console.log(JSON.stringify({ films: await mc.get("top5films"), users: await mc.getMulti(["a", "b"], { keyPrefix: "users:" }) }));
`);
  const out = execFileSync("node", ["example.mjs"], { cwd: app, encoding: "utf8", env: { ...process.env, MEMCACHED: server.address }, timeout: 10_000 });
  assert.deepEqual(JSON.parse(out), {
    films: [{ title: "Seven Samurai", year: 1954 }, { title: "Alien", year: 1979 }],
    users: { a: "Ada", b: "Bob" },
  });

  writeFileSync(join(app, "example.cjs"), `
const { Client } = require("memcache-wasm");
const mc = new Client([process.env.MEMCACHED]);
mc.get("users:a").then((v) => { console.log(v); mc.close(); });
`);
  const cjs = execFileSync("node", ["--no-warnings", "example.cjs"], { cwd: app, encoding: "utf8", env: { ...process.env, MEMCACHED: server.address }, timeout: 10_000 });
  assert.equal(cjs.trim(), "Ada");
});
