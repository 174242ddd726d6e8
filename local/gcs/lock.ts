/**
 * Per-key mutual exclusion inside one process: the emulator serialises
 * finalisation, patch and delete per object name, and chunk handling per
 * resumable session, with it.
 */

/** Runs async critical sections one after another per key, in call order. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  /** Run `fn` once every earlier call for `key` has finished; resolves or rejects with its result. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
