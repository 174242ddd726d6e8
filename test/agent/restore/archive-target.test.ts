/**
 * backup-fetch's check of --target-time and --target-name against the
 * pipeline's catalogue: refused with exit 2 before anything is written,
 * --force-target goes on with a warning, no catalogue goes on with a
 * warning. The repository holds no backup, so a restore that gets past the
 * check stops at "no such backup" (exit 1).
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { main } from '../../../agent/main.ts';
import { emptyCatalogue, type Catalogue } from '../../../core/catalogue/types.ts';
import { CATALOGUE_KEY } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';

const SEG = 16 * 1024 * 1024;
const SYSTEM = '7300000000000000001';
const segment = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;
const dirs: string[] = [];
test.after.always(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** Segments 2–4 validated with their records (last commit 12:09:17.123456 in 04, restore point "before the upgrade" in 03), a backup ending in 02. */
function catalogue(): Catalogue {
  const c = emptyCatalogue(new Date());
  c.systemIdentifier = SYSTEM;
  c.walSegmentSize = SEG;
  const records = {
    2: { restorePoints: [] },
    3: {
      firstXactTime: '2024-05-01T12:02:00.000000Z',
      lastXactTime: '2024-05-01T12:05:00.000000Z',
      lastXactLsn: '0/3000900',
      restorePoints: [{ name: 'before the upgrade', time: '2024-05-01T12:04:00.000000Z', lsn: '0/3000100' }],
    },
    4: { firstXactTime: '2024-05-01T12:06:00.000000Z', lastXactTime: '2024-05-01T12:09:17.123456Z', lastXactLsn: '0/4000F00', restorePoints: [] },
  } as const;
  for (const n of [2, 3, 4] as const) {
    c.wal[segment(n)] = {
      name: segment(n),
      generation: String(n),
      size: 1000,
      created: `2024-05-01T12:1${n}:00.000Z`,
      state: 'valid',
      records: structuredClone(records[n]) as never,
    };
  }
  c.backups.base_000000010000000000000002 = {
    name: 'base_000000010000000000000002',
    generation: '7',
    state: 'valid',
    systemIdentifier: SYSTEM,
    pgVersionNum: 150010,
    timeline: 1,
    startLsn: '0/2000028',
    stopLsn: '0/2000138',
    startWalSegment: segment(2),
    stopWalSegment: segment(2),
    startTime: '2024-05-01T12:00:00.000Z',
    stopTime: '2024-05-01T12:00:30.456Z',
    rawSize: 1,
    storedSize: 1,
    keys: [],
  };
  return c;
}

async function repository(withCatalogue = true): Promise<{ url: string; dest: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-archive-target-'));
  dirs.push(dir);
  const url = pathToFileURL(join(dir, 'repo')).href;
  const storage = new FileStorage(url);
  await storage.createRoot();
  await createRepositoryIdentity(storage, { systemIdentifier: SYSTEM, walSegmentSize: SEG });
  if (withCatalogue) await writeSmallObject(storage, CATALOGUE_KEY, JSON.stringify(catalogue()));
  return { url, dest: join(dir, 'restore') };
}

async function backupFetch(url: string, dest: string, args: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stdout.resume();
  stderr.on('data', (d) => (err += d));
  const code = await main(
    ['backup-fetch', dest, 'LATEST', ...args],
    { GCWAL_REPO: url },
    { stdout, stderr, interactive: false, cwd: tmpdir(), signal: new AbortController().signal },
  );
  return { code, err };
}

test('a --target-name no restore point in the archive has is refused with exit 2 before anything is written', async (t) => {
  const { url, dest } = await repository();
  const { code, err } = await backupFetch(url, dest, ['--target-name', 'before the upgrad']);
  t.is(code, 2, err);
  t.regex(err, /restore point "before the upgrad" is not in the archive's recoverable WAL \(restore points there: "before the upgrade"\)/);
  t.regex(err, /--force-target/);
  t.false(existsSync(dest));
});

test('a --target-time after the last commit archived is refused with exit 2, naming the last commit', async (t) => {
  const { url, dest } = await repository();
  const { code, err } = await backupFetch(url, dest, ['--target-time', '2024-05-01 12:09:17.2+00']);
  t.is(code, 2, err);
  t.regex(
    err,
    /recovery target time 2024-05-01 12:09:17\.2\+00:00 is after the last commit archived \(2024-05-01T12:09:17\.123456Z, at 0\/4000F00 in 000000010000000000000004 on timeline 1\)/,
  );
  t.false(existsSync(dest));
});

test('a reachable target, or an unreachable one with --force-target, gets past the check (to "no such backup" here)', async (t) => {
  const { url, dest } = await repository();
  const named = await backupFetch(url, dest, ['--target-name', 'before the upgrade']);
  t.is(named.code, 1, named.err);
  const timed = await backupFetch(url, dest, ['--target-time', '2024-05-01 12:09:17.123456+00']);
  t.is(timed.code, 1, timed.err);
  const forced = await backupFetch(url, dest, ['--target-time', '2024-05-01 13:00:00+00', '--force-target']);
  t.is(forced.code, 1, forced.err);
  t.regex(forced.err, /is after the last commit archived .*\(going on: --force-target\)/);
});

test('without a catalogue the target is not checked, and the restore goes on with a warning', async (t) => {
  const { url, dest } = await repository(false);
  const { code, err } = await backupFetch(url, dest, ['--target-name', 'anything']);
  t.is(code, 1, err);
  t.regex(err, /no pipeline catalogue: the recovery target is not checked against the archived WAL/);
});
