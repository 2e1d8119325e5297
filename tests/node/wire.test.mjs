// The wire between the JavaScript layer and the engine: js/wire.js is generated from
// client-wasm/src/wire.rs (a Rust test fails when they differ); here, every error code the
// engine can send has its MemcacheError class, with that code, exported by the package.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ERROR_CODES } from "../../client-wasm/js/wire.js";
import * as pkg from "../../client-wasm/js/node.js";

test("every error code on the wire has an exported MemcacheError class with that code", () => {
  const byCode = new Map();
  for (const value of Object.values(pkg)) {
    if (typeof value === "function" && value.prototype instanceof pkg.MemcacheError) {
      byCode.set(new value("probe").code, value);
    }
  }
  assert.ok(ERROR_CODES.length >= 15);
  for (const code of ERROR_CODES) {
    const Cls = byCode.get(code);
    assert.ok(Cls, `no exported error class for ${code}`);
    const error = new Cls("message", { server: "127.0.0.1:1", key: "k" });
    assert.equal(error.code, code);
    assert.ok(error instanceof pkg.MemcacheError);
    assert.equal(error.server, "127.0.0.1:1");
  }
});
