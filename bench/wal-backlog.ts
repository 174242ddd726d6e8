/**
 * Archiver-driven benchmark: how long PostgreSQL's own archiver takes to
 * drain a backlog of N real 16 MiB segments through each archive_command,
 * which is what users see when archiving falls behind (and where gcwal's
 * push-ahead and pgBackRest's archive-async work, unlike in the per-call
 * wal-push benches). Every tool drains its own copy of one stopped backlog
 * (bench/lib/backlog.ts) into a fresh repository: same segments, same N.
 * The tools take turns in an order that alternates between rounds. Each
 * drain is checked: archived_count grew by N, failures are counted, every
 * segment is in the repository, and each is fetched back and compared with
 * the original byte for byte.
 *
 * Figures are printed, never asserted.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLocalStack, type LocalStack } from '../local/stack.ts';
import { startClusterFromDirectory, type Cluster } from '../local/testkit/cluster.ts';
import { execOk } from '../local/testkit/exec.ts';
import { installAgent } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import { copyBacklog, makeBacklog, readySegments, timeDrain, type Backlog } from './lib/backlog.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { objectSizes } from './lib/gcs-requests.ts';
import { configurePgBackRest, createStanza, STANZA } from './lib/pgbackrest.ts';
import { postgresEnv, runOk } from './lib/proc.ts';
import { shellQuote } from './lib/shell.ts';
import { fixed, formatTable, median } from './lib/stats.ts';
import { createRepoForSegment } from './lib/repo.ts';

export interface BacklogBenchOptions {
  /** segments in the backlog; default 40 */
  segments: number;
  /** drains per tool, in alternating order; default 2 */
  rounds: number;
  /** which repositories: file:// and posix, gs:// and gcs on the local emulator, or both */
  repo: 'file' | 'gcs' | 'both';
  /** pgbench scale of the database the load runs on */
  scale: number;
  log: (line: string) => void;
}

/** Which figures a tool is compared with: the pgBackRest lz4 runs on the same kind of repository. */
type Group = 'file' | 'gcs';

/** One archive_command under test. */
interface Tool {
  name: string;
  group: Group;
  /** set up a fresh repository for the running copy; resolves with the archive_command and its checker */
  prepare(run: RunContext): Promise<Prepared>;
}

interface RunContext {
  cluster: Cluster;
  /** a fresh directory the postgres user owns */
  dir: string;
  /** unique per run, for key prefixes */
  id: string;
}

interface Prepared {
  archiveCommand: string;
  /**
   * Check that every segment is in the repository and fetch each back into
   * `dir`, comparing it with the original; resolves with the stored bytes
   * (undefined when the command stores nothing). Rejects on any difference.
   */
  verify(names: readonly string[], dir: string): Promise<number | undefined>;
}

interface Run {
  round: number;
  ms: number;
  failed: number;
  load: number;
}

const SEGMENT_BYTES = 16 * 1024 * 1024;
const PGBR_IDENTITY = 'pgbackrest-bench@gcwal-local.iam.gserviceaccount.com';
/** The issues' targets per segment, gcwal ÷ pgBackRest lz4 (sync). */
const TARGETS: Record<Group, number> = { file: 2, gcs: 1.5 };
const LZ4_SYNC: Record<Group, string> = { file: 'pgbackrest archive-push (lz4, posix)', gcs: 'pgbackrest archive-push (lz4, gcs https)' };
/** gcwal's asynchronous mode (GCWAL_ARCHIVE_ASYNC), file:// and gs://; its target is against pgBackRest's async mode. */
const ASYNC = ['gcwal wal-push (lzo, file://, GCWAL_ARCHIVE_ASYNC=on)', 'gcwal wal-push (lzo, gs:// https, GCWAL_ARCHIVE_ASYNC=on)'];
/** Issue 17: gcwal async drains at ≥ 1.5 × the throughput of pgBackRest archive-async, i.e. per segment ≤ 1 / 1.5 of its time. */
const ASYNC_TARGET = 1 / 1.5;
const LZ4_ASYNC: Record<Group, string> = {
  file: 'pgbackrest archive-push (lz4, posix, async process-max 2)',
  gcs: 'pgbackrest archive-push (lz4, gcs https, async process-max 2)',
};

/**
 * Run the benchmark; resolves with the printed report (Markdown). Everything
 * it starts is stopped and removed when it ends, or by `parent` if the
 * process is interrupted first.
 */
export async function runBacklogBench(options: BacklogBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the backlog bench', async (cleanups) => {
    const { log } = options;
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-backlog', { owner: 'postgres' });
    cleanups.add('the backlog bench directory', work.cleanup);
    const warmDir = path.join(work.path, 'warmup');
    await mkdir(warmDir);
    await execOk('chown', ['postgres:postgres', warmDir]);
    const backlog = await makeBacklog({ count: options.segments, scale: options.scale, dir: warmDir, log }, cleanups);
    const base = await postgresEnv();
    const gcwal = shellQuote(agent.command);
    const inline = (env: Record<string, string>) =>
      Object.entries(env)
        .map(([k, v]) => `${k}=${shellQuote(v)}`)
        .join(' ');

    const tools: Tool[] = [];
    const useFile = options.repo !== 'gcs';
    const useGcs = options.repo !== 'file';
    let stack: LocalStack | undefined;
    if (useGcs) {
      stack = await startLocalStack({ https: true, prefix: 'bench' });
      const s = stack;
      cleanups.add('the local GCS stack', () => s.close());
      s.authority.grant(PGBR_IDENTITY, 'roles/storage.objectAdmin', s.bucket);
    }
    const gcwalTool = (name: string, group: Group, repo: (run: RunContext) => string, extraEnv: Record<string, string>, unsetCa: boolean): Tool => ({
      name,
      group,
      async prepare(run) {
        const env = { ...extraEnv, GCWAL_REPO: repo(run), GCWAL_COMPRESSION: 'lzo' };
        // The repository as repo-create makes it, and an untimed push of an earlier segment, as in a repository already in use.
        await createRepoForSegment(env.GCWAL_REPO, backlog.warmup, extraEnv);
        await runOk('sh', ['-c', `${gcwal} wal-push ${shellQuote(backlog.warmup)}`], { env: { ...base, ...env } });
        return {
          archiveCommand: `${unsetCa ? 'unset NODE_EXTRA_CA_CERTS SSL_CERT_FILE; ' : ''}${inline(env)} ${gcwal} wal-push %p`,
          async verify(names, dir) {
            // wal-push creates it only when it archives a segment ahead: proof that this bench exercises push-ahead.
            if (names.length > 1 && !existsSync(path.join(run.cluster.pgdata, 'pg_wal', '.gcwal-pushed')))
              throw new Error(`${name}: no segment was pushed ahead (pg_wal/.gcwal-pushed does not exist)`);
            const sizes = await gcwalSizes(env.GCWAL_REPO, stack);
            const stored = sumFound(names, sizes, name);
            await fetchAndCompare(names, dir, backlog, (seg, dest) =>
              runOk('sh', ['-c', `${gcwal} wal-fetch ${seg} ${shellQuote(dest)}`], { env: { ...base, ...env } }),
            );
            return stored;
          },
        };
      },
    });
    const pgbrTool = (compressType: string, group: Group, async: boolean): Tool => {
      const where = group === 'file' ? 'posix' : 'gcs https';
      const name = `pgbackrest archive-push (${compressType}, ${where}${async ? ', async process-max 2' : ''})`;
      return {
        name,
        group,
        async prepare(run) {
          const prefix = `bench/backlog/${run.id}`;
          const gcs =
            stack && group === 'gcs'
              ? {
                  bucket: stack.bucket,
                  endpoint: new URL(stack.emulator.httpsUrl!).host,
                  token: stack.authority.issue(PGBR_IDENTITY, 24 * 3600).token,
                  path: `/${prefix}`,
                }
              : undefined;
          const pgbr = await configurePgBackRest(path.join(run.dir, 'pgbackrest'), run.cluster, { compressType, processMax: async ? 2 : 1, gcs });
          await createStanza(pgbr, { env: base });
          // Untimed: creates the archive directories, as in a repository already in use.
          await runOk('pgbackrest', pgbr.args('archive-push', backlog.warmup), { env: base });
          return {
            archiveCommand: ['pgbackrest', ...pgbr.args('archive-push', ...(async ? ['--archive-async'] : []), '%p')].map(shellQuote).join(' '),
            async verify(names, dir) {
              const sizes =
                stack && gcs ? await pgbrGcsSizes(stack, `${prefix}/archive/${STANZA}/`) : await pgbrPosixSizes(path.join(pgbr.repo, 'archive', STANZA));
              const stored = sumFound(names, sizes, name);
              await fetchAndCompare(names, dir, backlog, (seg, dest) => runOk('pgbackrest', pgbr.args('archive-get', seg, dest), { env: base }));
              return stored;
            },
          };
        },
      };
    };
    if (useFile) {
      tools.push(gcwalTool('gcwal wal-push (lzo, file://)', 'file', (run) => `file://${path.join(run.dir, 'repo')}`, {}, false));
      tools.push(gcwalTool(ASYNC[0], 'file', (run) => `file://${path.join(run.dir, 'repo')}`, { GCWAL_ARCHIVE_ASYNC: 'on' }, false));
      if (base.NODE_EXTRA_CA_CERTS)
        tools.push(
          gcwalTool(
            'gcwal wal-push (lzo, file://, NODE_EXTRA_CA_CERTS and SSL_CERT_FILE unset)',
            'file',
            (run) => `file://${path.join(run.dir, 'repo')}`,
            {},
            true,
          ),
        );
      tools.push(pgbrTool('lz4', 'file', false), pgbrTool('zst', 'file', false), pgbrTool('lz4', 'file', true));
      tools.push({ name: 'true (the archiver alone)', group: 'file', prepare: async () => ({ archiveCommand: 'true', verify: async () => undefined }) });
    }
    if (stack) {
      const s = stack;
      // The emulator's CA comes as GCWAL_GCS_CA_FILE (in s.env); the shell's NODE_EXTRA_CA_CERTS and SSL_CERT_FILE are unset, as for file://.
      tools.push(gcwalTool('gcwal wal-push (lzo, gs:// https)', 'gcs', (run) => `gs://${s.bucket}/bench/backlog/${run.id}`, { ...s.env }, true));
      tools.push(gcwalTool(ASYNC[1], 'gcs', (run) => `gs://${s.bucket}/bench/backlog/${run.id}`, { ...s.env, GCWAL_ARCHIVE_ASYNC: 'on' }, true));
      tools.push(pgbrTool('lz4', 'gcs', false), pgbrTool('zst', 'gcs', false), pgbrTool('lz4', 'gcs', true));
    }

    const runs = new Map<string, Run[]>(tools.map((t) => [t.name, []]));
    const stored = new Map<string, number | undefined>();
    let seq = 0;
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? tools : [...tools].reverse();
      for (const tool of order) {
        const id = `r${round}-${seq++}`;
        log(`backlog: round ${round + 1}/${options.rounds}, ${tool.name}`);
        const result = await drainOnce(tool, backlog, path.join(work.path, id), id);
        runs.get(tool.name)!.push({ round, ...result.run });
        stored.set(tool.name, result.stored);
        log(
          `backlog: ${fixed(result.run.ms / backlog.segments.length)} ms per segment (${fixed(result.run.ms / 1000, 2)} s, ${result.run.failed} failures, load ${fixed(result.run.load, 2)})`,
        );
      }
    }
    return formatBacklogReport(tools, runs, stored, backlog, options.rounds);
  });
}

/** Copy the backlog, start it, prepare the tool, drain, verify, tear down. */
async function drainOnce(tool: Tool, backlog: Backlog, dir: string, id: string): Promise<{ run: Omit<Run, 'round'>; stored: number | undefined }> {
  await mkdir(dir);
  await execOk('chown', ['postgres:postgres', dir]);
  try {
    const pgdata = path.join(dir, 'data');
    await copyBacklog(backlog, pgdata);
    const cluster = await startClusterFromDirectory(pgdata, { timeoutSeconds: 120 });
    try {
      const prepared = await tool.prepare({ cluster, dir, id });
      await cluster.query('CHECKPOINT');
      const ready = await readySegments(pgdata);
      if (ready.join() !== backlog.segments.join())
        throw new Error(`the copy for ${tool.name} holds ${ready.length} ready segments, not the backlog's ${backlog.segments.length}`);
      const load = os.loadavg()[0];
      const drain = await timeDrain(cluster, prepared.archiveCommand, backlog.segments.length, 10 * 60_000);
      if (drain.archived !== backlog.segments.length) throw new Error(`${tool.name}: archived_count grew by ${drain.archived}, not ${backlog.segments.length}`);
      const fetched = path.join(dir, 'fetched');
      await mkdir(fetched);
      await execOk('chown', ['postgres:postgres', fetched]);
      const stored = await prepared.verify(backlog.segments, fetched);
      return { run: { ms: drain.ms, failed: drain.failed, load }, stored };
    } finally {
      await cluster.destroy();
    }
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Sum of the stored sizes of `names`; rejects naming the first one missing. */
function sumFound(names: readonly string[], sizes: ReadonlyMap<string, number>, tool: string): number {
  let total = 0;
  for (const name of names) {
    const size = sizes.get(name);
    if (size === undefined) throw new Error(`${tool}: ${name} is not in the repository after the drain`);
    total += size;
  }
  return total;
}

/** Fetch every segment into `dir` with `fetch` and compare it with the backlog's original; rejects on the first difference. */
async function fetchAndCompare(
  names: readonly string[],
  dir: string,
  backlog: Backlog,
  fetch: (name: string, dest: string) => Promise<unknown>,
): Promise<void> {
  for (const name of names) {
    const dest = path.join(dir, name);
    await fetch(name, dest);
    const [got, want] = await Promise.all([readFile(dest), readFile(path.join(backlog.pgdata, 'pg_wal', name))]);
    if (!got.equals(want)) throw new Error(`${name} fetched back from the repository differs from the original (${got.length} vs ${want.length} bytes)`);
    await rm(dest);
  }
}

/** Segment name → stored size in a gcwal repository (file:// or gs:// on the stack). */
async function gcwalSizes(repo: string, stack: LocalStack | undefined): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  if (repo.startsWith('file://')) {
    const dir = path.join(repo.slice('file://'.length), 'wal');
    for (const name of await readdir(dir)) sizes.set(name, (await stat(path.join(dir, name))).size);
    return sizes;
  }
  const prefix = `${repo.replace(/^gs:\/\/[^/]+\//, '')}/wal/`;
  for (const [key, size] of await objectSizes(stack!, prefix)) sizes.set(key.slice(prefix.length), size);
  return sizes;
}

/** Segment name → stored size in a posix pgBackRest archive: <db-id>/<first 16 hex>/<segment>-<sha1>.<ext>. */
async function pgbrPosixSizes(archive: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const dbId of await readdir(archive)) {
    const dbDir = path.join(archive, dbId);
    if (!(await stat(dbDir)).isDirectory()) continue;
    for (const sub of await readdir(dbDir)) {
      if (!(await stat(path.join(dbDir, sub))).isDirectory()) continue;
      for (const file of await readdir(path.join(dbDir, sub))) sizes.set(file.slice(0, 24), (await stat(path.join(dbDir, sub, file))).size);
    }
  }
  return sizes;
}

/** The same for a pgBackRest archive in the emulator's bucket. */
async function pgbrGcsSizes(stack: LocalStack, prefix: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const [key, size] of await objectSizes(stack, prefix)) {
    const file = key.slice(key.lastIndexOf('/') + 1);
    if (/^[0-9A-F]{24}-/.test(file)) sizes.set(file.slice(0, 24), size);
  }
  return sizes;
}

/** The results table with the target verdicts. */
function formatBacklogReport(
  tools: readonly Tool[],
  runs: ReadonlyMap<string, readonly Run[]>,
  stored: ReadonlyMap<string, number | undefined>,
  backlog: Backlog,
  rounds: number,
): string {
  const n = backlog.segments.length;
  const perSegment = (name: string) => median((runs.get(name) ?? []).map((r) => r.ms / n));
  const rows = tools.map((t) => {
    const mine = runs.get(t.name)!;
    const bytes = stored.get(t.name);
    const ms = perSegment(t.name);
    return [
      t.name,
      fixed(ms),
      fixed(median(mine.map((r) => r.ms)) / 1000, 2),
      mine.map((r) => fixed(r.ms / n)).join(' / '),
      String(mine.reduce((a, r) => a + r.failed, 0)),
      bytes === undefined ? '-' : fixed(bytes / (SEGMENT_BYTES * n), 3),
      fixed(ms / perSegment(LZ4_SYNC[t.group]), 2),
      fixed(ms / perSegment(LZ4_ASYNC[t.group]), 2),
    ];
  });
  const table = formatTable(
    [
      "archive_command (run by PostgreSQL's archiver)",
      'median ms/segment',
      'median total s',
      'ms/segment by round',
      'failures',
      'stored/raw',
      '÷ pgBackRest lz4 sync',
      '÷ pgBackRest lz4 async',
    ],
    rows,
  );
  const verdicts = tools
    .filter((t) => t.name.startsWith('gcwal'))
    .map((t) => {
      const ratio = perSegment(t.name) / perSegment(LZ4_SYNC[t.group]);
      const async = perSegment(t.name) / perSegment(LZ4_ASYNC[t.group]);
      if (ASYNC.includes(t.name)) {
        return `- ${t.name}: ${fixed(perSegment(t.name))} ms vs ${fixed(ASYNC_TARGET * perSegment(LZ4_ASYNC[t.group]))} ms → ${async <= ASYNC_TARGET ? 'met' : 'NOT met'} (throughput ${fixed(1 / async, 2)} × pgBackRest lz4 async process-max 2; target ≥ 1.5 ×)`;
      }
      return `- ${t.name}: ${fixed(perSegment(t.name))} ms vs ${fixed(TARGETS[t.group] * perSegment(LZ4_SYNC[t.group]))} ms → ${ratio <= TARGETS[t.group] ? 'met' : 'NOT met'} (ratio ${fixed(ratio, 2)} to sync; ${fixed(async, 2)} to async)`;
    });
  const loads = [...runs.values()].flat().map((r) => r.load);
  return [
    `## Backlog drained by PostgreSQL's archiver: ${n} segments of 16 MiB, ${rounds} round${rounds === 1 ? '' : 's'} (${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')})`,
    '',
    `Backlog: ${backlog.description}.`,
    '',
    table,
    '',
    `Every drain: archived_count grew by exactly ${n}, every segment was in the repository and fetched back byte-identical (gcwal wal-fetch, pgbackrest archive-get). 1-minute load average when each drain started: ${fixed(Math.min(...loads), 2)}–${fixed(Math.max(...loads), 2)}.`,
    '',
    'Targets, per segment, gcwal ≤ 2 × pgBackRest lz4 (file://, posix) and ≤ 1.5 × (gs://, gcs https), sync pgBackRest as in the issues; gcwal async (issue 17) ≥ 1.5 × the throughput of pgBackRest lz4 async process-max 2:',
    ...verdicts,
  ].join('\n');
}
