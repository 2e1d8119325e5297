// The key panel: look a key up (the server that holds it under the client's distribution,
// its flags, size and decoded value) and, on a bridge that allows writes, edit the value in
// place, set it (text or JSON, with an expiry), delete, touch, incr and decr it. Every
// outcome is said in the page.

import { el, replaceChildren } from "./dom.js";
import { explain } from "./error-advice.js";
import * as format from "./format.js";
import { describeFlags, presentValue, kindCaption } from "./value-view.js";
import { editableForm, parseEdited } from "./value-editor.js";

/** The largest expiry memcached takes as a relative time (30 days); larger numbers are read
 *  as a Unix timestamp, which a person typing "seconds" does not mean. */
const MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30;

/** A field a person must fix before anything is sent; its words go straight to the page. */
class InputProblem extends Error {
  constructor(summary, advice = "") {
    super(summary);
    this.summary = summary;
    this.advice = advice;
  }
}

/** Reads a whole-number field, at most `max`. */
function wholeNumber(input, label, max) {
  const text = input.value.trim();
  if (!/^\d+$/.test(text)) throw new InputProblem(`${label} must be a whole number of 0 or more.`, `Got "${text}".`);
  const value = Number(text);
  if (max !== undefined && value > max) {
    throw new InputProblem(`${label} must be at most ${max} (30 days).`, "memcached reads larger numbers as a Unix timestamp.");
  }
  return value;
}

function problemNote(problem) {
  return el(
    "p",
    { class: "notice error", "data-outcome": "error" },
    problem.summary,
    problem.advice && el("span", { class: "advice" }, problem.advice),
  );
}

export class KeyPanel {
  /** `client`: the fleet's memcache-wasm Client. `context`: `{origin, tokenRequired}`, for advice. */
  constructor({ client, readOnly, context, elements }) {
    this.client = client;
    this.readOnly = readOnly;
    this.context = context;
    this.e = elements;
    this.busy = false;
    /** The key whose lookup the result area shows (null: it shows nothing). */
    this.shownKey = null;
    elements.lookupForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(() => this.lookUp());
    });
    if (readOnly) return;
    elements.writeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(() => this.set());
    });
    elements.deleteButton.addEventListener("click", () => this.run(() => this.remove()));
    elements.touchButton.addEventListener("click", () => this.run(() => this.touch()));
    elements.incrButton.addEventListener("click", () => this.run(() => this.step("incr")));
    elements.decrButton.addEventListener("click", () => this.run(() => this.step("decr")));
  }

  /** Looks `key` up from elsewhere in the page (the key browser). */
  show(key) {
    this.e.keyInput.value = key;
    this.e.keyInput.scrollIntoView({ block: "center", behavior: "smooth" });
    return this.run(() => this.lookUp());
  }

  async run(action) {
    if (this.busy) return;
    this.busy = true;
    const buttons = this.e.panel.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    replaceChildren(this.e.status);
    try {
      await action();
    } catch (error) {
      const problem = error instanceof InputProblem ? error : explain(error, { key: this.key(), ...this.context });
      // What is on screen belongs to the key it was read for: under another name (a bad
      // key typed after a good one) it would read as that key's value, server and flags.
      if (this.shownKey !== this.key()) this.clearResult();
      replaceChildren(this.e.status, problemNote(problem));
    } finally {
      buttons.forEach((b) => (b.disabled = false));
      this.busy = false;
    }
  }

  key() {
    return this.e.keyInput.value.trim();
  }

  /** The key, checked to be present: an empty box is a person's slip, not a request. */
  requireKey() {
    const key = this.key();
    if (!key) throw new InputProblem("Enter a key first.", "");
    return key;
  }

  say(text) {
    replaceChildren(this.e.status, el("p", { class: "ok", "data-outcome": "ok" }, text));
  }

  /** Empties the result area: nothing shown belongs to any key. */
  clearResult() {
    replaceChildren(this.e.result);
    this.shownKey = null;
  }

  async lookUp() {
    // A lookup that fails (a bad key, a server down) must not leave the last answer on screen.
    this.clearResult();
    const key = this.requireKey();
    const server = this.client.serverForKey(key);
    // The remaining TTL comes from the meta protocol (`mg <key> t`), read beside the item;
    // a server without it (memcached before 1.6) still shows the item, its TTL unknown.
    const [item, withTtl] = await Promise.all([
      this.client.inspect(key),
      this.client.getWithTtl(key).then((v) => v, (error) => ({ error })),
    ]);
    this.shownKey = key;
    if (item === undefined) {
      replaceChildren(
        this.e.result,
        el("p", { class: "miss", "data-outcome": "miss" }, `No item "${key}" on ${server}, the server this key maps to.`),
      );
      return;
    }
    const shown = presentValue(item.value);
    replaceChildren(
      this.e.result,
      el(
        "dl",
        { class: "item-meta" },
        el("div", {}, el("dt", {}, "Server"), el("dd", { "data-item": "server" }, item.server ?? server)),
        el("div", {}, el("dt", {}, "Flags"), el("dd", { "data-item": "flags" }, `${item.flags} (${describeFlags(item.flags)})`)),
        el("div", {}, el("dt", {}, "Size"), el("dd", { "data-item": "size" }, `${format.count(item.size)} bytes stored`)),
        el("div", {}, el("dt", {}, "TTL"), el("dd", { "data-item": "ttl" }, ttlText(withTtl))),
        el("div", {}, el("dt", {}, "Shown as"), el("dd", { "data-item": "kind" }, kindCaption(shown.kind, item.flags))),
      ),
      el("pre", { class: `value ${shown.kind}`, "data-item": "value" }, shown.text),
      this.editButton(key, item),
    );
  }

  /** "Edit" under a value that can be edited as text, a number or JSON (not on a read-only bridge). */
  editButton(key, item) {
    const form = this.readOnly ? null : editableForm(item);
    if (form === null) return null;
    return el("button", { type: "button", id: "edit-button", onclick: () => this.edit(key, form) }, "Edit");
  }

  /** Turns the shown value into a text box with Save and Cancel, in its place. */
  edit(key, form) {
    const editor = el("textarea", { id: "value-editor", class: "value-editor", spellcheck: "false", rows: Math.min(20, form.text.split("\n").length + 1) });
    editor.value = form.text;
    const save = () => this.run(async () => {
      let value;
      try {
        value = parseEdited(form.kind, editor.value);
      } catch (error) {
        throw new InputProblem(error.message, "Fix the value, or cancel to keep what is stored.");
      }
      const expiry = wholeNumber(this.e.expiryInput, "Expiry", MAX_RELATIVE_EXPIRY);
      const stored = await this.client.set(key, value, expiry);
      if (!stored) throw new InputProblem(`memcached did not store "${key}" (NOT_STORED).`, "");
      await this.lookUp();
      this.say(`Saved "${key}" (${expiry === 0 ? "no expiry" : `expires in ${format.duration(expiry)}`}).`);
    });
    const area = el(
      "div",
      { class: "value-edit", "data-item": "editor" },
      editor,
      form.note && el("p", { class: "muted" }, form.note),
      el("p", { class: "muted" }, "Saving sets the expiry in the Expiry field below (0 = never)."),
      el("div", { class: "actions" },
        el("button", { type: "button", id: "edit-save", onclick: save }, "Save"),
        el("button", { type: "button", id: "edit-cancel", onclick: () => this.run(() => this.lookUp()) }, "Cancel")),
    );
    this.e.result.querySelector('[data-item="value"]')?.replaceWith(area);
    this.e.result.querySelector("#edit-button")?.remove();
    editor.focus();
  }

  async set() {
    const key = this.requireKey();
    const expiry = wholeNumber(this.e.expiryInput, "Expiry", MAX_RELATIVE_EXPIRY);
    const text = this.e.valueInput.value;
    let value = text;
    if (this.e.formatInput.value === "json") {
      try {
        value = JSON.parse(text);
      } catch (error) {
        throw new InputProblem(`The value is not valid JSON: ${error.message}.`, "Fix it, or choose the text format to store it as it is.");
      }
    }
    const stored = await this.client.set(key, value, expiry);
    if (!stored) throw new InputProblem(`memcached did not store "${key}" (NOT_STORED).`, "");
    const lasting = expiry === 0 ? "no expiry" : `expires in ${format.duration(expiry)}`;
    await this.lookUp();
    this.say(`Stored "${key}" on ${this.client.serverForKey(key)} (${lasting}).`);
  }

  async remove() {
    const key = this.requireKey();
    const deleted = await this.client.delete(key);
    await this.lookUp();
    this.say(deleted ? `Deleted "${key}".` : `There was no item "${key}" to delete.`);
  }

  async touch() {
    const key = this.requireKey();
    const expiry = wholeNumber(this.e.expiryInput, "Expiry", MAX_RELATIVE_EXPIRY);
    const touched = await this.client.touch(key, expiry);
    if (!touched) {
      this.say(`There is no item "${key}" to touch.`);
      return;
    }
    this.say(`"${key}" now has ${expiry === 0 ? "no expiry" : `an expiry of ${format.duration(expiry)}`}.`);
  }

  async step(direction) {
    const key = this.requireKey();
    const delta = wholeNumber(this.e.deltaInput, "The incr/decr amount");
    const value = direction === "incr" ? await this.client.incr(key, delta) : await this.client.decr(key, delta);
    if (value === undefined) {
      this.say(`There is no item "${key}" to ${direction}; set it to a number first.`);
      return;
    }
    await this.lookUp();
    this.say(`"${key}" is now ${value}.`);
  }
}

/** The remaining TTL as getWithTtl read it: seconds left, never, or why it is unknown. */
export function ttlText(withTtl) {
  if (withTtl === undefined) return "unknown (the item expired or was deleted since)";
  if (withTtl.error !== undefined) return `unknown (${withTtl.error.message})`;
  if (withTtl.ttl === -1) return "never expires";
  return `${format.duration(withTtl.ttl)} left (${format.count(withTtl.ttl)} s)`;
}
