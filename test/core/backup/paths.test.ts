import test from 'ava';
import { checkBackupPath } from '../../../core/backup/paths.ts';
import { CorruptObjectError } from '../../../core/errors.ts';

const accepted: [string, string][] = [
  ['PG_VERSION', 'PG_VERSION'],
  ['base/1/1259', 'base/1/1259'],
  ['pg_wal/', 'pg_wal'],
  ['pg_tblspc/16385/PG_15_202209061/5/16386', 'pg_tblspc/16385/PG_15_202209061/5/16386'],
  ['dir with space/..dots../file', 'dir with space/..dots../file'],
];
for (const [input, expected] of accepted) {
  test(`backup path ${JSON.stringify(input)} is accepted as ${JSON.stringify(expected)}`, (t) => {
    t.is(checkBackupPath(input, 'part 0'), expected);
  });
}

const refused: [string, RegExp][] = [
  ['', /empty/],
  ['/', /empty/],
  ['/etc/passwd', /absolute/],
  ['../evil', /goes up/],
  ['base/../../evil', /goes up/],
  ['base/..', /goes up/],
  ['./base', /empty or \. component/],
  ['base//1', /empty or \. component/],
  ['base/./1', /empty or \. component/],
  ['base/\0x', /NUL/],
];
for (const [input, message] of refused) {
  test(`backup path ${JSON.stringify(input)} is refused`, (t) => {
    const err = t.throws(() => checkBackupPath(input, 'part 3 of backup b'), { instanceOf: CorruptObjectError });
    t.regex(err!.message, /^part 3 of backup b holds an unsafe path/);
    t.regex(err!.message, message);
  });
}
