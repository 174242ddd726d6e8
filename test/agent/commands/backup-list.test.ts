import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { backupTable } from '../../../agent/commands/backup-list.ts';
import { main } from '../../../agent/main.ts';
import { serializeBackupMeta, type BackupMeta } from '../../../core/backup/meta.ts';
import { backupMetaKey } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';

const dirs: string[] = [];
async function repository(): Promise<{ url: string; storage: FileStorage }> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-list-cmd-'));
  dirs.push(dir);
  const url = pathToFileURL(join(dir, 'repo')).href;
  // Created as gcwal repo-create would: no command creates one.
  const storage = new FileStorage(url);
  await storage.createRoot();
  await createRepositoryIdentity(storage, { systemIdentifier: '7300000000000000001', walSegmentSize: 16 * 1024 * 1024 });
  return { url, storage };
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function run(argv: string[], repo: string) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await main(argv, { GCWAL_REPO: repo }, { stdout, stderr, interactive: false, cwd: tmpdir(), signal: new AbortController().signal });
  return { code, out, err };
}

const meta: BackupMeta = {
  format: 1,
  name: 'base_000000010000000000000002',
  systemIdentifier: '7300000000000000001',
  pgVersionNum: 150010,
  pgVersion: '15.10',
  walSegmentSize: 16777216,
  timeline: 1,
  startLsn: '0/2000028',
  stopLsn: '0/2000138',
  startWalSegment: '000000010000000000000002',
  stopWalSegment: '000000010000000000000002',
  startTime: '2024-05-01T12:00:00.123Z',
  stopTime: '2024-05-01T12:00:30.456Z',
  rawSize: 3 * 1024 * 1024,
  storedSize: 1024 * 1024,
  fileCount: 970,
  codec: 'lzo',
  parts: [],
  tablespaces: [],
  backupLabel: 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n',
  tablespaceMap: '',
  manifest: { key: 'backups/base_000000010000000000000002/manifest.jsonl', storedSize: 10, storedCrc32c: 'AAAAAA==', entries: 1 },
  gcwalVersion: '0.1.0',
};

test('a repository that was never created is an error (exit 13) rather than an empty list', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-list-cmd-'));
  dirs.push(dir);
  for (const url of [pathToFileURL(join(dir, 'typo')).href, pathToFileURL(dir).href]) {
    const r = await run(['backup-list', '--json'], url);
    t.is(r.code, 13, r.err);
    t.regex(r.err, /has no gcwal\.json.*gcwal repo-create/);
    t.is(r.out, '');
  }
});

test('an empty repository prints a friendly line, or [] as json', async (t) => {
  const { url } = await repository();
  const table = await run(['backup-list'], url);
  t.is(table.code, 0);
  t.regex(table.out, /^no backups in file:\/\/.*; run gcwal backup-push to take one\n$/);
  const json = await run(['backup-list', '--json'], url);
  t.is(json.code, 0);
  t.deepEqual(JSON.parse(json.out), []);
});

test('backups are printed as a table with a header, and as json with the documented fields only', async (t) => {
  const { url, storage } = await repository();
  await writeSmallObject(storage, backupMetaKey(meta.name), serializeBackupMeta(meta));
  const table = await run(['backup-list'], url);
  t.is(table.code, 0);
  t.is(
    table.out,
    [
      'NAME                           START TIME            TIMELINE  START LSN  RAW SIZE  STORED SIZE  PG',
      'base_000000010000000000000002  2024-05-01 12:00:00Z  1         0/2000028  3.0 MiB   1.0 MiB      15.10',
      '',
    ].join('\n'),
  );
  const json = await run(['backup-list', '--json'], url);
  t.deepEqual(JSON.parse(json.out), [
    {
      name: meta.name,
      startTime: meta.startTime,
      stopTime: meta.stopTime,
      timeline: 1,
      startLsn: '0/2000028',
      stopLsn: '0/2000138',
      startWalSegment: meta.startWalSegment,
      stopWalSegment: meta.stopWalSegment,
      rawSize: meta.rawSize,
      storedSize: meta.storedSize,
      fileCount: 970,
      pgVersion: '15.10',
      systemIdentifier: '7300000000000000001',
    },
  ]);
});

test('a damaged backup.json is skipped with a warning, the others are listed', async (t) => {
  const { url, storage } = await repository();
  await writeSmallObject(storage, backupMetaKey(meta.name), serializeBackupMeta(meta));
  await writeSmallObject(storage, backupMetaKey('base_000000010000000000000009'), 'garbage');
  const r = await run(['backup-list'], url);
  t.is(r.code, 0);
  t.regex(r.err, /warning: skipping backup base_000000010000000000000009: backup metadata .* is not valid json/);
  t.is(r.out.trim().split('\n').length, 2);
});

test('the table columns line up whatever the widths', (t) => {
  const second = { ...meta, name: `${meta.name}_02000160`, rawSize: 5 * 1024 ** 3, storedSize: 999 };
  const lines = backupTable([meta, second]).trimEnd().split('\n');
  const starts = (line: string) => [...line.matchAll(/(?<= {2})\S/g)].map((m) => m.index);
  t.deepEqual(starts(lines[1]), starts(lines[0]));
  t.deepEqual(starts(lines[2]), starts(lines[0]));
});
