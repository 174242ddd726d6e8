import test from 'ava';
import { planParts, tarBytes } from '../../../agent/backup/plan.ts';
import type { WalkEntry } from '../../../agent/backup/walk.ts';

const mtime = new Date(0);
const file = (path: string, size: number): WalkEntry => ({ path, source: `/x/${path}`, type: 'file', size, mode: 0o600, mtime });
const dir = (path: string): WalkEntry => ({ path, source: `/x/${path}`, type: 'directory', size: 0, mode: 0o700, mtime });
const link = (path: string): WalkEntry => ({ path, source: `/x/${path}`, type: 'symlink', size: 0, mode: 0o777, mtime, target: '/ts' });

test('tar bytes count a header block and the data rounded up to a block', (t) => {
  t.is(tarBytes(file('a', 0)), 512);
  t.is(tarBytes(file('a', 1)), 1024);
  t.is(tarBytes(file('a', 512)), 1024);
  t.is(tarBytes(file('a', 513)), 1536);
  t.is(tarBytes(dir('d')), 512);
  t.is(tarBytes(link('l')), 0);
});

test('a new part starts at an entry boundary once the current one reaches the part size', (t) => {
  const entries = [dir('base'), file('base/1', 500), file('base/2', 500), file('base/3', 1000), file('base/4', 10), file('base/5', 5000), file('base/6', 10)];
  const parts = planParts(entries, 2048);
  t.deepEqual(
    parts.map((p) => p.entries.map((e) => e.path)),
    [
      ['base', 'base/1', 'base/2'], // 512 + 1024 + 1024 = 2560 ≥ 2048
      ['base/3', 'base/4'], // 1536 + 1024 = 2560
      ['base/5'], // 512 + 5120: one big file makes a big part
      ['base/6'],
    ],
  );
  t.deepEqual(
    parts.map((p) => p.bytes),
    [2560, 2560, 5632, 1024],
  );
  t.deepEqual(
    parts.map((p) => p.index),
    [0, 1, 2, 3],
  );
  t.deepEqual(
    parts.map((p) => p.files),
    [2, 2, 1, 1],
  );
  t.true(parts.every((p) => !p.last));
});

test('a file of the part size or more is alone in its part, so a delta restore can skip it when it is unchanged', (t) => {
  const entries = [dir('base'), file('base/1', 100), file('base/2', 4096), file('base/3', 10), file('base/4', 100)];
  const parts = planParts(entries, 2048);
  t.deepEqual(
    parts.map((p) => p.entries.map((e) => e.path)),
    [['base', 'base/1'], ['base/2'], ['base/3', 'base/4']],
  );
  t.deepEqual(
    parts.map((p) => p.files),
    [1, 1, 2],
  );
});

test('every entry but symlinks is planned exactly once and in order', (t) => {
  const entries: WalkEntry[] = [dir('pg_tblspc'), link('pg_tblspc/16500'), dir('pg_tblspc/16500/PG_15_1')];
  for (let i = 0; i < 50; i++) entries.push(file(`f${i}`, i * 37));
  const planned = planParts(entries, 1500).flatMap((p) => p.entries);
  t.deepEqual(
    planned.map((e) => e.path),
    entries.filter((e) => e.type !== 'symlink').map((e) => e.path),
  );
});

test('the control file goes to a final part of its own, built last', (t) => {
  const entries = [dir('global'), file('global/1262', 8192), file('global/pg_control', 8192), file('global/pg_filenode.map', 512)];
  const parts = planParts(entries, 1 << 20, ['global/pg_control']);
  t.is(parts.length, 2);
  t.deepEqual(
    parts[0].entries.map((e) => e.path),
    ['global', 'global/1262', 'global/pg_filenode.map'],
  );
  t.false(parts[0].last);
  t.deepEqual(
    parts[1].entries.map((e) => e.path),
    ['global/pg_control'],
  );
  t.true(parts[1].last);
  t.is(parts[1].index, 1);
});

test('an empty walk plans no parts', (t) => {
  t.deepEqual(planParts([], 1024, ['global/pg_control']), []);
});

test('a part size that is not positive is refused', (t) => {
  t.throws(() => planParts([file('a', 1)], 0), { instanceOf: RangeError });
});
