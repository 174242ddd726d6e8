import { execFile } from 'node:child_process';
import { chown, mkdtemp, open, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { InvalidInputError } from '../../../core/errors.ts';
import {
  checkSegmentHeader,
  isNewerWalMagic,
  LONG_PAGE_HEADER_SIZE,
  newerWalMagicWarning,
  parseLongPageHeader,
  pgMajorOfWalMagic,
  type LongPageHeader,
} from '../../../core/wal/header.ts';
import { formatLsn, parseLsn } from '../../../core/wal/lsn.ts';
import { classifyWalFileName, parseWalSegmentName, segmentNumberOfLsn, segmentStartLsn, walSegmentName } from '../../../core/wal/name.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// Synthetic headers, laid out independently of the parser: offsets from
// XLogLongPageHeaderData (the 20-byte short header MAXALIGNed to 24).

interface Fields {
  magic: number;
  info: number;
  tli: number;
  pageaddr: bigint;
  remLen: number;
  sysid: bigint;
  segSize: number;
  blcksz: number;
}

const PG15: Fields = {
  magic: 0xd110,
  info: 0x0002,
  tli: 1,
  pageaddr: 0x300_0000n,
  remLen: 0,
  sysid: 7_312_876_102_998_401_234n,
  segSize: 16 * MiB,
  blcksz: 8192,
};

function encode(fields: Partial<Fields>, byteOrder: 'little' | 'big' = 'little', size = 8192): Buffer {
  const f = { ...PG15, ...fields };
  const buf = Buffer.alloc(size);
  if (byteOrder === 'little') {
    buf.writeUInt16LE(f.magic, 0);
    buf.writeUInt16LE(f.info, 2);
    buf.writeUInt32LE(f.tli, 4);
    buf.writeBigUInt64LE(f.pageaddr, 8);
    buf.writeUInt32LE(f.remLen, 16);
    buf.writeBigUInt64LE(f.sysid, 24);
    buf.writeUInt32LE(f.segSize, 32);
    buf.writeUInt32LE(f.blcksz, 36);
  } else {
    buf.writeUInt16BE(f.magic, 0);
    buf.writeUInt16BE(f.info, 2);
    buf.writeUInt32BE(f.tli, 4);
    buf.writeBigUInt64BE(f.pageaddr, 8);
    buf.writeUInt32BE(f.remLen, 16);
    buf.writeBigUInt64BE(f.sysid, 24);
    buf.writeUInt32BE(f.segSize, 32);
    buf.writeUInt32BE(f.blcksz, 36);
  }
  // Padding and what follows the header must not matter.
  buf.fill(0xab, 20, 24);
  buf.fill(0xcd, 40);
  return buf;
}

const headerOf = (fields: Partial<Fields>): LongPageHeader => parseLongPageHeader(encode(fields));

test('the header is 40 bytes', (t) => {
  t.is(LONG_PAGE_HEADER_SIZE, 40);
});

for (const byteOrder of ['little', 'big'] as const) {
  test(`parseLongPageHeader reads every field of a ${byteOrder}-endian header`, (t) => {
    const buf = encode(
      { info: 0x0007, tli: 0x0102_0304, pageaddr: 0x16_b300_0000n, remLen: 0x1234, sysid: 0xfedc_ba98_7654_3210n, segSize: 64 * MiB, blcksz: 32768 },
      byteOrder,
    );
    t.deepEqual(parseLongPageHeader(buf), {
      magic: 0xd110,
      info: 0x0007,
      timeline: 0x0102_0304,
      pageAddress: 0x16_b300_0000n,
      remLen: 0x1234,
      systemIdentifier: '18364758544493064720',
      segmentSize: 64 * MiB,
      blockSize: 32768,
      byteOrder,
    });
  });
}

test('parseLongPageHeader keeps all digits of a system identifier above 2^53', (t) => {
  t.is(headerOf({ sysid: 7_712_153_002_503_035_211n }).systemIdentifier, '7712153002503035211');
  t.is(headerOf({ sysid: 2n ** 53n + 1n }).systemIdentifier, '9007199254740993');
});

test('parseLongPageHeader reads exactly 40 bytes', (t) => {
  t.is(parseLongPageHeader(encode({}).subarray(0, 40)).segmentSize, 16 * MiB);
});

for (const length of [0, 1, 24, 39]) {
  test(`parseLongPageHeader rejects a ${length}-byte buffer as not a WAL segment`, (t) => {
    const err = t.throws(() => parseLongPageHeader(encode({}).subarray(0, length), '000000010000000000000003'), { instanceOf: InvalidInputError });
    t.is(err.message, `not a WAL segment: 000000010000000000000003 has ${length} bytes, fewer than the 40-byte page header`);
    t.not(err.hint, '');
  });
}

test('parseLongPageHeader rejects a page without the long header flag', (t) => {
  for (const info of [0x0000, 0x0001, 0x0005]) {
    t.throws(() => parseLongPageHeader(encode({ info })), {
      instanceOf: InvalidInputError,
      message: /^not a WAL segment: file does not start with a long page header$/,
    });
  }
  t.throws(() => parseLongPageHeader(Buffer.alloc(8192)), { instanceOf: InvalidInputError, message: /^not a WAL segment/ });
  t.throws(() => parseLongPageHeader(Buffer.from('#!/bin/sh\necho this is a shell script, not WAL\n')), {
    instanceOf: InvalidInputError,
    message: /^not a WAL segment/,
  });
});

// XLOG_PAGE_MAGIC on each release branch.
const magics: [number, number | undefined][] = [
  [0xd093, undefined], // 9.6
  [0xd097, 10],
  [0xd098, 11],
  [0xd101, 12],
  [0xd106, 13],
  [0xd10d, 14],
  [0xd110, 15],
  [0xd113, 16],
  [0xd116, 17],
  [0xd118, 18], // read from the first segment a real 18.4 initdb writes
  [0xd114, undefined], // 17 during development
  [0xd119, undefined], // a release after 18: newer than known, see isNewerWalMagic
  [0x0000, undefined],
  [0x10d1, undefined], // 15, byte-swapped
];

for (const [magic, major] of magics) {
  test(`pgMajorOfWalMagic maps 0x${magic.toString(16).toUpperCase()} to ${major ?? 'no release'}`, (t) => {
    t.is(pgMajorOfWalMagic(magic), major);
  });
}

test('checkSegmentHeader accepts a header that matches its name', (t) => {
  t.deepEqual(checkSegmentHeader(headerOf({}), '000000010000000000000003'), {
    timeline: 1,
    headerTimeline: 1,
    segNo: 3n,
    segmentSize: 16 * MiB,
    blockSize: 8192,
    systemIdentifier: '7312876102998401234',
    pgMajor: 15,
  });
});

test('checkSegmentHeader accepts a partial segment under its .partial name', (t) => {
  t.is(checkSegmentHeader(headerOf({}), '000000010000000000000003.partial').segNo, 3n);
});

test('checkSegmentHeader accepts an earlier timeline in the first segment after a switch', (t) => {
  const checked = checkSegmentHeader(headerOf({ tli: 1 }), '000000020000000000000003');
  t.is(checked.timeline, 2);
  t.is(checked.headerTimeline, 1);
});

test("checkSegmentHeader reads the name with the header's segment size", (t) => {
  t.is(checkSegmentHeader(headerOf({ segSize: MiB, pageaddr: 0x16b_3740_0000n }), '000000010000016B00000374').segNo, 0x16b374n);
  t.is(checkSegmentHeader(headerOf({ segSize: 1024 * MiB, pageaddr: 0x1_4000_0000n }), '000000010000000100000001').segNo, 5n);
});

test('checkSegmentHeader accepts every release from 10 to 18 and a big-endian server', (t) => {
  for (const [magic, major] of magics) {
    if (major !== undefined) t.is(checkSegmentHeader(headerOf({ magic }), '000000010000000000000003').pgMajor, major);
  }
  t.is(checkSegmentHeader(parseLongPageHeader(encode({}, 'big')), '000000010000000000000003').segNo, 3n);
});

test('checkSegmentHeader accepts a magic newer than any it knows as a later release, checking the rest of the header', (t) => {
  t.false(isNewerWalMagic(0xd118));
  t.true(isNewerWalMagic(0xd119));
  t.true(isNewerWalMagic(0xd180));
  const checked = checkSegmentHeader(headerOf({ magic: 0xd119 }), '000000010000000000000003');
  t.deepEqual(checked, {
    timeline: 1,
    headerTimeline: 1,
    segNo: 3n,
    segmentSize: 16 * MiB,
    blockSize: 8192,
    systemIdentifier: '7312876102998401234',
    pgMajor: undefined,
    newerWalMagic: true,
  });
  // A later release may define more page flags; the layout is what is checked.
  t.true(checkSegmentHeader(headerOf({ magic: 0xd11a, info: 0x0012 }), '000000010000000000000003').newerWalMagic);
  t.regex(newerWalMagicWarning(0xd119), /^WAL page magic 0xD119 is newer than PostgreSQL 18's, the newest this gcwal knows; .*upgrade gcwal/);
});

test('checkSegmentHeader refuses a newer magic whose header is inconsistent with its name', (t) => {
  for (const [fields, message] of [
    [{ pageaddr: 0x200_0000n }, /holds WAL from 0\/2000000, but its name places it at 0\/3000000$/],
    [{ segSize: 3 * MiB }, /invalid segment size 3145728$/],
    [{ blcksz: 8193 }, /invalid WAL page size 8193$/],
    [{ tli: 2 }, /holds WAL of timeline 2, but its name says timeline 1$/],
  ] as [Partial<Fields>, RegExp][]) {
    t.throws(() => checkSegmentHeader(headerOf({ ...fields, magic: 0xd119 }), '000000010000000000000003'), { instanceOf: InvalidInputError, message });
  }
});

// [title, header fields, file name, message]
const rejected: [string, Partial<Fields>, string, RegExp][] = [
  ['an unknown magic', { magic: 0xd093 }, '000000010000000000000003', /^000000010000000000000003 has unknown WAL page magic 0xD093$/],
  ['an unknown magic between two releases', { magic: 0xd117 }, '000000010000000000000003', /^000000010000000000000003 has unknown WAL page magic 0xD117$/],
  ['a magic far beyond any release', { magic: 0xe000 }, '000000010000000000000003', /^000000010000000000000003 has unknown WAL page magic 0xE000$/],
  ['flag bits PostgreSQL does not define', { info: 0x0012 }, '000000010000000000000003', /has undefined page header flags 0x0012$/],
  ['a segment size that is not a power of two', { segSize: 3 * MiB }, '000000010000000000000003', /header gives invalid segment size 3145728$/],
  ['a segment size of 0', { segSize: 0 }, '000000010000000000000003', /invalid segment size 0$/],
  ['a segment size above 1 GiB', { segSize: 2048 * MiB }, '000000010000000000000003', /invalid segment size 2147483648$/],
  ['a WAL page size that is not a power of two', { blcksz: 8193 }, '000000010000000000000003', /invalid WAL page size 8193$/],
  ['a WAL page size below 1 kB', { blcksz: 512 }, '000000010000000000000003', /invalid WAL page size 512$/],
  [
    'a page address of the previous segment',
    { pageaddr: 0x200_0000n },
    '000000010000000000000003',
    /^000000010000000000000003 holds WAL from 0\/2000000, but its name places it at 0\/3000000$/,
  ],
  ['a page address in the middle of its segment', { pageaddr: 0x300_2000n }, '000000010000000000000003', /holds WAL from 0\/3002000/],
  ['a page address in another xlogid', { pageaddr: 0x1_0300_0000n }, '000000010000000000000003', /holds WAL from 1\/3000000/],
  ["a name the header's segment size cannot produce", { segSize: 16 * MiB }, '000000010000000000000100', /cannot exist with 16777216-byte segments/],
  ["a timeline after the name's", { tli: 2 }, '000000010000000000000003', /^000000010000000000000003 holds WAL of timeline 2, but its name says timeline 1$/],
  ['timeline 0', { tli: 0 }, '000000010000000000000003', /holds WAL of timeline 0/],
  ['a history file name', {}, '00000001.history', /^"00000001\.history" is not a WAL segment file name$/],
  ['a backup file name', {}, '000000010000000000000003.00000028.backup', /is not a WAL segment file name$/],
  ['a lowercase name', { pageaddr: 0xff00_0000n }, '0000000100000000000000ff', /is not a WAL segment file name$/],
  ['a garbage name', {}, 'garbage.partial', /is not a WAL segment file name$/],
];

for (const [title, fields, fileName, message] of rejected) {
  test(`checkSegmentHeader rejects ${title}`, (t) => {
    const err = t.throws(() => checkSegmentHeader(headerOf(fields), fileName), { instanceOf: InvalidInputError });
    t.regex(err.message, message);
    t.false(err.message.includes('\n'));
    t.not(err.hint, '');
  });
}

// ---------------------------------------------------------------------------
// Real WAL from the PostgreSQL installed here, written by initdb (and
// pg_resetwal); no server is started.

interface Cluster {
  dir: string;
  data: string;
  control: Map<string, string>;
}

const clusters: { oneMiB?: Cluster; default?: Cluster; timelineTwo?: Cluster } = {};
let binDir = '';

async function findBinDir(): Promise<string> {
  // initdb is on PATH (Debian links it); its siblings such as pg_controldata are not.
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      return dirname(await realpath(join(dir, 'initdb')));
    } catch {
      // not in this directory
    }
  }
  throw new Error('initdb is not on PATH');
}

async function asPostgres(program: string, args: string[]): Promise<string> {
  const { stdout } = await run('runuser', ['-u', 'postgres', '--', join(binDir, program), ...args], { env: { ...process.env, LC_ALL: 'C' } });
  return stdout;
}

async function createCluster(initdbArgs: string[]): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-wal-header-'));
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  await chown(dir, uid, gid);
  const data = join(dir, 'data');
  await asPostgres('initdb', ['-D', data, '--no-sync', '-A', 'trust', ...initdbArgs]);
  return { dir, data, control: await controlData(data) };
}

async function controlData(data: string): Promise<Map<string, string>> {
  const out = await asPostgres('pg_controldata', [data]);
  return new Map(
    out
      .split('\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

function field(cluster: Cluster, name: string): string {
  const value = cluster.control.get(name);
  if (value === undefined) throw new Error(`pg_controldata printed no "${name}"`);
  return value;
}

async function readHead(path: string, length = 64): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await file.read(buf, 0, length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

test.before(async () => {
  binDir = await findBinDir();
  [clusters.oneMiB, clusters.default, clusters.timelineTwo] = await Promise.all([
    createCluster(['--wal-segsize=1']),
    createCluster([]),
    createCluster(['--wal-segsize=1']),
  ]);
  // Move the third cluster to timeline 2 at the last segment of xlogid 1.
  await asPostgres('pg_resetwal', ['-l', '000000020000000100000FFF', '-D', clusters.timelineTwo.data]);
  clusters.timelineTwo.control = await controlData(clusters.timelineTwo.data);
});

test.after.always(async () => {
  await Promise.all(Object.values(clusters).map((c) => rm(c.dir, { recursive: true, force: true })));
});

for (const [key, segmentSize] of [
  ['oneMiB', MiB],
  ['default', 16 * MiB],
] as const) {
  test.serial(`a fresh ${segmentSize / MiB} MiB cluster's REDO segment checks against its name and pg_controldata`, async (t) => {
    const cluster = clusters[key]!;
    const name = field(cluster, "Latest checkpoint's REDO WAL file");
    const header = parseLongPageHeader(await readHead(join(cluster.data, 'pg_wal', name)), name);
    const checked = checkSegmentHeader(header, name);

    t.is(header.magic, 0xd110);
    t.is(header.byteOrder, 'little');
    t.is(checked.pgMajor, 15);
    t.is(header.segmentSize, segmentSize);
    t.is(String(header.segmentSize), field(cluster, 'Bytes per WAL segment'));
    t.is(String(header.blockSize), field(cluster, 'WAL block size'));
    t.is(header.systemIdentifier, field(cluster, 'Database system identifier'));
    t.is(header.timeline, Number(field(cluster, "Latest checkpoint's TimeLineID")));
    t.is(header.pageAddress, segmentStartLsn(parseWalSegmentName(name, segmentSize).segNo, segmentSize));
    t.is(checked.segNo, parseWalSegmentName(name, segmentSize).segNo);

    // PostgreSQL's own LSN text and file naming agree with ours.
    const redo = parseLsn(field(cluster, "Latest checkpoint's REDO location"));
    t.is(formatLsn(redo), field(cluster, "Latest checkpoint's REDO location"));
    t.is(walSegmentName(1, segmentNumberOfLsn(redo, segmentSize), segmentSize), name);
  });
}

test.serial('every segment in a fresh pg_wal is accepted, or rejected as a recycled segment', async (t) => {
  const cluster = clusters.oneMiB!;
  const names = (await readdir(join(cluster.data, 'pg_wal'))).filter((n) => classifyWalFileName(n)?.kind === 'segment');
  t.true(names.length > 0);
  for (const name of names) {
    const header = parseLongPageHeader(await readHead(join(cluster.data, 'pg_wal', name)), name);
    t.is(header.systemIdentifier, field(cluster, 'Database system identifier'));
    // initdb renames old segments for reuse without rewriting them, so a
    // future segment can still carry the page address of its earlier life.
    const ownStart = segmentStartLsn(parseWalSegmentName(name, MiB).segNo, MiB);
    if (header.pageAddress === ownStart) t.is(checkSegmentHeader(header, name).segNo, parseWalSegmentName(name, MiB).segNo, name);
    else t.throws(() => checkSegmentHeader(header, name), { instanceOf: InvalidInputError, message: /holds WAL from .*, but its name places it at/ }, name);
  }
});

test.serial('a segment pg_resetwal wrote on timeline 2 at the end of an xlogid checks against its name', async (t) => {
  const cluster = clusters.timelineTwo!;
  const name = '000000020000000100000FFF';
  t.is(field(cluster, "Latest checkpoint's REDO WAL file"), name);
  const header = parseLongPageHeader(await readHead(join(cluster.data, 'pg_wal', name)), name);
  t.is(header.timeline, 2);
  t.is(formatLsn(header.pageAddress), '1/FFF00000');
  t.deepEqual(checkSegmentHeader(header, name), {
    timeline: 2,
    headerTimeline: 2,
    segNo: 0x1fffn,
    segmentSize: MiB,
    blockSize: 8192,
    systemIdentifier: field(cluster, 'Database system identifier'),
    pgMajor: 15,
  });
  t.is(segmentNumberOfLsn(parseLsn(field(cluster, "Latest checkpoint's REDO location")), MiB), 0x1fffn);
});

test.serial('real timeline 2 WAL is accepted under a later timeline and rejected under an earlier one or another segment', async (t) => {
  const cluster = clusters.timelineTwo!;
  const header = parseLongPageHeader(await readHead(join(cluster.data, 'pg_wal', '000000020000000100000FFF')));
  // The same bytes under other names, as a misnamed upload would present them.
  t.is(checkSegmentHeader(header, '000000030000000100000FFF').headerTimeline, 2);
  t.is(checkSegmentHeader(header, '000000020000000100000FFF.partial').segNo, 0x1fffn);
  t.throws(() => checkSegmentHeader(header, '000000010000000100000FFF'), {
    instanceOf: InvalidInputError,
    message: /holds WAL of timeline 2, but its name says timeline 1$/,
  });
  t.throws(() => checkSegmentHeader(header, '000000020000000100000FFE'), {
    instanceOf: InvalidInputError,
    message: /holds WAL from 1\/FFF00000, but its name places it at 1\/FFE00000$/,
  });
  t.throws(() => checkSegmentHeader(header, '000000020000000200000000'), { instanceOf: InvalidInputError, message: /but its name places it at 2\/0$/ });
  t.throws(() => checkSegmentHeader(header, '0000000200000001000000FF'), { instanceOf: InvalidInputError, message: /but its name places it at 1\/FF00000$/ });
});
