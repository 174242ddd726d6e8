/**
 * The report `gcwal status` prints: a pure function of the catalogue (the
 * pipeline's, or one built from a listing), the time and the alert
 * thresholds. Its JSON form is a stable interface for scripts, documented in
 * docs/status-and-retention.md; field names and meanings only ever grow.
 */
import { evaluateAlerts, type AlertThresholds } from '../../core/alerts/evaluate.ts';
import { isPlaceholderBackup } from '../../core/catalogue/apply.ts';
import { recoverableWindows, timelinesWithoutHistory, walGaps, walRanges, type RecoverableSpan, type RestorePoint } from '../../core/catalogue/derive.ts';
import { compareTimes } from '../../core/catalogue/keys.ts';
import { pipelineMetrics, type PipelineMetrics } from '../../core/catalogue/metrics.ts';
import { windowRecords, type LastCommit, type NamedRestorePoint } from '../../core/catalogue/restorable.ts';
import type { AlertKind, AlertSeverity, Catalogue, CatalogueBackup, OpenAlert, ValidationState } from '../../core/catalogue/types.ts';
import { parseLsn } from '../../core/wal/lsn.ts';
import type { LoadedCatalogue } from '../catalogue/load.ts';

/** A state as the report shows it: `unvalidated` when nothing validates (a listing), else the catalogue's. */
export type ReportedState = ValidationState | 'unvalidated';

/** A WAL file with when it was archived. */
export interface ReportedWal {
  name: string;
  /** ISO creation time of the object */
  created: string;
  /** whole seconds from `created` to the report's time (0 when in the future) */
  ageSeconds: number;
}

/** A restorable point: the catalogue's own shape (core/catalogue/derive.ts). */
export type ReportedPoint = RestorePoint;

/** One stretch of restorable points, as the catalogue derives it. */
export type ReportedSpan = RecoverableSpan;

/** A run of consecutive segments of one timeline, counted by state. */
export interface ReportedRange {
  first: string;
  last: string;
  segments: number;
  valid: number;
  pending: number;
  corrupt: number;
  /** segments nobody validates (a listing); 0 with a catalogue */
  unvalidated: number;
}

/** Missing segments of one timeline. */
export interface ReportedGap {
  /** the segment before the hole; null for a hole at the start of a timeline */
  after: string | null;
  missing: string;
  count: number;
  before: string;
}

/** What one timeline holds and can restore. */
export interface TimelineStatus {
  timeline: number;
  /** a timeline after the first without its `.history` file: recovery cannot follow the fork */
  historyMissing: boolean;
  /**
   * earliest and latest restorable points; null when nothing on it can be
   * restored. `lastCommit`: the last transaction end archived in the last
   * span (the latest time a --target-time can reach), from the segments'
   * records; null when none was read. `lastCommitCertain` false: later WAL
   * of the span is not validated yet and may hold a later one.
   */
  window: {
    earliest: (ReportedPoint & { backup: string }) | null;
    latest: (ReportedPoint & { segment: string }) | null;
    spans: ReportedSpan[];
    lastCommit: LastCommit | null;
    lastCommitCertain: boolean;
  };
  /** named restore points (pg_create_restore_point) inside the window, in WAL order: what --target-name can reach */
  restorePoints: NamedRestorePoint[];
  /** its highest segment */
  newestWal: ReportedWal | null;
  walRanges: ReportedRange[];
  gaps: ReportedGap[];
}

/** A backup with its validation state; fields null when its backup.json could not be read. */
export interface BackupStatus {
  name: string;
  /** null for a backup whose backup.json could not be read */
  timeline: number | null;
  startTime: string | null;
  stopTime: string | null;
  startLsn: string | null;
  stopLsn: string | null;
  startWalSegment: string | null;
  stopWalSegment: string | null;
  rawSize: number | null;
  storedSize: number | null;
  state: ReportedState;
  problem: string | null;
  /** an incremental backup's parent (absent for a full backup) */
  parent?: string;
}

/** An open alert, as the pipeline announced it or as evaluated from a listing. */
export interface AlertStatus {
  id: string;
  kind: AlertKind;
  severity: AlertSeverity;
  summary: string;
  /** ISO time the incident was first seen */
  opened: string;
  details: Record<string, unknown>;
}

/** What `gcwal status --json` prints. */
export interface StatusReport {
  format: 1;
  /** ISO time the report was made */
  generatedAt: string;
  repository: string;
  /** `catalogue`: the pipeline's catalogue; `listing`: none exists, a listing of the repository */
  source: 'catalogue' | 'listing';
  /** whether the states come from validation (false for a listing: every state is `unvalidated`) */
  validated: boolean;
  catalogue: { location: string; exists: boolean; updated: string | null; generation: string | null };
  cluster: { systemIdentifier: string | null; walSegmentSize: number | null };
  /** the most recently archived WAL file of any timeline */
  newestWal: ReportedWal | null;
  timelines: TimelineStatus[];
  /** oldest first */
  backups: BackupStatus[];
  /** open alerts, most severe first */
  alerts: AlertStatus[];
  /** `pipeline`: the alerts the functions announced; `evaluated`: computed here from the listing */
  alertsSource: 'pipeline' | 'evaluated';
  /** the dashboard's figures, as the watchdog logs them (core/catalogue/metrics.ts), over the same windows and alerts */
  metrics: PipelineMetrics;
}

/** Thresholds for alerts evaluated from a listing (the functions' settings). */
export type StatusThresholds = Omit<AlertThresholds, 'unvalidatedSeconds'>;

const SEVERITY_RANK: Record<AlertSeverity, number> = { CRITICAL: 0, ERROR: 1, WARNING: 2, INFO: 3 };

function ageSeconds(time: string, now: Date): number {
  const t = Date.parse(time);
  return Number.isNaN(t) ? 0 : Math.max(0, Math.round((now.getTime() - t) / 1000));
}

function wal(name: string, created: string, now: Date): ReportedWal {
  return { name, created, ageSeconds: ageSeconds(created, now) };
}

function lsnOrZero(text: string): bigint {
  try {
    return parseLsn(text);
  } catch {
    return 0n;
  }
}

/** Oldest first, as backup-list orders them: start time, start LSN, name; unreadable ones last. */
function compareBackups(a: CatalogueBackup, b: CatalogueBackup): number {
  const pa = isPlaceholderBackup(a);
  const pb = isPlaceholderBackup(b);
  if (pa !== pb) return pa ? 1 : -1;
  const byTime = compareTimes(a.startTime, b.startTime);
  if (byTime !== 0 && a.startTime !== b.startTime) return byTime;
  const la = lsnOrZero(a.startLsn);
  const lb = lsnOrZero(b.startLsn);
  if (la !== lb) return la < lb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function backupStatus(b: CatalogueBackup, listing: boolean): BackupStatus {
  const state: ReportedState = listing && b.state === 'pending' ? 'unvalidated' : b.state;
  const problem = b.problem ?? null;
  if (isPlaceholderBackup(b)) {
    return {
      name: b.name,
      timeline: null,
      startTime: null,
      stopTime: null,
      startLsn: null,
      stopLsn: null,
      startWalSegment: null,
      stopWalSegment: null,
      rawSize: null,
      storedSize: null,
      state,
      problem,
    };
  }
  return {
    name: b.name,
    timeline: b.timeline,
    startTime: b.startTime,
    stopTime: b.stopTime,
    startLsn: b.startLsn,
    stopLsn: b.stopLsn,
    startWalSegment: b.startWalSegment,
    stopWalSegment: b.stopWalSegment,
    rawSize: b.rawSize,
    storedSize: b.storedSize,
    state,
    problem,
    ...(b.parent !== undefined ? { parent: b.parent } : {}),
  };
}

/** The catalogue with every pending object taken as valid: what a listing's alerts are evaluated on. */
function assumingValid(catalogue: Catalogue): Catalogue {
  const valid = <T extends { state: ValidationState }>(map: Record<string, T>): Record<string, T> =>
    Object.fromEntries(Object.entries(map).map(([k, v]) => [k, v.state === 'pending' ? { ...v, state: 'valid' as const } : v]));
  return { ...catalogue, wal: valid(catalogue.wal), parts: valid(catalogue.parts), backups: valid(catalogue.backups) };
}

function alertStatus(a: OpenAlert): AlertStatus {
  return { id: a.id, kind: a.kind, severity: a.severity, summary: a.summary, opened: a.opened, details: a.details };
}

/**
 * Build the status report of `loaded` at `now` for the repository at
 * `repository`. With the pipeline's catalogue: its validation states, the
 * windows over validated objects, and the alerts the pipeline has open.
 * From a listing: every state `unvalidated`, windows counting unvalidated
 * backups and WAL, and alerts evaluated here with `thresholds` as if every
 * object were valid (stalled archiving, gaps, forks without history, an old
 * or missing backup; nothing was read, so no object can be found corrupt
 * except a backup.json or history file that does not parse).
 */
export function buildStatusReport(loaded: LoadedCatalogue, repository: string, now: Date, thresholds: StatusThresholds): StatusReport {
  const { catalogue } = loaded;
  const listing = loaded.source === 'listing';
  const windows = recoverableWindows(catalogue, { includePending: listing });
  const ranges = walRanges(catalogue);
  const gaps = walGaps(catalogue);
  const orphans = new Set(timelinesWithoutHistory(catalogue));
  const records = new Map(windows.filter((w) => w.spans.length > 0).map((w) => [w.timeline, windowRecords(catalogue, w)]));

  const timelines: TimelineStatus[] = windows.map((w) => ({
    timeline: w.timeline,
    historyMissing: orphans.has(w.timeline),
    window: {
      earliest: w.earliest ? { lsn: w.earliest.lsn, time: w.earliest.time, backup: w.earliest.backup } : null,
      latest: w.latest ? { lsn: w.latest.lsn, time: w.latest.time, segment: w.latest.segment } : null,
      spans: w.spans.map((s) => ({
        from: { lsn: s.from.lsn, time: s.from.time, backup: s.from.backup },
        to: { lsn: s.to.lsn, time: s.to.time, segment: s.to.segment },
        unvalidatedSegments: s.unvalidatedSegments,
      })),
      lastCommit: records.get(w.timeline)?.lastCommit ?? null,
      lastCommitCertain: records.get(w.timeline)?.lastCommitCertain ?? false,
    },
    restorePoints: records.get(w.timeline)?.restorePoints ?? [],
    newestWal: w.newestWal ? wal(w.newestWal.name, w.newestWal.created, now) : null,
    walRanges: ranges
      .filter((r) => r.timeline === w.timeline)
      .map((r) => ({
        first: r.first,
        last: r.last,
        segments: r.segments,
        valid: r.valid,
        pending: listing ? 0 : r.pending,
        corrupt: r.corrupt,
        unvalidated: listing ? r.pending : 0,
      })),
    gaps: gaps.filter((g) => g.timeline === w.timeline).map((g) => ({ after: g.after ?? null, missing: g.missing, count: g.count, before: g.before })),
  }));

  let newest: ReportedWal | null = null;
  for (const e of Object.values(catalogue.wal)) {
    if (newest === null || compareTimes(e.created, newest.created) > 0) newest = wal(e.name, e.created, now);
  }
  for (const r of catalogue.walRuns) {
    if (newest === null || compareTimes(r.lastCreated, newest.created) > 0) newest = wal(r.last, r.lastCreated, now);
  }

  const alerts = listing ? evaluateAlerts(assumingValid(catalogue), now, { ...thresholds, unvalidatedSeconds: Infinity }) : Object.values(catalogue.alerts);
  alerts.sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || compareTimes(a.opened, b.opened) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  return {
    format: 1,
    generatedAt: now.toISOString(),
    repository,
    source: loaded.source,
    validated: !listing,
    catalogue: { location: loaded.location, exists: !listing, updated: listing ? null : catalogue.updated, generation: listing ? null : loaded.generation },
    cluster: { systemIdentifier: catalogue.systemIdentifier ?? null, walSegmentSize: catalogue.walSegmentSize ?? null },
    newestWal: newest,
    timelines,
    backups: Object.values(catalogue.backups)
      .sort(compareBackups)
      .map((b) => backupStatus(b, listing)),
    alerts: alerts.map(alertStatus),
    alertsSource: listing ? 'evaluated' : 'pipeline',
    metrics: pipelineMetrics(catalogue, now, { includePending: listing, alerts }),
  };
}
