/**
 * The lzo codec's lzop stream for data already in memory, encoded by the main
 * thread and a helper worker thread together: both claim 256 KiB blocks from
 * one shared counter, and the blocks come out in order, byte for byte what
 * the streaming compressor (lzop.ts) writes for the same data.
 *
 * Why: LZO1X-1 of a 16 MiB WAL segment is the largest part of a wal-push,
 * and on a gs:// repository the main thread also has TLS and the
 * repository's requests to run. The worker takes a while to start
 * (docs/performance.md), so it is started as early as possible
 * (startLzopHelper) and simply claims whatever blocks are left when it is
 * ready: if it never is, the main thread has done
 * them all, and nothing waited for it. The data must live in a
 * SharedArrayBuffer (readWalSource's `shared` option) for the worker to see
 * it without a copy; otherwise the main thread encodes alone.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { loadLzoBlockCompressor } from './native.ts';
import { LzopBlockEncoder, lzopStreamEnd, lzopStreamHeader } from './blocks.ts';
import { LZOP_BLOCK_SIZE } from './format.ts';

/** Set by the build to the worker's bundled file name (beside the bundle); undefined when running from source. */
declare const __GCWAL_LZOP_WORKER__: string | undefined;

/** One encoding job as the worker receives it. */
export interface LzopJob {
  id: number;
  data: SharedArrayBuffer;
  offset: number;
  length: number;
  /** Int32Array(1): the next block index to claim */
  claims: SharedArrayBuffer;
  blocks: number;
}

interface BlockMessage {
  id: number;
  index: number;
  block: ArrayBuffer;
}

/** A started worker, shared by the jobs of one process run; see startLzopHelper. */
export class LzopHelper {
  readonly #worker: Worker;
  readonly #listeners = new Map<number, (message: BlockMessage) => void>();
  #nextId = 0;
  #dead = false;
  readonly #onDeath = new Set<() => void>();

  /** resolves when the worker has loaded the native library and listens for jobs (it may never: see `dead`) */
  readonly ready: Promise<void>;

  constructor(worker: Worker) {
    this.#worker = worker;
    let ready!: () => void;
    this.ready = new Promise((resolve) => (ready = resolve));
    // The process must not wait for an idle helper to exit.
    worker.unref();
    worker.on('message', (message: BlockMessage | { ready: true }) => {
      if ('ready' in message) ready();
      else this.#listeners.get(message.id)?.(message);
    });
    worker.on('error', () => this.#die());
    worker.on('exit', () => this.#die());
  }

  /** whether the worker failed or was stopped (its claimed blocks are then the main thread's to redo) */
  get dead(): boolean {
    return this.#dead;
  }

  /** Send a job; `onBlock` gets each block the worker encodes, `onDeath` runs once if the worker dies. Returns a detach function. */
  start(job: Omit<LzopJob, 'id'>, onBlock: (index: number, block: Buffer) => void, onDeath: () => void): () => void {
    const id = this.#nextId++;
    this.#listeners.set(id, (message) => onBlock(message.index, Buffer.from(message.block)));
    this.#onDeath.add(onDeath);
    if (!this.#dead) this.#worker.postMessage({ ...job, id } satisfies LzopJob);
    return () => {
      this.#listeners.delete(id);
      this.#onDeath.delete(onDeath);
    };
  }

  /** Stop the worker; idempotent. A job waiting for its blocks is told at once and encodes them itself. */
  async stop(): Promise<void> {
    this.#die();
    await this.#worker.terminate().catch(() => {});
  }

  /** Mark the worker dead and tell every job once. */
  #die(): void {
    if (this.#dead) return;
    this.#dead = true;
    for (const notify of this.#onDeath) notify();
  }
}

/**
 * The worker: the bundled script beside this bundle or, running from the
 * TypeScript sources (tests, tsx), the source itself behind tsx's loader,
 * which a worker thread does not inherit. Undefined when neither is there.
 */
function createWorker(): Worker | undefined {
  if (typeof __GCWAL_LZOP_WORKER__ === 'string') {
    const script = new URL(__GCWAL_LZOP_WORKER__, import.meta.url);
    return existsSync(script) ? new Worker(script) : undefined;
  }
  const source = new URL('./worker.ts', import.meta.url);
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    return undefined;
  }
  if (!existsSync(source)) return undefined;
  return new Worker(`import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(source.href)}); });`, { eval: true });
}

/**
 * Start the helper worker now, so it is ready by the time there is data to
 * encode. Undefined when the worker's script is missing or the worker cannot
 * be created: encoding then runs on the main thread alone.
 */
export function startLzopHelper(): LzopHelper | undefined {
  try {
    const worker = createWorker();
    return worker ? new LzopHelper(worker) : undefined;
  } catch {
    return undefined;
  }
}

/** Data being read into memory: `until(end)` resolves once bytes [0, end) are in, `done` once all are (rejects if the read failed). */
export interface InMemoryData {
  data: Buffer;
  until(end: number): Promise<void>;
  done: Promise<void>;
}

/** Counts for tests and benchmarks: how many blocks the helper encoded. */
export interface LzopEncodeStats {
  helperBlocks: number;
}

/**
 * The lzop stream of `source.data`, as an async iterable of chunks (header,
 * blocks in order, end marker). The main thread encodes blocks as they are
 * read, yielding to the event loop between blocks; `helper`, when given and
 * the data is in a SharedArrayBuffer, joins once the whole file is in. Fails
 * with the read's error. Stopping the iteration early stops the worker's
 * share of the job too.
 */
export async function* encodeLzopInMemory(source: InMemoryData, helper: LzopHelper | undefined, stats?: LzopEncodeStats): AsyncGenerator<Buffer> {
  const { data } = source;
  const blocks = Math.ceil(data.length / LZOP_BLOCK_SIZE);
  const claimsBuffer = new SharedArrayBuffer(4);
  const claims = new Int32Array(claimsBuffer);
  const encoder = new LzopBlockEncoder(loadLzoBlockCompressor());
  const done = new Map<number, Buffer>();
  const mine = new Set<number>();
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  let detach: (() => void) | undefined;
  const shared = data.buffer instanceof SharedArrayBuffer;
  if (helper && shared && blocks > 1) {
    // Joins only once everything is read: it cannot wait for a piece, and the read is far quicker than its start-up.
    source.done.then(
      () => {
        detach = helper.start(
          { data: data.buffer as SharedArrayBuffer, offset: data.byteOffset, length: data.length, claims: claimsBuffer, blocks },
          (index, block) => {
            if (stats) stats.helperBlocks++;
            done.set(index, block);
            notify();
          },
          notify,
        );
      },
      () => {},
    );
  }
  const encodeHere = (index: number) => {
    mine.add(index);
    done.set(index, encoder.encode(data.subarray(index * LZOP_BLOCK_SIZE, (index + 1) * LZOP_BLOCK_SIZE)));
  };
  try {
    yield lzopStreamHeader();
    let claiming = true;
    for (let next = 0; next < blocks; next++) {
      while (!done.has(next)) {
        if (claiming) {
          const index = Atomics.add(claims, 0, 1);
          if (index < blocks) {
            await source.until(Math.min((index + 1) * LZOP_BLOCK_SIZE, data.length));
            encodeHere(index);
            // Let I/O callbacks (the repository's requests, the write) run between blocks.
            await new Promise((resolve) => setImmediate(resolve));
            continue;
          }
          claiming = false;
        }
        if (helper?.dead) {
          // Blocks the worker claimed but never sent (those before `next` are already out): encode them here.
          for (let index = next; index < blocks; index++) if (!done.has(index) && !mine.has(index)) encodeHere(index);
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
      const block = done.get(next)!;
      done.delete(next);
      yield block;
    }
    await source.done;
    yield lzopStreamEnd();
  } finally {
    // Nothing more to claim, for the worker either, and no more messages wanted.
    Atomics.store(claims, 0, blocks);
    detach?.();
  }
}
