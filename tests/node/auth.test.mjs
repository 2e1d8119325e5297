// memcached's text-protocol authentication (-Y authfile) against the real server: the
// client authenticates on every new connection before anything queued is written, wrong
// credentials are AUTH_FAILED with the dead-server backoff (not a reconnect storm), a
// restarted memcached is authenticated to again, and the credentials never show.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, MemcacheError } from "../../client-wasm/js/node.js";
import { makeCertificates, startAuthMemcached, startTlsMemcached, tempDir, writeAuthFile } from "./support/secure.mjs";

const USER = "alice";
const PASSWORD = "Zq9-s3cret:pass";
const cleanup = [];
let tmp;
before(() => { tmp = tempDir(); cleanup.push(async () => tmp.remove()); });
after(async () => { for (const f of cleanup.reverse()) await f(); });

async function authServer(users = { [USER]: PASSWORD }) {
  const server = await startAuthMemcached(tmp.dir, users);
  cleanup.push(() => server.stop());
  return server;
}

function client(servers, options) {
  const mc = new Client(servers, { timeout: 2000, ...options });
  cleanup.push(async () => mc.close());
  return mc;
}

const authFailed = (e) => {
  assert.ok(e instanceof MemcacheError, String(e));
  assert.equal(e.code, "AUTH_FAILED", e.message);
  assert.match(e.message, /refused the credentials: CLIENT_ERROR authentication failure/);
  return true;
};

function assertNoCredentials(text) {
  assert.ok(!text.includes(PASSWORD) && !text.includes("s3cret") && !text.includes("wrong-Zq9"), `credentials shown: ${text}`);
}

test("right credentials: calls made before the connection opens are written after authentication", async () => {
  const server = await authServer();
  const mc = client([server.address], { auth: { username: USER, password: PASSWORD } });
  // Issued in one tick, before any socket exists: all wait for STORED to the auth set.
  const [a, b, c] = await Promise.all([mc.set("auth-a", "1"), mc.set("auth-b", 2), mc.getMulti(["auth-a", "auth-b"])]);
  assert.equal(a, true);
  assert.equal(b, true);
  assert.equal(typeof c, "object");
  assert.deepEqual({ ...(await mc.getMulti(["auth-a", "auth-b"])) }, { "auth-a": "1", "auth-b": 2 });
  assert.equal(Object.values(await mc.version())[0], "1.6.18");
  assert.equal(Object.values(await mc.stats())[0].curr_items, "2", "the auth set stored no item");
  // Without credentials memcached refuses every command.
  const anonymous = client([server.address]);
  await assert.rejects(anonymous.get("auth-a"), (e) => e.code === "CLIENT_ERROR" && /unauthenticated/.test(e.message));
});

test("wrong credentials: AUTH_FAILED, retried with the backoff of a dead server, never shown", async () => {
  const server = await authServer();
  const lines = [];
  const downs = [];
  const mc = client([server.address], { auth: { username: USER, password: "wrong-Zq9" }, debug: (l) => lines.push(l) });
  mc.on("serverDown", (e) => downs.push(e));
  await assert.rejects(mc.get("k"), authFailed);
  assert.equal(downs.length, 1);
  assert.equal(downs[0].error.code, "AUTH_FAILED");
  // For one second the application keeps calling; the server is skipped (NO_SERVER) and
  // probed with the growing backoff: 100, 200, 400 ms ... apart, a handful of connections.
  const good = client([server.address], { auth: { username: USER, password: PASSWORD } });
  const before = Number(Object.values(await good.stats())[0].total_connections);
  const until = Date.now() + 1000;
  const codes = new Set();
  for (let i = 0; i < 200 && Date.now() < until; i++) {
    await mc.get("k").then(() => codes.add("resolved"), (e) => codes.add(e.code));
    await sleep(10);
  }
  const afterwards = Number(Object.values(await good.stats())[0].total_connections);
  assert.ok(afterwards - before <= 8, `${afterwards - before} connections in one second: the server is hammered`);
  assert.ok([...codes].every((c) => c === "NO_SERVER" || c === "AUTH_FAILED"), [...codes].join());
  const shown = [...lines, ...downs.map((d) => `${d.error.message} ${JSON.stringify(d.error)}`)].join("\n");
  assertNoCredentials(shown);
  assert.ok(!shown.includes(USER), "the username is not shown either");
});

test("a restarted memcached is authenticated to again", async () => {
  const server = await authServer();
  const mc = client([server.address], { auth: { username: USER, password: PASSWORD } });
  assert.equal(await mc.set("before-restart", 1), true);
  await server.restart();
  // The idle connection's close is seen when the next call writes on it, or before; either
  // way a call after that reconnects, authenticates and succeeds.
  const until = Date.now() + 10_000;
  let stored = false;
  while (!stored) {
    assert.ok(Date.now() < until, "no successful set within 10 s of the restart");
    stored = await mc.set("after-restart", 2).catch((e) => {
      assert.ok(e.code === "CONNECTION_ERROR" || e.code === "NO_SERVER", e.message);
      return false;
    });
  }
  assert.equal(await mc.get("after-restart"), 2);
});

test("per-server credentials, and authentication over TLS", async () => {
  const one = await authServer({ bob: "pw-one" });
  const certs = makeCertificates(tmp.dir);
  const secure = await startTlsMemcached(certs, { args: ["-Y", writeAuthFile(tmp.dir, { carol: "pw-two" })] });
  cleanup.push(() => secure.stop());
  const mc = client([
    { address: one.address, auth: { username: "bob", password: "pw-one" } },
    { address: secure.address, auth: { username: "carol", password: "pw-two" }, tls: { ca: readFileSync(certs.ca) } },
  ]);
  const entries = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`per-server-${i}`, i]));
  assert.deepEqual(await mc.setMulti(entries), []);
  assert.deepEqual({ ...(await mc.getMulti(Object.keys(entries))) }, entries);
  assert.deepEqual(Object.keys(await mc.stats()).sort(), [one.address, secure.address].sort());
});

test("bad auth settings are BAD_ARGUMENT and never repeat the password; auth with a bridge is refused", () => {
  const bad = (auth, pattern, extra = {}) => assert.throws(() => new Client(["127.0.0.1:1"], { auth, ...extra }), (e) => {
    assert.equal(e.code, "BAD_ARGUMENT");
    assert.match(e.message, pattern);
    assertNoCredentials(e.message);
    return true;
  });
  bad("alice:s3cret", /auth must be \{ username, password \}/);
  bad({ username: "al ice", password: "s3cret" }, /username must be a non-empty string without spaces/);
  bad({ username: "alice", password: "s3cret\r\nflush_all" }, /password must be a non-empty string without spaces, line breaks/);
  bad({ username: "alice", password: "s3cret two" }, /password must be a non-empty string without spaces/);
  bad({ username: "alice", password: "" }, /password/);
  bad({ username: "alice", password: "s3cret", user: "x" }, /unknown setting "user"/);
  bad({ username: "alice", password: "s3cret" }, /auth cannot be used with a bridge/, { bridge: "ws://127.0.0.1:1/" });
});
