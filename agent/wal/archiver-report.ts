/**
 * What `gcwal archiver-status` reports about a data directory's background
 * archiver: whether it runs, its queue (ready segments not yet marked
 * durable), the lag (how long the oldest of them has been ready), what it
 * archived and its last error (its status file, archiver-control.ts).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { classifyWalFileName } from '../../core/wal/name.ts';
import { type ArchiverStatus, archiverDir, archiverPid, FAILING_FILE, LOG_FILE, readArchiverStatus } from './archiver-control.ts';
import { MARKER_DIR } from './marker.ts';

export interface ArchiverReport {
  walDir: string;
  /** the live archiver's pid, or null */
  pid: number | null;
  /** full segments PostgreSQL has marked ready, marked durable or not */
  ready: number;
  /** ready segments without a marker yet: the archiver's queue */
  queue: number;
  /** the oldest of those, and for how many seconds it has been ready */
  oldest: string | null;
  lagSeconds: number;
  /** whether the archiver's last push failed */
  failing: boolean;
  archived: number;
  failures: number;
  inFlight: string[];
  lastArchived: ArchiverStatus['lastArchived'] | null;
  lastError: ArchiverStatus['lastError'] | null;
  log: string;
}

export async function archiverReport(walDir: string, now = Date.now()): Promise<ArchiverReport> {
  const statusDir = path.join(walDir, 'archive_status');
  const entries = await fs.readdir(statusDir).catch(() => [] as string[]);
  const ready = entries
    .filter((e) => e.endsWith('.ready'))
    .map((e) => e.slice(0, -'.ready'.length))
    .filter((n) => classifyWalFileName(n)?.kind === 'segment')
    .sort();
  const markers = new Set(await fs.readdir(path.join(walDir, MARKER_DIR)).catch(() => [] as string[]));
  const queue = ready.filter((n) => !markers.has(n));
  const oldest = queue[0] ?? null;
  const since = oldest ? (await fs.stat(path.join(statusDir, `${oldest}.ready`)).catch(() => undefined))?.mtimeMs : undefined;
  const status = await readArchiverStatus(walDir);
  const failing = await fs.access(path.join(archiverDir(walDir), FAILING_FILE)).then(
    () => true,
    () => false,
  );
  return {
    walDir,
    pid: (await archiverPid(walDir)) ?? null,
    ready: ready.length,
    queue: queue.length,
    oldest,
    lagSeconds: since === undefined ? 0 : Math.max(0, Math.round((now - since) / 100) / 10),
    failing,
    archived: status?.archived ?? 0,
    failures: status?.failures ?? 0,
    inFlight: status?.inFlight ?? [],
    lastArchived: status?.lastArchived ?? null,
    lastError: status?.lastError ?? null,
    log: path.join(archiverDir(walDir), LOG_FILE),
  };
}

/** The report as lines for people. */
export function formatArchiverReport(r: ArchiverReport): string {
  const lines = [
    `archiver: ${r.pid === null ? 'not running' : `running (pid ${r.pid})`}${r.failing ? ', failing' : ''}`,
    `queue: ${r.queue} segment${r.queue === 1 ? '' : 's'} ready and not yet archived${r.oldest ? ` (oldest ${r.oldest}, ready for ${r.lagSeconds} s)` : ''}`,
    `archived: ${r.archived}, failures: ${r.failures} (by the current or last archiver)`,
    `last archived: ${r.lastArchived ? `${r.lastArchived.name} at ${r.lastArchived.time}` : 'none'}`,
    `last error: ${r.lastError ? `${r.lastError.name} at ${r.lastError.time}: ${r.lastError.message}` : 'none'}`,
    `log: ${r.log}`,
  ];
  return lines.join('\n') + '\n';
}
