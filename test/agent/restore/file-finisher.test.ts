import test from 'ava';
import type { FileHandle } from 'node:fs/promises';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { FileFinisher } from '../../../agent/restore/file-finisher.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';

/**
 * A stand-in handle whose fsync waits until the test releases it, recording
 * the calls: the only way to hold a real fsync at a chosen point.
 */
function heldHandle(calls: string[], name: string, syncError?: Error): { fh: FileHandle; release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const fh = {
    chmod: async () => void calls.push(`chmod ${name}`),
    utimes: async () => void calls.push(`utimes ${name}`),
    sync: async () => {
      await released;
      calls.push(`sync ${name}`);
      if (syncError) throw syncError;
    },
    close: async () => void calls.push(`close ${name}`),
  } as unknown as FileHandle;
  return { fh, release };
}

test('every file handed over gets its mode and times, and is fsynced and closed once drained', async (t) => {
  const dir = await makeTempDir('finisher');
  t.teardown(dir.cleanup);
  const finisher = new FileFinisher({ parallel: 2, maxOpen: 4 });
  const mtime = new Date('2026-01-02T03:04:05.000Z');
  const handles: FileHandle[] = [];
  for (let i = 0; i < 10; i++) {
    const fh = await fs.open(path.join(dir.path, `f${i}`), 'wx', 0o600);
    await fh.write(`file ${i}`);
    handles.push(fh);
    await finisher.add(fh, i % 2 === 0 ? 0o640 : 0o600, mtime);
  }
  await finisher.drain();
  t.is(finisher.open, 0);
  for (let i = 0; i < 10; i++) {
    const st = await fs.stat(path.join(dir.path, `f${i}`));
    t.is(st.mode & 0o777, i % 2 === 0 ? 0o640 : 0o600);
    t.is(st.mtime.toISOString(), mtime.toISOString());
    t.is(handles[i]!.fd, -1, `f${i} is closed`);
  }
});

test('a file waits for room: no more than maxOpen are open at once, and no more than parallel fsync together', async (t) => {
  const calls: string[] = [];
  const finisher = new FileFinisher({ parallel: 2, maxOpen: 3 });
  const held = ['a', 'b', 'c', 'd'].map((name) => heldHandle(calls, name));
  await finisher.add(held[0]!.fh, 0o600, new Date());
  await finisher.add(held[1]!.fh, 0o600, new Date());
  let thirdAdded = false;
  const third = finisher.add(held[2]!.fh, 0o600, new Date()).then(() => (thirdAdded = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.false(thirdAdded, 'the third file waits while three are open');
  t.is(finisher.open, 3);
  t.false(calls.includes('chmod c'), 'the third waits for one of the two fsyncs in flight');
  held[0]!.release();
  await third;
  t.true(calls.includes('close a'));
  const fourth = finisher.add(held[3]!.fh, 0o600, new Date());
  for (const h of held) h.release();
  await fourth;
  await finisher.drain();
  t.deepEqual(calls.filter((c) => c.startsWith('close')).sort(), ['close a', 'close b', 'close c', 'close d']);
});

test('a failed fsync fails the drain and the next file handed over, and every handle is still closed', async (t) => {
  const calls: string[] = [];
  const finisher = new FileFinisher({ parallel: 1, maxOpen: 8 });
  const eio = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  const failing = heldHandle(calls, 'a', eio);
  const queued = heldHandle(calls, 'b');
  await finisher.add(failing.fh, 0o600, new Date());
  await finisher.add(queued.fh, 0o600, new Date());
  failing.release();
  queued.release();
  const later = heldHandle(calls, 'c');
  later.release();
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(await t.throwsAsync(finisher.add(later.fh, 0o600, new Date())), eio);
  t.is(await t.throwsAsync(finisher.drain()), eio);
  t.deepEqual(calls.filter((c) => c.startsWith('close')).sort(), ['close a', 'close b', 'close c']);
  t.false(calls.includes('sync b'), 'after the failure, queued files are closed without being finished');
});
