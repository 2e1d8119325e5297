// Runs a herd of stampede-worker.mjs processes: every process is forked, reports ready, and
// all get "start" at once (no sleep: they wait on the message); the run is bounded in time
// and every child is killed by its pid if it overruns.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";

const WORKER = fileURLToPath(new URL("./stampede-worker.mjs", import.meta.url));

export async function herd({ processes, limitMs = 30_000, ...job }) {
  const children = Array.from({ length: processes }, () => fork(WORKER, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  const timer = setTimeout(() => { for (const c of children) c.kill("SIGKILL"); }, limitMs);
  try {
    const message = (child) => new Promise((resolve, reject) => {
      child.once("message", resolve);
      child.once("exit", (code) => reject(new Error(`a herd process exited (${code}) before it reported`)));
    });
    await Promise.all(children.map((c) => { const ready = message(c); c.send(job); return ready; }));
    const reports = children.map(message);
    for (const c of children) c.send("start");
    const done = await Promise.all(reports);
    return {
      loads: done.flatMap((d) => d.loads),
      results: done.flatMap((d) => d.results),
      errors: done.flatMap((d) => d.errors),
    };
  } finally {
    clearTimeout(timer);
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once("exit", r)))));
  }
}
