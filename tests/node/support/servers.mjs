// Starts the real processes the end-to-end tests talk to: memcached on free loopback
// ports (`-U 0 -l 127.0.0.1`), each stopped by its process id when the test ends.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** How long a freshly started server may take to accept connections. */
const START_TIMEOUT_MS = 5000;

/** How long memcached's threads may take to all reach the stopped state after SIGSTOP. */
const STOP_TIMEOUT_MS = 5000;

/** Whether every thread of `pid` is stopped ('T' in /proc/PID/task/TID/stat). */
function allThreadsStopped(pid) {
  const tasks = readdirSync(`/proc/${pid}/task`);
  // The state is the field after the command name, which is in parentheses and may hold spaces.
  return tasks.every((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] === "T";
  });
}

/** A port nobody listens on right now (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, what, child) {
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before listening`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} did not listen on ${port} within ${START_TIMEOUT_MS} ms`);
    await sleep(20);
  }
}

/** One memcached process; `stop()` kills it, `restart()` starts it again on the same port. */
/** memcached refuses to run as root unless told which user to stay. */
export function memcachedUser() {
  return process.getuid?.() === 0 ? ["-u", "root"] : [];
}

/** SIGKILL to `child` (if it still runs); resolves when it is gone. */
export async function killChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

export class Memcached {
  constructor(port, args = []) {
    this.port = port;
    this.args = args;
    this.address = `127.0.0.1:${port}`;
    this.child = null;
  }

  static async start(args = []) {
    const m = new Memcached(await freePort(), args);
    await m.startProcess();
    return m;
  }

  async startProcess() {
    this.child = spawn("memcached", [...memcachedUser(), "-U", "0", "-l", "127.0.0.1", "-p", String(this.port), ...this.args], { stdio: "ignore" });
    await waitForPort(this.port, `memcached on ${this.port}`, this.child);
  }

  /** SIGKILL, so open connections die at once as in a crash; resolves when it is gone. */
  async stop() {
    const child = this.child;
    this.child = null;
    await killChild(child);
  }

  /** SIGSTOP: the server keeps its sockets but answers nothing (a hung server). Resolves
   *  once every thread has stopped: the kernel stops a multi-threaded process's threads one
   *  by one after kill() returns, and under CPU load memcached's worker thread answered
   *  requests sent after SIGSTOP in CI-like runs, so a test could never see it hang. */
  async pause() {
    const pid = this.child.pid;
    this.child.kill("SIGSTOP");
    const until = Date.now() + STOP_TIMEOUT_MS;
    while (!allThreadsStopped(pid)) {
      if (Date.now() > until) throw new Error(`memcached ${pid} did not stop within ${STOP_TIMEOUT_MS} ms of SIGSTOP`);
      await sleep(2);
    }
  }
  resume() { this.child.kill("SIGCONT"); }

  async restart() {
    await this.stop();
    await this.startProcess();
  }
}

/** Starts `n` memcached servers; the returned array has `stopAll()`. */
export async function startMemcacheds(n, args = []) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) servers.push(await Memcached.start(args));
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop()));
    throw e;
  }
  servers.stopAll = () => Promise.all(servers.map((s) => s.stop()));
  return servers;
}
