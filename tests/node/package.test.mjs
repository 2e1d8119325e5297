// The packed package's hygiene: @arethetypeswrong/cli and publint find nothing, its types
// compile under tsc --strict as a user writes them (keys of every type the run time takes,
// error codes narrowed by class), and both entry points export exactly the documented names.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile as execFileCb, execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const execFile = promisify(execFileCb);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PACKAGE = join(ROOT, "client-wasm");
const BIN = join(ROOT, "node_modules", ".bin");
const TOOL_TIMEOUT_MS = 120_000;

/** What README.md documents as the package's exports, and nothing else. */
const DOCUMENTED = [
  "AuthFailedError", "BadArgumentError", "BadKeyError", "BridgeRefusedError", "Client", "ClientError", "ClosedError", "ConnectionError",
  "DecodeError", "EngineLoadError", "EngineNotReadyError", "MemcacheError", "MetadumpRefusedError", "NoServerError",
  "NotRelayedError", "NotSerializableError", "NotStoredError", "ProtocolError", "ServerError", "TimeoutError", "UnknownCommandError", "ValueTooLargeError",
  "init",
];

let work, tarball, app;

before(() => {
  work = mkdtempSync(join(tmpdir(), "memcache-wasm-package-"));
  const [{ filename }] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: PACKAGE, encoding: "utf8" }));
  tarball = join(work, filename);
  app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", tarball], { cwd: app });
});

after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

async function tool(name, args, cwd = ROOT) {
  try {
    return await execFile(join(BIN, name), args, { cwd, timeout: TOOL_TIMEOUT_MS, env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } });
  } catch (e) {
    assert.fail(`${name} ${args.join(" ")} failed (exit ${e.code}):\n${e.stdout}\n${e.stderr}`);
  }
}

test("@arethetypeswrong/cli finds no problem (profile esm-only: an ES module package, require() from Node 20.19)", async () => {
  const { stdout } = await tool("attw", ["--profile", "esm-only", "--format", "json", tarball]);
  const report = JSON.parse(stdout);
  const problems = (report.analysis?.problems ?? []).filter((p) => !["node10", "node16-cjs"].includes(p.resolutionKind));
  assert.deepEqual(problems, []);
});

test("publint finds no error, warning or suggestion", async () => {
  const { stdout } = await tool("publint", [PACKAGE]);
  assert.match(stdout, /All good!/, stdout);
});

test("the types compile under tsc --strict as a user writes them, and refuse what the run time refuses", async () => {
  cpSync(fileURLToPath(new URL("./types/usage.mts", import.meta.url)), join(app, "usage.mts"));
  await tool("tsc", ["--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
    "--lib", "es2022,dom", "usage.mts"], app);
});

test("both entry points export exactly the documented names (no internal table such as CORE_ERROR_CLASSES)", async () => {
  const pkg = join(app, "node_modules", "memcache-wasm");
  for (const entry of ["js/node.js", "js/browser.js"]) {
    const { stdout } = await execFile(process.execPath, ["--input-type=module", "-e",
      `const m = await import(${JSON.stringify(join(pkg, entry))}); console.log(JSON.stringify(Object.keys(m).sort()));`]);
    assert.deepEqual(JSON.parse(stdout), DOCUMENTED, entry);
  }
  const types = readFileSync(join(pkg, "js", "index.d.ts"), "utf8");
  for (const name of DOCUMENTED) assert.match(types, new RegExp(`export (class|function) ${name}\\b`), `${name} declared in index.d.ts`);
  const readme = readFileSync(join(pkg, "README.md"), "utf8");
  for (const name of DOCUMENTED) assert.ok(readme.includes(name), `${name} documented in the package README`);
});
