/**
 * A FIFO of bytes for incremental parsers: chunks go in as they arrive from a
 * stream, and the parser asks for exactly the bytes it needs, however the
 * input was split. Chunks are never copied unless a request spans several.
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  /** bytes of #chunks[0] already consumed */
  #offset = 0;
  #length = 0;

  /** bytes available */
  get length(): number {
    return this.#length;
  }

  /** Append a chunk. The queue keeps a reference: do not modify it afterwards. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /**
   * The first `n` bytes, contiguous, without consuming them. Throws RangeError
   * when fewer than `n` are available. The result may share memory with the
   * queued chunks: treat it as read-only.
   */
  peek(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`peek of ${n} bytes with only ${this.#length} queued`);
    const first = this.#chunks[0];
    if (n === 0 || first === undefined) return Buffer.alloc(0);
    if (first.length - this.#offset >= n) return first.subarray(this.#offset, this.#offset + n);
    // Gather the chunks the request spans into one, and keep it in their place
    // so repeated peeks at a growing prefix (a header) copy each byte once.
    let count = 1;
    let gathered = first.length - this.#offset;
    while (gathered < n) gathered += this.#chunks[count++]!.length;
    const merged = Buffer.concat([first.subarray(this.#offset), ...this.#chunks.slice(1, count)]);
    this.#chunks.splice(0, count, merged);
    this.#offset = 0;
    return merged.subarray(0, n);
  }

  /** Remove and return the first `n` bytes (see {@link peek}). */
  take(n: number): Buffer {
    const bytes = this.peek(n);
    this.skip(n);
    return bytes;
  }

  /** Drop the first `n` bytes. Throws RangeError when fewer are available. */
  skip(n: number): void {
    if (n > this.#length) throw new RangeError(`skip of ${n} bytes with only ${this.#length} queued`);
    this.#length -= n;
    let remaining = n;
    let drop = 0;
    while (remaining > 0) {
      const available = this.#chunks[drop]!.length - this.#offset;
      if (remaining < available) {
        this.#offset += remaining;
        break;
      }
      remaining -= available;
      this.#offset = 0;
      drop++;
    }
    if (drop > 0) this.#chunks.splice(0, drop);
  }
}
