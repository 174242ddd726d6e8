/**
 * wal-push benchmark: wall time per 16 MiB WAL segment of `gcwal wal-push`
 * beside `pgbackrest archive-push`, `lzop -1` and Node's own start-up, all
 * in one run on the same real pgbench segments. Every command runs the way
 * PostgreSQL runs archive_command: `sh -c '<command>'`, as the postgres user
 * (runuser). Each tool pushes each segment once into its own repository, so
 * every push is a first push, never the idempotent "already archived" path.
 * The tools take turns per segment (the order rotates), so a burst of load
 * from elsewhere on the machine does not favour one of them.
 *
 * Figures are printed, never asserted.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { installAgent } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import { execOk } from '../local/testkit/exec.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { configurePgBackRest, createStanza, STANZA } from './lib/pgbackrest.ts';
import { postgresEnv, runTimed } from './lib/proc.ts';
import { shellQuote } from './lib/shell.ts';
import { fixed, formatTable, median, percentile } from './lib/stats.ts';
import { walBreakdown } from './lib/wal-breakdown.ts';
import { generateWal } from './lib/walgen.ts';
import { createRepoForSegment } from './lib/repo.ts';

export interface WalBenchOptions {
  /** segments pushed by each tool; default 30 */
  segments: number;
  /** pgbench scale of the database the WAL comes from; default 10 */
  scale: number;
  /** also measure where gcwal's time goes; default true */
  breakdown: boolean;
  log: (line: string) => void;
}

/** One command under test. */
interface Tool {
  name: string;
  /** the archive_command-like shell command for one segment */
  command(segment: string): string;
  env: Record<string, string>;
  /** bytes this tool stored for `segment`, when it stores anything */
  stored?(segment: string): Promise<number>;
  times: number[];
  storedBytes: number;
}

/** Figures for one tool. */
export interface WalRow {
  name: string;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  /** stored bytes / raw bytes, when the tool stores anything */
  ratio: number | undefined;
}

const SEGMENT_BYTES = 16 * 1024 * 1024;

/**
 * Run the benchmark; resolves with the printed report (Markdown). Everything
 * it starts is stopped and removed when it ends, or by `parent` if the
 * process is interrupted first.
 */
export async function runWalBench(options: WalBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the wal-push bench', async (cleanups) => {
    const { log } = options;
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-wal', { owner: 'postgres' });
    cleanups.add('the wal bench directory', work.cleanup);

    const wal = await generateWal({ count: options.segments, scale: options.scale, dir: path.join(work.path, 'segments'), log }, cleanups);
    const base = await postgresEnv();

    const tools: Tool[] = [];
    const add = (tool: Omit<Tool, 'times' | 'storedBytes'>) => tools.push({ ...tool, times: [], storedBytes: 0 });
    for (const codec of ['lzo', 'zstd'] as const) {
      const repo = path.join(work.path, `gcwal-${codec}`);
      await createRepoForSegment(`file://${repo}`, wal.warmup);
      add({
        name: `gcwal wal-push (${codec})`,
        command: (seg) => `${shellQuote(agent.command)} wal-push ${shellQuote(seg)}`,
        env: { ...base, GCWAL_REPO: `file://${repo}`, GCWAL_COMPRESSION: codec },
        stored: async (seg) => (await stat(path.join(repo, 'wal', path.basename(seg)))).size,
      });
    }
    for (const compressType of ['lz4', 'zst']) {
      const pgbr = await configurePgBackRest(path.join(work.path, `pgbackrest-${compressType}`), wal.cluster, { compressType });
      await createStanza(pgbr, { env: base });
      add({
        name: `pgbackrest archive-push (${compressType})`,
        command: (seg) => ['pgbackrest', ...pgbr.args('archive-push', seg)].map(shellQuote).join(' '),
        env: base,
        stored: (seg) => pgBackRestStoredSize(pgbr.repo, path.basename(seg)),
      });
    }
    const lzopOut = path.join(work.path, 'lzop');
    await mkdir(lzopOut);
    await execOk('chown', ['postgres:postgres', lzopOut]);
    add({
      name: 'lzop -1 -c seg > out',
      command: (seg) => `lzop -1 -c ${shellQuote(seg)} > ${shellQuote(path.join(lzopOut, `${path.basename(seg)}.lzo`))}`,
      env: base,
      stored: async (seg) => (await stat(path.join(lzopOut, `${path.basename(seg)}.lzo`))).size,
    });
    add({ name: 'node -e 0', command: () => `${shellQuote(process.execPath)} -e 0`, env: base });
    add({ name: 'true (runuser + sh only)', command: () => 'true', env: base });

    // Warm-up: page cache, the repositories' first objects (gcwal.json,
    // pgBackRest's archive directories), lazily created paths.
    for (const tool of tools) await pushOnce(tool, wal.warmup);
    log(`wal: timing ${tools.length} commands on ${wal.segments.length} segments`);
    for (const [i, segment] of wal.segments.entries()) {
      for (let k = 0; k < tools.length; k++) {
        const tool = tools[(i + k) % tools.length];
        tool.times.push(await pushOnce(tool, segment));
        if (tool.stored) tool.storedBytes += await tool.stored(segment);
      }
    }

    const rows: WalRow[] = tools.map((t) => ({
      name: t.name,
      medianMs: median(t.times),
      p90Ms: percentile(t.times, 90),
      minMs: Math.min(...t.times),
      ratio: t.stored ? t.storedBytes / (SEGMENT_BYTES * wal.segments.length) : undefined,
    }));
    let report = formatWalReport(rows, wal.segments.length, wal.description);
    if (options.breakdown) {
      log('wal: measuring where gcwal wal-push spends its time');
      report += '\n\n' + (await walBreakdown({ agent, segments: wal.segments, work: work.path, log }));
    }
    return report;
  });
}

/** Time one push; rejects with the command's output when it fails. */
async function pushOnce(tool: Tool, segment: string): Promise<number> {
  const result = await runTimed('sh', ['-c', tool.command(segment)], { env: tool.env });
  if (result.code !== 0)
    throw new Error(`${tool.name} failed on ${path.basename(segment)} (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  return result.ms;
}

/** Size of pgBackRest's archived copy: archive/<stanza>/<db-id>/<first 16 hex>/<segment>-<sha1>.<ext>. */
async function pgBackRestStoredSize(repo: string, segment: string): Promise<number> {
  const archive = path.join(repo, 'archive', STANZA);
  for (const dbId of await readdir(archive)) {
    const dir = path.join(archive, dbId, segment.slice(0, 16));
    const found = (await readdir(dir).catch(() => [] as string[])).find((f) => f.startsWith(`${segment}-`));
    if (found) return (await stat(path.join(dir, found))).size;
  }
  throw new Error(`pgBackRest did not store ${segment} under ${archive}`);
}

/** The results table with the target verdict. */
export function formatWalReport(rows: readonly WalRow[], segments: number, source: string): string {
  const reference = rows.find((r) => r.name === 'pgbackrest archive-push (lz4)')?.medianMs ?? Number.NaN;
  const table = formatTable(
    ['command (sh -c, as postgres)', 'median ms', 'p90 ms', 'min ms', 'stored/raw', '÷ pgBackRest lz4'],
    rows.map((r) => [
      r.name,
      fixed(r.medianMs),
      fixed(r.p90Ms),
      fixed(r.minMs),
      r.ratio === undefined ? '-' : fixed(r.ratio, 3),
      fixed(r.medianMs / reference, 2),
    ]),
  );
  const gcwal = rows.find((r) => r.name === 'gcwal wal-push (lzo)')?.medianMs ?? Number.NaN;
  const verdict = gcwal / reference <= 2 ? 'met' : 'NOT met';
  return [
    `## wal-push: ${segments} segments of 16 MiB each (${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')})`,
    '',
    `WAL: ${source}.`,
    '',
    table,
    '',
    `Target gcwal (lzo) median ≤ 2 × pgBackRest lz4 median: ${fixed(gcwal)} ms vs ${fixed(2 * reference)} ms → ${verdict} (ratio ${fixed(gcwal / reference, 2)}).`,
  ].join('\n');
}
