// The dashboard's pure logic, checked in Node: rates from stats deltas (including a restart
// between two samples), the fleet sums, the chart's axis, metadump parsing and paging, and how
// values and flags are shown. The browser test covers the same modules running in the page.

import { test } from "node:test";
import assert from "node:assert/strict";

import { summarize, ratesBetween, fleetRates, RateHistory } from "../../www/stats-delta.js";
import { niceCeiling } from "../../www/line-chart.js";
import { parseMetadumpLine, filterByPrefix, page, search, sortEntries } from "../../www/metadump.js";
import { slabClasses } from "../../www/slabs.js";
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

test("rates include bytes in and out per second and the open connections", () => {
  const a = sample(0, { cmd_get: "0", bytes_read: "1000", bytes_written: "5000", curr_connections: "3" });
  const b = sample(2000, { uptime: "102", cmd_get: "10", bytes_read: "3000", bytes_written: "9000", curr_connections: "7" });
  const r = ratesBetween(a, b);
  assert.equal(r.bytesInPerSec, 1000);
  assert.equal(r.bytesOutPerSec, 2000);
  assert.equal(r.connections, 7);
  const f = fleetRates({ a: r, b: { ...r, connections: 2 } });
  assert.equal(f.bytesInPerSec, 2000);
  assert.equal(f.connections, 9);
  assert.equal(format.byteRate(1536), "1.5 KiB/s");
});

test("a saved history comes back within its window, for the servers listed now, and bad data gives an empty one", () => {
  const h = new RateHistory(60_000);
  h.record("a", 10_000, { getsPerSec: 5, connections: 2, deltas: { cmd_get: 10 } });
  h.record("a", 12_000, null);
  h.record("gone", 12_000, { getsPerSec: 1 });
  h.record("a", 70_000, { getsPerSec: 7 });
  const saved = JSON.parse(JSON.stringify(h));
  const back = RateHistory.restore(saved, 60_000, ["a", "b"], 71_000);
  assert.deepEqual(back.names(), ["a"]);
  assert.deepEqual(back.series("a", "getsPerSec"), [[12_000, null], [70_000, 7]]);
  // Only what the charts draw is kept.
  assert.equal(JSON.stringify(saved).includes("deltas"), false);
  for (const bad of [null, "x", { version: 2, series: {} }, { version: 1, series: { a: "no" } }, { version: 1, series: { a: [[1], ["x", [1]]] } }]) {
    assert.deepEqual(RateHistory.restore(bad, 60_000, ["a"], 71_000).names(), [], JSON.stringify(bad));
  }
});

test("slab classes join stats slabs and stats items per class, sorted, with memory from the chunks", () => {
  const slabs = {
    "1:chunk_size": "96", "1:total_pages": "1", "1:total_chunks": "10922", "1:used_chunks": "1",
    "12:chunk_size": "1184", "12:total_pages": "2", "12:total_chunks": "1770", "12:used_chunks": "900",
    active_slabs: "2", total_malloced: "3145728",
  };
  const items = {
    "items:12:number": "900", "items:12:age": "3600", "items:12:evicted": "4", "items:12:mem_requested": "900000",
    "items:1:number": "1", "items:1:age": "0", "items:1:evicted": "0", "items:1:mem_requested": "63",
  };
  const rows = slabClasses(slabs, items);
  assert.deepEqual(rows.map((r) => r.cls), [1, 12]);
  assert.deepEqual(rows[1], {
    cls: 12, chunkSize: 1184, pages: 2, usedChunks: 900, totalChunks: 1770, memory: 1184 * 1770,
    requested: 900000, items: 900, evictions: 4, oldestAge: 3600,
  });
  assert.equal(slabClasses({}, {}).length, 0);
  assert.equal(slabClasses({ "3:chunk_size": "152" }, {})[0].items, 0);
});

test("the key browser searches by substring and sorts by any column, never-expiring items last", () => {
  const entries = [
    { key: "user:2", server: "b", size: 300, expires: -1, lastAccess: 5 },
    { key: "a:user:1", server: "a", size: 100, expires: 2000, lastAccess: 9 },
    { key: "user:1", server: "a", size: 200, expires: 1000, lastAccess: 7 },
    { key: "other", server: "b", size: 50, expires: 0, lastAccess: 1 },
  ];
  assert.deepEqual(search(entries, "user:").map((e) => e.key), ["user:2", "a:user:1", "user:1"]);
  assert.equal(search(entries, "").length, 4);
  assert.deepEqual(search(entries, "user:", "prefix").map((e) => e.key), ["user:2", "user:1"]);
  const keys = (column, descending) => sortEntries(entries, column, descending).map((e) => e.key);
  assert.deepEqual(keys("key"), ["a:user:1", "other", "user:1", "user:2"]);
  assert.deepEqual(keys("size", true), ["user:2", "user:1", "a:user:1", "other"]);
  assert.deepEqual(keys("expires"), ["user:1", "a:user:1", "other", "user:2"]);
  assert.deepEqual(keys("lastAccess"), ["other", "user:2", "user:1", "a:user:1"]);
  // Ties (same server) keep key order, so paging is stable.
  assert.deepEqual(keys("server"), ["a:user:1", "user:1", "other", "user:2"]);
});

test("values are edited as what they are: text, integer or JSON; raw bytes are not editable", async () => {
  const { editableForm, parseEdited } = await import("../../www/value-editor.js");
  assert.equal(editableForm({ flags: 16, value: "hi" }).kind, "text");
  assert.equal(editableForm({ flags: 16 | 8, value: "big text" }).kind, "text");
  assert.deepEqual([editableForm({ flags: 2, value: 41 }).kind, editableForm({ flags: 2, value: 41 }).text], ["number", "41"]);
  assert.equal(editableForm({ flags: 1, value: { a: [1] } }).text, '{\n  "a": [\n    1\n  ]\n}');
  assert.equal(editableForm({ flags: 0, value: new Uint8Array([1]) }), null);
  assert.equal(parseEdited("text", " as typed "), " as typed ");
  assert.equal(parseEdited("number", " 42 "), 42);
  assert.equal(parseEdited("number", "18446744073709551615"), 18446744073709551615n);
  assert.throws(() => parseEdited("number", "-1"), /whole number/);
  assert.throws(() => parseEdited("number", "18446744073709551616"), /64-bit/);
  assert.deepEqual(parseEdited("json", '{"theme":"light"}'), { theme: "light" });
  assert.throws(() => parseEdited("json", "{theme"), /not valid JSON/);
});
