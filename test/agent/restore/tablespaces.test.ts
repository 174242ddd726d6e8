import test from 'ava';
import type { BackupMeta } from '../../../core/backup/meta.ts';
import { CorruptObjectError, UsageError } from '../../../core/errors.ts';
import { backupTablespaces, formatTablespaceMap, parseTablespaceMap, planTablespaces } from '../../../agent/restore/tablespaces.ts';

const two = [
  { oid: '16385', location: '/srv/fast' },
  { oid: '16390', location: '/srv/slow/' },
];

test('tablespace_map text round-trips paths with backslashes and newlines', (t) => {
  const targets = [
    { oid: '16385', original: '/a', target: '/srv/plain' },
    { oid: '16386', original: '/b', target: '/srv/odd\\name\nwith newline' },
  ];
  const text = formatTablespaceMap(targets);
  t.is(text, '16385 /srv/plain\n16386 /srv/odd\\\\name\\\nwith newline\n');
  t.deepEqual(parseTablespaceMap(text, 'x'), [
    { oid: '16385', location: '/srv/plain' },
    { oid: '16386', location: '/srv/odd\\name\nwith newline' },
  ]);
});

test('a tablespace_map line without an oid is corruption', (t) => {
  t.throws(() => parseTablespaceMap('abc /srv\n', 'backup b'), { instanceOf: CorruptObjectError, message: /backup b has a malformed tablespace_map line/ });
});

test('the tablespaces of a backup come from its list, or from its tablespace_map when the list is empty', (t) => {
  const meta = (tablespaces: BackupMeta['tablespaces'], tablespaceMap: string) => ({ name: 'b', tablespaces, tablespaceMap }) as BackupMeta;
  t.deepEqual(backupTablespaces(meta(two, '')), two);
  t.deepEqual(backupTablespaces(meta([], '16385 /srv/fast\n')), [{ oid: '16385', location: '/srv/fast' }]);
  t.deepEqual(backupTablespaces(meta([], '')), []);
  t.throws(() => backupTablespaces(meta([{ oid: 'x', location: '/a' }], '')), { instanceOf: CorruptObjectError });
  t.throws(() => backupTablespaces(meta([{ oid: '1', location: 'relative' }], '')), { instanceOf: CorruptObjectError });
});

const plans: { name: string; mappings: string[]; expected: string[] }[] = [
  { name: 'without mappings every tablespace goes back where it was', mappings: [], expected: ['/srv/fast', '/srv/slow'] },
  { name: 'an OID mapping relocates one tablespace', mappings: ['16390=/mnt/new'], expected: ['/srv/fast', '/mnt/new'] },
  { name: 'an old-path mapping relocates one tablespace, trailing slashes aside', mappings: ['/srv/slow=/mnt/new/', '/srv/fast/=/mnt/other'], expected: ['/mnt/other', '/mnt/new'] },
  { name: 'a new path may contain =', mappings: ['16385=/mnt/a=b'], expected: ['/mnt/a=b', '/srv/slow'] },
];
for (const { name, mappings, expected } of plans) {
  test(`tablespace plan: ${name}`, (t) => {
    const targets = planTablespaces(two, mappings, '/data', 'b');
    t.deepEqual(targets.map((x) => x.target), expected);
    t.deepEqual(targets.map((x) => x.original), ['/srv/fast', '/srv/slow/']);
  });
}

const refused: { name: string; mappings: string[]; message: RegExp }[] = [
  { name: 'a mapping without =', mappings: ['16385'], message: /invalid --tablespace-map "16385"/ },
  { name: 'a relative new path', mappings: ['16385=relative'], message: /invalid --tablespace-map/ },
  { name: 'an unknown oid', mappings: ['99=/mnt/x'], message: /matches no tablespace of backup b/ },
  { name: 'an unknown old path', mappings: ['/srv/none=/mnt/x'], message: /matches no tablespace/ },
  { name: 'the same tablespace twice', mappings: ['16385=/mnt/x', '/srv/fast=/mnt/y'], message: /tablespace 16385 is mapped twice/ },
  { name: 'two tablespaces into one directory', mappings: ['16385=/mnt/x', '16390=/mnt/x'], message: /tablespace 16390 would be restored into \/mnt\/x, which is also the target of tablespace 16385/ },
  { name: 'a tablespace into the data directory', mappings: ['16385=/data'], message: /which is also the data directory/ },
];
for (const { name, mappings, message } of refused) {
  test(`tablespace plan refuses ${name}`, (t) => {
    const err = t.throws(() => planTablespaces(two, mappings, '/data', 'b'), { instanceOf: UsageError });
    t.regex(err!.message, message);
  });
}

test('the refusal of an unknown tablespace lists the backup\'s tablespaces', (t) => {
  const err = t.throws(() => planTablespaces(two, ['1=/x'], '/data', 'b'), { instanceOf: UsageError });
  t.is(err!.hint, 'its tablespaces: 16385 (/srv/fast), 16390 (/srv/slow/)');
});
