// The bridge for JavaScript users: scripts/pack-bridge.sh packs the launcher (memcache-bridge)
// and the platform package with this machine's release binary (memcache-bridge-linux-x64);
// both tarballs install into an empty folder (offline), `npx memcache-bridge` starts the
// bridge, a get and a set relay through it to a real memcached, and SIGTERM stops it. publint
// checks both packages.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "../../client-wasm/js/node.js";
import { freePort, startMemcacheds } from "./support/servers.mjs";
import { rawCommand, rawGet } from "./support/raw.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** How long the bridge may take to say it listens, through npx and the launcher. */
const START_TIMEOUT_MS = 15_000;
const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

/** Resolves with the child's stdout once a line matches `pattern`; rejects if it exits first. */
function waitForLine(child, pattern, timeoutMs) {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${out}\n${err}`)), timeoutMs);
    child.stdout.on("data", (d) => {
      out += d;
      if (pattern.test(out)) { clearTimeout(timer); resolve(out); }
    });
    child.stderr.on("data", (d) => { err += d; });
    child.once("exit", (code, signal) => { clearTimeout(timer); reject(new Error(`exited (${code ?? signal}) before listening:\n${out}\n${err}`)); });
  });
}

test("npx memcache-bridge, installed from the packed tarballs, relays to a real memcached and stops on SIGTERM", { skip: process.platform !== "linux" || process.arch !== "x64" }, async () => {
  const work = mkdtempSync(join(tmpdir(), "memcache-bridge-npm-"));
  cleanup.push(() => rmSync(work, { recursive: true, force: true }));
  const [server] = await startMemcacheds(1);
  cleanup.push(() => server.stop());

  const [platformTarball, launcherTarball] = execFileSync(join(ROOT, "scripts", "pack-bridge.sh"), [join(work, "packs")], { encoding: "utf8" }).trim().split("\n");
  assert.ok(existsSync(platformTarball) && existsSync(launcherTarball));
  const app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", "--loglevel=error", launcherTarball, platformTarball], { cwd: app });

  const port = await freePort();
  // Its own process group, so the test stops npx, the launcher and the bridge by one id.
  const child = spawn("npx", ["--no-install", "memcache-bridge", "--listen", `127.0.0.1:${port}`, "--upstream", server.address], {
    cwd: app, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" },
  });
  // "close": every process holding its stdout (npx, the launcher, the bridge) has exited.
  const exited = new Promise((resolve) => child.once("close", (code, signal) => resolve({ code, signal })));
  cleanup.push(async () => {
    if (child.exitCode === null && child.signalCode === null) { process.kill(-child.pid, "SIGKILL"); await exited; }
  });
  const said = await waitForLine(child, /memcache-bridge listening on http:\/\/127\.0\.0\.1:\d+/, START_TIMEOUT_MS);
  assert.match(said, new RegExp(`listening on http://127\\.0\\.0\\.1:${port}`));

  await rawCommand(server.address, "set from:python 16 0 5\r\nhello\r\n", ["STORED\r\n"]);
  const mc = new Client([server.address], { bridge: `ws://127.0.0.1:${port}` });
  assert.equal(await mc.get("from:python"), "hello");
  assert.equal(await mc.set("from:bridge", "relayed"), true);
  await mc.close();
  assert.deepEqual(await rawGet(server.address, "from:bridge").then((v) => [v.flags, v.data.toString()]), [16, "relayed"]);

  // SIGTERM to the group, as a terminal's Ctrl-C or systemd's stop sends it: the launcher
  // passes it on, the bridge shuts down gracefully, and nothing is left holding the pipes.
  process.kill(-child.pid, "SIGTERM");
  const { code, signal } = await exited;
  assert.ok(code === 0 || signal === "SIGTERM", `exit ${code} ${signal}`);
  await assert.rejects(rawCommand(`127.0.0.1:${port}`, "GET / HTTP/1.0\r\n\r\n", ["\r\n"]), /ECONNREFUSED/);
});

// After the packing above, so the platform package holds its binary as published.
test("publint finds nothing in the launcher or the platform package", async () => {
  for (const pkg of ["memcache-bridge", "memcache-bridge-linux-x64"]) {
    const out = execFileSync(join(ROOT, "node_modules", ".bin", "publint"), [join(ROOT, "npm", pkg)], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    assert.match(out, /All good!/, `${pkg}: ${out}`);
  }
});
