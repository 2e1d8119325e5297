// Shows a value read from memcached the way its flags say it was written: text as text,
// numbers as numbers, JSON and pickled Python data pretty-printed, raw bytes as a hex dump.
// The formatting functions are pure so `node --test` can check them.

/** A hex dump longer than this is cut, with the count of bytes not shown: a 1 MiB item as
 *  hex would be 4 MB of text, more than a page should lay out for a look at a value. */
export const HEX_DUMP_LIMIT = 4096;
/** Bytes per hex dump line, as `xxd` and `hexdump -C` print them. */
const HEX_ROW = 16;

/** python-memcached's (and pymemcache's) flag bits, in words. */
const FLAG_BITS = [
  [1, "serialized"],
  [2, "integer"],
  [4, "long"],
  [8, "compressed (zlib)"],
  [16, "text (UTF-8)"],
];

/** The flags in words: `17` -> "serialized, text (UTF-8)"; `0` -> "raw bytes". */
export function describeFlags(flags) {
  if (flags === 0) return "raw bytes";
  const names = FLAG_BITS.filter(([bit]) => flags & bit).map(([, name]) => name);
  const known = FLAG_BITS.reduce((all, [bit]) => all | bit, 0);
  const unknown = flags & ~known;
  if (unknown) names.push(`other bits 0x${unknown.toString(16)}`);
  return names.join(", ");
}

/** `hexdump -C`-style lines: offset, 16 bytes in hex, the printable ASCII beside them. */
export function hexDump(bytes, limit = HEX_DUMP_LIMIT) {
  const shown = bytes.subarray(0, limit);
  const lines = [];
  for (let offset = 0; offset < shown.length; offset += HEX_ROW) {
    const row = shown.subarray(offset, offset + HEX_ROW);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(HEX_ROW * 3 - 1)}  |${ascii}|`);
  }
  if (bytes.length > limit) lines.push(`… ${bytes.length - limit} more bytes not shown`);
  return lines.join("\n");
}

/** A row of scalars this short stays on one line, so a list of database rows (tuples) reads
 *  as one row a line instead of one field a line. */
const ONE_LINE_ARRAY = 72;

function isScalar(v) {
  return v === null || (typeof v !== "object" && typeof v !== "function") || v instanceof Uint8Array;
}

function scalarJson(v) {
  if (typeof v === "bigint") return v.toString(); // a JSON number, exact however large
  if (v instanceof Uint8Array) return JSON.stringify(`bytes(${[...v].map((b) => b.toString(16).padStart(2, "0")).join("")})`);
  if (v === undefined) return "null";
  return JSON.stringify(v);
}

/**
 * JSON text for a decoded value, indented by two spaces: BigInts as exact numbers, bytes as
 * `"bytes(hex)"`, Maps as objects, Sets as arrays, short arrays of scalars on one line.
 */
export function prettyJson(value, indent = "") {
  if (value instanceof Map) value = Object.fromEntries(value);
  if (value instanceof Set) value = [...value];
  if (isScalar(value)) return scalarJson(value);
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    if (value.every(isScalar)) {
      const line = `[${value.map(scalarJson).join(", ")}]`;
      if (line.length <= ONE_LINE_ARRAY) return line;
    }
    return `[\n${value.map((v) => inner + prettyJson(v, inner)).join(",\n")}\n${indent}]`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${prettyJson(v, inner)}`).join(",\n")}\n${indent}}`;
}

/**
 * How to show a decoded value: `{kind, text}` where kind is "text", "json-text" (text that
 * parses as a JSON object or array, shown pretty-printed), "number", "structured" (decoded
 * JSON or pickle data) or "bytes".
 */
export function presentValue(value) {
  if (typeof value === "string") {
    const trimmed = value.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try {
        return { kind: "json-text", text: prettyJson(JSON.parse(trimmed)) };
      } catch {
        // Text that only looks like JSON is shown as the text it is.
      }
    }
    return { kind: "text", text: value };
  }
  if (typeof value === "number" || typeof value === "bigint") return { kind: "number", text: String(value) };
  if (value instanceof Uint8Array) return { kind: "bytes", text: hexDump(value) };
  return { kind: "structured", text: prettyJson(value) };
}

/** A caption for the kind of value, in words. */
export function kindCaption(kind, flags) {
  switch (kind) {
    case "text":
      return "text";
    case "json-text":
      return "text holding JSON (pretty-printed)";
    case "number":
      return "number";
    case "bytes":
      return "bytes (hex dump)";
    default:
      return flags & 1 ? "serialized data, decoded (JSON or Python pickle)" : "structured data";
  }
}
