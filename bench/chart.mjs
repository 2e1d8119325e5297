// The chart of the main workloads: an SVG drawn from the summary rows (bars are medians,
// whiskers the min..max of the repetitions), rendered to PNG by Debian's chromium through
// playwright-core, since the machine has no image library to rely on.
import { writeFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
// Launching and drawing take a second or two; longer means chromium is broken here.
const RENDER_TIMEOUT_MS = 60_000;

const COLORS = {
  raw: '#7f7f7f',
  'wasm-tcp': '#d62728',
  'wasm-bridge': '#ff9896',
  memjs: '#1f77b4',
  memcached: '#2ca02c',
};
const PANELS = [
  { workload: 'seq-get', title: 'sequential get', unit: 'ops/s', field: 'opsPerSec' },
  { workload: 'get-64', title: 'get, 64 in flight', unit: 'ops/s', field: 'opsPerSec' },
  { workload: 'multi-get', title: 'multi-get of 100 keys', unit: 'keys/s', field: 'keysPerSec' },
  { workload: 'set-64', title: 'set, 64 in flight', unit: 'ops/s', field: 'opsPerSec' },
];
const PANEL_W = 300;
const PANEL_H = 170;
const LABEL_W = 180;
const TOP = 64;
const ROW_TITLE_H = 26;

function esc(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function short(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return n.toFixed(0);
}

/** The SVG of the main workloads, one row of panels per setup (servers, value size). */
export function chartSvg({ rows, contenders, title, paired = [] }) {
  const setups = [...new Set(rows.map((r) => `${r.servers}|${r.valueSize}`))]
    .map((k) => k.split('|').map(Number))
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const width = LABEL_W + PANELS.length * PANEL_W + 20;
  const height = TOP + setups.length * (PANEL_H + ROW_TITLE_H) + 8;
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="12">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="12" y="24" font-size="17" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<text x="12" y="44" fill="#555">medians of the repetitions; whiskers: min..max; higher is better; sequential get on one server: medians of paired blocks</text>`);
  setups.forEach(([servers, size], rowIdx) => {
    const y0 = TOP + rowIdx * (PANEL_H + ROW_TITLE_H);
    const sizeName = size >= 1024 ? `${Math.round(size / 1024)} KB values` : `${size} B values`;
    parts.push(`<text x="12" y="${y0 + 16}" font-size="14" font-weight="bold">${servers} memcached server${servers > 1 ? 's' : ''}, ${sizeName}</text>`);
    const barArea = PANEL_H - 30;
    const barH = Math.floor(barArea / contenders.length) - 4;
    contenders.forEach((c, i) => {
      const y = y0 + ROW_TITLE_H + 22 + i * (barH + 4) + barH / 2 + 4;
      parts.push(`<text x="${LABEL_W - 8}" y="${y}" text-anchor="end">${esc(c.label)}</text>`);
    });
    PANELS.forEach((panel, col) => {
      const x0 = LABEL_W + col * PANEL_W;
      let list = rows.filter((r) => r.servers === servers && r.valueSize === size && r.workload === panel.workload);
      let panelTitle = panel.title;
      // On one server the sequential get of the paired blocks is the figure to trust (the
      // separate runs drift with the machine); its bars have no whiskers.
      const blocks = servers === 1 && panel.workload === 'seq-get' && paired.find((p) => p.valueSize === size);
      if (blocks) {
        list = blocks.results.map((r) => ({ ...r, minOpsPerSec: r.opsPerSec, maxOpsPerSec: r.opsPerSec }));
        panelTitle = 'sequential get, paired';
      }
      const scale = panel.field === 'keysPerSec' ? 100 : 1;
      const max = Math.max(1, ...list.map((r) => Math.max(r[panel.field], r.maxOpsPerSec * scale)));
      const plotW = PANEL_W - 70;
      parts.push(`<text x="${x0}" y="${y0 + ROW_TITLE_H + 10}" font-weight="bold">${esc(panelTitle)} (${panel.unit})</text>`);
      parts.push(`<line x1="${x0}" y1="${y0 + ROW_TITLE_H + 18}" x2="${x0}" y2="${y0 + ROW_TITLE_H + 18 + barArea}" stroke="#999"/>`);
      contenders.forEach((c, i) => {
        const r = list.find((o) => o.contender === c.id);
        const y = y0 + ROW_TITLE_H + 22 + i * (barH + 4);
        if (!r) {
          parts.push(`<text x="${x0 + 4}" y="${y + barH / 2 + 4}" fill="#999">not measured</text>`);
          return;
        }
        const w = (r[panel.field] / max) * plotW;
        parts.push(`<rect x="${x0}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[c.id] ?? '#444'}"/>`);
        const lo = ((r.minOpsPerSec * scale) / max) * plotW;
        const hi = ((r.maxOpsPerSec * scale) / max) * plotW;
        const cy = y + barH / 2;
        parts.push(`<line x1="${x0 + lo}" y1="${cy}" x2="${x0 + hi}" y2="${cy}" stroke="black"/>`);
        parts.push(`<line x1="${x0 + lo}" y1="${cy - 3}" x2="${x0 + lo}" y2="${cy + 3}" stroke="black"/>`);
        parts.push(`<line x1="${x0 + hi}" y1="${cy - 3}" x2="${x0 + hi}" y2="${cy + 3}" stroke="black"/>`);
        parts.push(`<text x="${x0 + Math.max(w, hi) + 4}" y="${cy + 4}">${short(r[panel.field])}</text>`);
      });
    });
  });
  parts.push('</svg>');
  return { svg: parts.join('\n'), width, height };
}

/** Writes the SVG and renders it to a PNG at `pngPath`. */
export async function renderChart(chart, { svgPath, pngPath }) {
  await writeFile(svgPath, chart.svg);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: RENDER_TIMEOUT_MS });
  try {
    const page = await browser.newPage({
      viewport: { width: chart.width, height: chart.height },
      deviceScaleFactor: 2,
    });
    page.setDefaultTimeout(RENDER_TIMEOUT_MS);
    await page.setContent(`<!doctype html><html><body style="margin:0">${chart.svg}</body></html>`);
    await page.screenshot({ path: pngPath, clip: { x: 0, y: 0, width: chart.width, height: chart.height } });
  } finally {
    await browser.close();
  }
}
