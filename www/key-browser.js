// The key browser: lists the items of one server, or of all of them, from `lru_crawler
// metadump`; searches keys by substring, sorts by any column, shows each item's remaining
// time (TTL) and pages; a key opens in the key panel, and the keys found can be deleted
// together after a confirmation. The dump is taken when the person asks (it walks the
// server's whole cache); searching, sorting and paging happen in the page.

import { el, replaceChildren } from "./dom.js";
import { explain } from "./error-advice.js";
import * as format from "./format.js";
import { parseMetadumpLine, search, matchWords, sortEntries, page } from "./metadump.js";

/** Keys per page: a screenful on a laptop, still scrollable on a phone. */
export const PAGE_SIZE = 25;
/** The server choice that lists every server. */
export const ALL_SERVERS = "*";

/** Error codes that carry memcached's own answer (as opposed to a connection failure). */
const MEMCACHED_REFUSALS = new Set(["METADUMP_REFUSED", "CLIENT_ERROR", "SERVER_ERROR", "UNKNOWN_COMMAND"]);
const CRAWLER_ADVICE =
  "memcached lists keys only with its LRU crawler on (the default; not with -o no_lru_crawler), " +
  "and one listing at a time (BUSY): try again in a moment, or on a server that allows it.";

export class KeyBrowser {
  /**
   * `metadump(server)`: resolves to the server's metadump lines. `serverTimeNow(server)`:
   * memcached's clock (Unix seconds) for relative times, or undefined when unknown.
   * `open(key)`: shows a key in the key panel. `deleteKeys(server, keys)`: deletes them on
   * that server, resolving to `{deleted, missing, failed: [{key, error}]}`. `context`:
   * `{origin, tokenRequired}`, for advice.
   */
  constructor({ servers, metadump, serverTimeNow, open, deleteKeys, context, elements }) {
    this.servers = servers;
    this.metadump = metadump;
    this.serverTimeNow = serverTimeNow;
    this.open = open;
    this.deleteKeys = deleteKeys;
    this.context = context;
    this.e = elements;
    this.entries = null;
    this.scope = null;
    this.listedAt = null;
    this.index = 0;
    this.sort = { column: "key", descending: false };
    this.failures = [];
    replaceChildren(
      elements.server,
      servers.map((s) => el("option", { value: s }, s)),
      servers.length > 1 && el("option", { value: ALL_SERVERS }, `all ${servers.length} servers`),
    );
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
    for (const input of [elements.prefix, elements.match]) {
      input.addEventListener("input", () => {
        this.index = 0;
        this.cancelDelete();
        this.draw();
      });
    }
    elements.prev.addEventListener("click", () => {
      this.index -= 1;
      this.draw();
    });
    elements.next.addEventListener("click", () => {
      this.index += 1;
      this.draw();
    });
    for (const button of elements.table.querySelectorAll("thead button[data-sort]")) {
      button.addEventListener("click", () => {
        const column = button.dataset.sort;
        this.sort = { column, descending: this.sort.column === column ? !this.sort.descending : false };
        this.index = 0;
        this.draw();
      });
    }
    elements.deleteMatching.addEventListener("click", () => this.askDelete());
  }

  /** Lists the chosen server (or every server), keeping what the servers that answered sent. */
  async load() {
    const choice = this.e.server.value;
    const servers = choice === ALL_SERVERS ? this.servers : [choice];
    this.e.load.disabled = true;
    this.cancelDelete();
    replaceChildren(this.e.status, `Listing the keys of ${choice === ALL_SERVERS ? `all ${servers.length} servers` : choice}…`);
    try {
      const answers = await Promise.allSettled(servers.map((server) => this.metadump(server)));
      const failures = [];
      const entries = [];
      answers.forEach((answer, i) => {
        if (answer.status === "rejected") {
          failures.push({ server: servers[i], error: answer.reason });
          return;
        }
        for (const line of answer.value) {
          const entry = parseMetadumpLine(line);
          if (entry !== null) entries.push({ ...entry, server: servers[i] });
        }
      });
      this.failures = failures;
      if (failures.length === servers.length) {
        this.entries = null;
        this.e.table.hidden = true;
        this.e.pager.hidden = true;
        this.e.deleteMatching.hidden = true;
        replaceChildren(this.e.status, failures.map((f) => this.failureNote(f)));
        return;
      }
      this.entries = entries;
      this.scope = choice;
      this.listedAt = new Date();
      this.index = 0;
      this.draw();
    } finally {
      this.e.load.disabled = false;
    }
  }

  failureNote({ server, error }) {
    const problem = explain(error, { server, ...this.context });
    // memcached's own refusal of a metadump is about its crawler, whatever its words.
    const advice = MEMCACHED_REFUSALS.has(error?.code) ? CRAWLER_ADVICE : problem.advice;
    return el(
      "span",
      { class: "notice error", "data-outcome": "error" },
      `Cannot list the keys of ${server}. ${problem.summary}`,
      advice && el("span", { class: "advice" }, advice),
    );
  }

  /** The entries the search matches, in the chosen order. */
  matching() {
    return sortEntries(search(this.entries, this.e.prefix.value, this.e.match.value), this.sort.column, this.sort.descending);
  }

  draw() {
    if (!this.entries) return;
    const text = this.e.prefix.value;
    const chosen = this.matching();
    const shown = page(chosen, this.index, PAGE_SIZE);
    this.index = shown.index;
    const where = this.scope === ALL_SERVERS ? `all ${this.servers.length} servers` : this.scope;
    const mode = this.e.match.value;
    const matching = text ? `${format.count(chosen.length)} of ${format.count(this.entries.length)} keys ${matchWords(text, mode)}` : `${format.count(this.entries.length)} keys`;
    replaceChildren(
      this.e.status,
      `${matching} on ${where} (listed at ${this.listedAt.toLocaleTimeString()}; list again to refresh).`,
      this.failures.map((f) => this.failureNote(f)),
    );
    replaceChildren(this.e.tbody, shown.entries.map((entry) => this.row(entry, this.serverTimeNow(entry.server))));
    for (const button of this.e.table.querySelectorAll("thead button[data-sort]")) {
      const sorted = button.dataset.sort === this.sort.column;
      button.closest("th").setAttribute("aria-sort", sorted ? (this.sort.descending ? "descending" : "ascending") : "none");
    }
    this.e.table.hidden = shown.total === 0;
    this.e.pager.hidden = shown.pages <= 1;
    replaceChildren(this.e.pageLabel, `${shown.first}–${shown.last} of ${shown.total}`);
    this.e.prev.disabled = shown.index === 0;
    this.e.next.disabled = shown.index >= shown.pages - 1;
    const deletable = chosen.filter((entry) => entry.keyIsText).length;
    this.e.deleteMatching.hidden = deletable === 0;
    replaceChildren(this.e.deleteMatching, text ? `Delete the ${format.count(deletable)} keys that ${matchWords(text, mode)}…` : `Delete all ${format.count(deletable)} listed keys…`);
  }

  row(entry, now) {
    const key = entry.keyIsText
      ? el("button", { type: "button", class: "link", title: "Look this key up", onclick: () => this.open(entry.key) }, entry.key)
      : el("span", { class: "mono", title: "This key is not UTF-8 text; shown percent-encoded" }, entry.key);
    return el(
      "tr",
      { "data-size": entry.size, "data-expires": entry.expires },
      el("td", { class: "key" }, key),
      el("td", { class: "server" }, entry.server),
      el("td", { class: "num" }, format.bytes(entry.size)),
      el("td", { class: "ttl" }, expiresText(entry.expires, now)),
      el("td", {}, now === undefined ? format.MISSING : `${format.duration(now - entry.lastAccess)} ago`),
    );
  }

  /** The first step of deleting the matching keys: say exactly what will go, and wait. */
  askDelete() {
    if (!this.entries) return;
    const keys = this.matching().filter((entry) => entry.keyIsText);
    const servers = new Set(keys.map((entry) => entry.server));
    const text = this.e.prefix.value;
    replaceChildren(
      this.e.confirm,
      el("p", {}, `Delete ${format.count(keys.length)} keys${text ? ` that ${matchWords(text, this.e.match.value)}` : ""} from ${servers.size === 1 ? [...servers][0] : `${servers.size} servers`}? memcached cannot undo this.`),
      el("button", { type: "button", class: "danger", id: "browser-delete-confirm", onclick: () => this.runDelete(keys) }, `Delete ${format.count(keys.length)} keys`),
      el("button", { type: "button", id: "browser-delete-cancel", onclick: () => this.cancelDelete() }, "Cancel"),
    );
    this.e.confirm.hidden = false;
  }

  cancelDelete() {
    replaceChildren(this.e.confirm);
    this.e.confirm.hidden = true;
  }

  /** Deletes the confirmed keys server by server and says what happened, refusals included. */
  async runDelete(entries) {
    this.e.confirm.querySelectorAll("button").forEach((b) => (b.disabled = true));
    const byServer = new Map();
    for (const entry of entries) {
      if (!byServer.has(entry.server)) byServer.set(entry.server, []);
      byServer.get(entry.server).push(entry.key);
    }
    let deleted = 0;
    let missing = 0;
    const failed = [];
    for (const [server, keys] of byServer) {
      const outcome = await this.deleteKeys(server, keys);
      deleted += outcome.deleted;
      missing += outcome.missing;
      for (const f of outcome.failed) failed.push({ server, ...f });
    }
    const gone = new Set(entries.map((e) => `${e.server} ${e.key}`));
    for (const f of failed) gone.delete(`${f.server} ${f.key}`);
    this.entries = this.entries.filter((e) => !gone.has(`${e.server} ${e.key}`));
    const summary = `Deleted ${format.count(deleted)} keys${missing ? ` (${format.count(missing)} were already gone)` : ""}.`;
    let note;
    if (failed.length === 0) {
      note = el("p", { class: "ok", "data-outcome": "ok" }, summary);
    } else {
      const problem = explain(failed[0].error, { server: failed[0].server, ...this.context });
      note = el(
        "p",
        { class: "notice error", "data-outcome": "error" },
        `${summary} ${format.count(failed.length)} could not be deleted: ${problem.summary}`,
        problem.advice && el("span", { class: "advice" }, problem.advice),
      );
    }
    this.draw();
    replaceChildren(this.e.confirm, note);
    this.e.confirm.hidden = false;
  }
}

function expiresText(expires, now) {
  if (expires === -1 || expires === 0) return "never";
  if (now === undefined) return new Date(expires * 1000).toLocaleString();
  const left = expires - now;
  return left <= 0 ? "expired" : `in ${format.duration(left)}`;
}
