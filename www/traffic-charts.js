// The traffic charts: gets and sets per second, the hit ratio, evictions, bytes in and out
// and open connections over the last minutes, one line per server and a heavier one for the
// whole fleet, from the overview's rate history.

import { drawLineChart } from "./line-chart.js";
import * as format from "./format.js";

/** Line colours, one per server in the order the bridge lists them; the fleet is dark ink.
 *  Chosen to stay apart for the common kinds of colour blindness. */
const SERVER_COLOURS = ["#1f6feb", "#e36209", "#2da44e", "#8250df", "#bf3989", "#0a7e8c", "#9a6700", "#6e7781"];
const FLEET_COLOUR = "#1d2733";

/** The shortest time axis: a page open for a few seconds spreads its few points across the
 *  chart rather than squeezing them into the right edge of the full history window. */
const MIN_WINDOW_MS = 10 * 1000;

/** The name of the fleet's series in the history. */
export const FLEET = "fleet";

export function serverColour(index) {
  return SERVER_COLOURS[index % SERVER_COLOURS.length];
}

/** Each chart: its element's name in `charts`, title, history field and number format. */
const CHARTS = [
  { chart: "gets", title: "Gets per second", field: "getsPerSec", format: format.rate },
  { chart: "sets", title: "Sets per second", field: "setsPerSec", format: format.rate },
  { chart: "hits", title: "Hit ratio", field: "hitRatio", yMax: 1, format: format.percent },
  { chart: "evictions", title: "Evictions per second", field: "evictionsPerSec", format: format.rate },
  { chart: "bytesIn", title: "Bytes in per second", field: "bytesInPerSec", format: format.byteRate },
  { chart: "bytesOut", title: "Bytes out per second", field: "bytesOutPerSec", format: format.byteRate },
  { chart: "connections", title: "Open connections", field: "connections", format: format.count },
];

/** Redraws the charts present in `charts` from `history` (a RateHistory) for `servers`, ending at `now`. */
export function drawTrafficCharts(charts, history, servers, now) {
  const seriesOf = (field) => [
    { name: FLEET, color: FLEET_COLOUR, emphasis: true, points: history.series(FLEET, field) },
    ...servers.map((address, i) => ({ name: address, color: serverColour(i), points: history.series(address, field) })),
  ];
  const kept = now - (history.oldest() ?? now);
  const common = { now, windowMs: Math.min(history.windowMs, Math.max(MIN_WINDOW_MS, kept)) };
  for (const { chart, title, field, yMax, format: formatValue } of CHARTS) {
    if (!charts[chart]) continue;
    drawLineChart(charts[chart], { ...common, title, series: seriesOf(field), yMax, format: formatValue });
  }
}
