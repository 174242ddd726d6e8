import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { walkDataDirectory, type WalkEntry } from '../../../agent/backup/walk.ts';
import { InvalidInputError } from '../../../core/errors.ts';

/** Build a tree: paths ending in `/` are directories, `->` makes a symlink, anything else a file with that content. */
function build(root: string, spec: Record<string, string>): void {
  for (const [rel, content] of Object.entries(spec)) {
    const abs = path.join(root, rel);
    if (rel.endsWith('/')) {
      mkdirSync(abs, { recursive: true });
    } else if (content.startsWith('->')) {
      mkdirSync(path.dirname(abs), { recursive: true });
      symlinkSync(content.slice(2), abs);
    } else {
      mkdirSync(path.dirname(abs), { recursive: true });
      writeFileSync(abs, content);
    }
  }
}

function tempDir(t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'gcwal-walk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A data directory with one of everything the walk must keep or leave out. */
function fakeCluster(root: string) {
  const pgdata = path.join(root, 'pgdata');
  const ts = path.join(root, 'ts1');
  build(root, {
    'ts1/PG_15_202209061/16384/16401': 'tablespace relation',
    'ts1/PG_15_202209061/16384/16402_init': 'init fork',
    'ts1/PG_15_202209061/16384/16402': 'unlogged main fork',
    'ts1/PG_14_202107181/16384/16401': 'another version after pg_upgrade',
  });
  build(pgdata, {
    PG_VERSION: '15\n',
    'postgresql.conf': 'x',
    'postgresql.auto.conf': 'x',
    'postgresql.auto.conf.tmp': 'x',
    'postmaster.pid': '1',
    'postmaster.opts': 'x',
    backup_label: 'old',
    tablespace_map: 'old',
    backup_manifest: 'old',
    current_logfiles: 'stderr log/x',
    'current_logfiles.tmp': 'x',
    'global/pg_control': 'control',
    'global/1262': 'x',
    'global/pg_internal.init': 'x',
    'global/pg_internal.init.4242': 'x',
    'base/1/1259': 'catalog',
    'base/1/1259_fsm': 'fsm',
    'base/1/16384': 'unlogged main',
    'base/1/16384.1': 'unlogged main segment',
    'base/1/16384_fsm': 'unlogged fsm',
    'base/1/16384_init': 'init',
    'base/1/t3_16400': 'temp relation',
    'base/1/pg_filenode.map': 'x',
    'base/pgsql_tmp/pgsql_tmp123.0': 'spill',
    'pg_wal/000000010000000000000001': 'wal',
    'pg_wal/archive_status/000000010000000000000001.ready': '',
    'pg_stat_tmp/global.stat': 'x',
    'pg_replslot/slot1/state': 'x',
    'pg_subtrans/0000': 'x',
    'pg_notify/0000': 'x',
    'pg_dynshmem/mmap.1': 'x',
    'pg_serial/0000': 'x',
    'pg_snapshots/00000003-1': 'x',
    'pg_xact/0000': 'commit log',
    'pg_tblspc/16500': `->${ts}`,
    'log/postgresql.log': 'log line',
    'server.crt': '->/etc/ssl/certs/nothing.pem',
    'empty/': '',
  });
  return { pgdata, ts };
}

test('the walk keeps what a base backup needs and leaves out what PostgreSQL says to skip', async (t) => {
  const { pgdata, ts } = fakeCluster(tempDir(t));
  const skipped: [string, string][] = [];
  const result = await walkDataDirectory(pgdata, { pgMajor: 15, onSkip: (p, _reason, level) => skipped.push([p, level]) });
  const byPath = new Map(result.entries.map((e) => [e.path, e]));
  const kind = (p: string) => byPath.get(p)?.type;

  t.deepEqual(
    [...byPath.keys()].sort(),
    [
      'PG_VERSION',
      'base',
      'base/1',
      'base/1/1259',
      'base/1/1259_fsm',
      'base/1/16384_init',
      'base/1/pg_filenode.map',
      'current_logfiles',
      'empty',
      'global',
      'global/1262',
      'global/pg_control',
      'log',
      'log/postgresql.log',
      'pg_dynshmem',
      'pg_notify',
      'pg_replslot',
      'pg_serial',
      'pg_snapshots',
      'pg_stat_tmp',
      'pg_subtrans',
      'pg_tblspc',
      'pg_tblspc/16500',
      'pg_tblspc/16500/PG_15_202209061',
      'pg_tblspc/16500/PG_15_202209061/16384',
      'pg_tblspc/16500/PG_15_202209061/16384/16401',
      'pg_tblspc/16500/PG_15_202209061/16384/16402_init',
      'pg_wal',
      'pg_wal/archive_status',
      'pg_xact',
      'pg_xact/0000',
      'postgresql.auto.conf',
      'postgresql.conf',
    ].sort(),
  );

  for (const dir of ['pg_wal', 'pg_wal/archive_status', 'pg_replslot', 'pg_stat_tmp', 'pg_subtrans', 'empty']) t.is(kind(dir), 'directory', dir);
  t.is(kind('pg_tblspc/16500'), 'symlink');
  t.is(byPath.get('pg_tblspc/16500')!.target, ts);
  t.deepEqual(result.tablespaces, [{ oid: '16500', location: ts }]);
  t.is(byPath.get('pg_tblspc/16500/PG_15_202209061/16384/16401')!.source, path.join(ts, 'PG_15_202209061/16384/16401'));

  const files = result.entries.filter((e) => e.type === 'file');
  t.is(result.fileCount, files.length);
  t.is(
    result.totalBytes,
    files.reduce((n, e) => n + e.size, 0),
  );
  t.is(byPath.get('global/pg_control')!.size, 'control'.length);

  // Symbolic links outside pg_tblspc are warned about, as pg_basebackup does.
  t.deepEqual(
    skipped.filter(([, level]) => level === 'warn'),
    [['server.crt', 'warn']],
  );
  t.true(skipped.some(([p]) => p === 'base/pgsql_tmp'));
  t.true(skipped.some(([p]) => p === 'postmaster.pid'));
});

test('each directory comes before its contents, names sorted', async (t) => {
  const { pgdata } = fakeCluster(tempDir(t));
  const { entries } = await walkDataDirectory(pgdata, { pgMajor: 15 });
  const seen = new Set<string>();
  for (const e of entries) {
    const parent = path.posix.dirname(e.path);
    if (parent !== '.') t.true(seen.has(parent), `${e.path} after its directory`);
    seen.add(e.path);
  }
  const top = entries.filter((e) => !e.path.includes('/')).map((e) => e.path);
  t.deepEqual(top, [...top].sort());
});

test('a pg_wal symlink is stored as an empty directory', async (t) => {
  const root = tempDir(t);
  const pgdata = path.join(root, 'pgdata');
  build(root, { 'waldisk/000000010000000000000001': 'wal', 'waldisk/archive_status/': '' });
  build(pgdata, { PG_VERSION: '15\n', pg_wal: `->${path.join(root, 'waldisk')}` });
  const { entries } = await walkDataDirectory(pgdata, { pgMajor: 15 });
  t.deepEqual(
    entries.map((e) => [e.path, e.type]),
    [
      ['PG_VERSION', 'file'],
      ['pg_wal', 'directory'],
      ['pg_wal/archive_status', 'directory'],
    ],
  );
});

test('pg_wal without archive_status still gets one, and other subdirectories are kept empty', async (t) => {
  const root = tempDir(t);
  build(root, { 'pg_wal/000000010000000000000001': 'wal', 'pg_wal/summaries/0000000100000000010000000001000000.summary': 'x' });
  const { entries } = await walkDataDirectory(root, { pgMajor: 17 });
  t.deepEqual(
    entries.map((e) => e.path),
    ['pg_wal', 'pg_wal/summaries', 'pg_wal/archive_status'],
  );
});

test('a tablespace whose location vanished is recorded and warned about', async (t) => {
  const root = tempDir(t);
  build(root, { 'pg_tblspc/16500': '->/nonexistent/gcwal-test-ts' });
  const warnings: string[] = [];
  const result = await walkDataDirectory(root, { pgMajor: 15, onSkip: (p, _r, level) => level === 'warn' && warnings.push(p) });
  t.deepEqual(result.tablespaces, [{ oid: '16500', location: '/nonexistent/gcwal-test-ts' }]);
  t.deepEqual(warnings, ['pg_tblspc/16500']);
});

test('file modes are kept', async (t) => {
  const root = tempDir(t);
  build(root, { a: 'x' });
  const { chmodSync } = await import('node:fs');
  chmodSync(path.join(root, 'a'), 0o640);
  const { entries } = await walkDataDirectory(root, { pgMajor: 15 });
  t.is((entries[0] as WalkEntry).mode, 0o640);
});

test('a data directory that does not exist is invalid input', async (t) => {
  await t.throwsAsync(walkDataDirectory('/nonexistent/gcwal-pgdata', { pgMajor: 15 }), { instanceOf: InvalidInputError });
});
