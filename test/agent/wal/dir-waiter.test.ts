/**
 * The background loops' wait (agent/wal/dir-waiter.ts). No timing is
 * asserted: each wait below is an hour long, so a test passes only when
 * the wait ends for the reason it names (ava's timeout fails it otherwise).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { watchDirectory } from '../../../agent/wal/dir-waiter.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';

const HOUR = 3_600_000;

test('a wake that comes while the loop is busy ends its next wait at once', async (t) => {
  const dir = await makeTempDir('dir-waiter');
  const waiter = watchDirectory(dir.path);
  try {
    waiter.wake();
    await waiter.wait(HOUR);
    t.pass();
  } finally {
    waiter.close();
    await dir.cleanup();
  }
});

test('a wake ends a wait under way, and is spent by it', async (t) => {
  const dir = await makeTempDir('dir-waiter');
  const waiter = watchDirectory(dir.path);
  try {
    const waiting = waiter.wait(HOUR);
    waiter.wake();
    await waiting;
    // Spent: the next wait does not end at once (a wake still kept would end it before the next turn of the event loop).
    const next = await Promise.race([waiter.wait(HOUR).then(() => 'ended'), new Promise((resolve) => setImmediate(() => resolve('waiting')))]);
    t.is(next, 'waiting');
  } finally {
    waiter.close();
    await dir.cleanup();
  }
});

test('a name created in the directory ends the wait', async (t) => {
  const dir = await makeTempDir('dir-waiter');
  const waiter = watchDirectory(dir.path);
  try {
    const waiting = waiter.wait(HOUR);
    await writeFile(path.join(dir.path, '000000010000000000000001.ready'), '');
    await waiting;
    t.pass();
  } finally {
    waiter.close();
    await dir.cleanup();
  }
});

test('close ends a wait under way', async (t) => {
  const dir = await makeTempDir('dir-waiter');
  const waiter = watchDirectory(dir.path);
  const waiting = waiter.wait(HOUR);
  waiter.close();
  await waiting;
  await dir.cleanup();
  t.pass();
});

test('a directory that cannot be watched leaves plain polling', async (t) => {
  const waiter = watchDirectory(path.join('/nonexistent', 'archive_status'));
  await waiter.wait(10);
  waiter.wake();
  await waiter.wait(HOUR);
  waiter.close();
  t.pass();
});
