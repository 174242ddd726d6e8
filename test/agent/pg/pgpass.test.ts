import test from 'ava';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findPgpassPassword, readPgpass, type PgpassTarget } from '../../../agent/pg/pgpass.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';

const target: PgpassTarget = { host: 'db.example', port: 5432, database: 'postgres', user: 'backup' };

// [what, file text, target overrides, the password found]
const rows: [string, string, Partial<PgpassTarget>, string | undefined][] = [
  ['an exact line', 'db.example:5432:postgres:backup:s3cret\n', {}, 's3cret'],
  ['wildcards in every field but the password', '*:*:*:*:any\n', {}, 'any'],
  ['the first matching line, not a later one', 'db.example:*:*:backup:first\n*:*:*:*:second\n', {}, 'first'],
  ['no line for another user', 'db.example:5432:postgres:other:nope\n', {}, undefined],
  ['no line for another port', 'db.example:5433:postgres:backup:nope\n', {}, undefined],
  ['comments and blank lines skipped', '# db.example:5432:postgres:backup:commented\n\n*:5432:*:backup:real\n', {}, 'real'],
  ['escaped colons and backslashes', 'db.example:5432:postgres:backup:pa\\:ss\\\\word\n', {}, 'pa:ss\\word'],
  ['a password ending at the next unescaped colon, as in libpq', 'db.example:5432:postgres:backup:pass:extra\n', {}, 'pass'],
  ['an escaped colon in a host field', 'fe80\\:\\:1:5432:*:*:v6\n', { host: 'fe80::1' }, 'v6'],
  ['a line with too few fields ignored', 'db.example:5432:postgres\n*:*:*:*:fallback\n', {}, 'fallback'],
  ['CRLF line ends', 'db.example:5432:postgres:backup:crlf\r\n', {}, 'crlf'],
  ['the default socket directory looked up as localhost', 'localhost:5432:*:*:local\n', { host: '/var/run/postgresql' }, 'local'],
  ['another socket directory matched as written', '/tmp/sock:5432:*:*:dir\nlocalhost:5432:*:*:local\n', { host: '/tmp/sock' }, 'dir'],
];
for (const [what, text, overrides, expected] of rows) {
  test(`the password file gives ${expected === undefined ? 'nothing' : `"${expected}"`} for ${what}`, (t) => {
    t.is(findPgpassPassword(text, { ...target, ...overrides }), expected);
  });
}

test('a password file others may read is ignored with a warning, as libpq does; a missing one gives nothing', async (t) => {
  const dir = await makeTempDir('pgpass');
  t.teardown(dir.cleanup);
  const file = path.join(dir.path, 'pgpass');
  await writeFile(file, '*:*:*:*:s3cret\n', { mode: 0o600 });
  await chmod(file, 0o600);
  t.is(await readPgpass(file, target), 's3cret');
  await chmod(file, 0o640);
  const warnings: string[] = [];
  t.is(await readPgpass(file, target, (m) => warnings.push(m)), undefined);
  t.deepEqual(warnings, [`password file ${file} has group or world access and is ignored; permissions should be u=rw (0600) or less`]);
  t.is(await readPgpass(path.join(dir.path, 'none'), target), undefined);
});
