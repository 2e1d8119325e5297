// A small time-series line chart in plain SVG: lines over a fixed time window, gaps where a
// value is missing, and labels in HTML around the plot so text keeps its size at any width
// (the SVG itself stretches; its strokes do not, thanks to non-scaling-stroke).

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
/** The plot's coordinate box; the SVG stretches it to the element's size. */
const PLOT_WIDTH = 1000;
const PLOT_HEIGHT = 200;
/** Horizontal grid lines, at quarters of the axis: enough to read a value off the line. */
const GRID_STEPS = 4;

/** The smallest "round" number (1, 2, 2.5 or 5 times a power of ten) at or above `value`. */
export function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value * (1 - 1e-9)) return step * power;
  }
  return 10 * power;
}

/** An x-axis label: "30 s", "5 min", "2.5 min". */
export function timeAgo(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.round((seconds / 60) * 10) / 10;
  return `${minutes} min`;
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** The SVG path data of one series: runs of consecutive values, broken at nulls. */
function pathData(points, x, y) {
  let d = "";
  let drawing = false;
  for (const [at, value] of points) {
    if (value === null || value === undefined) {
      drawing = false;
      continue;
    }
    d += `${drawing ? "L" : "M"}${x(at).toFixed(1)},${y(value).toFixed(1)}`;
    drawing = true;
  }
  return d;
}

/**
 * Draws a chart into `container` (replacing what was there).
 * `options`: `title`; `series`: `[{name, color, points: [[atMs, value|null], ...], emphasis}]`;
 * `now` and `windowMs` (the x axis runs from now - windowMs to now); `yMax` to fix the top of
 * the axis (1 for a ratio) or leave it to the data; `format(value)` for labels and legend.
 */
export function drawLineChart(container, options) {
  const { title, series, now, windowMs, format } = options;
  const start = now - windowMs;
  let top = options.yMax;
  if (top === undefined) {
    let highest = 0;
    for (const s of series) {
      for (const [at, value] of s.points) if (at >= start && value > highest) highest = value;
    }
    top = niceCeiling(highest);
  }
  const x = (at) => ((at - start) / windowMs) * PLOT_WIDTH;
  const y = (value) => PLOT_HEIGHT - (Math.min(value, top) / top) * PLOT_HEIGHT;

  const plot = svg("svg", {
    viewBox: `0 0 ${PLOT_WIDTH} ${PLOT_HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": title,
  });
  for (let i = 0; i <= GRID_STEPS; i += 1) {
    const gy = (PLOT_HEIGHT * i) / GRID_STEPS;
    plot.appendChild(svg("line", { x1: 0, x2: PLOT_WIDTH, y1: gy, y2: gy, class: "grid" }));
  }
  for (const s of series) {
    const visible = s.points.filter(([at]) => at >= start);
    const d = pathData(visible, x, y);
    if (!d) continue;
    plot.appendChild(
      svg("path", {
        d,
        stroke: s.color,
        class: s.emphasis ? "line emphasis" : "line",
        "data-series": s.name,
      }),
    );
  }

  const yLabels = [];
  for (let i = 0; i <= GRID_STEPS; i += 2) yLabels.push(el("span", {}, format(top * (1 - i / GRID_STEPS))));
  const legend = series.map((s) => {
    // The newest point, even a gap: a server that is down now shows no current value.
    const last = s.points[s.points.length - 1];
    const latest = last && last[1] !== null ? format(last[1]) : "no data";
    return el(
      "li",
      {},
      el("span", { class: "swatch", style: `background:${s.color}` }),
      el("span", { class: "series-name" }, s.name),
      " ",
      el("span", { class: "series-value" }, latest),
    );
  });

  container.replaceChildren(
    el(
      "figure",
      { class: "chart" },
      el("figcaption", {}, title),
      el("div", { class: "plot" }, el("div", { class: "y-labels" }, yLabels), plot),
      el(
        "div",
        { class: "x-labels" },
        el("span", {}, `−${timeAgo(windowMs)}`),
        el("span", {}, `−${timeAgo(windowMs / 2)}`),
        el("span", {}, "now"),
      ),
      el("ul", { class: "legend" }, legend),
    ),
  );
}
