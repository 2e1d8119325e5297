// Reads the lines of memcached's `lru_crawler metadump` (one item a line:
// `key=<uri-encoded> exp=<unix time|-1> la=<unix time> cas=<n> fetch=<yes|no> cls=<n>
// size=<n>`) into entries the key browser lists, searches, sorts and pages.

/** Parses one metadump line; returns `null` for a line that is not an item (so a newer
 *  memcached's extra lines cannot break the browser). */
export function parseMetadumpLine(line) {
  const fields = {};
  for (const part of line.trim().split(" ")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields[part.slice(0, eq)] = part.slice(eq + 1);
  }
  if (fields.key === undefined) return null;
  // memcached percent-encodes the key's bytes. A key that is not UTF-8 cannot be typed into
  // the lookup box, so it is listed in its encoded form and marked as such.
  let key = fields.key;
  let keyIsText = true;
  try {
    key = decodeURIComponent(fields.key);
  } catch {
    keyIsText = false;
  }
  const int = (name) => (fields[name] === undefined ? undefined : Number(fields[name]));
  return {
    key,
    keyIsText,
    expires: int("exp"),
    lastAccess: int("la"),
    cas: fields.cas,
    fetched: fields.fetch === "yes",
    slabClass: int("cls"),
    size: int("size"),
  };
}

/** The entries whose key starts with `prefix`, sorted by key, for stable paging. */
export function filterByPrefix(entries, prefix) {
  const chosen = prefix ? entries.filter((e) => e.key.startsWith(prefix)) : entries.slice();
  return chosen.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The entries whose key contains `text` anywhere (`mode` "contains", the default) or
 *  starts with it ("prefix"); all of them for an empty text. */
export function search(entries, text, mode = "contains") {
  if (!text) return entries.slice();
  return entries.filter(mode === "prefix" ? (e) => e.key.startsWith(text) : (e) => e.key.includes(text));
}

/** How the key browser says what a search matches: `contain "x"` or `start with "x"`. */
export function matchWords(text, mode) {
  return `${mode === "prefix" ? "start with" : "contain"} "${text}"`;
}

/** The columns the key browser sorts by, each a way to compare two entries. Items that never
 *  expire (exp -1 or 0) sort after every expiring one, as the longest-lived. */
const ORDER = {
  key: (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  server: (a, b) => (a.server < b.server ? -1 : a.server > b.server ? 1 : 0),
  size: (a, b) => a.size - b.size,
  expires: (a, b) => expiryRank(a.expires) - expiryRank(b.expires),
  lastAccess: (a, b) => a.lastAccess - b.lastAccess,
};
export const SORT_COLUMNS = Object.keys(ORDER);

function expiryRank(expires) {
  return expires === -1 || expires === 0 || expires === undefined ? Number.MAX_SAFE_INTEGER : expires;
}

/** A sorted copy of `entries` by `column` ("key", "server", "size", "expires", "lastAccess"),
 *  `descending` or not; ties keep key order, so paging is stable. */
export function sortEntries(entries, column, descending = false) {
  const compare = ORDER[column] ?? ORDER.key;
  const sign = descending ? -1 : 1;
  return entries.slice().sort((a, b) => sign * compare(a, b) || ORDER.key(a, b));
}

/** Page `index` (from 0) of `size` entries, with the numbers the pager shows. */
export function page(entries, index, size) {
  const pages = Math.max(1, Math.ceil(entries.length / size));
  const current = Math.min(Math.max(0, index), pages - 1);
  const first = current * size;
  return {
    entries: entries.slice(first, first + size),
    index: current,
    pages,
    first: entries.length === 0 ? 0 : first + 1,
    last: Math.min(first + size, entries.length),
    total: entries.length,
  };
}
