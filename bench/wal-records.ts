/**
 * The record walk's benchmark (issue 15 part 3): a real 16 MiB segment
 * written under a pgbench load, in fresh processes as a function instance
 * would run it — validated whole (decode, checksums, header, record walk;
 * lzo, as the agent pushes it), the record walk alone over the raw segment,
 * and beside them the peer, Debian's `pg_waldump --stats=record` reading the
 * same segment. Figures: wall time of the process, time of the call, peak
 * resident memory, records walked. Printed, never asserted.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pushWalFile } from '../agent/wal/push.ts';
import { walObjectKey } from '../core/layout.ts';
import { FileStorage } from '../core/storage/file/storage.ts';
import { installAgent } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { pgTool } from './lib/pgtool.ts';
import { postgresEnv, runMeasured } from './lib/proc.ts';
import { createRepoForSegment } from './lib/repo.ts';
import { fixed, formatTable, median } from './lib/stats.ts';
import { buildBundle } from './validate.ts';
import { generateWal } from './lib/walgen.ts';

export interface RecordsBenchOptions {
  /** fresh processes per configuration */
  runs: number;
  log: (line: string) => void;
}

const SEGMENT_TARGET_MS = 300;
const RSS_TARGET_BYTES = 256e6;

interface Row {
  name: string;
  /** user + system CPU time of the process, ms (less sensitive than wall time to other load on the machine) */
  cpus: number[];
  walls: number[];
  calls: number[];
  rssKiB: number[];
  records: string;
}

/** Generate the WAL, measure each configuration `runs` times (order rotated), and resolve with the report (Markdown). */
export async function runRecordsBench(options: RecordsBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the record walk bench', async (cleanups) => {
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const bundle = await buildBundle(agent.dir);
    const work = await makeTempDir('bench-records', { owner: 'postgres' });
    cleanups.add('the record walk bench directory', work.cleanup);
    const env = await postgresEnv();
    const wal = await generateWal({ count: 3, scale: 10, dir: path.join(work.path, 'wal'), log: options.log }, cleanups);
    const [{ id }] = await wal.cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    await wal.cluster.destroy();
    const url = pathToFileURL(path.join(work.path, 'repo')).href;
    await createRepoForSegment(url, wal.segments[0]);
    for (const segment of wal.segments) await pushWalFile(new FileStorage(url), segment, { codec: 'lzo', level: undefined });
    // Pushed by this process; read by the children, as postgres.
    await promisify(execFile)('chown', ['-R', 'postgres:postgres', path.join(work.path, 'repo')]);

    const waldump = pgTool('pg_waldump');
    const configs: {
      name: string;
      run: (segment: string, timeFile: string) => Promise<{ wall: number; call: number | undefined; rss: number; records: string }>;
    }[] = [
      {
        name: 'validate a 16 MiB segment (lzo), record walk included',
        run: async (segment, timeFile) => {
          const r = await runMeasured(process.execPath, [bundle, 'wal', url, walObjectKey(path.basename(segment)), id, String(16 * 1024 * 1024)], timeFile, {
            env,
            cwd: work.path,
          });
          const child = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; ok: boolean; problem?: string; records?: number };
          return { wall: r.ms, call: child.ms, rss: r.maxRssKiB, records: child.ok ? String(child.records) : `FAILED: ${child.problem}` };
        },
      },
      {
        name: 'the record walk alone (raw segment)',
        run: async (segment, timeFile) => {
          const r = await runMeasured(process.execPath, [bundle, 'walk', segment], timeFile, { env, cwd: work.path });
          const child = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; ok: boolean; problem?: string; records?: number };
          return { wall: r.ms, call: child.ms, rss: r.maxRssKiB, records: child.ok ? String(child.records) : `FAILED: ${child.problem}` };
        },
      },
      {
        name: 'peer: pg_waldump --stats=record (raw segment)',
        run: async (segment, timeFile) => {
          const r = await runMeasured(waldump, ['--stats=record', segment], timeFile, { env, cwd: work.path });
          const total = /^Total\s+(\d+)/m.exec(r.stdout);
          return { wall: r.ms, call: undefined, rss: r.maxRssKiB, records: total ? total[1] : '?' };
        },
      },
    ];
    const rows: Row[] = configs.map((c) => ({ name: c.name, cpus: [], walls: [], calls: [], rssKiB: [], records: '-' }));
    let step = 0;
    options.log(`records: ${options.runs} fresh processes per configuration`);
    for (let run = 0; run < options.runs; run++) {
      const segment = wal.segments[run % wal.segments.length];
      for (let k = 0; k < configs.length; k++) {
        const i = (k + run) % configs.length;
        const timeFile = path.join(work.path, `time-${step++}.txt`);
        const m = await configs[i].run(segment, timeFile);
        rows[i].cpus.push(await cpuMs(timeFile));
        rows[i].walls.push(m.wall);
        if (m.call !== undefined) rows[i].calls.push(m.call);
        rows[i].rssKiB.push(m.rss);
        // Records of the first segment, for the comparison with pg_waldump's count.
        if (run === 0) rows[i].records = m.records;
      }
    }
    const [validate, walk] = rows;
    const peakMiB = Math.max(...validate.rssKiB, ...walk.rssKiB) / 1024;
    return [
      `## record walk (${os.cpus().length} CPUs, load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')})`,
      '',
      `Each row: a fresh process as postgres under /usr/bin/time -v, medians over ${options.runs} runs over ${wal.segments.length} segments; peak RSS is the largest. WAL: ${wal.description}. Records: of the first segment (pg_waldump, given one segment, does not count the record that runs into the next).`,
      '',
      formatTable(
        ['configuration', 'runs', 'process wall ms', 'process CPU ms', 'call ms', 'peak RSS MiB', 'records'],
        rows.map((r) => [
          r.name,
          String(r.walls.length),
          fixed(median(r.walls)),
          fixed(median(r.cpus)),
          r.calls.length ? fixed(median(r.calls)) : '-',
          fixed(Math.max(...r.rssKiB) / 1024),
          r.records,
        ]),
      ),
      '',
      `Targets: a 16 MiB segment validated with its record walk in under ${SEGMENT_TARGET_MS} ms: ${fixed(median(validate.calls))} ms → ${median(validate.calls) < SEGMENT_TARGET_MS ? 'met' : 'NOT met'} ` +
        `(the walk alone ${fixed(median(walk.calls))} ms); peak RSS under 256 MB: ${fixed(peakMiB)} MiB → ${peakMiB * 1024 * 1024 < RSS_TARGET_BYTES ? 'met' : 'NOT met'}.`,
    ].join('\n');
  });
}

/** User + system CPU milliseconds from a `/usr/bin/time -v` report. */
async function cpuMs(timeFile: string): Promise<number> {
  const report = await readFile(timeFile, 'utf8');
  const seconds = (label: string) => Number(new RegExp(`${label} time \\(seconds\\): ([\\d.]+)`).exec(report)?.[1] ?? NaN);
  return (seconds('User') + seconds('System')) * 1000;
}
