// Every timing and size option is checked when the client is made: a wrong type, NaN, a
// negative number or Infinity throws BAD_ARGUMENT at once, naming the option. And the units
// are python-memcached's where its names are used: socket_timeout and dead_retry in seconds.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Client, MemcacheError } from "../../client-wasm/js/node.js";
import { freePort, startMemcacheds } from "./support/servers.mjs";
import { rawStats } from "./support/raw.mjs";

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

let address;
/** A server address for clients that never get to send anything. */
async function someAddress() {
  address ??= `127.0.0.1:${await freePort()}`;
  return address;
}

/** Values no timing or size option accepts, each with how it reads in a failure message. */
const BAD_VALUES = [
  ["the string \"3000\"", "3000"],
  ["the string \"\"", ""],
  ["NaN", NaN],
  ["-1", -1],
  ["-0.5", -0.5],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
  ["true", true],
  ["an object", {}],
  ["an array", [3000]],
  ["a BigInt", 3000n],
];

/**
 * Makes a client with `{ [name]: value }` for every bad value and collects what did not
 * throw a BAD_ARGUMENT naming `mentions` synchronously, so one failure lists every value let
 * through.
 */
async function refusedValues(name, mentions = [name]) {
  const list = [await someAddress()];
  const problems = [];
  for (const [label, value] of BAD_VALUES) {
    let thrown;
    try {
      const mc = new Client(list, { [name]: value });
      mc.close();
    } catch (e) {
      thrown = e;
    }
    if (thrown === undefined) problems.push(`${label}: accepted`);
    else if (!(thrown instanceof MemcacheError)) problems.push(`${label}: threw ${thrown?.name} (${thrown?.message}), not a MemcacheError`);
    else if (thrown.code !== "BAD_ARGUMENT") problems.push(`${label}: code ${thrown.code}`);
    else if (!mentions.some((m) => thrown.message.includes(m))) problems.push(`${label}: message ${JSON.stringify(thrown.message)} does not name ${name}`);
  }
  return problems;
}

for (const [name, mentions] of [
  ["timeout"],
  ["connectTimeout"],
  ["deadRetry"],
  ["maxValueSize"],
  ["maxItemSize"],
  ["socket_timeout", ["socket_timeout", "timeout"]],
  ["dead_retry", ["dead_retry", "deadRetry"]],
]) {
  test(`${name}: a wrong type, NaN, a negative number or Infinity throws BAD_ARGUMENT naming it, from the constructor`, async () => {
    assert.deepEqual(await refusedValues(name, mentions), []);
  });
}

test("good values of every timing and size option are accepted", async () => {
  const list = [await someAddress()];
  for (const options of [
    {},
    { timeout: 1500, connectTimeout: 200, deadRetry: 0.5, maxValueSize: 2048, maxItemSize: 1024 * 1024 },
    { timeout: 50, connectTimeout: 50, deadRetry: 0.2, maxValueSize: 100, maxItemSize: 100 },
    { socket_timeout: 3, dead_retry: 30 },
    { socket_timeout: 0.25, dead_retry: 0.5 },
    { timeout: undefined, connectTimeout: undefined, deadRetry: undefined, maxValueSize: undefined, maxItemSize: undefined },
  ]) {
    const mc = new Client(list, options);
    mc.close();
  }
});

test("the constructor throws before opening any connection", async () => {
  // One worker thread: memcached counts a connection when a worker takes it, so with
  // several workers the start-up probe's connection could be counted after the first stats
  // below; with one, connections are counted in the order they came.
  const [server] = await startMemcacheds(1, ["-t", "1"]);
  cleanup.push(() => server.stop());
  const before = Number((await rawStats(server.address)).total_connections);
  assert.throws(() => new Client([server.address], { timeout: "3000" }), (e) => e instanceof MemcacheError && e.code === "BAD_ARGUMENT");
  assert.throws(() => new Client([server.address], { maxItemSize: -1 }), (e) => e instanceof MemcacheError && e.code === "BAD_ARGUMENT");
  // Only the stats connection below was opened.
  assert.equal(Number((await rawStats(server.address)).total_connections), before + 1);
});

/** How long a call to a hung server takes to reject, and with what. */
async function hungCall(options) {
  const [server] = await startMemcacheds(1);
  cleanup.push(() => server.stop());
  const mc = new Client([server.address], options);
  cleanup.push(async () => mc.close());
  assert.equal(await mc.set("k", "v"), true);
  await server.pause();
  const started = Date.now();
  const error = await mc.get("k").then(() => null, (e) => e);
  const elapsed = Date.now() - started;
  server.resume();
  return { error, elapsed };
}

test("socket_timeout is in seconds, as in python-memcached: socket_timeout 0.3 waits about 300 ms", async () => {
  const { error, elapsed } = await hungCall({ socket_timeout: 0.3 });
  assert.ok(error instanceof MemcacheError, `rejected: ${error}`);
  assert.equal(error.code, "TIMEOUT", error.message);
  assert.ok(elapsed >= 290 && elapsed < 2500, `TIMEOUT after ${elapsed} ms with socket_timeout 0.3 (s)`);
});

test("timeout is 3000 ms by default", async () => {
  const { error, elapsed } = await hungCall({});
  assert.ok(error instanceof MemcacheError, `rejected: ${error}`);
  assert.equal(error.code, "TIMEOUT", error.message);
  assert.ok(elapsed >= 2950 && elapsed < 5000, `TIMEOUT after ${elapsed} ms with the default timeout`);
});

test("server addresses and option combinations the engine would refuse are refused by the constructor", () => {
  for (const address of ["host:abc", "host:0", "host:70000", "[::1", "two words:11211", ""]) {
    assert.throws(() => new Client([address]), (e) => e instanceof MemcacheError && e.code === "BAD_ARGUMENT", address);
  }
  for (const address of ["127.0.0.1:11211", "localhost", "[::1]:11211", "inet6:[::1]:1", "unix:/tmp/memcached.sock"]) {
    new Client([address]).close();
  }
  assert.throws(() => new Client(["127.0.0.1:11211"], { distribution: "ketama", hashFunction: () => 1 }),
    (e) => e.code === "BAD_ARGUMENT" && /ketama/.test(e.message));
});

