/**
 * Real WAL for the record walker's tests: a throwaway cluster with 1 MiB
 * segments archiving with `cp`, made to write what the walker must read:
 * commits and aborts, a prepared transaction committed and one rolled back,
 * named restore points, a record longer than a segment (a logical message),
 * rows with full-page images (compressed: wal_compression), and a switch at the end so the last segment
 * ends in padding. The test records each commit's time from the server
 * (track_commit_timestamp) and each restore point's LSN and the times around it.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { checkSegmentHeader, parseLongPageHeader } from '../../../../core/wal/header.ts';
import { parseLsn } from '../../../../core/wal/lsn.ts';
import {
  SegmentFactsCollector,
  SegmentRecordWalker,
  type SegmentRecordFacts,
  type SegmentWalk,
  type WalkedRecord,
} from '../../../../core/wal/records/index.ts';
import { startCluster, type Cluster } from '../../../../local/testkit/cluster.ts';
import type { PgMajor } from '../../../../local/testkit/pgbin.ts';
import { makeTempDir, type TempDir } from '../../../../local/testkit/tmp.ts';

export interface RealWal {
  dir: TempDir;
  /** the archive directory: segments as PostgreSQL archived them */
  archive: string;
  segmentSize: number;
  /** archived segment file names, in WAL order */
  segments: string[];
  /** commit times the server reported (pg_xact_commit_timestamp), as it prints them in UTC */
  commitTimes: string[];
  /** restore points created: name, LSN, and clock_timestamp() just before and after */
  restorePoints: { name: string; lsn: bigint; before: string; after: string }[];
  cleanup(): Promise<void>;
}

/** Make the WAL with a server of `pgMajor` (default Debian's 15). */
export async function makeRealWal(pgMajor?: PgMajor): Promise<RealWal> {
  const dir = await makeTempDir('wal-records', { owner: 'postgres' });
  const archive = dir.path;
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster({
      archiveCommand: `cp %p ${archive}/%f`,
      walSegSizeMB: 1,
      settings: {
        track_commit_timestamp: true,
        max_prepared_transactions: 2,
        autovacuum: false,
        TimeZone: 'UTC',
        full_page_writes: true,
        wal_compression: true,
      },
      ...(pgMajor !== undefined ? { pgMajor } : {}),
    });
    const c = cluster;
    const commitTimes: string[] = [];
    const restorePoints: RealWal['restorePoints'] = [];
    const commitTimeOf = async (table: string, id: number) => {
      const [row] = await c.query<{ t: string }>(
        `SELECT to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t FROM ${table} WHERE id = $1`,
        [id],
      );
      commitTimes.push(row.t);
    };
    const restorePoint = async (name: string) => {
      const [row] = await c.query<{ before: string; lsn: string; after: string }>(
        `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS before, pg_create_restore_point($1)::text AS lsn, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS after`,
        [name],
      );
      restorePoints.push({ name, lsn: parseLsn(row.lsn), before: row.before, after: row.after });
    };
    await c.query('CREATE TABLE t (id int PRIMARY KEY, pad text)');
    for (let i = 1; i <= 40; i++) {
      await c.query("INSERT INTO t SELECT $1, repeat('x', 200)", [i]);
      await commitTimeOf('t', i);
    }
    await restorePoint('before the bulk load');
    await c.query('INSERT INTO t SELECT n, repeat(md5(n::text), 8) FROM generate_series(1000, 9000) AS n');
    await commitTimeOf('t', 1000);
    // An abort, and a prepared transaction committed and one rolled back.
    await c.query("DO $$ BEGIN INSERT INTO t VALUES (-1, 'x'); PERFORM txid_current(); RAISE EXCEPTION 'abort'; EXCEPTION WHEN OTHERS THEN NULL; END $$");
    const client = await import('pg').then((m) => new m.default.Client({ host: c.host, port: c.port, user: 'postgres', database: 'postgres' }));
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query("INSERT INTO t VALUES (-2, 'aborted')");
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      await client.query("INSERT INTO t VALUES (-3, 'prepared')");
      await client.query("PREPARE TRANSACTION 'p1'");
      await client.query("COMMIT PREPARED 'p1'");
      await client.query('BEGIN');
      await client.query("INSERT INTO t VALUES (-4, 'prepared, rolled back')");
      await client.query("PREPARE TRANSACTION 'p2'");
      await client.query("ROLLBACK PREPARED 'p2'");
    } finally {
      await client.end();
    }
    await commitTimeOf('t', -3);
    // A record longer than a segment: a transactional logical message of 2.5 MiB.
    await c.query("SELECT pg_logical_emit_message(true, 'gcwal', repeat('m', 2621440))");
    await c.query('CHECKPOINT');
    await c.query("UPDATE t SET pad = 'updated' WHERE id % 7 = 0");
    await commitTimeOf('t', 7);
    await restorePoint('after the update');
    await restorePoint('sixty-three bytes, the longest name rp_name holds: ' + 'n'.repeat(12));
    for (let i = 41; i <= 60; i++) {
      await c.query("INSERT INTO t SELECT $1, 'tail'", [i]);
      await commitTimeOf('t', i);
    }
    const last = await c.switchWal();
    await c.waitForArchived(last);
    await c.destroy();
    cluster = undefined;
    const segments = (await readdir(archive)).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();
    return { dir, archive, segmentSize: 1024 * 1024, segments, commitTimes, restorePoints, cleanup: () => dir.cleanup() };
  } catch (err) {
    await cluster?.destroy().catch(() => undefined);
    await dir.cleanup();
    throw err;
  }
}

/** The bytes of one archived segment. */
export function readSegment(wal: RealWal, name: string): Promise<Buffer> {
  return readFile(path.join(wal.archive, name));
}

/** Walk segment `name` (bytes `buf`), written to the walker in chunks of `chunk` bytes; the walk, its facts, and every record. */
export function walkSegment(
  buf: Buffer,
  name: string,
  chunk = 65536,
  options: { partial?: boolean } = {},
): { walk: SegmentWalk; facts?: SegmentRecordFacts; records: WalkedRecord[] } {
  const header = parseLongPageHeader(buf, name);
  const id = checkSegmentHeader(header, name);
  const collector = new SegmentFactsCollector();
  const records: WalkedRecord[] = [];
  const walker = new SegmentRecordWalker(
    {
      name,
      segmentStart: header.pageAddress,
      segmentSize: header.segmentSize,
      blockSize: header.blockSize,
      magic: header.magic,
      pgMajor: id.pgMajor,
      byteOrder: header.byteOrder,
      timeline: id.timeline,
      partial: options.partial ?? false,
    },
    (record) => {
      records.push(record);
      collector.add(record);
    },
  );
  for (let at = 0; at < buf.length; at += chunk) walker.write(buf.subarray(at, at + chunk));
  const walk = walker.finish();
  return { walk, records, ...(walk.ending ? { facts: collector.facts(walk.ending, walk.endLsn) } : {}) };
}
