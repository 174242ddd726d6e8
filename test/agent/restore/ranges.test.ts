import test from 'ava';
import type { BackupPart, ManifestEntry } from '../../../core/backup/meta.ts';
import { planRangedPart } from '../../../agent/restore/ranges.ts';

const MiB = 1024 * 1024;
const part: BackupPart = {
  key: 'backups/base_000000010000000000000004/part_00000.tar',
  rawSize: 400 * MiB,
  rawCrc32c: 'AAAAAA==',
  storedSize: 100 * MiB,
  storedCrc32c: 'AAAAAA==',
  codec: 'lzo',
  files: 4,
};

function file(path: string, offset: number, size: number, storedOffset: number, storedEnd: number): ManifestEntry {
  const blockOffset = offset - (offset % (256 * 1024));
  return { path, type: 'file', size, crc32c: 'AAAAAA==', part: 0, mode: 0o600, mtime: '2026-12-07T00:00:00Z', offset, blockOffset, storedOffset, storedEnd };
}

const a = file('base/5/1259', 1024, 8192, 40, 60_000);
const b = file('base/5/1249', 20_000, 100_000, 40, 90_000);
const c = file('base/5/16400', 200 * MiB, 4 * MiB, 50 * MiB, 51 * MiB);
const d = file('base/5/16401', 300 * MiB, 1 * MiB, 80 * MiB, 80 * MiB + 300_000);
const all = [a, b, c, d];

test('the files to write of a part are read in ranges, near ones in one read, far ones apart, and every file of the part is accounted for', (t) => {
  const plan = planRangedPart(part, [d, b, a, c], all)!;
  t.deepEqual(
    plan.runs.map((r) => [r.storedOffset, r.storedEnd, r.blockOffset, r.files.map((f) => f.path)]),
    [
      [40, 90_000, 0, ['base/5/1259', 'base/5/1249']],
      [50 * MiB, 51 * MiB, c.blockOffset, ['base/5/16400']],
      [80 * MiB, 80 * MiB + 300_000, d.blockOffset, ['base/5/16401']],
    ],
  );
  t.deepEqual(
    plan.paths,
    all.map((e) => e.path),
  );
  t.is(plan.files, 4);
  t.is(plan.bytes, a.size + b.size + c.size + d.size);
});

test('a part is read whole when a file to write has no range (a manifest before format 2), the codec is not lzo, a range lies outside the part, or the ranges are most of it', (t) => {
  const { offset: _o, blockOffset: _b, storedOffset: _s, storedEnd: _e, ...unranged } = a;
  t.is(planRangedPart(part, [unranged, c], all), undefined, 'no range');
  t.is(planRangedPart({ ...part, codec: 'zstd' }, [c], all), undefined, 'zstd');
  t.is(planRangedPart(part, [{ ...c, storedEnd: 101 * MiB }], all), undefined, 'past the stored end');
  t.is(planRangedPart(part, [{ ...c, offset: 399 * MiB }], all), undefined, 'past the raw end');
  t.is(planRangedPart(part, [{ ...c, storedOffset: 10 * MiB, storedEnd: 70 * MiB }], all), undefined, 'most of the part');
  t.is(planRangedPart(part, [], all), undefined, 'nothing to write');
});
