// Numbers as a person reads them on the dashboard: bytes in KiB/MiB, uptimes in days and
// hours, rates per second, ratios as percentages. A missing value is a dash, never "NaN".

export const MISSING = "–";

export function bytes(value) {
  if (value === undefined || value === null) return MISSING;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${amount} B` : `${amount.toFixed(amount < 10 ? 1 : 0)} ${units[unit]}`;
}

export function duration(seconds) {
  if (seconds === undefined || seconds === null) return MISSING;
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  if (minutes > 0) return `${minutes}m ${s % 60}s`;
  return `${s}s`;
}

/** A count: 1234 -> "1,234"; 1234567 -> "1.23M". */
export function count(value) {
  if (value === undefined || value === null) return MISSING;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  return Math.round(value).toLocaleString("en-US");
}

/** A rate per second with about three significant digits: 0.5/s, 12.3/s, 1.2k/s. */
export function rate(value) {
  if (value === undefined || value === null) return MISSING;
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M/s`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k/s`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k/s`;
  if (value >= 10 || value === 0) return `${value.toFixed(0)}/s`;
  return `${value.toFixed(1)}/s`;
}

export function percent(fraction) {
  if (fraction === undefined || fraction === null) return MISSING;
  const p = fraction * 100;
  if (Number.isInteger(p)) return `${p}%`;
  if (p < 0.1) return "<0.1%";
  // Rounded down, so a ratio with any miss never reads as "100%".
  return `${(Math.floor(p * 10) / 10).toFixed(1)}%`;
}

/** Bytes per second: "0 B/s", "512 B/s", "1.5 KiB/s", "12 MiB/s". */
export function byteRate(value) {
  if (value === undefined || value === null) return MISSING;
  return `${bytes(Math.round(value))}/s`;
}
