// Builds page elements from data. Keys, values and memcached's own text are shown as text
// nodes, never parsed as HTML, so a key named "<img onerror=...>" stays a key.

/**
 * `el("td", {class: "num", title: "..."}, "text", childNode, ...)`. Attributes whose value is
 * false, null or undefined are left out; `true` sets a boolean attribute. Children may be
 * strings, numbers, nodes, arrays of them, or null/undefined/false (skipped).
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces every child of `node` with `children` (same forms as `el`). */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}
