/**
 * The last steps of every restored file (mode, times, fsync, close), taken
 * off the extraction path. The extraction hands over each written file and
 * goes on with the next one while a few fsyncs run behind it: a restore of a
 * thousand files no longer waits for a thousand disk flushes one after
 * another (on ext4, fsyncs in flight together also share journal commits).
 * Durability is unchanged: `drain` resolves only once every file handed over
 * is fsynced and closed, and the restore renames the control file into place
 * only after that. pgBackRest also fsyncs each restored file; it overlaps
 * them by running process-max workers.
 *
 * Memory and descriptors stay bounded: at most `maxOpen` files wait or run
 * at once (`add` waits for room), at most `parallel` of them in the libuv
 * thread pool, which the writes and reads of the extraction share.
 */
import type { FileHandle } from 'node:fs/promises';

interface Job {
  fh: FileHandle;
  mode: number;
  mtime: Date;
}

/** Finishes restored files in the background; see the module comment. */
export class FileFinisher {
  readonly #parallel: number;
  readonly #maxOpen: number;
  readonly #queue: Job[] = [];
  #running = 0;
  /** handed over and not yet closed */
  #open = 0;
  #failure: { err: unknown } | undefined;
  #waiters: (() => void)[] = [];

  constructor(options: { parallel: number; maxOpen: number }) {
    this.#parallel = Math.max(1, options.parallel);
    this.#maxOpen = Math.max(this.#parallel, options.maxOpen);
  }

  /** files handed over and not yet closed (for tests) */
  get open(): number {
    return this.#open;
  }

  /**
   * Take over `fh` (a file completely written): give it `mode` and `mtime`,
   * fsync and close it. Resolves once there is room for the next file;
   * throws the first failure of any file handed over so far (the handle is
   * then closed, unfinished).
   */
  async add(fh: FileHandle, mode: number, mtime: Date): Promise<void> {
    this.#open++;
    this.#queue.push({ fh, mode, mtime });
    this.#pump();
    while (this.#open >= this.#maxOpen && this.#failure === undefined) await this.#changed();
    if (this.#failure) throw this.#failure.err;
  }

  /**
   * Wait until every file handed over is closed. Throws the first failure;
   * after one, the files still queued are closed without being finished.
   */
  async drain(): Promise<void> {
    while (this.#open > 0) await this.#changed();
    if (this.#failure) throw this.#failure.err;
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #pump(): void {
    while (this.#running < this.#parallel && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running++;
      void this.#finish(job).then(() => {
        this.#running--;
        this.#open--;
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const wake of waiters) wake();
        this.#pump();
      });
    }
  }

  async #finish({ fh, mode, mtime }: Job): Promise<void> {
    try {
      if (this.#failure === undefined) {
        await fh.chmod(mode);
        await fh.utimes(mtime, mtime);
        await fh.sync();
      }
    } catch (err) {
      this.#failure ??= { err };
    } finally {
      await fh.close().catch((err: unknown) => {
        this.#failure ??= { err };
      });
    }
  }
}
