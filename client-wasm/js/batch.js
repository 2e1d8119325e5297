// The byte level of the engine's formats (client-wasm/src/engine/command.rs for batches,
// engine/mod.rs for output; the numbers are in the generated wire.js): BatchWriter
// encodes the operations of one tick into one reused buffer for Engine.submit,
// ResultReader walks the output of every engine call through MemoryViews.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: false });

/** Starting size of the reused batch buffer; it doubles when a batch needs more. */
const INITIAL_BATCH_BYTES = 64 * 1024;

export class BatchWriter {
  constructor() {
    this.bytes = new Uint8Array(INITIAL_BATCH_BYTES);
    this.view = new DataView(this.bytes.buffer);
    this.length = 0;
  }

  reset() { this.length = 0; }

  /** The encoded batch (a view of the reused buffer: valid until the next reset). */
  finish() { return this.bytes.subarray(0, this.length); }

  reserve(n) {
    const need = this.length + n;
    if (need <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(v) { this.reserve(1); this.bytes[this.length++] = v; }
  u16(v) { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  u32(v) { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  f64(v) { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v) { this.reserve(8); this.view.setBigUint64(this.length, v, true); this.length += 8; }

  /** A string as u32 length + UTF-8, encoded straight into the buffer. */
  str(s) {
    const n = s.length;
    this.reserve(4 + n * 3);
    const start = this.length + 4;
    let i = 0;
    // Keys are mostly short ASCII: a plain loop beats encodeInto's call overhead there.
    if (n <= 64) {
      const out = this.bytes;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        out[start + i] = c;
      }
    }
    let written = i;
    if (i < n) written += textEncoder.encodeInto(i === 0 ? s : s.slice(i), this.bytes.subarray(start + i)).written;
    this.view.setUint32(this.length, written, true);
    this.length = start + written;
  }

  /** Raw bytes as u32 length + bytes. */
  bytesField(b) {
    this.reserve(4 + b.length);
    this.view.setUint32(this.length, b.length, true);
    this.bytes.set(b, this.length + 4);
    this.length += 4 + b.length;
  }

  /** The start of an op: opcode, id, flags. */
  op(opcode, id, flags) {
    this.reserve(6);
    const at = this.length;
    this.bytes[at] = opcode;
    this.view.setUint32(at + 1, id, true);
    this.bytes[at + 5] = flags;
    this.length = at + 6;
  }
}

/**
 * Node's Buffer, where there is one: its UTF-8 decoding of a slice is several times faster
 * than TextDecoder's there (about 120 against 700 ns for 100 bytes, measured on Node 20),
 * which is most of a multi-get's JavaScript time.
 */
const NodeBuffer = typeof globalThis.Buffer === "function" && typeof globalThis.Buffer.from === "function"
  ? globalThis.Buffer : null;

/**
 * Views of the whole of wasm memory, made once and again only after memory grew (growing
 * detaches the old ArrayBuffer, whose views then have length 0): a crossing reads and writes
 * through them without making a typed array, a DataView or a Buffer of its own (each costs
 * more than the crossing itself).
 */
export class MemoryViews {
  constructor(memory) {
    this.memory = memory;
    this.bytes = null;
    this.view = null;
    this.buffer = null;
    this.refresh();
  }

  /** The byte view of memory as it is now. */
  current() {
    if (this.bytes.byteLength === 0) this.refresh();
    return this.bytes;
  }

  refresh() {
    const ab = this.memory.buffer;
    this.bytes = new Uint8Array(ab);
    this.view = new DataView(ab);
    this.buffer = NodeBuffer !== null ? NodeBuffer.from(ab) : null;
  }
}

/** Up to this many bytes a loop copies faster than a subarray and set(). */
const SMALL_COPY_BYTES = 64;

/** Node's Buffer#utf8Slice, which Buffer#toString("utf8", start, end) calls after checking
 * its arguments (the reader's offsets are in range by construction). */
const utf8Slice = NodeBuffer !== null && typeof NodeBuffer.prototype.utf8Slice === "function"
  ? NodeBuffer.prototype.utf8Slice : null;

/** Walks a buffer the engine returned: `length` bytes at `start` of wasm memory. One reader
 * is reused for every crossing (reset() before each). */
export class ResultReader {
  constructor(views) {
    this.views = views;
    this.bytes = null;
    this.view = null;
    this.buffer = null;
    this.at = 0;
    this.end = 0;
  }
  reset(start, length) {
    const views = this.views;
    this.bytes = views.current();
    this.view = views.view;
    this.buffer = views.buffer;
    this.at = start;
    this.end = start + length;
    return this;
  }
  get done() { return this.at >= this.end; }
  u8() { return this.bytes[this.at++]; }
  u16() { const v = this.view.getUint16(this.at, true); this.at += 2; return v; }
  u32() { const v = this.view.getUint32(this.at, true); this.at += 4; return v; }
  u64() { const v = this.view.getBigUint64(this.at, true); this.at += 8; return v; }
  f64() { const v = this.view.getFloat64(this.at, true); this.at += 8; return v; }
  /** The next u32-length-prefixed field as a view into wasm memory (no copy; valid until the
   * next crossing). */
  field() {
    const n = this.u32();
    const start = this.at;
    this.at += n;
    return this.bytes.subarray(start, start + n);
  }
  /** The next field copied out of wasm memory: a Buffer in Node (taken from its pool, and
   * what a socket writes without converting it), a Uint8Array elsewhere. */
  copy() {
    const n = this.u32();
    const start = this.at;
    this.at += n;
    const bytes = this.bytes;
    if (this.buffer !== null) {
      const out = NodeBuffer.allocUnsafe(n);
      // A get line is a few dozen bytes: a loop beats Buffer#copy's argument checks there.
      if (n <= SMALL_COPY_BYTES) for (let i = 0; i < n; i++) out[i] = bytes[start + i];
      else out.set(bytes.subarray(start, start + n));
      return out;
    }
    return bytes.slice(start, start + n);
  }
  /** The next field as UTF-8 text. */
  text() {
    const n = this.u32();
    const start = this.at;
    this.at += n;
    if (this.buffer !== null) return utf8Slice !== null ? utf8Slice.call(this.buffer, start, start + n) : this.buffer.toString("utf8", start, start + n);
    return textDecoder.decode(this.bytes.subarray(start, start + n));
  }
}

export function decodeText(bytes) { return textDecoder.decode(bytes); }
