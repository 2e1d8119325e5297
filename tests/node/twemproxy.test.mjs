// The client through twemproxy (Debian's nutcracker 0.5) in front of three real memcached:
// every data command twemproxy relays works, and with `behindProxy: true` the commands it
// does not relay (it closes the connection on them) are refused before they are sent, with
// NOT_RELAYED naming the reason; without the option such a command fails, never hangs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../client-wasm/js/node.js";
import { startNutcracker, tempDir } from "./support/secure.mjs";
import { startMemcacheds } from "./support/servers.mjs";

const cleanup = [];
let backends, proxy, tmp;
before(async () => {
  tmp = tempDir();
  cleanup.push(async () => tmp.remove());
  backends = await startMemcacheds(3);
  cleanup.push(() => backends.stopAll());
  proxy = await startNutcracker(tmp.dir, backends.map((b) => b.address));
  cleanup.push(() => proxy.stop());
});
after(async () => { for (const f of cleanup.reverse()) await f(); });

function client(servers, options) {
  const mc = new Client(servers, { timeout: 2000, ...options });
  cleanup.push(async () => mc.close());
  return mc;
}

const notRelayed = (command) => (e) => {
  assert.equal(e.code, "NOT_RELAYED", e.message);
  assert.ok(e.message.includes(command), e.message);
  assert.match(e.message, /not relayed by twemproxy/);
  return true;
};

test("every data command twemproxy relays works through it, sharded over the three memcached", async () => {
  const mc = client([proxy.address], { behindProxy: true });
  assert.equal(await mc.set("tw-a", "1"), true);
  assert.equal(await mc.get("tw-a"), "1");
  assert.equal(await mc.add("tw-a", "2"), false);
  assert.equal(await mc.add("tw-b", "b"), true);
  assert.equal(await mc.replace("tw-b", "bb"), true);
  assert.equal(await mc.append("tw-b", "!"), true);
  assert.equal(await mc.prepend("tw-b", "<"), true);
  assert.equal(await mc.get("tw-b"), "<bb!");
  const { value, cas } = await mc.gets("tw-b");
  assert.equal(value, "<bb!");
  assert.equal(await mc.cas("tw-b", "cas", cas), true);
  assert.equal(await mc.cas("tw-b", "again", cas), false);
  assert.equal(await mc.touch("tw-b", 100), true);
  assert.equal(await mc.set("tw-n", 10), true);
  assert.equal(await mc.incr("tw-n", 5), 15);
  assert.equal(await mc.decr("tw-n", 3), 12);
  assert.equal(await mc.delete("tw-n"), true);
  assert.equal(await mc.delete("tw-n"), false);
  assert.equal((await mc.inspect("tw-a")).value, "1");
  assert.deepEqual(Object.values(await mc.version()), ["1.6.18"]);
  // Multi-key calls: twemproxy splits the get line across its servers and joins the values.
  const entries = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`tw-multi-${i}`, { i }]));
  assert.deepEqual(await mc.setMulti(entries), []);
  assert.deepEqual({ ...(await mc.getMulti([...Object.keys(entries), "tw-missing"])) }, entries);
  assert.equal(await mc.deleteMulti(Object.keys(entries).slice(0, 100)), true);
  assert.equal(Object.keys(await mc.getMulti(Object.keys(entries))).length, 200);
  // The keys are spread over all three memcached behind the proxy.
  for (const backend of backends) {
    const direct = client([backend.address]);
    const items = Number(Object.values(await direct.stats())[0].curr_items);
    assert.ok(items > 20, `${backend.address} holds ${items} items`);
  }
});

test("behindProxy: stats, flush_all, metadump and the meta calls are refused unsent with NOT_RELAYED", async () => {
  const mc = client([proxy.address], { behindProxy: true });
  assert.equal(await mc.set("tw-keep", "kept"), true);
  await assert.rejects(mc.stats(), notRelayed("stats"));
  await assert.rejects(mc.flushAll(), notRelayed("flush_all"));
  await assert.rejects(mc.metadump({ server: proxy.address }), notRelayed("metadump"));
  await assert.rejects(mc.getOrSet("tw-gos", async () => "v"), notRelayed("meta protocol"));
  await assert.rejects(mc.getWithTtl("tw-keep"), notRelayed("meta protocol"));
  await assert.rejects(mc.getAndTouch("tw-keep", 10), notRelayed("meta protocol"));
  await assert.rejects(mc.invalidate("tw-keep"), notRelayed("meta protocol"));
  await assert.rejects(mc.incr("tw-c", 1, { initial: 1 }), notRelayed("meta protocol"));
  await assert.rejects(mc.set("tw-q", "v", 0, { noreply: true }), notRelayed("noreply write"));
  await assert.rejects(mc.delete("tw-keep", { noreply: true }), notRelayed("noreply write"));
  // The connection was never disturbed: a call in the same tick as a refused one works,
  // and nothing was flushed.
  const [refused, got] = await Promise.allSettled([mc.stats(), mc.get("tw-keep")]);
  assert.equal(refused.reason.code, "NOT_RELAYED");
  assert.equal(got.value, "kept");
  assert.equal(mc.servers[0].up, true);
});

test("without behindProxy a command twemproxy drops fails with CONNECTION_ERROR, not a hang, and the client recovers", async () => {
  const mc = client([proxy.address], { timeout: 1500 });
  assert.equal(await mc.set("tw-plain", "p"), true);
  const started = Date.now();
  await assert.rejects(mc.stats(), (e) => e.code === "CONNECTION_ERROR");
  assert.ok(Date.now() - started < 1500, "failed when the proxy closed the connection, before the timeout");
  // The next call reconnects (the server is probed back up first).
  const until = Date.now() + 10_000;
  let value;
  while (value === undefined) {
    assert.ok(Date.now() < until, "no successful get within 10 s");
    value = await mc.get("tw-plain").catch((e) => { assert.equal(e.code, "NO_SERVER", e.message); return undefined; });
    if (value === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(value, "p");
});

test("behindProxy must be a boolean and does not go with auth", () => {
  assert.throws(() => new Client([proxy.address], { behindProxy: "yes" }), (e) => e.code === "BAD_ARGUMENT");
  assert.throws(() => new Client([proxy.address], { behindProxy: true, auth: { username: "a", password: "b" } }),
    (e) => e.code === "BAD_ARGUMENT" && /twemproxy does not relay memcached's authentication/.test(e.message));
});
