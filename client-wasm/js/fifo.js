// The per-server queue of operations waiting for the server's answers, in the order the
// requests were written: memcached answers in order, so the head is always the next one.

/** Consumed slots are dropped in one splice once this many have piled up at the front. */
const COMPACT_AFTER = 1024;

export class PendingQueue {
  constructor() {
    this.items = [];
    this.head = 0;
  }
  get size() { return this.items.length - this.head; }
  push(op) { this.items.push(op); }
  peek() { return this.head < this.items.length ? this.items[this.head] : undefined; }
  shift() {
    if (this.head >= this.items.length) return undefined;
    const op = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return op;
  }
  /** Empties the queue and returns what was in it, oldest first. */
  drain() {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}
