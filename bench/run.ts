/**
 * `npm run bench [-- wal|gcs|backup|validate|records|functions|backlog] [options]`: run the benchmarks and print
 * their tables (Markdown) on stdout; progress goes to stderr.
 *
 *   wal       only the wal-push benchmark (file:// repositories)
 *   gcs       only the wal-push benchmark to gs:// on the local GCS emulator
 *   backup    only the backup-push/backup-fetch benchmark
 *   validate  only the validation benchmark (a 16 MiB segment, a 1 GiB part, in fresh processes)
 *   functions only the functions' cold start (each bundle under the functions-framework,
 *             spawn to first handled event, on the local stack with the Pub/Sub emulator)
 *   backlog   only the archiver-driven benchmark: PostgreSQL's archiver drains a
 *             backlog of segments (not part of the default run)
 *   steady    only the steady-state benchmark: pgbench writes for 60 s per tool while
 *             PostgreSQL archives (archive lag, time per call; not part of the default run)
 *   replay    only archive recovery: PostgreSQL replays N segments after a base
 *             backup with restore_command cp from a directory vs gcwal wal-fetch
 *             with prefetch, file:// and gs:// (not part of the default run)
 *   incremental  only incremental backups: backup-push --incremental after 60 s of
 *             pgbench -c 4 beside pgbackrest backup --type=incr (issue 16)
 *   delta     only delta restore: backup-fetch --delta after changing ~1% of a
 *             pgbench database, beside a full restore (not part of the default run)
 *   records   only the record walk: a 16 MiB segment validated with its record walk,
 *             the walk alone, beside pg_waldump (in the default run)
 *   catalogue only the catalogue: one update and one status report on a synthetic
 *             30-day archive (2.6 million WAL files, 1,000 backups) and on a per-file
 *             catalogue of 100,000 (not part of the default run; --rounds N, default 3)
 *   verdicts  only the backup verdict: validate's work when backup.json lands, from its
 *             parts' verdicts, at 1,000 and 10,000 parts, beside every part read again
 *             (not part of the default run; --rounds N, default 3)
 *   (none)    wal, gcs, backup, validate, records, functions
 *
 *   --scale N          pgbench scale of the backup database, and of validate's (default 70, about 1.05 GiB)
 *   --small-scale N    a second, smaller backup database for the memory comparison (default 10; 0 skips it)
 *   --segments N       WAL segments each wal-push command pushes, in wal and gcs (default 30);
 *                      fresh processes per segment configuration in validate (default 30, at most 10 used);
 *                      the backlog's size in backlog (default 40); segments replayed in replay (default 42)
 *   --rounds N         backlog: drains per tool, in alternating order (default 2);
 *                      replay: recoveries per tool, likewise (default 2);
 *                      functions: timed cold starts per function (default 5)
 *   --repo file|gcs|both   backlog: which repositories (default both)
 *   --no-breakdown     skip the measurements of where gcwal wal-push spends its time (wal and gcs)
 *   --profile          CPU-profile one more gcwal backup-push and backup-fetch at --scale (delta: one more delta restore per change)
 *
 * Run as root (PostgreSQL and every measured command run as the postgres
 * user) on a machine with PostgreSQL 15, pgbackrest, lzop and /usr/bin/time
 * (and gcloud with its Pub/Sub emulator and Java for functions).
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { runBackupBench } from './backup.ts';
import { runCatalogueBench } from './catalogue.ts';
import { runBackupVerdictBench } from './backup-verdict.ts';
import { runFunctionsBench } from './function-cold-start.ts';
import { withCleanups } from './lib/cleanup.ts';
import { runBacklogBench } from './wal-backlog.ts';
import { runSteadyBench } from './wal-steady.ts';
import { runReplayBench } from './replay.ts';
import { runDeltaBench } from './delta.ts';
import { runIncrementalBench } from './incremental.ts';
import { runWalBench } from './wal-push.ts';
import { runGcsWalBench } from './wal-push-gcs.ts';
import { runValidateBench } from './validate.ts';
import { runRecordsBench } from './wal-records.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    scale: { type: 'string', default: '70' },
    'small-scale': { type: 'string', default: '10' },
    segments: { type: 'string' },
    rounds: { type: 'string' },
    repo: { type: 'string', default: 'both' },
    'no-breakdown': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
  },
});

function count(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer of at least ${min}, not "${text}"`);
  return n;
}

const which = positionals[0] ?? 'all';
if (
  !['wal', 'gcs', 'backup', 'validate', 'records', 'functions', 'backlog', 'steady', 'replay', 'delta', 'incremental', 'catalogue', 'verdicts', 'all'].includes(
    which,
  ) ||
  positionals.length > 1
) {
  throw new Error(
    `usage: npm run bench -- [wal|gcs|backup|validate|records|functions|backlog|steady|replay|delta|incremental|catalogue|verdicts] [--scale N] [--small-scale N] [--segments N] [--rounds N] [--repo file|gcs|both] [--no-breakdown] [--profile]; got ${positionals.join(' ')}`,
  );
}
const repo = values.repo;
if (repo !== 'file' && repo !== 'gcs' && repo !== 'both') throw new Error(`--repo must be file, gcs or both, not "${repo}"`);
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const started = new Date();
const header = `# gcwal benchmarks, ${started.toISOString()} — ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, Node ${process.version}`;
process.stdout.write(`${header}\n`);
const segments = count('segments', values.segments ?? (which === 'backlog' ? '40' : which === 'replay' ? '42' : '30'), 3);
const rounds = count('rounds', values.rounds ?? (which === 'backlog' || which === 'replay' ? '2' : '5'), 1);
const scale = count('scale', values.scale, 1);
const smallScale = count('small-scale', values['small-scale'], 0);
await withCleanups(async (cleanups) => {
  if (which === 'wal' || which === 'all') {
    const report = await runWalBench({ segments, scale: 10, breakdown: !values['no-breakdown'], log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'gcs' || which === 'all') {
    const report = await runGcsWalBench({ segments, scale: 10, breakdown: !values['no-breakdown'], log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'backlog') {
    const report = await runBacklogBench({ segments, rounds, repo, scale: 10, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'steady') {
    const report = await runSteadyBench({ seconds: 60, scale: 10, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'replay') {
    const report = await runReplayBench({ segments, rounds, scale: 10, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'catalogue') {
    const report = await runCatalogueBench({ rounds: count('rounds', values.rounds ?? '3', 1), log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'verdicts') {
    const report = await runBackupVerdictBench({ rounds: count('rounds', values.rounds ?? '3', 1), log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'incremental') {
    const report = await runIncrementalBench({ scale, seconds: 60, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'delta') {
    const report = await runDeltaBench({ scale, rounds: count('rounds', values.rounds ?? '1', 1), profile: values.profile, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'backup' || which === 'all') {
    const report = await runBackupBench({ scale, smallScale, profile: values.profile, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'validate' || which === 'all') {
    const report = await runValidateBench({ runs: Math.min(segments, 10), scale, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'records' || which === 'all') {
    const report = await runRecordsBench({ runs: Math.min(segments, 10), log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
  if (which === 'functions' || which === 'all') {
    const report = await runFunctionsBench({ rounds, log }, cleanups);
    process.stdout.write(`\n${report}\n`);
  }
});
log(`done in ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s`);
