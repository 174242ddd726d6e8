/**
 * The hostile repository on gs://: backups planted through the Cloud Storage
 * driver into the emulator of the local stack (as a compromised database
 * host with object-create could), restored by the backup-fetch command with
 * nothing but the stack's environment.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../../agent/main.ts';
import { GcsStorage } from '../../../core/storage/gcs/storage.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { adoptStackEnv } from '../../helpers/stack-env.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { BACKUP_NAME, type FixtureEntry, writeFixtureBackup } from './fixture.ts';

let stack: LocalStack;
let work: TempDir;

test.before(async () => {
  stack = await startLocalStack({ prefix: 'hostile' });
  adoptStackEnv(stack);
  work = await makeTempDir('hostile-gcs');
});
test.after.always(async () => {
  await stack?.close();
  await work?.cleanup();
});

async function gcwal(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await main(argv, { ...stack.env }, { stdout, stderr, interactive: false, cwd: work.path, signal: new AbortController().signal });
  return { code, out, err };
}

const ENTRIES: FixtureEntry[] = [
  { path: 'PG_VERSION', content: '15\n' },
  { path: 'global', type: 'directory' },
  { path: 'global/pg_control', content: Buffer.alloc(512, 1) },
  { path: 'pg_tblspc', type: 'directory' },
  { path: 'pg_tblspc/16385', type: 'symlink', target: '/srv/ts' },
  { path: 'pg_tblspc/16385/PG_15_202209061', type: 'directory', mode: 0o1777 },
  { path: 'pg_tblspc/16385/PG_15_202209061/setuid', content: 'x', mode: 0o4755 },
];

test("backups planted in a gs:// repository: the unconfirmed tablespace stops the restore, another cluster's newer backup is skipped, no s or t bit survives", async (t) => {
  const storage = new GcsStorage(stack.env.GCWAL_REPO, { endpoint: stack.emulator.url, metadataServer: { host: stack.metadata.host } });
  const outside = path.join(work.path, 'outside');
  await writeFixtureBackup(storage, { entries: ENTRIES, tablespaces: [{ oid: '16385', location: outside }] });
  const planted = 'base_000000010000000000000009';
  await writeFixtureBackup(storage, {
    name: planted,
    entries: [...ENTRIES, { path: 'planted', content: 'planted' }],
    tablespaces: [{ oid: '16385', location: outside }],
    meta: (m) => ({
      ...m,
      systemIdentifier: '7399999999999999999',
      startLsn: '0/9000028',
      stopLsn: '0/9000100',
      startWalSegment: '000000010000000000000009',
      stopWalSegment: '000000010000000000000009',
      startTime: '2024-06-01T12:00:00.000Z',
      stopTime: '2024-06-01T12:00:05.000Z',
      backupLabel: 'START WAL LOCATION: 0/9000028 (file 000000010000000000000009)\n',
    }),
  });

  const refused = await gcwal(['backup-fetch', 'data', 'LATEST']);
  t.is(refused.code, 2, refused.err);
  t.regex(refused.err, new RegExp(`backup ${BACKUP_NAME} restores tablespace 16385 at "${outside}", outside the data directory`));
  t.false(existsSync(path.join(work.path, 'data')));
  t.false(existsSync(outside));

  const moved = path.join(work.path, 'moved');
  const restored = await gcwal(['backup-fetch', 'data', 'LATEST', '--tablespace-map', `16385=${moved}`]);
  t.is(restored.code, 0, restored.err);
  t.regex(restored.out, new RegExp(`^restored ${BACKUP_NAME} into `));
  t.regex(restored.err, new RegExp(`ignored 1 backup of another cluster than the repository's \\(${planted}\\)`));
  t.false(existsSync(path.join(work.path, 'data', 'planted')));
  t.false(existsSync(outside));
  t.is((await stat(path.join(moved, 'PG_15_202209061'))).mode & 0o7777, 0o777);
  t.is((await stat(path.join(moved, 'PG_15_202209061/setuid'))).mode & 0o7777, 0o755);
  t.is(await readFile(path.join(moved, 'PG_15_202209061/setuid'), 'utf8'), 'x');

  const byName = await gcwal(['backup-fetch', 'other', planted, '--tablespace-map', `16385=${path.join(work.path, 'moved2')}`]);
  t.is(byName.code, 4, byName.err);
  t.false(existsSync(path.join(work.path, 'other')));
});
