/**
 * The launcher's answer from the prefetch spool (agent/wal/launcher.sh,
 * agent/wal/README.md): `gcwal wal-fetch <segment> pg_wal/<file>` for a
 * segment the Node side spooled (agent/wal/spool.ts) for this repository and
 * this restore is a rename, without Node; every other call reaches Node.
 * "Node" is /bin/false (a call that reaches it fails) or a stub that says
 * so on stdout, so each test sees which way a call went (its exit status is
 * the launcher's to map in archive recovery: test/agent/recovery-exit.test.ts).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { SPOOL_DIR } from '../../../agent/wal/spool-entry.ts';
import { recoveryIdentity, spoolSegment, takeSpooled } from '../../../agent/wal/spool.ts';
import { writeLauncher } from '../../../agent/wal/launcher.mjs';
import { exec } from '../../../local/testkit/exec.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { childEnv } from '../../../local/testkit/users.ts';

const NAME = '00000002000000000000002A';
const REPO = "file:///srv/gcwal/it's a repo";
const STUB_SAYS = 'node reached\n';

let work: TempDir;
let withoutNode: string;
let withStub: string;

test.before(async () => {
  work = await makeTempDir('launcher-prefetch');
  const bundle = path.join(work.path, 'gcwal.mjs');
  await writeFile(bundle, '');
  const stub = path.join(work.path, 'stub-node');
  await writeFile(stub, `#!/bin/sh\nprintf '${STUB_SAYS.replace('\n', '\\n')}'\nexit 42\n`, { mode: 0o755 });
  withoutNode = path.join(work.path, 'gcwal-without-node');
  await writeLauncher(withoutNode, { node: '/bin/false', bundle });
  withStub = path.join(work.path, 'gcwal-with-stub');
  await writeLauncher(withStub, { node: stub, bundle });
});

test.after.always(async () => {
  await work?.cleanup();
});

let counter = 0;
const content = (n: number) => Buffer.alloc(64 * 1024, n);

/** A data directory in recovery with NAME spooled for REPO and this restore, as the prefetcher writes it. */
async function spooled(options: { repo?: string } = {}) {
  const data = path.join(work.path, `data-${++counter}`);
  const walDir = path.join(data, 'pg_wal');
  await mkdir(walDir, { recursive: true });
  await writeFile(path.join(data, 'PG_VERSION'), '15\n');
  await writeFile(path.join(data, 'recovery.signal'), '');
  const recovery = (await recoveryIdentity(data))!;
  const raw = content(counter);
  await spoolSegment(walDir, Readable.from([raw]), {
    name: NAME,
    repo: options.repo ?? REPO,
    recovery,
    key: `wal/${NAME}`,
    generation: '1',
    rawSize: raw.length,
    rawCrc32c: crc32cBase64(crc32c(raw)),
  });
  return { data, walDir, raw, recovery, file: path.join(walDir, SPOOL_DIR, NAME) };
}

async function run(launcher: string, args: readonly string[], cwd: string, env: Record<string, string | undefined> = {}) {
  return exec(launcher, args, { env: await childEnv({ GCWAL_REPO: REPO, GCWAL_CA_STORE: 'node', ...env }), cwd });
}

test('a spooled segment of this repository and restore is renamed to %p with exit 0 and no output, without Node', async (t) => {
  const d = await spooled();
  const r = await run(withoutNode, ['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], d.data);
  t.deepEqual(r, { code: 0, signal: null, stdout: '', stderr: '' });
  t.deepEqual(await readFile(path.join(d.walDir, 'RECOVERYXLOG')), d.raw);
  t.false(existsSync(d.file), 'the spooled file was moved, not copied');
});

const refusals: {
  how: string;
  change?: (d: Awaited<ReturnType<typeof spooled>>) => Promise<unknown>;
  args?: string[];
  env?: Record<string, string>;
  repo?: string;
}[] = [
  { how: 'a .history name', args: ['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY'] },
  { how: 'a .partial name', args: ['wal-fetch', `${NAME}.partial`, 'pg_wal/RECOVERYXLOG'] },
  { how: 'another segment', args: ['wal-fetch', '00000001000000000000002A', 'pg_wal/RECOVERYXLOG'] },
  { how: 'another repository', repo: 'file:///srv/other' },
  { how: 'a destination outside pg_wal', args: ['wal-fetch', NAME, 'RECOVERYXLOG'] },
  { how: 'GCWAL_VERBOSE=1', env: { GCWAL_VERBOSE: '1' } },
  { how: 'GCWAL_PREFETCH=0', env: { GCWAL_PREFETCH: '0' } },
  {
    how: 'another restore into the same directory (a new PG_VERSION)',
    change: async (d) => {
      await rm(path.join(d.data, 'PG_VERSION'));
      await writeFile(path.join(d.data, 'PG_VERSION'), '15\n');
    },
  },
  { how: 'a spooled file written into (damaged)', change: (d) => appendFile(d.file, 'x').then(() => truncate(d.file, d.raw.length)) },
  { how: 'a truncated spooled file', change: (d) => truncate(d.file, 1000) },
  { how: 'a spooled file without its record', change: (d) => rm(`${d.file}.entry`) },
  {
    how: 'a record cut short',
    change: async (d) => {
      const text = await readFile(`${d.file}.entry`, 'utf8');
      await writeFile(`${d.file}.entry`, text.slice(0, text.indexOf('\n') - 1));
    },
  },
];

for (const { how, change, args, env, repo } of refusals) {
  test(`the spool does not answer for ${how}: the call reaches Node`, async (t) => {
    const d = await spooled({ repo });
    await change?.(d);
    const r = await run(withStub, args ?? ['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], d.data, env);
    t.is(r.stdout, STUB_SAYS, r.stderr);
    t.false(existsSync(path.join(d.walDir, 'RECOVERYXLOG')));
  });
}

test('Node serves only intact spooled content: a damaged file whose identity was put back is refused and removed', async (t) => {
  const d = await spooled();
  const before = await stat(d.file, { bigint: true });
  const damaged = Buffer.from(d.raw);
  damaged[100] ^= 0xff;
  await writeFile(d.file, damaged);
  // Back to the nanosecond, as a disk that flips a bit leaves it.
  await exec('touch', ['-m', '-d', `@${before.mtimeNs / 1_000_000_000n}.${String(before.mtimeNs % 1_000_000_000n).padStart(9, '0')}`, d.file]);
  t.is((await stat(d.file, { bigint: true })).mtimeNs, before.mtimeNs);
  const dest = path.join(d.walDir, 'RECOVERYXLOG');
  t.is(await takeSpooled(d.walDir, NAME, dest, { repo: REPO, recovery: d.recovery }), 'damaged');
  t.false(existsSync(dest));
  t.false(existsSync(d.file));
});

test('Node serves an intact spooled segment of this repository and restore, and refuses another restore', async (t) => {
  const d = await spooled();
  const dest = path.join(d.walDir, 'RECOVERYXLOG');
  const other = { ...d.recovery, ino: String(BigInt(d.recovery.ino) + 1n) };
  t.is(await takeSpooled(d.walDir, NAME, dest, { repo: REPO, recovery: other }), 'other-recovery');
  const e = await spooled();
  const dest2 = path.join(e.walDir, 'RECOVERYXLOG');
  t.is(await takeSpooled(e.walDir, NAME, dest2, { repo: REPO, recovery: e.recovery }), 'served');
  t.deepEqual(await readFile(dest2), e.raw);
});

test('a failed spool write leaves nothing under the final name', async (t) => {
  const d = await spooled();
  const failing = new Readable({
    read() {
      this.push(Buffer.alloc(4096));
      this.destroy(new Error('cut off'));
    },
  });
  const name = '00000002000000000000002B';
  await t.throwsAsync(
    spoolSegment(d.walDir, failing, { name, repo: REPO, recovery: d.recovery, key: `wal/${name}`, generation: '1', rawSize: 8192, rawCrc32c: 'AAAAAA==' }),
  );
  t.deepEqual((await readdir(path.join(d.walDir, SPOOL_DIR))).sort(), [NAME, `${NAME}.entry`]);
});

/** A data directory in recovery whose prefetcher (`pid`) is writing NAME: only its temporary file is in the spool. */
async function inFlight(pid: number) {
  const data = path.join(work.path, `data-${++counter}`);
  const walDir = path.join(data, 'pg_wal');
  await mkdir(path.join(walDir, SPOOL_DIR), { recursive: true });
  await writeFile(path.join(data, 'PG_VERSION'), '15\n');
  await writeFile(path.join(data, 'recovery.signal'), '');
  await writeFile(path.join(walDir, SPOOL_DIR, 'fetcher.pid'), `${pid}\n`);
  const tmp = path.join(walDir, SPOOL_DIR, `.${NAME}.${pid}.abcd1234.tmp`);
  await writeFile(tmp, 'half');
  return { data, walDir, tmp, recovery: (await recoveryIdentity(data))! };
}

test('a segment the live prefetcher is still writing is waited for and then renamed to %p, without Node', async (t) => {
  const d = await inFlight(process.pid);
  const call = run(withoutNode, ['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], d.data);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const raw = content(7);
  await spoolSegment(d.walDir, Readable.from([raw]), {
    name: NAME,
    repo: REPO,
    recovery: d.recovery,
    key: `wal/${NAME}`,
    generation: '1',
    rawSize: raw.length,
    rawCrc32c: crc32cBase64(crc32c(raw)),
  });
  await rm(d.tmp);
  t.deepEqual(await call, { code: 0, signal: null, stdout: '', stderr: '' });
  t.deepEqual(await readFile(path.join(d.walDir, 'RECOVERYXLOG')), raw);
});

test('a temporary file left by a prefetcher that is gone is not waited for: the call reaches Node', async (t) => {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.on('exit', resolve));
  const d = await inFlight(child.pid!);
  const r = await run(withStub, ['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], d.data);
  t.is(r.stdout, STUB_SAYS, r.stderr);
});
