// Starts the real memcache-bridge (built by scripts/test.sh; MEMCACHE_BRIDGE_BIN overrides
// where it is) on a free loopback port, relaying to the given memcached servers.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitForPort } from "./servers.mjs";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export function bridgeBinary() {
  const candidates = [
    process.env.MEMCACHE_BRIDGE_BIN,
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "release", "memcache-bridge"),
    join(ROOT, "target", "release", "memcache-bridge"),
  ].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`memcache-bridge is not built (looked at ${candidates.join(", ")}): cargo build --release -p memcache-bridge`);
  return found;
}

export class Bridge {
  /** @param {{upstreams: string[], tokens?: string[], readOnly?: boolean, www?: string, allowOrigins?: string[]}} options
   *  `allowOrigins`: --allow-origin for each, beside the bridge's own origin (the pages it serves). */
  static async start({ upstreams, tokens, readOnly, www, allowOrigins }) {
    const b = new Bridge();
    b.port = await freePort();
    b.url = `ws://127.0.0.1:${b.port}`;
    const args = ["--listen", `127.0.0.1:${b.port}`];
    for (const u of upstreams) args.push("--upstream", u);
    if (tokens) {
      b.dir = mkdtempSync(join(tmpdir(), "memcache-bridge-test-"));
      const file = join(b.dir, "tokens");
      writeFileSync(file, tokens.join("\n") + "\n", { mode: 0o600 });
      args.push("--token-file", file);
    }
    if (readOnly) args.push("--read-only");
    if (allowOrigins) {
      for (const origin of [`http://127.0.0.1:${b.port}`, ...allowOrigins]) args.push("--allow-origin", origin);
    }
    if (www) args.push("--www", www);
    b.stderr = "";
    b.child = spawn(bridgeBinary(), args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
    b.child.stderr.on("data", (d) => { if (b.stderr.length < 100_000) b.stderr += d; });
    try {
      await waitForPort(b.port, "memcache-bridge", b.child);
    } catch (e) {
      await b.stop();
      throw new Error(`${e.message}\n${b.stderr}`);
    }
    return b;
  }

  async stop() {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
