// The servers overview: polls every server's `stats` through its own connection, keeps the
// last sample and the rates since the one before, marks a server down with the reason its
// connection gave (and up again when it answers), and draws the cards and fleet figures.

import { el, replaceChildren } from "./dom.js";
import { explain } from "./error-advice.js";
import * as format from "./format.js";
import { summarize, ratesBetween, fleetRates } from "./stats-delta.js";

/** What the overview knows about one server between polls. */
class ServerWatch {
  constructor(address, context) {
    this.address = address;
    this.context = context;
    this.status = "connecting";
    this.sample = null;
    this.rates = null;
    this.problem = null;
    this.downSince = null;
  }

  recordStats(at, stats) {
    const sample = { at, stats };
    this.rates = ratesBetween(this.sample, sample);
    this.sample = sample;
    this.status = "up";
    this.problem = null;
    this.downSince = null;
  }

  recordFailure(at, error) {
    // The reason of the first failure is the telling one; later polls of a server that
    // stays down often only say that it is still marked dead.
    if (this.status !== "down" || error?.code !== "NO_SERVER") {
      this.problem = explain(error, { server: this.address, ...this.context });
    }
    if (this.status !== "down") this.downSince = at;
    this.status = "down";
    this.rates = null;
  }

  /** memcached's clock now, from its last `time` stat, for "expires in" in the key browser. */
  serverTimeNow(now) {
    if (!this.sample) return undefined;
    const time = Number(this.sample.stats.time);
    return Number.isFinite(time) ? time + (now - this.sample.at) / 1000 : undefined;
  }
}

export class Overview {
  /**
   * `servers`: the bridge's upstream addresses. `statsOf(address)`: resolves to one server's
   * `stats` as an object of memcached's names to values, or rejects with why it could not.
   * `context`: `{origin, tokenRequired}`, for advice on failures.
   */
  constructor({ servers, statsOf, cards, fleetSummary, context }) {
    this.watches = servers.map((address) => new ServerWatch(address, context));
    this.statsOf = statsOf;
    this.cards = cards;
    this.fleetSummary = fleetSummary;
    this.fleet = null;
  }

  /** Polls every server once (in parallel) and redraws. Resolves when all have answered or failed. */
  async refresh() {
    await Promise.all(
      this.watches.map(async (watch) => {
        try {
          const stats = await this.statsOf(watch.address);
          watch.recordStats(Date.now(), stats);
        } catch (error) {
          watch.recordFailure(Date.now(), error);
        }
      }),
    );
    this.fleet = fleetRates(Object.fromEntries(this.watches.map((w) => [w.address, w.rates])));
    this.draw();
  }

  watch(address) {
    return this.watches.find((w) => w.address === address);
  }

  draw() {
    replaceChildren(this.cards, this.watches.map((w) => serverCard(w)));
    replaceChildren(this.fleetSummary, fleetFigures(this.watches, this.fleet));
  }
}

function stat(label, value, extra = {}) {
  return el("div", extra, el("dt", {}, label), el("dd", { "data-stat": extra["data-for"] }, value));
}

function serverCard(watch) {
  const badge = el("span", { class: `badge ${watch.status}` }, watch.status);
  const head = el("header", {}, el("h3", {}, watch.address), badge);
  const card = { class: `server ${watch.status}`, "data-server": watch.address, "data-status": watch.status };
  if (watch.status === "connecting") {
    return el("article", card, head, el("p", { class: "muted" }, "Asking for stats…"));
  }
  if (watch.status === "down") {
    const since = new Date(watch.downSince).toLocaleTimeString();
    const seconds = Math.round((Date.now() - watch.downSince) / 1000);
    return el(
      "article",
      card,
      head,
      el("p", { class: "reason" }, watch.problem.summary),
      watch.problem.advice && el("p", { class: "advice" }, watch.problem.advice),
      el("p", { class: "since" }, `Down since ${since} (${format.duration(seconds)}); checked again at every refresh.`),
    );
  }
  const s = summarize(watch.sample.stats);
  const r = watch.rates;
  const fill = s.memoryFraction === undefined ? 0 : Math.min(1, s.memoryFraction);
  return el(
    "article",
    card,
    head,
    el(
      "dl",
      { class: "stats" },
      stat("Version", s.version ?? format.MISSING, { "data-for": "version" }),
      stat("Uptime", format.duration(s.uptime), { "data-for": "uptime" }),
      stat("Items", format.count(s.items), { "data-for": "items" }),
      stat("Connections", format.count(s.connections), { "data-for": "connections" }),
      stat("Gets", r ? format.rate(r.getsPerSec) : "measuring…", { "data-for": "gets" }),
      stat("Sets", r ? format.rate(r.setsPerSec) : "measuring…", { "data-for": "sets" }),
      stat("Hit ratio (since start)", format.percent(s.hitRatio), { "data-for": "hit-ratio" }),
      stat("Evictions", format.count(s.evictions), { "data-for": "evictions" }),
      el(
        "div",
        { class: "memory" },
        el("dt", {}, "Memory"),
        el(
          "dd",
          { "data-stat": "memory" },
          `${format.bytes(s.bytes)} of ${format.bytes(s.limitBytes)} (${format.percent(s.memoryFraction)})`,
          el("div", { class: "meter", role: "presentation" }, el("span", { style: `width:${(fill * 100).toFixed(1)}%` })),
        ),
      ),
    ),
  );
}

function figure(label, value, name) {
  return el("div", { class: "figure", "data-figure": name }, el("span", { class: "figure-label" }, label), el("span", { class: "figure-value" }, value));
}

function fleetFigures(watches, fleet) {
  const up = watches.filter((w) => w.status === "up");
  const items = up.reduce((total, w) => total + (summarize(w.sample.stats).items ?? 0), 0);
  const has = fleet && fleet.serversCounted > 0;
  const partial = has && fleet.serversMissing > 0;
  const mark = partial ? " *" : "";
  return [
    figure("Servers up", `${up.length} of ${watches.length}`, "servers-up"),
    figure("Items", format.count(items), "items"),
    figure("Gets", has ? format.rate(fleet.getsPerSec) + mark : format.MISSING, "gets"),
    figure("Sets", has ? format.rate(fleet.setsPerSec) + mark : format.MISSING, "sets"),
    figure("Hit ratio (last interval)", has ? format.percent(fleet.hitRatio) + mark : format.MISSING, "hit-ratio"),
    partial &&
      el(
        "p",
        { class: "muted fleet-note" },
        `* Counts ${fleet.serversCounted} of ${watches.length} servers. ${notCounted(watches)}`,
      ),
  ];
}

/** Why some servers are left out of the fleet's rates, naming them. */
function notCounted(watches) {
  const down = watches.filter((w) => w.status === "down").map((w) => w.address);
  const measuring = watches.filter((w) => w.status !== "down" && w.rates === null).map((w) => w.address);
  const parts = [];
  if (down.length) parts.push(`Down: ${down.join(", ")}.`);
  if (measuring.length) parts.push(`Measuring (one sample so far): ${measuring.join(", ")}.`);
  return parts.join(" ");
}
