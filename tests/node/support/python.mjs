// The real python-memcached, run as tests/node/support/python_side.py against the given
// servers, and the JSON manifest both sides use to name values that JSON cannot carry
// (bytes as { $bytes: base64 }, big integers as { $int: decimal }).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PYTHON = process.env.MEMCACHE_WASM_PYTHON ?? `${ROOT}.venv/bin/python`;
const SCRIPT = fileURLToPath(new URL("./python_side.py", import.meta.url));

/** Fails the test at once when the virtualenv that setup.sh makes is missing. */
export function checkPython() {
  assert.ok(existsSync(PYTHON), `python-memcached's virtualenv is missing (${PYTHON}); run scripts/setup.sh`);
}

/** Runs python_side.py `mode` against `servers` with `input` on stdin; its JSON answer. */
export function python(mode, servers, input) {
  const run = spawnSync(PYTHON, [SCRIPT, mode, ...servers.map((s) => s.address)], { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(run.status, 0, `python ${mode} failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

export function fromManifest(v) {
  if (Array.isArray(v)) return v.map(fromManifest);
  if (v && typeof v === "object") {
    if ("$bytes" in v) return new Uint8Array(Buffer.from(v.$bytes, "base64"));
    if ("$int" in v) return BigInt(v.$int);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromManifest(x)]));
  }
  return v;
}

export function toManifest(v) {
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString("base64") };
  if (typeof v === "bigint") return { $int: v.toString() };
  if (Array.isArray(v)) return v.map(toManifest);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toManifest(x)]));
  return v;
}
