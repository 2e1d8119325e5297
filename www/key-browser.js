// The key browser: lists one server's items from `lru_crawler metadump`, filtered by key
// prefix and shown a page at a time; a key opens in the key panel. The dump is taken when the
// person asks (it walks the server's whole cache), and filtering and paging happen in the page.

import { el, replaceChildren } from "./dom.js";
import { explain } from "./error-advice.js";
import * as format from "./format.js";
import { parseMetadumpLine, filterByPrefix, page } from "./metadump.js";

/** Keys per page: a screenful on a laptop, still scrollable on a phone. */
export const PAGE_SIZE = 25;

/** Error codes that carry memcached's own answer (as opposed to a connection failure). */
const MEMCACHED_REFUSALS = new Set(["METADUMP_REFUSED", "CLIENT_ERROR", "SERVER_ERROR", "UNKNOWN_COMMAND"]);
const CRAWLER_ADVICE =
  "memcached lists keys only with its LRU crawler on (the default; not with -o no_lru_crawler), " +
  "and one listing at a time (BUSY): try again in a moment, or on a server that allows it.";

export class KeyBrowser {
  /**
   * `metadump(server)`: resolves to the server's metadump lines. `serverTimeNow(server)`:
   * memcached's clock (Unix seconds) for relative times, or undefined when unknown.
   * `open(key)`: shows a key in the key panel. `context`: `{origin, tokenRequired}`, for advice.
   */
  constructor({ servers, metadump, serverTimeNow, open, context, elements }) {
    this.metadump = metadump;
    this.serverTimeNow = serverTimeNow;
    this.open = open;
    this.context = context;
    this.e = elements;
    this.entries = null;
    this.server = null;
    this.listedAt = null;
    this.index = 0;
    replaceChildren(elements.server, servers.map((s) => el("option", { value: s }, s)));
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
    elements.prefix.addEventListener("input", () => {
      this.index = 0;
      this.draw();
    });
    elements.prev.addEventListener("click", () => {
      this.index -= 1;
      this.draw();
    });
    elements.next.addEventListener("click", () => {
      this.index += 1;
      this.draw();
    });
  }

  async load() {
    const server = this.e.server.value;
    this.e.load.disabled = true;
    replaceChildren(this.e.status, `Listing the keys of ${server}…`);
    try {
      const lines = await this.metadump(server);
      this.entries = lines.map(parseMetadumpLine).filter((entry) => entry !== null);
      this.server = server;
      this.listedAt = new Date();
      this.index = 0;
      this.draw();
    } catch (error) {
      this.entries = null;
      this.e.table.hidden = true;
      this.e.pager.hidden = true;
      const problem = explain(error, { server, ...this.context });
      // memcached's own refusal of a metadump is about its crawler, whatever its words.
      const advice = MEMCACHED_REFUSALS.has(error?.code) ? CRAWLER_ADVICE : problem.advice;
      replaceChildren(
        this.e.status,
        el(
          "span",
          { class: "notice error", "data-outcome": "error" },
          `Cannot list the keys of ${server}. ${problem.summary}`,
          advice && el("span", { class: "advice" }, advice),
        ),
      );
    } finally {
      this.e.load.disabled = false;
    }
  }

  draw() {
    if (!this.entries) return;
    const prefix = this.e.prefix.value;
    const chosen = filterByPrefix(this.entries, prefix);
    const shown = page(chosen, this.index, PAGE_SIZE);
    this.index = shown.index;
    const matching = prefix ? `${format.count(chosen.length)} of ${format.count(this.entries.length)} keys start with "${prefix}"` : `${format.count(this.entries.length)} keys`;
    replaceChildren(this.e.status, `${matching} on ${this.server} (listed at ${this.listedAt.toLocaleTimeString()}; list again to refresh).`);
    const now = this.serverTimeNow(this.server);
    replaceChildren(this.e.tbody, shown.entries.map((entry) => this.row(entry, now)));
    this.e.table.hidden = shown.total === 0;
    this.e.pager.hidden = shown.pages <= 1;
    replaceChildren(this.e.pageLabel, `${shown.first}–${shown.last} of ${shown.total}`);
    this.e.prev.disabled = shown.index === 0;
    this.e.next.disabled = shown.index >= shown.pages - 1;
  }

  row(entry, now) {
    const key = entry.keyIsText
      ? el("button", { type: "button", class: "link", title: "Look this key up", onclick: () => this.open(entry.key) }, entry.key)
      : el("span", { class: "mono", title: "This key is not UTF-8 text; shown percent-encoded" }, entry.key);
    return el(
      "tr",
      {},
      el("td", { class: "key" }, key),
      el("td", { class: "num" }, format.bytes(entry.size)),
      el("td", {}, expiresText(entry.expires, now)),
      el("td", {}, now === undefined ? format.MISSING : `${format.duration(now - entry.lastAccess)} ago`),
    );
  }
}

function expiresText(expires, now) {
  if (expires === -1 || expires === 0) return "never";
  if (now === undefined) return new Date(expires * 1000).toLocaleString();
  const left = expires - now;
  return left <= 0 ? "expired" : `in ${format.duration(left)}`;
}
