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

const meta = (tablespaces: BackupMeta['tablespaces'], tablespaceMap: string) => ({ name: 'b', tablespaces, tablespaceMap }) as BackupMeta;

test('the tablespaces of a backup come from its list, or from its tablespace_map when the list is empty', (t) => {
  const plain = [
    { oid: '16385', location: '/srv/fast' },
    { oid: '16390', location: '/srv/slow' },
  ];
  t.deepEqual(backupTablespaces(meta(plain, '')), plain);
  t.deepEqual(backupTablespaces(meta([], '16385 /srv/fast\n')), [{ oid: '16385', location: '/srv/fast' }]);
  t.deepEqual(backupTablespaces(meta([], '')), []);
});

const damagedTablespaces: [string, BackupMeta['tablespaces'], string, RegExp][] = [
  ['an oid that is not decimal', [{ oid: 'x', location: '/a' }], '', /backup b: tablespaces\[0\] has oid "x", which is not an oid/],
  ['an oid with a leading zero', [{ oid: '016385', location: '/a' }], '', /tablespaces\[0\] has oid "016385"/],
  [
    'an oid twice',
    [
      { oid: '1', location: '/a' },
      { oid: '1', location: '/b' },
    ],
    '',
    /tablespaces\[1\] has oid 1, which another tablespace has too/,
  ],
  ['a relative location', [{ oid: '1', location: 'relative' }], '', /tablespaces\[0\] has location "relative", which is not absolute/],
  [
    'a location going up',
    [{ oid: '1', location: '/srv/ts/../../etc' }],
    '',
    /tablespaces\[0\] has location "\/srv\/ts\/\.\.\/\.\.\/etc", which goes up with \.\./,
  ],
  ['a location with a trailing slash', [{ oid: '1', location: '/srv/ts/' }], '', /which is not normalised/],
  ['a location with an empty component', [{ oid: '1', location: '/srv//ts' }], '', /which is not normalised/],
  ['the root as a location', [{ oid: '1', location: '/' }], '', /which is the root directory/],
  ['a tablespace_map line going up', [], '16385 /srv/../etc\n', /backup b: tablespaceMap line 1 has location "\/srv\/\.\.\/etc", which goes up with \.\./],
];
for (const [what, list, map, message] of damagedTablespaces) {
  test(`a backup whose tablespace has ${what} is damaged`, (t) => {
    const err = t.throws(() => backupTablespaces(meta(list, map)), { instanceOf: CorruptObjectError });
    t.regex(err!.message, message);
  });
}

const plans: { name: string; mappings: string[]; expected: string[] }[] = [
  { name: 'confirmed as recorded, every tablespace goes back where it was', mappings: [], expected: ['/srv/fast', '/srv/slow'] },
  { name: 'an OID mapping relocates one tablespace, the other confirmed as recorded', mappings: ['16390=/mnt/new'], expected: ['/srv/fast', '/mnt/new'] },
  {
    name: 'an old-path mapping relocates one tablespace, trailing slashes aside',
    mappings: ['/srv/slow=/mnt/new/', '/srv/fast/=/mnt/other'],
    expected: ['/mnt/other', '/mnt/new'],
  },
  { name: 'a new path may contain =', mappings: ['16385=/mnt/a=b'], expected: ['/mnt/a=b', '/srv/slow'] },
];
for (const { name, mappings, expected } of plans) {
  test(`tablespace plan: ${name}`, (t) => {
    const targets = planTablespaces(two, { mappings, asRecorded: true }, '/data', 'b');
    t.deepEqual(
      targets.map((x) => x.target),
      expected,
    );
    t.deepEqual(
      targets.map((x) => x.original),
      ['/srv/fast', '/srv/slow/'],
    );
  });
}

const refused: { name: string; mappings: string[]; message: RegExp }[] = [
  { name: 'a mapping without =', mappings: ['16385'], message: /invalid --tablespace-map "16385"/ },
  { name: 'a relative new path', mappings: ['16385=relative'], message: /invalid --tablespace-map/ },
  { name: 'an unknown oid', mappings: ['99=/mnt/x'], message: /matches no tablespace of backup b/ },
  { name: 'an unknown old path', mappings: ['/srv/none=/mnt/x'], message: /matches no tablespace/ },
  { name: 'the same tablespace twice', mappings: ['16385=/mnt/x', '/srv/fast=/mnt/y'], message: /tablespace 16385 is mapped twice/ },
  {
    name: 'two tablespaces into one directory',
    mappings: ['16385=/mnt/x', '16390=/mnt/x'],
    message: /tablespace 16390 would be restored into \/mnt\/x, which is also the target of tablespace 16385/,
  },
  { name: 'a tablespace into the data directory', mappings: ['16385=/data'], message: /which is also the data directory/ },
  {
    name: 'a tablespace inside the data directory',
    mappings: ['16385=/data/base/x'],
    message: /tablespace 16385 would be restored into \/data\/base\/x, which overlaps the data directory \/data/,
  },
  {
    name: 'a tablespace holding the data directory',
    mappings: ['16385=/'],
    message: /tablespace 16385 would be restored into \/, which overlaps the data directory \/data/,
  },
  {
    name: 'a tablespace inside another',
    mappings: ['16385=/mnt/x', '16390=/mnt/x/y'],
    message: /tablespace 16390 would be restored into \/mnt\/x\/y, which overlaps the target of tablespace 16385 \/mnt\/x/,
  },
];
for (const { name, mappings, message } of refused) {
  test(`tablespace plan refuses ${name}`, (t) => {
    const err = t.throws(() => planTablespaces(two, { mappings, asRecorded: true }, '/data', 'b'), { instanceOf: UsageError });
    t.regex(err!.message, message);
  });
}

test("the refusal of an unknown tablespace lists the backup's tablespaces", (t) => {
  const err = t.throws(() => planTablespaces(two, { mappings: ['1=/x'], asRecorded: true }, '/data', 'b'), { instanceOf: UsageError });
  t.is(err!.hint, 'its tablespaces: 16385 (/srv/fast), 16390 (/srv/slow/)');
});

test('tablespace locations the user did not confirm are refused, naming them and the options that confirm them', (t) => {
  const err = t.throws(() => planTablespaces(two, { mappings: [], asRecorded: false }, '/data', 'b'), { instanceOf: UsageError });
  t.is(
    err!.message,
    'backup b restores tablespaces 16385 at "/srv/fast", 16390 at "/srv/slow/", outside the data directory; locations from the repository are used only when confirmed',
  );
  t.is(err!.hint, 'pass --tablespaces-as-recorded to restore them there, or --tablespace-map OID=/new/dir for each');
  t.is(err!.exitCode, 2);
});

test('a tablespace not mapped is refused even when the other one is', (t) => {
  const err = t.throws(() => planTablespaces(two, { mappings: ['16385=/mnt/x'], asRecorded: false }, '/data', 'b'), { instanceOf: UsageError });
  t.regex(err!.message, /^backup b restores tablespace 16390 at "\/srv\/slow\/", outside/);
});

test('every tablespace mapped needs no confirmation, even to its recorded location', (t) => {
  const targets = planTablespaces(two, { mappings: ['16385=/srv/fast', '16390=/mnt/y'], asRecorded: false }, '/data', 'b');
  t.deepEqual(
    targets.map((x) => x.target),
    ['/srv/fast', '/mnt/y'],
  );
  t.deepEqual(planTablespaces([], { mappings: [], asRecorded: false }, '/data', 'b'), []);
});
