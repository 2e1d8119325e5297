// Editing a looked-up value in place: which values can be edited as what (text stays text,
// a number stays a number, a serialized object is edited as JSON), and reading the edited
// text back into the value to store. Pure functions, tested under `node --test` too.

/** The flag bit python-memcached and this client set on zlib-compressed values. */
const COMPRESSED = 8;

/**
 * How `item` (what inspect() returned) can be edited: `{ kind, text, note }` with kind
 * "text", "number" or "json", or null for raw bytes (flags 0), which a text box would mangle.
 */
export function editableForm(item) {
  const flags = item.flags & ~COMPRESSED;
  if (flags === 16 && typeof item.value === "string") return { kind: "text", text: item.value, note: "" };
  if ((flags === 2 || flags === 4) && (typeof item.value === "number" || typeof item.value === "bigint")) {
    return { kind: "number", text: String(item.value), note: "Stored back as an integer, so incr and decr still work." };
  }
  if (flags === 1) {
    let text;
    try {
      text = JSON.stringify(item.value, null, 2);
    } catch {
      return null;
    }
    if (text === undefined) return null;
    return {
      kind: "json",
      text,
      note: "Edited as JSON and stored back as JSON (flags 1): a python-memcached program with its default pickler reads JSON as an error, so keep pickled keys for Python programs to write.",
    };
  }
  return null;
}

/** The value to store from the edited `text` of a `kind`; throws an Error whose message a person can act on. */
export function parseEdited(kind, text) {
  if (kind === "text") return text;
  if (kind === "number") {
    const trimmed = text.trim();
    if (!/^\d+$/.test(trimmed)) throw new Error(`"${trimmed}" is not a whole number of 0 or more; memcached's counters are unsigned.`);
    const big = BigInt(trimmed);
    if (big > 18446744073709551615n) throw new Error("The number is larger than memcached's 64-bit counters hold.");
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`The value is not valid JSON: ${error.message}.`);
  }
}
