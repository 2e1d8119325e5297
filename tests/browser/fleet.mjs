// The real processes a browser test runs against: memcached servers and memcache-bridge
// instances on free loopback ports, python-memcached seeding, and a raw memcached socket for
// checking what the page did. Every process started here is stopped by its pid in stopAll(),
// which the tests call in `after` (and which also runs if the test process exits early).

import { spawn, execFile } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** How long a started server may take to accept connections before the test gives up. */
const STARTUP_TIMEOUT_MS = 10_000;

const started = new Set();

/** Stops every process this module started that is still running (by pid, SIGTERM, then SIGKILL). */
export async function stopAll() {
  await Promise.all([...started].map((child) => stop(child)));
}

process.on("exit", () => {
  for (const child of started) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

export async function stop(child) {
  if (!started.has(child)) return;
  started.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** A port nobody listens on right now (the OS picks it; we release it for the server). */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

function launch(command, args, name) {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  started.add(child);
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    // Keep the tail only: it is for the failure message.
    stderr = (stderr + chunk).slice(-4000);
  });
  child.describe = () => `${name} (pid ${child.pid}) stderr:\n${stderr}`;
  return child;
}

async function waitFor(check, what, child) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${child.describe()}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${STARTUP_TIMEOUT_MS} ms: ${child.describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts `memcached -U 0 -l 127.0.0.1 -p PORT [extraArgs]` (on `port`, or a free one). */
export async function startMemcached(port, extraArgs = []) {
  const chosen = port ?? (await freePort());
  const args = ["-U", "0", "-l", "127.0.0.1", "-p", String(chosen), ...extraArgs];
  // memcached refuses to run as root unless told which user to be.
  if (process.getuid?.() === 0) args.push("-u", "root");
  const child = launch("memcached", args, `memcached :${chosen}`);
  await waitFor(() => canConnect(chosen), `memcached on port ${chosen}`, child);
  return { process: child, port: chosen, address: `127.0.0.1:${chosen}` };
}

/** The release build of memcache-bridge: $MEMCACHE_BRIDGE, else the workspace's target dir. */
export function bridgeBinary() {
  if (process.env.MEMCACHE_BRIDGE) return process.env.MEMCACHE_BRIDGE;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");
  return path.join(target, "release", "memcache-bridge");
}

/** Starts memcache-bridge serving www/ for `upstreams`, with `extraArgs` (e.g. --read-only). */
export async function startBridge(upstreams, extraArgs = []) {
  const binary = bridgeBinary();
  if (!existsSync(binary)) {
    throw new Error(`no memcache-bridge at ${binary}: build it with cargo build --release -p memcache-bridge (or set MEMCACHE_BRIDGE)`);
  }
  const port = await freePort();
  const args = ["--listen", `127.0.0.1:${port}`, "--www", path.join(ROOT, "www")];
  for (const upstream of upstreams) args.push("--upstream", upstream);
  args.push(...extraArgs);
  const child = launch(binary, args, `memcache-bridge :${port}`);
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(
    async () => {
      try {
        return (await fetch(`${url}healthz`)).ok;
      } catch {
        return false;
      }
    },
    `memcache-bridge on port ${port}`,
    child,
  );
  return { process: child, port, url };
}

/** Runs tests/browser/seed.py with the real python-memcached; returns {key: server}. */
export async function seedWithPython(servers) {
  const python = process.env.MEMCACHE_WASM_PYTHON ?? path.join(ROOT, ".venv", "bin", "python");
  const { stdout } = await promisify(execFile)(python, [path.join(ROOT, "tests", "browser", "seed.py"), ...servers]);
  return Object.fromEntries(stdout.trim().split("\n").map((line) => line.split(" ")));
}

/** Asks python-memcached (the real one) for `key`; resolves to its repr, or "None" on a miss. */
export async function pythonGet(servers, key) {
  const python = process.env.MEMCACHE_WASM_PYTHON ?? path.join(ROOT, ".venv", "bin", "python");
  const script = "import sys, memcache; print(repr(memcache.Client(sys.argv[2:]).get(sys.argv[1])))";
  const { stdout } = await promisify(execFile)(python, ["-c", script, key, ...servers]);
  return stdout.trim();
}

/**
 * One text-protocol exchange on a fresh socket: sends `request` and resolves with the reply
 * once it ends with `terminator` (or the socket closes).
 */
export function memcachedExchange(port, request, terminator = "END\r\n") {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`memcached on port ${port} did not answer ${JSON.stringify(request)}`));
    }, 5000);
    socket.on("data", (chunk) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).toString("latin1").endsWith(terminator)) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.write(request);
  });
}

/** `get key` on one server: `{flags, value: Buffer}` or undefined on a miss. */
export async function rawGet(port, key) {
  const reply = await memcachedExchange(port, `get ${key}\r\n`);
  const header = reply.toString("latin1").match(/^VALUE \S+ (\d+) (\d+)\r\n/);
  if (!header) {
    if (reply.toString("latin1") !== "END\r\n") throw new Error(`unexpected reply to get ${key}: ${reply}`);
    return undefined;
  }
  const start = header[0].length;
  return { flags: Number(header[1]), value: reply.subarray(start, start + Number(header[2])) };
}

/**
 * Real traffic for the charts: rounds of pipelined sets and gets on each port (gets of keys
 * partly never set, so the hit ratio is not a flat 100%), the load rising and falling over
 * time and heavier on later ports, so each server's line is its own. Runs until `durationMs`
 * has passed or `maxRounds` rounds ran, whichever comes first.
 */
export async function generateTraffic(ports, { durationMs, maxRounds, pauseMs = 100 }) {
  const end = Date.now() + durationMs;
  for (let round = 0; round < maxRounds && Date.now() < end; round += 1) {
    await Promise.all(
      ports.map((port, i) => {
        const sets = 4 + 4 * i;
        const gets = Math.round((30 + 20 * i) * (1 + 0.6 * Math.sin(round / 8 + i)));
        let request = "";
        for (let k = 0; k < sets; k += 1) request += `set traffic:${k} 0 60 5\r\nvalue\r\n`;
        request += "get " + Array.from({ length: gets }, (_, k) => `traffic:${k % (sets + 4)}`).join(" ") + "\r\n";
        return memcachedExchange(port, request);
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}
