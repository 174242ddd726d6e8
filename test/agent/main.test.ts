import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../agent/main.ts';
import { createRepositoryIdentity } from '../../core/repository.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';

async function run(argv: string[], env: Record<string, string> = {}, cwd = process.cwd()) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await main(argv, env, { stdout, stderr, interactive: false, cwd, signal: new AbortController().signal });
  return { code, out, err };
}

let dir: string;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gcwal-main-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('--version prints the package version', async (t) => {
  const r = await run(['--version']);
  t.is(r.code, 0);
  t.regex(r.out, /^gcwal \d+\.\d+\.\d+\n$/);
});

test('--help lists every command and the exit codes', async (t) => {
  const r = await run(['--help']);
  t.is(r.code, 0);
  for (const c of ['repo-create', 'wal-push', 'wal-fetch', 'backup-push', 'backup-fetch', 'backup-list']) t.true(r.out.includes(c), c);
  t.regex(r.out, /126 +wal-fetch during archive recovery/);
  t.regex(r.out, /13 +the repository does not exist/);
});

test('every command has its own --help', async (t) => {
  for (const c of ['repo-create', 'wal-push', 'wal-fetch', 'backup-push', 'backup-fetch', 'backup-list']) {
    const r = await run([c, '--help']);
    t.is(r.code, 0, c);
    t.regex(r.out, new RegExp(`^usage: gcwal ${c}`), c);
  }
});

test('an unknown command is a usage error on one line', async (t) => {
  const r = await run(['wal-pusj']);
  t.is(r.code, 2);
  t.is(r.err, 'gcwal: error: unknown command "wal-pusj" (run gcwal --help for the list of commands)\n');
});

test('a missing GCWAL_REPO is a one-line error with an example', async (t) => {
  const r = await run(['wal-push', join(dir, '000000010000000000000001')]);
  t.is(r.code, 2);
  t.regex(r.err, /^gcwal: error: GCWAL_REPO is not set \(set it to the repository URL, e\.g\. GCWAL_REPO=file:\/\/\/var\/lib\/gcwal/);
  t.is(r.err.split('\n').length, 2);
});

test('a malformed GCWAL_REPO is a one-line error', async (t) => {
  const r = await run(['backup-list'], { GCWAL_REPO: 'ftp://x' });
  t.is(r.code, 2);
  t.regex(r.err, /GCWAL_REPO "ftp:\/\/x" is not a file:\/\/ or gs:\/\/ URL/);
});

test('a wrong number of arguments names the usage', async (t) => {
  const r = await run(['wal-fetch', 'x'], { GCWAL_REPO: `file://${dir}/repo` });
  t.is(r.code, 2);
  t.regex(r.err, /wal-fetch takes 2 arguments, got 1 \(usage: gcwal wal-fetch <name> <dest>\)/);
});

test('an unknown option is a usage error', async (t) => {
  const r = await run(['backup-list', '--colour'], { GCWAL_REPO: `file://${dir}/repo` });
  t.is(r.code, 2);
  t.regex(r.err, /unknown option '--colour'/);
});

test('wal-push of a missing file exits 3', async (t) => {
  const r = await run(['wal-push', 'pg_wal/000000010000000000000009'], { GCWAL_REPO: `file://${dir}/repo` }, dir);
  t.is(r.code, 3);
  t.regex(r.err, /000000010000000000000009 does not exist/);
});

test('wal-push of a file that is not named like WAL exits 3', async (t) => {
  await writeFile(join(dir, 'notes.txt'), 'hello');
  const r = await run(['wal-push', 'notes.txt'], { GCWAL_REPO: `file://${dir}/repo` }, dir);
  t.is(r.code, 3);
  t.regex(r.err, /notes\.txt is not a WAL file name/);
});

test('wal-push of a file named like WAL that is not WAL exits 3 and archives nothing', async (t) => {
  await writeFile(join(dir, '000000010000000000000005'), Buffer.alloc(16 * 1024 * 1024, 0x41));
  const r = await run(['wal-push', '000000010000000000000005'], { GCWAL_REPO: `file://${dir}/repo3` }, dir);
  t.is(r.code, 3);
  t.regex(r.err, /not a WAL segment|unknown|magic/i);
  const list = await run(['wal-fetch', '000000010000000000000005', join(dir, 'out')], { GCWAL_REPO: `file://${dir}/repo3` });
  t.is(list.code, 13, 'not even the repository was created');
});

test('wal-fetch of an unknown segment exits 1 and writes nothing', async (t) => {
  const dest = join(dir, 'RECOVERYXLOG');
  const empty = new FileStorage(`file://${dir}/empty-repo`);
  await empty.createRoot();
  await createRepositoryIdentity(empty, { systemIdentifier: '7300000000000000001', walSegmentSize: 16 * 1024 * 1024 });
  const r = await run(['wal-fetch', '0000000100000000000000AA', dest], { GCWAL_REPO: `file://${dir}/empty-repo` });
  t.is(r.code, 1);
  t.regex(r.err, /0000000100000000000000AA is not in the archive/);
  await t.throwsAsync(import('node:fs/promises').then((fs) => fs.stat(dest)));
});

test('errors can be logged as json lines with a severity', async (t) => {
  const r = await run(['wal-push', 'nope.txt'], { GCWAL_REPO: `file://${dir}/repo`, GCWAL_LOG_FORMAT: 'json' }, dir);
  t.is(r.code, 3);
  const line = JSON.parse(r.err);
  t.is(line.severity, 'ERROR');
  t.is(line.code, 'invalid_input');
  t.truthy(line.hint);
});
