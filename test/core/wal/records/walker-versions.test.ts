/**
 * The record walk of WAL from other PostgreSQL releases than Debian's 15,
 * whose pg_waldump reads only its own version's WAL: checked against what
 * the server itself reported while writing it (each commit's time from
 * pg_xact_commit_timestamp with track_commit_timestamp on, each restore
 * point's LSN from pg_create_restore_point and the clock around the call).
 * Full-page images are compressed (wal_compression): 13 and 14 set the
 * flag bits of before 15; 18 is the newest release gcwal knows.
 */
import test from 'ava';
import { formatTimestampTz } from '../../../../core/wal/records/index.ts';
import { parseLsn } from '../../../../core/wal/lsn.ts';
import type { PgMajor } from '../../../../local/testkit/pgbin.ts';
import { makeRealWal, readSegment, walkSegment } from './real-wal.ts';

for (const major of [13, 14, 16, 17, 18] as PgMajor[]) {
  test(`WAL of PostgreSQL ${major}: every record checks out, every commit time the server reported is a transaction end of the walk, the latest last, and restore points are where the server put them`, async (t) => {
    const wal = await makeRealWal(major);
    try {
      const xactTimes = new Set<string>();
      const points = [];
      let latest: string | undefined;
      for (const name of wal.segments) {
        const { walk, facts, records } = walkSegment(await readSegment(wal, name), name);
        t.is(walk.problem, undefined, name);
        for (const r of records) if (r.event?.kind === 'xact-end') xactTimes.add(formatTimestampTz(r.event.time));
        points.push(...(facts?.restorePoints ?? []));
        if (facts?.lastXactTime && (latest === undefined || facts.lastXactTime > latest)) latest = facts.lastXactTime;
      }
      t.true(wal.segments.length >= 6);
      for (const time of wal.commitTimes) t.true(xactTimes.has(time), `commit at ${time} found in the walk`);
      t.is(latest, wal.commitTimes.at(-1));
      t.is(points.length, wal.restorePoints.length);
      for (const [i, point] of wal.restorePoints.entries()) {
        t.is(points[i].name, point.name);
        t.is(parseLsn(points[i].lsn) + 104n, point.lsn);
        t.true(point.before <= points[i].time && points[i].time <= point.after);
      }
    } finally {
      await wal.cleanup();
    }
  });
}
