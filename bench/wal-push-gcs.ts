/**
 * wal-push to gs:// benchmark: wall time per 16 MiB WAL segment of `gcwal
 * wal-push` into a gs:// repository on the local GCS stack (emulator with
 * auth enforced, keyless auth through the metadata-server stand-in), over
 * plain HTTP and over HTTPS, beside `pgbackrest archive-push` to the same
 * emulator over HTTPS (repo1-type=gcs), in one run on the same real pgbench
 * segments. Every command runs the way PostgreSQL runs archive_command
 * (`sh -c`, as the postgres user); each tool pushes each segment once into
 * its own prefix, and the tools take turns per segment in a rotating order.
 * The emulator counts the requests each push makes.
 *
 * Figures are printed, never asserted.
 */
import { copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalStack } from '../local/stack.ts';
import { installAgent } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { gcsBreakdown } from './lib/gcs-breakdown.ts';
import { countKinds, objectSizes, recordRequests } from './lib/gcs-requests.ts';
import { configurePgBackRest, createStanza, STANZA } from './lib/pgbackrest.ts';
import { postgresEnv, runTimed, type RunResult } from './lib/proc.ts';
import { shellQuote } from './lib/shell.ts';
import { fixed, formatTable, median, percentile } from './lib/stats.ts';
import { generateWal } from './lib/walgen.ts';
import { createRepoForSegment } from './lib/repo.ts';

export interface GcsWalBenchOptions {
  /** segments pushed by each tool */
  segments: number;
  /** pgbench scale of the database the WAL comes from */
  scale: number;
  /** also measure where gcwal's time goes */
  breakdown: boolean;
  log: (line: string) => void;
}

/** One command under test. */
interface Tool {
  name: string;
  command(segment: string): string;
  env: Record<string, string>;
  /** the stored object's name for `segment`, found among `names` (undefined: the tool stores nothing) */
  stored?: { prefix: string; find(segment: string, names: readonly string[]): string | undefined };
  times: number[];
  /** emulator and metadata-server requests of each timed push */
  requests: number[];
  metadataRequests: number[];
  /** every request line of the timed pushes */
  lines: string[];
  /** per-step milliseconds of each timed push, for commands that print them as JSON (the floor script) */
  steps?: Map<string, number[]>;
}

/** Figures for one tool. */
export interface GcsWalRow {
  name: string;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  /** stored bytes / raw bytes, when the tool stores anything */
  ratio: number | undefined;
  requestsPerPush: number;
  metadataRequestsPerPush: number;
  /** "2 × GET object data (alt=media), …" per push */
  kinds: string;
}

const SEGMENT_BYTES = 16 * 1024 * 1024;
const FLOOR_SCRIPT = fileURLToPath(new URL('./lib/floor-gcs-push.mjs', import.meta.url));
const PGBR_IDENTITY = 'pgbackrest-bench@gcwal-local.iam.gserviceaccount.com';
/** The target: gcwal at most this many times pgBackRest lz4's median. */
const TARGET = 1.5;

/**
 * Run the benchmark; resolves with the printed report (Markdown). Everything
 * it starts (cluster, local GCS stack) is stopped and removed when it ends,
 * or by `parent` if the process is interrupted first.
 */
export async function runGcsWalBench(options: GcsWalBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the wal-push gs:// bench', async (cleanups) => {
    const { log } = options;
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-gcs', { owner: 'postgres' });
    cleanups.add('the gcs bench directory', work.cleanup);
    const wal = await generateWal({ count: options.segments, scale: options.scale, dir: path.join(work.path, 'segments'), log }, cleanups);

    const stack = await startLocalStack({ https: true, prefix: 'bench' });
    cleanups.add('the local GCS stack', () => stack.close());
    const httpsUrl = stack.emulator.httpsUrl!;
    const base = await postgresEnv();
    // stack.env points gcwal at the HTTPS endpoint, GCWAL_GCS_CA_FILE naming
    // its certificate. The shell's NODE_EXTRA_CA_CERTS and SSL_CERT_FILE (on
    // the machines measured, both name the whole system bundle, which Node
    // and OpenSSL parse in full at start or first use) are not passed:
    // archive_command runs in the environment of a server started by its
    // service manager, which sets neither.
    const { NODE_EXTRA_CA_CERTS: _shellCa, SSL_CERT_FILE: _shellCaFile, ...baseNoCa } = base;
    const { GCWAL_GCS_CA_FILE: _ca, ...plainEnv } = stack.env;
    const gcwalEnv = {
      https: { ...baseNoCa, ...stack.env },
      http: { ...baseNoCa, ...plainEnv, GCWAL_GCS_ENDPOINT: stack.emulator.url, STORAGE_EMULATOR_HOST: stack.emulator.url },
    };

    const tools: Tool[] = [];
    const add = (tool: Omit<Tool, 'times' | 'requests' | 'metadataRequests' | 'lines'>) =>
      tools.push({ ...tool, times: [], requests: [], metadataRequests: [], lines: [] });
    const gcwalTool = (codec: 'lzo' | 'zstd', scheme: 'http' | 'https') => {
      const prefix = `bench/gcwal-${codec}-${scheme}`;
      add({
        name: `gcwal wal-push (${codec}, ${scheme})`,
        command: (seg) => `${shellQuote(agent.command)} wal-push ${shellQuote(seg)}`,
        env: { ...gcwalEnv[scheme], GCWAL_REPO: `gs://${stack.bucket}/${prefix}`, GCWAL_COMPRESSION: codec },
        stored: { prefix: `${prefix}/wal/`, find: (seg, names) => names.find((n) => n === `${prefix}/wal/${path.basename(seg)}`) },
      });
    };
    gcwalTool('lzo', 'http');
    gcwalTool('lzo', 'https');
    gcwalTool('zstd', 'https');
    // Untimed: each repository made as gcwal repo-create would (no push creates one).
    for (const codec of ['lzo', 'zstd'])
      for (const scheme of ['http', 'https'] as const) await createRepoForSegment(`gs://${stack.bucket}/bench/gcwal-${codec}-${scheme}`, wal.warmup, stack.env);

    stack.authority.grant(PGBR_IDENTITY, 'roles/storage.objectAdmin', stack.bucket);
    const token = stack.authority.issue(PGBR_IDENTITY, 24 * 3600).token;
    for (const compressType of ['lz4', 'zst']) {
      const prefix = `bench/pgbackrest-${compressType}`;
      const gcs = { bucket: stack.bucket, endpoint: new URL(httpsUrl).host, token, path: `/${prefix}` };
      const pgbr = await configurePgBackRest(path.join(work.path, `pgbackrest-${compressType}`), wal.cluster, { compressType, gcs });
      await createStanza(pgbr, { env: base });
      add({
        name: `pgbackrest archive-push (${compressType}, https)`,
        command: (seg) => ['pgbackrest', ...pgbr.args('archive-push', seg)].map(shellQuote).join(' '),
        env: base,
        // archive/<stanza>/<db-id>/<first 16 hex>/<segment>-<sha1>.<ext>
        stored: {
          prefix: `${prefix}/archive/${STANZA}/`,
          find: (seg, names) => names.find((n) => n.includes(`/${path.basename(seg).slice(0, 16)}/${path.basename(seg)}-`)),
        },
      });
    }

    const floor = path.join(agent.dir, 'floor-gcs-push.mjs');
    await copyFile(FLOOR_SCRIPT, floor);
    for (const client of ['node:https', 'fetch']) {
      const floorPrefix = `bench/floor-${client.replace(':', '-')}`;
      add({
        name: `floor-gcs-push.mjs (https, ${client}; reference)`,
        command: (seg) => [process.execPath, floor, seg, httpsUrl, `gs://${stack.bucket}/${floorPrefix}`, client].map(shellQuote).join(' '),
        // fetch (undici) takes no CA of its own: Node's process-wide setting.
        env: client === 'fetch' ? { ...gcwalEnv.https, NODE_EXTRA_CA_CERTS: stack.env.GCWAL_GCS_CA_FILE! } : gcwalEnv.https,
        steps: new Map(),
        stored: { prefix: `${floorPrefix}/wal/`, find: (seg, names) => names.find((n) => n === `${floorPrefix}/wal/${path.basename(seg)}`) },
      });
    }
    add({ name: 'node -e 0', command: () => `${shellQuote(process.execPath)} -e 0`, env: base });

    const requests = recordRequests(stack);
    // Warm-up: page cache, each repository's first objects (gcwal.json), the in-process emulator's JIT.
    for (const tool of tools) await pushOnce(tool, wal.warmup);
    requests.take();
    log(`gcs: timing ${tools.length} commands on ${wal.segments.length} segments`);
    for (const [i, segment] of wal.segments.entries()) {
      for (let k = 0; k < tools.length; k++) {
        const tool = tools[(i + k) % tools.length];
        const before = { emulator: stack.emulator.stats().requests, metadata: stack.metadata.requests() };
        const result = await pushOnce(tool, segment);
        tool.times.push(result.ms);
        if (tool.steps) recordSteps(tool.steps, result.stdout, result.ms);
        tool.requests.push(stack.emulator.stats().requests - before.emulator);
        tool.metadataRequests.push(stack.metadata.requests() - before.metadata);
        tool.lines.push(...requests.take());
      }
    }

    const rows: GcsWalRow[] = [];
    for (const t of tools) {
      let storedBytes = 0;
      if (t.stored) {
        const sizes = await objectSizes(stack, t.stored.prefix);
        const names = [...sizes.keys()];
        for (const segment of wal.segments) {
          const name = t.stored.find(segment, names);
          if (name === undefined) throw new Error(`${t.name} did not store ${path.basename(segment)} under ${t.stored.prefix}`);
          storedBytes += sizes.get(name)!;
        }
      }
      const n = wal.segments.length;
      rows.push({
        name: t.name,
        medianMs: median(t.times),
        p90Ms: percentile(t.times, 90),
        minMs: Math.min(...t.times),
        ratio: t.stored ? storedBytes / (SEGMENT_BYTES * n) : undefined,
        requestsPerPush: t.requests.reduce((a, b) => a + b, 0) / n,
        metadataRequestsPerPush: t.metadataRequests.reduce((a, b) => a + b, 0) / n,
        kinds:
          countKinds(t.lines)
            .map(([kind, count]) => `${fixed(count / n, count % n ? 2 : 0)} × ${kind}`)
            .join('; ') || '-',
      });
    }
    let report = formatGcsWalReport(rows, wal.segments.length, wal.description);
    const stepping = tools.filter((t) => t.steps);
    const stepNames = [...new Set(stepping.flatMap((t) => [...t.steps!.keys()]))];
    report += [
      '',
      '',
      `The reference scripts' own step times (each prints them), median over the ${wal.segments.length} timed pushes above; with fetch the first request also loads undici:`,
      '',
      formatTable(
        ['step', ...stepping.map((t) => `${t.name.replace(/ \(https, (\S+);.*/, ' $1')} ms`)],
        stepNames.map((name) => [name, ...stepping.map((t) => fixed(median(t.steps!.get(name) ?? [])))]),
      ),
    ].join('\n');
    if (options.breakdown) {
      log('gcs: measuring where gcwal wal-push to gs:// spends its time');
      // The breakdown's own requests are not recorded.
      stack.emulator.setFaults(undefined);
      report +=
        '\n\n' +
        (await gcsBreakdown({
          agent,
          stack,
          segments: wal.segments,
          warmup: wal.warmup,
          env: gcwalEnv,
          existingRepo: `gs://${stack.bucket}/bench/gcwal-lzo-https`,
          work: work.path,
          log,
        }));
    }
    return report;
  });
}

/** Time one push; rejects with the command's output when it fails. */
async function pushOnce(tool: Tool, segment: string): Promise<RunResult> {
  const result = await runTimed('sh', ['-c', tool.command(segment)], { env: tool.env });
  if (result.code !== 0)
    throw new Error(`${tool.name} failed on ${path.basename(segment)} (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  return result;
}

/** Add the step times a command printed (one JSON object of milliseconds) and what they leave out of its wall time. */
function recordSteps(steps: Map<string, number[]>, stdout: string, wallMs: number): void {
  const printed = JSON.parse(stdout) as Record<string, number>;
  const add = (name: string, ms: number) => steps.set(name, [...(steps.get(name) ?? []), ms]);
  let sum = 0;
  for (const [name, ms] of Object.entries(printed)) {
    add(name, ms);
    sum += ms;
  }
  add('exit and runuser + sh (wall − steps)', wallMs - sum);
  add('= wall time', wallMs);
}

/** The results tables with the target verdicts. */
export function formatGcsWalReport(rows: readonly GcsWalRow[], segments: number, source: string): string {
  const reference = rows.find((r) => r.name.startsWith('pgbackrest archive-push (lz4'))?.medianMs ?? Number.NaN;
  const table = formatTable(
    ['command (sh -c, as postgres)', 'median ms', 'p90 ms', 'min ms', 'stored/raw', 'emulator requests/push', 'metadata requests/push', '÷ pgBackRest lz4'],
    rows.map((r) => [
      r.name,
      fixed(r.medianMs),
      fixed(r.p90Ms),
      fixed(r.minMs),
      r.ratio === undefined ? '-' : fixed(r.ratio, 3),
      r.kinds === '-' ? '-' : fixed(r.requestsPerPush, Number.isInteger(r.requestsPerPush) ? 0 : 2),
      r.kinds === '-' ? '-' : fixed(r.metadataRequestsPerPush, Number.isInteger(r.metadataRequestsPerPush) ? 0 : 2),
      fixed(r.medianMs / reference, 2),
    ]),
  );
  const kinds = formatTable(
    ['command', 'requests per push, by kind'],
    rows.filter((r) => r.kinds !== '-').map((r) => [r.name, r.kinds]),
  );
  const verdicts = ['http', 'https'].map((scheme) => {
    const gcwal = rows.find((r) => r.name === `gcwal wal-push (lzo, ${scheme})`)?.medianMs ?? Number.NaN;
    const verdict = gcwal / reference <= TARGET ? 'met' : 'NOT met';
    return `- gcwal (lzo, ${scheme}): ${fixed(gcwal)} ms vs ${fixed(TARGET * reference)} ms → ${verdict} (ratio ${fixed(gcwal / reference, 2)})`;
  });
  return [
    `## wal-push to gs:// (local emulator): ${segments} segments of 16 MiB each (${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')})`,
    '',
    `WAL: ${source}.`,
    '',
    table,
    '',
    kinds,
    '',
    `Target gcwal (lzo) median ≤ ${TARGET} × pgBackRest lz4 median (https):`,
    ...verdicts,
  ].join('\n');
}
