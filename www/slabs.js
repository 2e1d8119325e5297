// The memory view: one server's slab classes as memcached reports them in `stats slabs`
// (chunk size, pages, chunks used, memory asked for) and `stats items` (items, evictions,
// age of the oldest item), one row per class in use, refreshed with the overview.

import { el, replaceChildren } from "./dom.js";
import { explain } from "./error-advice.js";
import * as format from "./format.js";

/** A `N:name` or `items:N:name` stat's class number and name, or null for a global stat. */
function classStat(name) {
  const m = /^(?:items:)?(\d+):(\w+)$/.exec(name);
  return m ? { cls: Number(m[1]), field: m[2] } : null;
}

function numberOf(value) {
  const n = Number(value);
  return value === undefined || value === "" || !Number.isFinite(n) ? undefined : n;
}

/**
 * The rows of the memory view from one server's `stats slabs` and `stats items` answers (as
 * the client returns them: `{ "1:chunk_size": "96", ... }`, `{ "items:1:number": "5", ... }`),
 * sorted by class. `memory` is what the class holds from the slab allocator (its pages'
 * chunks), `requested` what the items in it asked for; a class listed only in one of the
 * two answers still gets a row (with no items and no evictions when `stats items` left it out).
 */
export function slabClasses(slabs, items) {
  const rows = new Map();
  const row = (cls) => {
    if (!rows.has(cls)) rows.set(cls, { cls, stats: {} });
    return rows.get(cls);
  };
  for (const [name, value] of Object.entries(slabs ?? {})) {
    const stat = classStat(name);
    if (stat && !name.startsWith("items:")) row(stat.cls).stats[stat.field] = value;
  }
  for (const [name, value] of Object.entries(items ?? {})) {
    const stat = classStat(name);
    if (stat && name.startsWith("items:")) row(stat.cls).stats[`item_${stat.field}`] = value;
  }
  return [...rows.values()].sort((a, b) => a.cls - b.cls).map(({ cls, stats }) => {
    const chunkSize = numberOf(stats.chunk_size);
    const totalChunks = numberOf(stats.total_chunks);
    return {
      cls,
      chunkSize,
      pages: numberOf(stats.total_pages),
      usedChunks: numberOf(stats.used_chunks),
      totalChunks,
      memory: chunkSize !== undefined && totalChunks !== undefined ? chunkSize * totalChunks : undefined,
      // memcached 1.6 reports it in `stats items`; older ones in `stats slabs`.
      requested: numberOf(stats.item_mem_requested ?? stats.mem_requested),
      // memcached leaves a class without items out of `stats items`: none there is 0.
      items: numberOf(stats.item_number) ?? (chunkSize !== undefined ? 0 : undefined),
      evictions: numberOf(stats.item_evicted) ?? (chunkSize !== undefined ? 0 : undefined),
      oldestAge: numberOf(stats.item_age),
    };
  });
}

export class SlabView {
  /** `statsOf(server, args)`: resolves to that server's `stats args` answer. */
  constructor({ servers, statsOf, context, elements }) {
    this.statsOf = statsOf;
    this.context = context;
    this.e = elements;
    this.busy = false;
    replaceChildren(elements.server, servers.map((s) => el("option", { value: s }, s)));
    elements.server.addEventListener("change", () => this.refresh());
  }

  /** Asks the chosen server for its slab and item stats and redraws; never throws. */
  async refresh() {
    if (this.busy) return;
    this.busy = true;
    const server = this.e.server.value;
    try {
      const [slabs, items] = await Promise.all([this.statsOf(server, "slabs"), this.statsOf(server, "items")]);
      if (server !== this.e.server.value) return;
      const rows = slabClasses(slabs, items);
      const total = rows.reduce((sum, r) => sum + (r.memory ?? 0), 0);
      replaceChildren(
        this.e.status,
        rows.length === 0
          ? `${server} holds no items yet: memcached assigns slab pages as items arrive.`
          : `${rows.length} slab classes in use on ${server}, ${format.bytes(total)} of chunks.`,
      );
      replaceChildren(this.e.tbody, rows.map((r) => el(
        "tr",
        { "data-class": r.cls },
        el("td", { class: "num" }, r.cls),
        el("td", { class: "num", "data-slab": "chunk-size" }, format.bytes(r.chunkSize)),
        el("td", { class: "num", "data-slab": "items" }, format.count(r.items)),
        el("td", { class: "num", "data-slab": "memory" }, format.bytes(r.memory)),
        el("td", { class: "num", title: "what the items stored asked for" }, format.bytes(r.requested)),
        el("td", { class: "num", "data-slab": "evictions" }, format.count(r.evictions)),
        el("td", { class: "num", "data-slab": "oldest" }, r.oldestAge === undefined ? format.MISSING : format.duration(r.oldestAge)),
      )));
      this.e.table.hidden = rows.length === 0;
    } catch (error) {
      const problem = explain(error, { server, ...this.context });
      this.e.table.hidden = true;
      replaceChildren(this.e.status, el(
        "span",
        { class: "notice error", "data-outcome": "error" },
        `Cannot read the slab classes of ${server}. ${problem.summary}`,
        problem.advice && el("span", { class: "advice" }, problem.advice),
      ));
    } finally {
      this.busy = false;
    }
  }
}
