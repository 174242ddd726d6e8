/**
 * The launcher in asynchronous mode (GCWAL_ARCHIVE_ASYNC, agent/wal/README.md):
 * it waits for the background archiver's marker without starting Node while
 * the archiver lives, is not failing and the segment is ready, and hands the
 * call to Node at once otherwise. The "archiver" here is a process with
 * wal-archiver among its arguments, the marker written by the test.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { ARCHIVER_COMMAND, ARCHIVER_DIR, ARCHIVER_PID, FAILING_FILE } from '../../../agent/wal/archiver-control.ts';
import { writeLauncher } from '../../../agent/wal/launcher.mjs';
import { fileIdentity, writeMarker } from '../../../agent/wal/marker.ts';
import { exec } from '../../../local/testkit/exec.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { childEnv } from '../../../local/testkit/users.ts';

const NAME = '00000001000000000000002A';
const REPO = 'file:///srv/gcwal/repo';
const STUB_EXIT = 42;

let work: TempDir;
/** reaching Node exits 42 */
let launcher: string;
let counter = 0;

test.before(async () => {
  work = await makeTempDir('launcher-async');
  const bundle = path.join(work.path, 'gcwal.mjs');
  await writeFile(bundle, '');
  const stub = path.join(work.path, 'stub-node');
  await writeFile(stub, `#!/bin/sh\nexit ${STUB_EXIT}\n`, { mode: 0o755 });
  launcher = path.join(work.path, 'gcwal');
  await writeLauncher(launcher, { node: stub, bundle });
});

test.after.always(async () => {
  await work?.cleanup();
});

/** A data directory with pg_wal/NAME ready and a live "archiver" in its pid file. */
async function setUp(t: { teardown(fn: () => void): void }, options: { ready?: boolean; failing?: boolean } = {}) {
  const data = path.join(work.path, `data-${++counter}`);
  const walDir = path.join(data, 'pg_wal');
  await mkdir(path.join(walDir, 'archive_status'), { recursive: true });
  await mkdir(path.join(walDir, ARCHIVER_DIR));
  const segment = path.join(walDir, NAME);
  await writeFile(segment, Buffer.alloc(64 * 1024, counter));
  if (options.ready ?? true) await writeFile(path.join(walDir, 'archive_status', `${NAME}.ready`), '');
  if (options.failing) await writeFile(path.join(walDir, ARCHIVER_DIR, FAILING_FILE), `${NAME} no space left\n`);
  const archiver: ChildProcess = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)', ARCHIVER_COMMAND], { stdio: 'ignore' });
  t.teardown(() => archiver.kill('SIGKILL'));
  await new Promise((resolve) => archiver.once('spawn', resolve));
  await writeFile(path.join(walDir, ARCHIVER_DIR, ARCHIVER_PID), `${archiver.pid}\n`);
  /** the archiver's marker for the segment, after `ms` */
  const markLater = (ms: number) => {
    const timer = setTimeout(async () => {
      const file = await fileIdentity(segment);
      await writeMarker(walDir, { format: 1, repo: REPO, name: NAME, key: `wal/${NAME}`, rawSize: 65536, rawCrc32c: 'AAAAAA==', file: file! });
    }, ms);
    t.teardown(() => clearTimeout(timer));
  };
  return { data, walDir, archiver, markLater };
}

const push = async (data: string, env: Record<string, string | undefined> = {}) =>
  exec(launcher, ['wal-push', `pg_wal/${NAME}`], {
    cwd: data,
    env: await childEnv({ GCWAL_REPO: REPO, GCWAL_CA_STORE: 'node', GCWAL_ARCHIVE_ASYNC: 'on', ...env }),
  });

test('the launcher waits for the archiver to mark the segment durable and answers without Node', async (t) => {
  const { data, markLater } = await setUp(t);
  markLater(300);
  t.deepEqual(await push(data), { code: 0, signal: null, stdout: '', stderr: '' });
});

// In each case a marker comes after 10 s: a launcher that waited for it would exit 0 instead of reaching Node.
const handsOver: { when: string; options?: { ready?: boolean; failing?: boolean }; env?: Record<string, string | undefined>; kill?: boolean }[] = [
  { when: 'asynchronous mode is off', env: { GCWAL_ARCHIVE_ASYNC: undefined } },
  { when: 'the archiver is failing', options: { failing: true } },
  { when: 'the segment is not ready', options: { ready: false } },
  { when: 'the archiver is gone', kill: true },
];
for (const { when, options, env, kill } of handsOver) {
  test(`the launcher hands the call to Node at once when ${when}`, async (t) => {
    const { data, archiver, markLater } = await setUp(t, options);
    if (kill) {
      archiver.kill('SIGKILL');
      await new Promise((resolve) => archiver.once('exit', resolve));
    }
    markLater(10_000);
    t.is((await push(data, env)).code, STUB_EXIT);
  });
}
