/**
 * The record walk against an independent reader: real segments from
 * Debian's PostgreSQL 15, walked segment by segment, give the record
 * counts, transaction end times and restore points Debian's pg_waldump
 * prints for the same files; damaged copies fail with the message
 * pg_waldump gives for them, and end of written WAL in a `.partial` is not
 * a fault.
 */
import test from 'ava';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { formatLsn, parseLsn } from '../../../../core/wal/lsn.ts';
import { exec } from '../../../../local/testkit/exec.ts';
import { pgBinDirFor } from '../../../../local/testkit/pgbin.ts';
import { makeRealWal, readSegment, walkSegment, type RealWal } from './real-wal.ts';

let wal: RealWal;
let waldump: string;
/** pg_waldump's record lines over all segments, by segment name */
const dumped = new Map<string, DumpLine[]>();
let statsTotal: number;
const segmentCache = new Map<string, Buffer>();

interface DumpLine {
  lsn: bigint;
  desc: string;
}

const SEGMENT_SIZE = 1024 * 1024;

function segmentOf(lsn: bigint): string {
  const segNo = lsn / BigInt(SEGMENT_SIZE);
  const perId = 0x1_0000_0000n / BigInt(SEGMENT_SIZE);
  const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, '0');
  return `00000001${hex(segNo / perId)}${hex(segNo % perId)}`;
}

async function runWaldump(args: string[]): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const result = await exec(waldump, args, { env: { ...process.env, TZ: 'UTC' } });
  return { stdout: result.stdout, stderr: result.stderr, code: result.code };
}

test.before(async () => {
  waldump = path.join(await pgBinDirFor(15), 'pg_waldump');
  wal = await makeRealWal();
  for (const name of wal.segments) segmentCache.set(name, await readFile(path.join(wal.archive, name)));
  const first = wal.segments[0];
  const last = wal.segments.at(-1)!;
  const plain = await runWaldump(['-p', wal.archive, first, last]);
  if (plain.code !== 0) throw new Error(`pg_waldump failed: ${plain.stderr}`);
  for (const line of plain.stdout.split('\n')) {
    const m = /lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F/]+, desc: (.*)$/.exec(line);
    if (!m) continue;
    const lsn = parseLsn(m[1]);
    const list = dumped.get(segmentOf(lsn)) ?? [];
    list.push({ lsn, desc: m[2] });
    dumped.set(segmentOf(lsn), list);
  }
  const stats = await runWaldump(['--stats=record', '-p', wal.archive, first, last]);
  statsTotal = Number(/^Total\s+(\d+)/m.exec(stats.stdout)?.[1]);
});

test.after.always(async () => {
  await wal?.cleanup();
});

/** pg_waldump's time (`2026-12-07 07:09:30.433027 UTC`) as formatTimestampTz writes it. */
function isoOf(text: string): string {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))? UTC$/.exec(text);
  if (!m) throw new Error(`unexpected time ${text}`);
  return `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(6, '0')}Z`;
}

/** The transaction end times pg_waldump prints for a segment's records. */
function dumpedXactTimes(lines: DumpLine[]): string[] {
  const times: string[] = [];
  for (const { desc } of lines) {
    const m = /^(?:COMMIT|ABORT|COMMIT_PREPARED \d+:|ABORT_PREPARED \d+:) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? UTC)/.exec(desc);
    if (m) times.push(isoOf(m[1]));
  }
  return times;
}

test('the archive has the WAL the comparison needs: several segments, one wholly inside a record, restore points', (t) => {
  t.true(wal.segments.length >= 6, wal.segments.join(' '));
  t.true(
    wal.segments.some((name) => (dumped.get(name) ?? []).length === 0),
    'a segment no record starts in',
  );
  t.is(wal.restorePoints.length, 3);
});

test("record counts per segment equal pg_waldump's, and their sum its --stats=record total", (t) => {
  let sum = 0;
  for (const [i, name] of wal.segments.entries()) {
    // Odd chunk sizes, so pages and records are split across writes.
    const { walk } = walkSegment(readSegmentSync(name), name, [65536, 8191, 8193, 1000, 4096][i % 5]);
    t.is(walk.problem, undefined, name);
    t.is(walk.records, (dumped.get(name) ?? []).length, name);
    sum += walk.records;
  }
  t.is(sum, statsTotal);
});

test("each segment's earliest and latest transaction end times equal those of pg_waldump's COMMIT and ABORT lines", (t) => {
  let compared = 0;
  for (const name of wal.segments) {
    const { facts } = walkSegment(readSegmentSync(name), name);
    const times = dumpedXactTimes(dumped.get(name) ?? []).sort();
    t.is(facts?.firstXactTime, times[0], name);
    t.is(facts?.lastXactTime, times.at(-1), name);
    compared += times.length > 0 ? 1 : 0;
  }
  t.true(compared >= 3);
});

test('every transaction end pg_waldump prints is one the walk reports, in the same order and at the same LSN', (t) => {
  for (const name of wal.segments) {
    const { records } = walkSegment(readSegmentSync(name), name);
    const walked = records.filter((r) => r.event?.kind === 'xact-end').map((r) => formatLsn(r.lsn));
    const fromDump = (dumped.get(name) ?? []).filter((l) => /^(COMMIT|ABORT)/.test(l.desc)).map((l) => formatLsn(l.lsn));
    t.deepEqual(walked, fromDump, name);
  }
});

test("restore points equal pg_waldump's RESTORE_POINT lines, end where pg_create_restore_point said, and carry a time taken during the call", (t) => {
  const found = wal.segments.flatMap((name) => walkSegment(readSegmentSync(name), name).facts?.restorePoints ?? []);
  const fromDump = wal.segments.flatMap((name) =>
    (dumped.get(name) ?? [])
      .filter((l) => l.desc.startsWith('RESTORE_POINT '))
      .map((l) => ({ name: l.desc.slice('RESTORE_POINT '.length), lsn: formatLsn(l.lsn) })),
  );
  t.deepEqual(
    found.map(({ name, lsn }) => ({ name, lsn })),
    fromDump,
  );
  t.is(found.length, wal.restorePoints.length);
  for (const [i, point] of wal.restorePoints.entries()) {
    t.is(found[i].name, point.name);
    // pg_create_restore_point returns the LSN just past its record: 98 bytes, MAXALIGNed.
    t.is(parseLsn(found[i].lsn) + 104n, point.lsn);
    t.true(point.before <= found[i].time && found[i].time <= point.after, `${point.before} <= ${found[i].time} <= ${point.after}`);
  }
});

test('the latest transaction end in the archive is the last commit the server reported', (t) => {
  const latest = wal.segments
    .map((name) => walkSegment(readSegmentSync(name), name).facts?.lastXactTime)
    .filter((x) => x !== undefined)
    .sort()
    .at(-1);
  t.is(latest, wal.commitTimes.at(-1));
  const all = new Set(
    wal.segments.flatMap((name) => walkSegment(readSegmentSync(name), name).records.flatMap((r) => (r.event?.kind === 'xact-end' ? [r.event.time] : []))),
  );
  t.true(all.size > 0);
});

test('the walk of a segment gives the same result whatever the chunking, down to single bytes', (t) => {
  const name = wal.segments.find((n) => (dumped.get(n) ?? []).some((l) => l.desc.startsWith('RESTORE_POINT ')))!;
  const buf = readSegmentSync(name);
  const whole = walkSegment(buf, name, buf.length);
  for (const chunk of [1, 7, 24, 8192, 12345]) t.deepEqual(walkSegment(buf, name, chunk), whole, `chunks of ${chunk}`);
});

/** Copy segment `name` and its successor into a new directory, damage the copy of `name`, and compare walk and pg_waldump. */
async function damaged(
  t: import('ava').ExecutionContext,
  label: string,
  name: string,
  damage: (b: Buffer) => void,
): Promise<{ problem?: string; dump: string }> {
  const dir = path.join(wal.dir.path, `damaged-${label.replace(/\W+/g, '-')}`);
  await mkdir(dir);
  const next = wal.segments[wal.segments.indexOf(name) + 1];
  const buf = Buffer.from(await readSegment(wal, name));
  damage(buf);
  await writeFile(path.join(dir, name), buf);
  if (next) await copyFile(path.join(wal.archive, next), path.join(dir, next));
  const { walk } = walkSegment(buf, name);
  const dump = await runWaldump(['-p', dir, name, ...(next ? [next] : [])]);
  const m = /error in WAL record at [0-9A-F/]+: (.*)$/m.exec(dump.stderr);
  t.truthy(m, dump.stderr);
  return { ...(walk.problem !== undefined ? { problem: walk.problem } : {}), dump: m?.[1] ?? '' };
}

/** The offset in its segment of the record pg_waldump shows at index `i` of segment `name`. */
function recordOffset(name: string, i: number): number {
  return Number(dumped.get(name)![i].lsn % BigInt(SEGMENT_SIZE));
}

test('a record whose bytes were changed fails with the checksum error pg_waldump gives for it', async (t) => {
  const name = wal.segments[0];
  const at = recordOffset(name, 100);
  const { problem, dump } = await damaged(t, 'crc', name, (b) => {
    b[at + 26] ^= 0x55;
  });
  t.regex(problem ?? '', /^incorrect resource manager data checksum in record at /);
  t.is(problem, dump);
});

test("a record whose xl_prev was changed fails with pg_waldump's prev-link error", async (t) => {
  const name = wal.segments[1];
  const at = recordOffset(name, 50);
  const { problem, dump } = await damaged(t, 'prev', name, (b) => {
    b.writeBigUInt64LE(b.readBigUInt64LE(at + 8) - 8n, at + 8);
  });
  t.regex(problem ?? '', /^record with incorrect prev-link /);
  t.is(problem, dump);
});

test("a page whose address was changed fails with pg_waldump's unexpected pageaddr error", async (t) => {
  const name = wal.segments[1];
  const { problem, dump } = await damaged(t, 'pageaddr', name, (b) => {
    b.writeBigUInt64LE(b.readBigUInt64LE(8192 * 5 + 8) + 0x100000n, 8192 * 5 + 8);
  });
  t.regex(problem ?? '', /^unexpected pageaddr /);
  t.is(problem, dump);
});

test('a complete segment whose tail was zeroed without a switch record is corrupt, as pg_waldump reports', async (t) => {
  const name = wal.segments[0];
  const at = recordOffset(name, 2000);
  const { problem, dump } = await damaged(t, 'zeroed', name, (b) => {
    b.fill(0, at);
  });
  t.regex(problem ?? '', /^invalid record length at [0-9A-F]+\/[0-9A-F]+: wanted 24, got 0$/);
  t.is(problem, dump);
});

test('the same zeroed tail in a .partial is where written WAL ends, not a fault', (t) => {
  const name = wal.segments[0];
  const buf = Buffer.from(readSegmentSync(name));
  buf.fill(0, recordOffset(name, 2000));
  const { walk, facts } = walkSegment(buf, name, 65536, { partial: true });
  t.is(walk.problem, undefined);
  t.is(walk.records, 2000);
  t.is(facts?.ending, 'end-of-wal');
  t.regex(walk.endReason ?? '', /wanted 24, got 0/);
});

test('a segment ending in a switch record ends there: the padding after it is not read', (t) => {
  const name = wal.segments.at(-1)!;
  const buf = Buffer.from(readSegmentSync(name));
  const { walk } = walkSegment(buf, name);
  t.is(walk.ending, 'switch');
  const end = Number(walk.endLsn % BigInt(SEGMENT_SIZE));
  buf.fill(0xee, Math.ceil((end + 8192) / 8192) * 8192);
  t.deepEqual(walkSegment(buf, name).walk, walk);
});

test('the first records of a segment, the tail of one begun before it, are skipped as pg_waldump skips them', (t) => {
  const name = wal.segments[1];
  const { records } = walkSegment(readSegmentSync(name), name);
  t.is(records[0].lsn, dumped.get(name)![0].lsn);
  t.true(records[0].lsn % BigInt(SEGMENT_SIZE) > 40n);
});

function readSegmentSync(name: string): Buffer {
  const cached = segmentCache.get(name);
  if (cached) return cached;
  throw new Error(`segment ${name} not loaded`);
}
