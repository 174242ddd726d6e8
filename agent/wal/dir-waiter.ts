/**
 * The wait of the fast path's background loops (the archiver watching
 * `archive_status`, the prefetcher watching its spool): sleep until a name
 * appears or disappears in a directory (fs.watch), until the loop's own
 * work asks for another pass (a push or fetch finished), or until the
 * polling interval is up, whichever comes first; the interval is the
 * fallback for a notice fs.watch misses or cannot give (no inotify).
 *
 * A wake that comes while the loop is busy, between two waits, is kept and
 * ends the next wait at once: otherwise a job finishing during a pass would
 * leave its slot empty until the next poll.
 */
import { type FSWatcher, watch } from 'node:fs';

export interface DirWaiter {
  /** End the current wait now, or the next one at once if none is under way. */
  wake(): void;
  /** Resolve after `ms`, or sooner on a change in the directory or a wake. */
  wait(ms: number): Promise<void>;
  /** Stop watching; a wait under way resolves. */
  close(): void;
}

/** Watch `dir` (names appearing and disappearing only); without fs.watch, the waits are plain polling. */
export function watchDirectory(dir: string): DirWaiter {
  let pending = false;
  let release: (() => void) | undefined;
  const wake = () => {
    if (release) release();
    else pending = true;
  };
  let watcher: FSWatcher | undefined;
  try {
    // A write's every chunk is not news: only 'rename' (a name created or removed).
    watcher = watch(dir, (event) => {
      if (event === 'rename') wake();
    });
    watcher.on('error', () => {});
  } catch {
    // the polling interval alone then
  }
  return {
    wake,
    wait(ms) {
      if (pending) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          release = undefined;
          resolve();
        }
        release = done;
      });
    },
    close() {
      watcher?.close();
      watcher = undefined;
      release?.();
    },
  };
}
