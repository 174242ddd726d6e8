/**
 * The pid files of the fast path's background processes (the prefetcher's
 * `fetcher.pid`, the archiver's `archiver.pid`): one process per directory,
 * the file created exclusively (a link of a complete temporary file, so it
 * is never seen half written), and a file whose process is gone, or no
 * longer runs the same hidden command (per /proc/<pid>/cmdline), replaced.
 */
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { randomToken } from '../../core/random-token.ts';

/**
 * Whether `pid` is a running process of the hidden `command`: the process
 * exists and, where /proc tells, has `command` among its arguments (a
 * recycled pid does not count).
 */
export function runsCommand(pid: number, command: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true; // no /proc: the process exists, trust it
  }
  return cmdline.split('\0').includes(command);
}

/** The pid in `file`, or undefined when it cannot be read. */
export async function readPid(file: string): Promise<number | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : Number.parseInt(text, 10);
}

/**
 * Take `file` (in an existing directory) for this process, which runs
 * `command`. A pid file of a process that is gone is removed and taken over
 * once. False when a live process of `command` holds it.
 */
export async function acquirePidFile(file: string, command: string): Promise<boolean> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const tmp = path.join(dir, `.${base}.${process.pid}.${randomToken(4)}.tmp`);
  await fs.writeFile(tmp, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.link(tmp, file);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = await readPid(file);
      if (pid !== undefined && runsCommand(pid, command)) return false;
      // Moved aside first, and removed only if it is still the dead one: two
      // replacing it at once must not remove each other's new file.
      const aside = `${file}.${process.pid}.${randomToken(4)}.stale`;
      if (
        await fs.rename(file, aside).then(
          () => true,
          () => false,
        )
      ) {
        const moved = await readPid(aside);
        if (moved !== undefined && moved !== pid && runsCommand(moved, command)) await fs.rename(aside, file).catch(() => {});
        await fs.rm(aside, { force: true });
      }
    }
    return false;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** Remove `file` if this process still holds it. */
export async function releasePidFile(file: string): Promise<void> {
  if ((await readPid(file)) === process.pid) await fs.rm(file, { force: true }).catch(() => {});
}
