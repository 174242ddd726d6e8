import test from 'ava';
import { checkBackupForServer, majorFromDataDirectoryPath, parsePostgresVersionOutput, readServerMajor } from '../../../agent/restore/server-version.ts';
import { ExitCode, UsageError, VersionMismatchError } from '../../../core/errors.ts';
import { pgBinDirFor } from '../../../local/testkit/pgbin.ts';

const outputs: [string, number | undefined][] = [
  ['postgres (PostgreSQL) 18.4\n', 18],
  ['postgres (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)\n', 15],
  ['postgres (PostgreSQL) 13.23\n', 13],
  ['postgres (PostgreSQL) 19beta1\n', 19],
  ['pg_ctl (PostgreSQL) 9.6.24\n', 9],
  ['bash: postgres: command not found\n', undefined],
];
for (const [text, major] of outputs) {
  test(`postgres --version output ${JSON.stringify(text.trim())} reads as ${major ?? 'no version'}`, (t) => {
    t.is(parsePostgresVersionOutput(text), major);
  });
}

const paths: [string, number | undefined][] = [
  ['/var/lib/postgresql/18/main', 18],
  ['/var/lib/postgresql/16/restored/', 16],
  ['/var/lib/pgsql/17/data', 17],
  ['/var/lib/postgresql/18/main/sub', undefined],
  ['/var/lib/postgresql/main', undefined],
  ['/srv/pg/18/main', undefined],
];
for (const [dest, major] of paths) {
  test(`the destination ${dest} ${major === undefined ? 'names no version' : `names PostgreSQL ${major}`}`, (t) => {
    t.is(majorFromDataDirectoryPath(dest)?.major, major);
  });
}

test('a backup of another major version than the server that will start it is refused with exit 2', (t) => {
  const meta = { name: 'base_000000010000000000000004', pgVersion: '15.10', pgVersionNum: 150010 };
  t.notThrows(() => checkBackupForServer(meta, { major: 15, source: 'x' }));
  const err = t.throws(() => checkBackupForServer(meta, { major: 18, source: 'the destination /var/lib/postgresql/18/main' }), {
    instanceOf: VersionMismatchError,
  });
  t.is(err.message, 'backup base_000000010000000000000004 is of postgresql 15.10, but the destination /var/lib/postgresql/18/main is postgresql 18');
  t.regex(err.hint, /PostgreSQL 15 .*pg_upgrade/);
  t.is(err.exitCode, ExitCode.usage);
});

test('--pg-bin reads the version of the postgres program there, and a directory without one is a usage error', async (t) => {
  t.deepEqual(await readServerMajor(await pgBinDirFor(18)), { major: 18, source: `${await pgBinDirFor(18)}/postgres` });
  await t.throwsAsync(readServerMajor('/nonexistent'), { instanceOf: UsageError, message: /^--pg-bin: cannot run \/nonexistent\/postgres/ });
});
