import test from 'ava';
import { CorruptObjectError } from '../../../core/errors.ts';
import { placeBackupPath } from '../../../agent/restore/paths.ts';

const tablespaces = new Map([['16385', '/srv/ts']]);
const placements: [string, string, string | undefined][] = [
  ['PG_VERSION', '/data/PG_VERSION', undefined],
  ['pg_tblspc', '/data/pg_tblspc', undefined],
  ['pg_tblspc/16385', '/data/pg_tblspc/16385', '16385'],
  ['pg_tblspc/16385/PG_15_202209061', '/srv/ts/PG_15_202209061', undefined],
  ['pg_tblspc/16385/PG_15_202209061/5/16386', '/srv/ts/PG_15_202209061/5/16386', undefined],
];
for (const [relative, absolute, link] of placements) {
  test(`backup path ${relative} is restored to ${absolute}`, (t) => {
    t.deepEqual(placeBackupPath(relative, '/data', tablespaces, 'part 0'), link ? { absolute, tablespaceLink: link } : { absolute });
  });
}

test('a path under pg_tblspc with an unknown oid is corruption', (t) => {
  const err = t.throws(() => placeBackupPath('pg_tblspc/99/x', '/data', tablespaces, 'part 1 of backup b'), { instanceOf: CorruptObjectError });
  t.regex(err!.message, /part 1 of backup b holds "pg_tblspc\/99\/x" under pg_tblspc, but "99" is not a tablespace/);
});
