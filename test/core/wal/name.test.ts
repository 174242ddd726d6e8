import test from 'ava';
import { InvalidInputError } from '../../../core/errors.ts';
import { MAX_LSN } from '../../../core/wal/lsn.ts';
import {
  classifyWalFileName,
  historyFileName,
  isValidSegmentSize,
  isValidTimeline,
  maxSegmentNumber,
  nextSegmentName,
  parseWalSegmentName,
  segmentNumberOfEndLsn,
  segmentNumberOfLsn,
  segmentRange,
  segmentStartLsn,
  segmentsPerXLogId,
  walSegmentName,
  type WalFileName,
} from '../../../core/wal/name.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

test('isValidSegmentSize accepts exactly the powers of two from 1 MiB to 1 GiB', (t) => {
  for (let n = MiB; n <= GiB; n *= 2) t.true(isValidSegmentSize(n), String(n));
  for (const n of [0, -MiB, MiB / 2, 2 * GiB, 3 * MiB, 16 * MiB + 1, 16 * MiB - 1, 1.5 * MiB, Number.NaN, Number.POSITIVE_INFINITY, 16 * MiB + 0.5]) {
    t.false(isValidSegmentSize(n), String(n));
  }
});

test('isValidTimeline accepts 1 to 2^32-1', (t) => {
  t.true(isValidTimeline(1));
  t.true(isValidTimeline(0xffff_ffff));
  t.false(isValidTimeline(0));
  t.false(isValidTimeline(0x1_0000_0000));
  t.false(isValidTimeline(1.5));
  t.false(isValidTimeline(-1));
});

test('segmentsPerXLogId divides 4 GiB by the segment size', (t) => {
  t.is(segmentsPerXLogId(MiB), 4096n);
  t.is(segmentsPerXLogId(16 * MiB), 256n);
  t.is(segmentsPerXLogId(GiB), 4n);
  t.throws(() => segmentsPerXLogId(3 * MiB), { instanceOf: InvalidInputError, message: /wal segment size 3145728 is invalid/ });
});

// [timeline, segNo, segSize, name]: first segments, the last segment of an
// xlogid and the first of the next, and the end of the WAL space.
const names: [number, bigint, number, string][] = [
  [1, 0n, 16 * MiB, '000000010000000000000000'],
  [1, 1n, 16 * MiB, '000000010000000000000001'],
  [1, 0xffn, 16 * MiB, '0000000100000000000000FF'],
  [1, 0x100n, 16 * MiB, '000000010000000100000000'],
  [1, 0x16b3n, 16 * MiB, '0000000100000016000000B3'],
  [1, 0xfffn, MiB, '000000010000000000000FFF'],
  [1, 0x1000n, MiB, '000000010000000100000000'],
  [1, 0x16b374n, MiB, '000000010000016B00000374'],
  [2, 3n, GiB, '000000020000000000000003'],
  [2, 4n, GiB, '000000020000000100000000'],
  [0xa, 0x5an, 16 * MiB, '0000000A000000000000005A'],
  [0xffff_ffff, 2n ** 40n - 1n, 16 * MiB, 'FFFFFFFFFFFFFFFF000000FF'],
  [1, 2n ** 44n - 1n, MiB, '00000001FFFFFFFF00000FFF'],
  [1, 2n ** 34n - 1n, GiB, '00000001FFFFFFFF00000003'],
];

for (const [timeline, segNo, segSize, name] of names) {
  test(`walSegmentName names segment ${segNo} of timeline ${timeline} at ${segSize / MiB} MiB ${name}`, (t) => {
    t.is(walSegmentName(timeline, segNo, segSize), name);
  });
  test(`parseWalSegmentName reads ${name} at ${segSize / MiB} MiB back`, (t) => {
    t.deepEqual(parseWalSegmentName(name, segSize), { timeline, segNo });
  });
}

test('maxSegmentNumber is the segment holding the last LSN', (t) => {
  for (const segSize of [MiB, 16 * MiB, GiB]) {
    t.is(maxSegmentNumber(segSize), segmentNumberOfLsn(MAX_LSN, segSize));
    t.is(segmentStartLsn(maxSegmentNumber(segSize), segSize) + BigInt(segSize) - 1n, MAX_LSN);
  }
});

test('parseWalSegmentName inverts walSegmentName around every xlogid boundary', (t) => {
  for (const segSize of [MiB, 2 * MiB, 16 * MiB, 64 * MiB, GiB]) {
    const perId = segmentsPerXLogId(segSize);
    const max = maxSegmentNumber(segSize);
    const segNos = [0n, 1n, perId - 1n, perId, perId + 1n, 7n * perId - 1n, 0x1234n * perId + perId / 2n, max - perId, max - 1n, max];
    for (const segNo of segNos) {
      for (const timeline of [1, 2, 0x7fff_ffff, 0xffff_ffff]) {
        const name = walSegmentName(timeline, segNo, segSize);
        t.regex(name, /^[0-9A-F]{24}$/);
        t.deepEqual(parseWalSegmentName(name, segSize), { timeline, segNo });
        t.is(walSegmentName(timeline, parseWalSegmentName(name, segSize).segNo, segSize), name);
      }
    }
  }
});

test('parseWalSegmentName rejects a low part the segment size cannot produce', (t) => {
  t.deepEqual(parseWalSegmentName('000000010000000000000100', MiB), { timeline: 1, segNo: 0x100n });
  t.throws(() => parseWalSegmentName('000000010000000000000100', 16 * MiB), {
    instanceOf: InvalidInputError,
    message: /cannot exist with 16777216-byte segments/,
  });
  t.throws(() => parseWalSegmentName('000000010000000000000004', GiB), { instanceOf: InvalidInputError, message: /cannot exist/ });
  t.throws(() => parseWalSegmentName('000000010000000000001000', MiB), { instanceOf: InvalidInputError, message: /cannot exist/ });
});

const malformedNames = [
  '',
  '0000000100000000000000ff',
  '0000000100000000000000Fa',
  '00000001000000000000001',
  '0000000100000000000000010',
  '000000010000000000000001.partial',
  '00000001.history',
  ' 000000010000000000000001',
  '000000010000000000000001\n',
  'XLOGTEMP0000000000000001',
  '000000000000000000000001',
];

for (const name of malformedNames) {
  test(`parseWalSegmentName rejects ${JSON.stringify(name)}`, (t) => {
    const err = t.throws(() => parseWalSegmentName(name, 16 * MiB), { instanceOf: InvalidInputError });
    t.false(err.message.includes('\n'));
    t.not(err.hint, '');
  });
}

test('walSegmentName rejects invalid timelines, segment numbers and sizes', (t) => {
  t.throws(() => walSegmentName(0, 1n, 16 * MiB), { instanceOf: InvalidInputError, message: /timeline 0 is out of range/ });
  t.throws(() => walSegmentName(0x1_0000_0000, 1n, 16 * MiB), { instanceOf: InvalidInputError, message: /timeline/ });
  t.throws(() => walSegmentName(1, -1n, 16 * MiB), { instanceOf: InvalidInputError, message: /segment number -1 is out of range/ });
  t.throws(() => walSegmentName(1, 2n ** 40n, 16 * MiB), { instanceOf: InvalidInputError, message: /out of range/ });
  t.throws(() => walSegmentName(1, 1n, 8 * 1024), { instanceOf: InvalidInputError, message: /wal segment size 8192 is invalid/ });
});

// [lsn, segSize, segment of lsn, segment of WAL ending at lsn]
const lsnSegments: [bigint, number, bigint, bigint | undefined][] = [
  [0n, 16 * MiB, 0n, undefined],
  [1n, 16 * MiB, 0n, 0n],
  [0xff_ffffn, 16 * MiB, 0n, 0n],
  [0x100_0000n, 16 * MiB, 1n, 0n],
  [0x100_0001n, 16 * MiB, 1n, 1n],
  [0x16_b374_d848n, 16 * MiB, 0x16b3n, 0x16b3n],
  [0x16_b374_d848n, MiB, 0x16b37n, 0x16b37n],
  [0x16_b374_d848n, GiB, 0x5an, 0x5an],
  [0x1_0000_0000n, GiB, 4n, 3n],
  [MAX_LSN, 16 * MiB, 2n ** 40n - 1n, 2n ** 40n - 1n],
  [MAX_LSN, GiB, 2n ** 34n - 1n, 2n ** 34n - 1n],
];

for (const [lsn, segSize, segNo, endSegNo] of lsnSegments) {
  test(`segment arithmetic places lsn ${lsn.toString(16)} at ${segSize / MiB} MiB in segment ${segNo}`, (t) => {
    t.is(segmentNumberOfLsn(lsn, segSize), segNo);
    const start = segmentStartLsn(segNo, segSize);
    t.true(start <= lsn && lsn < start + BigInt(segSize));
    t.is(segmentNumberOfLsn(start, segSize), segNo);
    if (endSegNo === undefined) t.throws(() => segmentNumberOfEndLsn(lsn, segSize), { instanceOf: InvalidInputError, message: /ends no wal/ });
    else t.is(segmentNumberOfEndLsn(lsn, segSize), endSegNo);
  });
}

test('segment arithmetic rejects LSNs outside 64 bits and segments past the end', (t) => {
  t.throws(() => segmentNumberOfLsn(-1n, 16 * MiB), { instanceOf: InvalidInputError });
  t.throws(() => segmentNumberOfLsn(MAX_LSN + 1n, 16 * MiB), { instanceOf: InvalidInputError });
  t.throws(() => segmentStartLsn(2n ** 40n, 16 * MiB), { instanceOf: InvalidInputError });
  t.throws(() => segmentStartLsn(-1n, 16 * MiB), { instanceOf: InvalidInputError });
});

test('nextSegmentName steps across the end of an xlogid at each segment size', (t) => {
  t.is(nextSegmentName('000000010000000000000001', 16 * MiB), '000000010000000000000002');
  t.is(nextSegmentName('0000000100000000000000FF', 16 * MiB), '000000010000000100000000');
  t.is(nextSegmentName('0000000100000000000000FF', MiB), '000000010000000000000100');
  t.is(nextSegmentName('000000010000000000000FFF', MiB), '000000010000000100000000');
  t.is(nextSegmentName('000000030000000700000003', GiB), '000000030000000800000000');
  t.throws(() => nextSegmentName('00000001FFFFFFFF000000FF', 16 * MiB), { instanceOf: InvalidInputError, message: /out of range/ });
});

test('segmentRange lists the segments from the start LSN to the one before the end LSN', (t) => {
  const range = (start: bigint, end: bigint, segSize: number, tli = 1) => [...segmentRange(tli, start, end, segSize)];
  // A backup that starts and stops inside one segment.
  t.deepEqual(range(0x200_0028n, 0x200_0100n, 16 * MiB), ['000000010000000000000002']);
  // A stop LSN on a segment boundary does not reach into the next segment.
  t.deepEqual(range(0x1ff_ffffn, 0x300_0000n, 16 * MiB), ['000000010000000000000001', '000000010000000000000002']);
  t.deepEqual(range(0x1ff_ffffn, 0x300_0001n, 16 * MiB), ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003']);
  // Across an xlogid on 1 GiB segments, timeline 2.
  t.deepEqual(range(0xc000_0000n, 0x1_4000_0001n, GiB, 2), ['000000020000000000000003', '000000020000000100000000', '000000020000000100000001']);
  // The last segments of the WAL space.
  t.deepEqual(range(MAX_LSN - BigInt(MiB), MAX_LSN, MiB), ['00000001FFFFFFFF00000FFE', '00000001FFFFFFFF00000FFF']);
  t.deepEqual(range(5n, 5n, 16 * MiB), []);
  t.throws(() => range(6n, 5n, 16 * MiB), { instanceOf: InvalidInputError, message: /before start lsn/ });
});

test('segmentRange is lazy, so a huge range costs nothing until read', (t) => {
  const names = segmentRange(1, 0n, MAX_LSN, MiB);
  t.is(names.next().value, '000000010000000000000000');
  t.is(names.next().value, '000000010000000000000001');
});

test('historyFileName writes 8 uppercase hex digits and .history', (t) => {
  t.is(historyFileName(1), '00000001.history');
  t.is(historyFileName(2), '00000002.history');
  t.is(historyFileName(0xab), '000000AB.history');
  t.is(historyFileName(0xffff_ffff), 'FFFFFFFF.history');
  t.throws(() => historyFileName(0), { instanceOf: InvalidInputError });
});

const classified: [string, WalFileName | undefined][] = [
  ['000000010000000000000003', { kind: 'segment', timeline: 1, name: '000000010000000000000003' }],
  ['0000000A0000001600000FFF', { kind: 'segment', timeline: 10, name: '0000000A0000001600000FFF' }],
  ['000000010000000000000003.partial', { kind: 'partial', timeline: 1, segmentName: '000000010000000000000003' }],
  ['00000002.history', { kind: 'history', timeline: 2 }],
  ['FFFFFFFF.history', { kind: 'history', timeline: 0xffff_ffff }],
  ['000000010000000000000002.00000028.backup', { kind: 'backup', timeline: 1, segmentName: '000000010000000000000002', offset: 0x28 }],
  ['000000030000000100000004.3FFFFFF8.backup', { kind: 'backup', timeline: 3, segmentName: '000000030000000100000004', offset: 0x3fff_fff8 }],
  // lowercase: PostgreSQL never writes it
  ['0000000100000000000000ff', undefined],
  ['0000000100000000000000ff.partial', undefined],
  ['0000000a.history', undefined],
  ['000000010000000000000002.0000002a.backup', undefined],
  // wrong lengths and shapes
  ['00000001000000000000003', undefined],
  ['0000000100000000000000030', undefined],
  ['garbage.partial', undefined],
  ['.partial', undefined],
  ['00000001000000000000003.partial', undefined],
  ['000000010000000000000003.partial.tmp', undefined],
  ['000000010000000000000003.PARTIAL', undefined],
  ['0000001.history', undefined],
  ['00000001.history.partial', undefined],
  ['000000010000000000000002.backup', undefined],
  ['000000010000000000000002.0000028.backup', undefined],
  ['000000010000000000000002.00000028.backup.gz', undefined],
  // timeline 0 and low parts no segment size allows
  ['000000000000000000000001', undefined],
  ['00000000.history', undefined],
  ['00000001000000000000FFFF', undefined],
  ['000000010000000000001000.partial', undefined],
  // everything else found in pg_wal
  ['archive_status', undefined],
  ['XLOGTEMP', undefined],
  ['', undefined],
];

for (const [name, expected] of classified) {
  test(`classifyWalFileName reads ${JSON.stringify(name)} as ${expected?.kind ?? 'not a WAL file'}`, (t) => {
    t.deepEqual(classifyWalFileName(name), expected);
  });
}

test('classifyWalFileName recognises every name the builders produce', (t) => {
  for (const [timeline, segNo, segSize, name] of names) {
    t.deepEqual(classifyWalFileName(walSegmentName(timeline, segNo, segSize)), { kind: 'segment', timeline, name });
    t.deepEqual(classifyWalFileName(`${name}.partial`), { kind: 'partial', timeline, segmentName: name });
    t.deepEqual(classifyWalFileName(historyFileName(timeline)), { kind: 'history', timeline });
  }
});
