// The processes a benchmark run needs (memcached instances, the bridge), each on a free loopback
// port picked at run time, started and stopped by process id; every one is killed when the
// run ends, also when it fails or is interrupted.
import { spawn } from 'node:child_process';
import net from 'node:net';

// memcached's flags for every instance: loopback only, no UDP, 256 MB so that the largest
// keyspace (5,000 keys of 10 KB on one server) never evicts, and one worker thread so that
// the client under test keeps the machine's other core.
// memcached refuses to run as root without -u, so as root it drops to nobody.
export const MEMCACHED_ARGS = [
  '-U', '0', '-l', '127.0.0.1', '-m', '256', '-t', '1',
  ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []),
];
// How long a fresh process may take to answer before the run gives up on it.
const READY_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 25;

const running = new Set();

function killAll() {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** A free TCP port on 127.0.0.1, found by binding port 0. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `probe()` succeeds, rejects after READY_TIMEOUT_MS or when the child dies. */
async function waitReady(child, what, probe, stderrTail) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${what} exited (${child.exitCode ?? child.signalCode}) before it was ready: ${stderrTail().trim()}`,
      );
    }
    try {
      await probe();
      return;
    } catch (err) {
      lastError = err;
    }
    await sleep(READY_POLL_MS);
  }
  throw new Error(`${what} not ready after ${READY_TIMEOUT_MS} ms: ${lastError?.message}`);
}

/** Sends one text-protocol line and resolves with the first reply line. */
export function textCommand(port, line, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply to ${JSON.stringify(line)} on port ${port}`));
    }, timeoutMs);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      const end = reply.indexOf('\r\n');
      if (end >= 0) {
        clearTimeout(timer);
        socket.end();
        resolve(reply.slice(0, end));
      }
    });
  });
}

function track(child, what) {
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    // keep only the tail: enough to explain a failure, bounded in memory
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  child.on('exit', () => running.delete(child));
  return {
    pid: child.pid,
    stderrTail: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    },
    what,
  };
}

/**
 * Starts one memcached on a free loopback port; resolves with {host, port, address, stop}.
 * `args` are added to MEMCACHED_ARGS; `ready(port)` replaces the plain `version` check
 * (a TLS-only server answers only over TLS).
 */
export async function startMemcached({ args = [], ready } = {}) {
  const port = await freePort();
  const child = spawn('memcached', [...MEMCACHED_ARGS, '-p', String(port), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const handle = track(child, `memcached :${port}`);
  await waitReady(
    child,
    handle.what,
    ready ? () => ready(port) : async () => {
      const reply = await textCommand(port, 'version', 500);
      if (!reply.startsWith('VERSION ')) throw new Error(`unexpected reply ${reply}`);
    },
    handle.stderrTail,
  );
  return { ...handle, host: '127.0.0.1', port, address: `127.0.0.1:${port}` };
}

/** Starts memcache-bridge from `binary` relaying to `upstreams`; resolves with {port, url, stop}. */
export async function startBridge(binary, upstreams) {
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`];
  for (const upstream of upstreams) args.push('--upstream', upstream);
  const child = spawn(binary, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  const handle = track(child, `memcache-bridge :${port}`);
  await waitReady(child, handle.what, () => httpGetStatus(port, '/healthz'), handle.stderrTail);
  return { ...handle, port, url: `ws://127.0.0.1:${port}` };
}

function httpGetStatus(port, path) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(500, () => {
      socket.destroy();
      reject(new Error('timeout'));
    });
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`),
    );
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
    });
    socket.on('close', () => {
      if (/^HTTP\/1\.[01] 200/.test(reply)) resolve();
      else reject(new Error(`GET ${path}: ${reply.split('\r\n')[0] || 'no answer'}`));
    });
  });
}
