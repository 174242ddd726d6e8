/**
 * Small durable-disk helpers for restore: directories created once and
 * remembered (so they can be fsynced at the end), writes over a file
 * handle, fsync of files and directories.
 */
import type { FileHandle } from 'node:fs/promises';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fsyncPath } from '../../core/fsync.ts';

/**
 * The directories a restore created or wrote into. `ensure` creates a
 * directory (and its parents, mode 0700) once; `syncAll` fsyncs every one of
 * them so the new entries survive a crash.
 */
export class DirectorySet {
  private readonly known = new Set<string>();
  private readonly pending = new Map<string, Promise<void>>();

  /** Create `dir` and missing parents (mode 0700); idempotent and safe to call concurrently. */
  async ensure(dir: string): Promise<void> {
    if (this.known.has(dir)) return;
    let p = this.pending.get(dir);
    if (!p) {
      p = fs.mkdir(dir, { recursive: true, mode: 0o700 }).then(() => {
        // Remember the parents too: their entries changed when dir was created.
        for (let d = dir; !this.known.has(d); d = path.dirname(d)) {
          this.known.add(d);
          if (path.dirname(d) === d) break;
        }
        this.pending.delete(dir);
      });
      this.pending.set(dir, p);
    }
    await p;
  }

  /** Record a directory whose entries changed without going through ensure. */
  add(dir: string): void {
    this.known.add(dir);
  }

  /** Every directory recorded, deepest first. */
  list(): string[] {
    return [...this.known].sort((a, b) => b.length - a.length);
  }

  /** fsync every recorded directory, `parallel` at a time. */
  async syncAll(parallel = 8): Promise<void> {
    const dirs = this.list();
    let next = 0;
    const worker = async () => {
      while (next < dirs.length) await syncDirectory(dirs[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(parallel, dirs.length) }, worker));
  }
}

/** fsync a directory so entries created or renamed in it are durable. */
export const syncDirectory: (dir: string) => Promise<void> = fsyncPath;

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buf.length) {
    const { bytesWritten } = await fh.write(buf, offset, buf.length - offset);
    offset += bytesWritten;
  }
}

/**
 * Write `chunks` (`total` bytes together) at the handle's position with as
 * few system calls as the kernel allows (one writev, normally).
 */
export async function writeAllv(fh: FileHandle, chunks: Buffer[], total: number): Promise<void> {
  if (chunks.length === 1) return writeAll(fh, chunks[0]);
  const { bytesWritten } = await fh.writev(chunks);
  // A short write (a signal, a full disk about to fail): write the rest one by one.
  if (bytesWritten < total) await writeAll(fh, Buffer.concat(chunks).subarray(bytesWritten));
}

/**
 * Write a small file durably and atomically: `<file>.gcwal-tmp`, fsync,
 * rename over `file`, fsync the directory. `mode` defaults to 0600.
 */
export async function writeFileDurably(file: string, content: string | Buffer, mode = 0o600): Promise<void> {
  const temp = `${file}.gcwal-tmp`;
  const fh = await fs.open(temp, 'w', mode);
  try {
    await writeAll(fh, Buffer.from(content));
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(temp, file);
  await syncDirectory(path.dirname(file));
}

/** Append text to a file (created 0600 if absent) and fsync it. */
export async function appendDurably(file: string, content: string): Promise<void> {
  const fh = await fs.open(file, 'a', 0o600);
  try {
    await writeAll(fh, Buffer.from(content));
    await fh.sync();
  } finally {
    await fh.close();
  }
}
