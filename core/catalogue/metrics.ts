/**
 * The pipeline's figures for a dashboard, one pure function of the
 * catalogue and the time: what the watchdog logs as a structured entry
 * (log-based metrics in terraform/modules/pipeline/metrics.tf extract its
 * fields) and what `gcwal status --json` carries as `metrics`. Ages are whole
 * seconds; a figure that does not exist yet (no WAL, no valid backup, no
 * window) is null, never 0, so a dashboard does not read it as "fresh".
 */
import { isPlaceholderBackup } from './apply.ts';
import { recoverableWindows, type WindowOptions } from './derive.ts';
import { compareTimes } from './keys.ts';
import type { AlertKind, Catalogue, OpenAlert } from './types.ts';

/** Every alert kind, as it appears in `openAlerts` (hyphens become underscores, so log filters can name the field). */
export const METRIC_ALERT_KINDS: readonly AlertKind[] = [
  'corrupt-object',
  'wal-gap',
  'timeline-without-history',
  'archiving-stalled',
  'backup-too-old',
  'no-valid-backup',
  'objects-unvalidated',
  'malformed-event',
];

/** The field name of an alert kind in `openAlerts`. */
export function metricAlertField(kind: AlertKind): string {
  return kind.replace(/-/g, '_');
}

/** The figures; field names only ever grow (they are a dashboard's interface). */
export interface PipelineMetrics {
  /** seconds since the newest WAL object was archived: archive lag */
  archiveLagSeconds: number | null;
  /** the newest WAL object's creation time, ISO */
  newestWalTime: string | null;
  /** the recovery window of the newest timeline that has one: its earliest and latest restorable times, ISO */
  windowStart: string | null;
  windowEnd: string | null;
  /** seconds from the window's start and end to now (a dashboard plots these; they need no time parsing) */
  windowStartAgeSeconds: number | null;
  windowEndAgeSeconds: number | null;
  /** the newest backup validated as whole: its stop time, ISO, and the seconds since */
  lastValidBackupTime: string | null;
  lastValidBackupAgeSeconds: number | null;
  /** WAL files, backup parts and backups waiting for validation */
  pendingObjects: number;
  /** open alerts by kind (every kind present, 0 when none) */
  openAlerts: Record<string, number>;
  openAlertsTotal: number;
}

function ageSeconds(time: string | undefined, now: Date): number | null {
  if (time === undefined) return null;
  const t = Date.parse(time);
  return Number.isNaN(t) ? null : Math.max(0, Math.round((now.getTime() - t) / 1000));
}

/** How pipelineMetrics reads a catalogue. */
export interface MetricsOptions extends WindowOptions {
  /**
   * The open alerts to count instead of the catalogue's: `gcwal status`
   * over a listing evaluates its own (a listing's catalogue has none).
   */
  alerts?: readonly Pick<OpenAlert, 'kind'>[];
}

/**
 * The figures of `catalogue` at `now`. `options` as for recoverableWindows
 * (a listing's catalogue counts unvalidated backups), and the alerts to count.
 */
export function pipelineMetrics(catalogue: Catalogue, now: Date, options: MetricsOptions = {}): PipelineMetrics {
  let newestWal = catalogue.lastWalArrival;
  for (const e of Object.values(catalogue.wal)) if (newestWal === undefined || compareTimes(e.created, newestWal) > 0) newestWal = e.created;
  // Folded valid segments: each run's newest is its last.
  for (const r of catalogue.walRuns ?? []) if (newestWal === undefined || compareTimes(r.lastCreated, newestWal) > 0) newestWal = r.lastCreated;

  const withWindow = recoverableWindows(catalogue, options).filter((w) => w.earliest && w.latest);
  const window = withWindow.at(-1);

  let lastValid: string | undefined;
  for (const b of Object.values(catalogue.backups)) {
    if (b.state !== 'valid' || isPlaceholderBackup(b)) continue;
    if (lastValid === undefined || compareTimes(b.stopTime, lastValid) > 0) lastValid = b.stopTime;
  }

  let pending = 0;
  for (const map of [catalogue.wal, catalogue.parts, catalogue.backups]) for (const e of Object.values(map)) if (e.state === 'pending') pending++;

  const openAlerts: Record<string, number> = Object.fromEntries(METRIC_ALERT_KINDS.map((k) => [metricAlertField(k), 0]));
  let total = 0;
  for (const a of options.alerts ?? Object.values(catalogue.alerts)) {
    const field = metricAlertField(a.kind);
    openAlerts[field] = (openAlerts[field] ?? 0) + 1;
    total++;
  }

  return {
    archiveLagSeconds: ageSeconds(newestWal, now),
    newestWalTime: newestWal ?? null,
    windowStart: window?.earliest?.time ?? null,
    windowEnd: window?.latest?.time ?? null,
    windowStartAgeSeconds: ageSeconds(window?.earliest?.time, now),
    windowEndAgeSeconds: ageSeconds(window?.latest?.time, now),
    lastValidBackupTime: lastValid ?? null,
    lastValidBackupAgeSeconds: ageSeconds(lastValid, now),
    pendingObjects: pending,
    openAlerts,
    openAlertsTotal: total,
  };
}
