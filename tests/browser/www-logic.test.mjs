// The dashboard's pure logic, checked in Node: rates from stats deltas (including a restart
// between two samples), the fleet sums, the chart's axis, metadump parsing and paging, and how
// values and flags are shown. The browser test covers the same modules running in the page.

import { test } from "node:test";
import assert from "node:assert/strict";

import { summarize, ratesBetween, fleetRates, RateHistory } from "../../www/stats-delta.js";
import { niceCeiling } from "../../www/line-chart.js";
import { parseMetadumpLine, filterByPrefix, page } from "../../www/metadump.js";
import { describeFlags, hexDump, presentValue, prettyJson } from "../../www/value-view.js";
import * as format from "../../www/format.js";
import { explain } from "../../www/error-advice.js";

const sample = (at, fields) => ({ at, stats: { pid: "42", uptime: "100", ...fields } });

test("rates are counter deltas divided by the seconds between the samples", () => {
  const a = sample(10_000, { cmd_get: "100", cmd_set: "10", get_hits: "80", get_misses: "20", evictions: "0" });
  const b = sample(12_000, { uptime: "102", cmd_get: "300", cmd_set: "50", get_hits: "230", get_misses: "70", evictions: "4" });
  const r = ratesBetween(a, b);
  assert.equal(r.seconds, 2);
  assert.equal(r.getsPerSec, 100);
  assert.equal(r.setsPerSec, 20);
  assert.equal(r.evictionsPerSec, 2);
  assert.equal(r.hitRatio, 150 / 200);
});

test("no rates across a restart, a counter going back, or zero elapsed time", () => {
  const a = sample(0, { cmd_get: "500", get_hits: "1", get_misses: "1" });
  assert.equal(ratesBetween(a, sample(2000, { pid: "43", uptime: "1", cmd_get: "3" })), null);
  assert.equal(ratesBetween(a, sample(2000, { uptime: "99", cmd_get: "600" })), null);
  assert.equal(ratesBetween(a, sample(2000, { uptime: "102", cmd_get: "499" })), null);
  assert.equal(ratesBetween(a, sample(0, { cmd_get: "600" })), null);
  assert.equal(ratesBetween(null, a), null);
});

test("an interval without gets has no hit ratio rather than 0% or NaN", () => {
  const a = sample(0, { cmd_get: "5", get_hits: "5", get_misses: "0" });
  const b = sample(3000, { uptime: "103", cmd_get: "5", get_hits: "5", get_misses: "0" });
  assert.equal(ratesBetween(a, b).hitRatio, undefined);
  assert.equal(ratesBetween(a, b).getsPerSec, 0);
});

test("summarize reads gauges from memcached's text values", () => {
  const s = summarize({ version: "1.6.18", uptime: "3600", curr_items: "12", bytes: "1024", limit_maxbytes: "4096", get_hits: "3", get_misses: "1", curr_connections: "5", evictions: "0" });
  assert.equal(s.version, "1.6.18");
  assert.equal(s.items, 12);
  assert.equal(s.memoryFraction, 0.25);
  assert.equal(s.hitRatio, 0.75);
  assert.equal(s.connections, 5);
  assert.equal(summarize({ get_hits: "0", get_misses: "0" }).hitRatio, undefined);
});

test("fleet rates sum the servers that have rates and count the ones that do not", () => {
  const one = { getsPerSec: 10, setsPerSec: 1, hitsPerSec: 9, missesPerSec: 1, evictionsPerSec: 0 };
  const two = { getsPerSec: 30, setsPerSec: 3, hitsPerSec: 15, missesPerSec: 15, evictionsPerSec: 1 };
  const f = fleetRates({ a: one, b: two, c: null });
  assert.equal(f.getsPerSec, 40);
  assert.equal(f.setsPerSec, 4);
  assert.equal(f.hitRatio, 24 / 40);
  assert.equal(f.serversCounted, 2);
  assert.equal(f.serversMissing, 1);
  assert.deepEqual(fleetRates({ a: null }), { serversMissing: 1, serversCounted: 0 });
});

test("rate history keeps its window and records outages as gaps", () => {
  const h = new RateHistory(10_000);
  h.record("s", 0, { getsPerSec: 1 });
  h.record("s", 5_000, null);
  h.record("s", 12_000, { getsPerSec: 3 });
  assert.deepEqual(h.series("s", "getsPerSec"), [[5_000, null], [12_000, 3]]);
  assert.deepEqual(h.names(), ["s"]);
});

test("chart axis tops are round numbers at or above the highest value", () => {
  assert.equal(niceCeiling(0), 1);
  assert.equal(niceCeiling(0.7), 1);
  assert.equal(niceCeiling(1), 1);
  assert.equal(niceCeiling(1.2), 2);
  assert.equal(niceCeiling(230), 250);
  assert.equal(niceCeiling(4100), 5000);
  assert.equal(niceCeiling(9000), 10000);
});

test("metadump lines parse into entries with decoded keys", () => {
  const e = parseMetadumpLine("key=user%3A%C3%A9 exp=-1 la=1795554895 cas=3 fetch=no cls=1 size=63");
  assert.deepEqual(e, { key: "user:é", keyIsText: true, expires: -1, lastAccess: 1795554895, cas: "3", fetched: false, slabClass: 1, size: 63 });
  assert.equal(parseMetadumpLine("key=%FF exp=-1 la=1 cas=1 fetch=yes cls=1 size=60").keyIsText, false);
  assert.equal(parseMetadumpLine("END"), null);
});

test("the key browser filters by prefix, sorts, and pages", () => {
  const entries = ["b:2", "a:1", "b:1", "b:3", "c"].map((key) => ({ key }));
  const chosen = filterByPrefix(entries, "b:");
  assert.deepEqual(chosen.map((e) => e.key), ["b:1", "b:2", "b:3"]);
  const p = page(chosen, 1, 2);
  assert.deepEqual(p.entries.map((e) => e.key), ["b:3"]);
  assert.deepEqual([p.index, p.pages, p.first, p.last, p.total], [1, 2, 3, 3, 3]);
  assert.equal(page(chosen, 9, 2).index, 1);
  assert.deepEqual([page([], 0, 50).first, page([], 0, 50).pages], [0, 1]);
});

test("flags are described in python-memcached's words", () => {
  assert.equal(describeFlags(0), "raw bytes");
  assert.equal(describeFlags(1), "serialized");
  assert.equal(describeFlags(9), "serialized, compressed (zlib)");
  assert.equal(describeFlags(16), "text (UTF-8)");
  assert.equal(describeFlags(0x102), "integer, other bits 0x100");
});

test("values are presented by kind", () => {
  assert.deepEqual(presentValue("hello"), { kind: "text", text: "hello" });
  assert.deepEqual(presentValue('{"a":1}'), { kind: "json-text", text: '{\n  "a": 1\n}' });
  assert.equal(presentValue("[not json").kind, "text");
  assert.deepEqual(presentValue(42), { kind: "number", text: "42" });
  assert.deepEqual(presentValue(2n ** 70n), { kind: "number", text: "1180591620717411303424" });
  assert.equal(presentValue([["The Godfather", 1972]]).kind, "structured");
  assert.equal(prettyJson({ n: 2n ** 64n, b: new Uint8Array([1, 255]) }), '{\n  "n": 18446744073709551616,\n  "b": "bytes(01ff)"\n}');
  assert.equal(prettyJson([["The Godfather", 1972, 9.2], { a: [] }]), '[\n  ["The Godfather", 1972, 9.2],\n  {\n    "a": []\n  }\n]');
  assert.equal(prettyJson(new Map([["k", new Set([1])]])), '{\n  "k": [1]\n}');
  const long = Array.from({ length: 30 }, (_, i) => i);
  assert.deepEqual(JSON.parse(prettyJson(long)), long);
  assert.ok(prettyJson(long).includes("\n"), "a long array is split over lines");
  const dump = presentValue(new Uint8Array([0x41, 0x00, 0xff]));
  assert.equal(dump.kind, "bytes");
  assert.equal(dump.text, "00000000  41 00 ff" + " ".repeat(39) + "  |A..|");
});

test("a long hex dump is cut and says how much is left out", () => {
  const text = hexDump(new Uint8Array(40), 32);
  assert.equal(text.split("\n").length, 3);
  assert.match(text, /… 8 more bytes not shown$/);
});

test("numbers are formatted for people", () => {
  assert.equal(format.bytes(512), "512 B");
  assert.equal(format.bytes(64 * 1024 * 1024), "64 MiB");
  assert.equal(format.duration(90061), "1d 1h");
  assert.equal(format.duration(59), "59s");
  assert.equal(format.rate(1234), "1.2k/s");
  assert.equal(format.rate(0.25), "0.3/s");
  assert.equal(format.percent(0.5), "50%");
  assert.equal(format.percent(0.0004), "<0.1%");
  assert.equal(format.percent(0.99999), "99.9%");
  assert.equal(format.percent(undefined), format.MISSING);
});

test("errors become advice keyed on their code", () => {
  const down = explain({ code: "CONNECTION_ERROR", message: "upstream 127.0.0.1:1 unreachable", server: "127.0.0.1:1" });
  assert.match(down.summary, /Cannot reach memcached at 127\.0\.0\.1:1/);
  assert.match(down.advice, /running at 127\.0\.0\.1:1/);
  assert.match(explain({ code: "BAD_KEY", message: "bad key" }).advice, /250 bytes/);
  assert.match(explain({ code: "METADUMP_REFUSED", message: "BUSY", server: "h:1" }).summary, /^Memcached at h:1 would not list its keys: BUSY\./);
  const handshake = explain({ code: "CONNECTION_ERROR", message: "closed (code 1006)", closeCode: 1006, server: "h:1" }, { tokenRequired: true, origin: "http://o" });
  assert.match(handshake.advice, /--token-file.*--allow-origin http:\/\/o/);
  assert.match(explain({ code: "BRIDGE_REFUSED", message: "read-only bridge refuses set" }).advice, /--read-only/);
  assert.match(explain({ code: "BRIDGE_REFUSED", message: "origin not allowed" }, { origin: "http://x" }).advice, /--allow-origin http:\/\/x/);
});

test("the chart's time labels read as minutes and seconds", async () => {
  const { timeAgo } = await import("../../www/line-chart.js");
  assert.equal(timeAgo(30_000), "30 s");
  assert.equal(timeAgo(600_000), "10 min");
  assert.equal(timeAgo(90_000), "1.5 min");
});

test("the history knows its oldest point", () => {
  const h = new RateHistory(60_000);
  assert.equal(h.oldest(), undefined);
  h.record("a", 5_000, null);
  h.record("b", 3_000, null);
  assert.equal(h.oldest(), 3_000);
});
