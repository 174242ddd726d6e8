/**
 * Alerts: which incidents the catalogue shows right now (evaluateAlerts),
 * which of them are new or cleared since the last announcement (diffAlerts),
 * and the message each announcement publishes (alertMessage). All pure; the
 * functions keep the open set in the catalogue and publish only after their
 * update of it succeeded, so an incident is announced once.
 */
import { isPlaceholderBackup } from '../catalogue/apply.ts';
import { catalogueSegmentSize, timelinesWithoutHistory, walGaps, type WalGap } from '../catalogue/derive.ts';
import { compareTimes } from '../catalogue/keys.ts';
import { spanBounds } from '../catalogue/runs.ts';
import type { AlertKind, AlertSeverity, Catalogue, OpenAlert } from '../catalogue/types.ts';
import { backupMetaKey, WAL_PREFIX, walObjectKey } from '../layout.ts';
import { classifyWalFileName, historyFileName, parseWalSegmentName } from '../wal/name.ts';
import { keptMalformedEventAlerts } from './malformed.ts';
import type { AlertMessage } from './types.ts';

/** When the catalogue's facts become incidents. */
export interface AlertThresholds {
  /** no WAL object for longer than this: archiving-stalled */
  stallSeconds: number;
  /** the newest backup finished longer ago than this: backup-too-old (and the grace before no-valid-backup on a new archive) */
  backupMaxAgeSeconds: number;
  /** an object pending validation for longer than this: objects-unvalidated */
  unvalidatedSeconds: number;
  /** a hole or a fork without history only counts once the WAL around it has been still this long */
  gapGraceSeconds: number;
}

/** The severity of each kind of alert. */
export const ALERT_SEVERITY: Readonly<Record<AlertKind, AlertSeverity>> = {
  'corrupt-object': 'CRITICAL',
  'wal-gap': 'CRITICAL',
  'no-valid-backup': 'CRITICAL',
  'timeline-without-history': 'ERROR',
  'archiving-stalled': 'ERROR',
  'backup-too-old': 'WARNING',
  'objects-unvalidated': 'WARNING',
  'malformed-event': 'ERROR',
};

/** At most this many keys are listed in the details of an aggregate alert. */
const DETAIL_KEYS = 20;

/** `n unit(s)` for a threshold: whole days, hours or minutes when it is one. */
export function formatDuration(seconds: number): string {
  const units: [number, string][] = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  const [size, unit] = units.find(([size]) => seconds >= size && seconds % size === 0) ?? [1, 'second'];
  const n = seconds / size;
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** How long an incident lasted, roughly: `under a minute`, `12 minutes`, `3 hours 5 minutes`, `2 days 4 hours`. */
function formatElapsed(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (minutes < 1) return 'under a minute';
  if (minutes < 60) return plural(minutes, 'minute');
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${plural(hours, 'hour')} ${plural(minutes % 60, 'minute')}`;
  return `${plural(Math.floor(hours / 24), 'day')} ${plural(hours % 24, 'hour')}`;
}

function olderThan(time: string | undefined, seconds: number, now: Date): boolean {
  if (time === undefined) return false;
  const t = Date.parse(time);
  // An unreadable time, or one "in the future" (clock skew), is never old.
  return !Number.isNaN(t) && now.getTime() - t > seconds * 1000;
}

function latest(times: (string | undefined)[]): string | undefined {
  let best: string | undefined;
  for (const t of times) if (t !== undefined && (best === undefined || compareTimes(t, best) > 0)) best = t;
  return best;
}

function alert(kind: AlertKind, id: string, summary: string, details: Record<string, unknown>, now: Date): OpenAlert {
  // Undefined fields would vanish in the stored JSON; leave them out here so
  // a stored alert and a freshly evaluated one compare equal.
  const defined = Object.fromEntries(Object.entries(details).filter(([, v]) => v !== undefined));
  return { id, kind, severity: ALERT_SEVERITY[kind], summary, details: defined, opened: now.toISOString() };
}

function corruptObjects(catalogue: Catalogue, now: Date): OpenAlert[] {
  const out: OpenAlert[] = [];
  for (const e of Object.values(catalogue.wal)) {
    if (e.state !== 'corrupt') continue;
    const key = walObjectKey(e.name);
    const what = e.name.endsWith('.history') ? 'timeline history file' : e.name.includes('.') ? 'wal file' : 'wal segment';
    out.push(
      alert(
        'corrupt-object',
        `corrupt-object:${key}:${e.generation}`,
        `${what} ${e.name} archived at ${e.created} failed validation (${e.problem ?? 'no reason given'}); recovery cannot replay past it: take a new base backup now so later points stay restorable`,
        { key, generation: e.generation, problem: e.problem, created: e.created, validated: e.validated },
        now,
      ),
    );
  }
  for (const p of Object.values(catalogue.parts)) {
    if (p.state !== 'corrupt') continue;
    out.push(
      alert(
        'corrupt-object',
        `corrupt-object:${p.key}:${p.generation}`,
        `backup part ${p.key} failed validation (${p.problem ?? 'no reason given'}); that backup cannot be restored: take a new one with gcwal backup-push`,
        { key: p.key, generation: p.generation, problem: p.problem, created: p.created, validated: p.validated },
        now,
      ),
    );
  }
  for (const b of Object.values(catalogue.backups)) {
    if (b.state !== 'corrupt') continue;
    const key = backupMetaKey(b.name);
    out.push(
      alert(
        'corrupt-object',
        `corrupt-object:${key}:${b.generation}`,
        `backup ${b.name} failed validation (${b.problem ?? 'no reason given'}); it cannot be restored: take a new one with gcwal backup-push`,
        { key, generation: b.generation, backup: b.name, problem: b.problem, validated: b.validated },
        now,
      ),
    );
  }
  return out;
}

/** Deleted segments, by timeline and span of segment numbers: a hole a prune is still closing is not yet a gap. */
function segmentDeletions(catalogue: Catalogue): { timeline: number; from: bigint; to: bigint; deleted: string }[] {
  const segSize = catalogueSegmentSize(catalogue);
  const out: { timeline: number; from: bigint; to: bigint; deleted: string }[] = [];
  // Deletions seen before the segment size was known are kept by key.
  for (const [key, tombstone] of Object.entries(catalogue.tombstones)) {
    const name = key.startsWith(WAL_PREFIX) ? key.slice(WAL_PREFIX.length) : '';
    if (classifyWalFileName(name)?.kind !== 'segment') continue;
    try {
      const { timeline, segNo } = parseWalSegmentName(name, segSize);
      out.push({ timeline, from: segNo, to: segNo, deleted: tombstone.deleted });
    } catch {
      // a name that cannot exist at this segment size was never a segment of this archive
    }
  }
  for (const range of catalogue.segmentTombstones ?? []) {
    try {
      out.push({ timeline: range.timeline, ...spanBounds(range, segSize), deleted: range.deleted });
    } catch {
      // as above
    }
  }
  return out;
}

function gapAlerts(catalogue: Catalogue, now: Date, thresholds: AlertThresholds): OpenAlert[] {
  const segSize = catalogueSegmentSize(catalogue);
  const deletions = segmentDeletions(catalogue);
  const out: OpenAlert[] = [];
  for (const gap of walGaps(catalogue)) {
    const from = parseWalSegmentName(gap.missing, segSize).segNo;
    const to = from + BigInt(gap.count);
    const lastDeleted = latest(deletions.filter((d) => d.timeline === gap.timeline && d.to >= from && d.from < to).map((d) => d.deleted));
    // A segment still uploading behind a later one, or a prune deleting
    // oldest-first with its events out of order, opens a hole that closes by
    // itself; only one that has stayed open for the grace period is a gap.
    const stillSince = latest([gap.beforeCreated, lastDeleted]);
    if (!olderThan(stillSince, thresholds.gapGraceSeconds, now)) continue;
    out.push(
      alert(
        'wal-gap',
        `wal-gap:${gap.timeline}:${gap.missing}`,
        gapSummary(gap, gap.beforeCreated),
        { timeline: gap.timeline, after: gap.after, missing: gap.missing, count: gap.count, before: gap.before, lastDeleted },
        now,
      ),
    );
  }
  return out;
}

function gapSummary(gap: WalGap, beforeCreated: string): string {
  const what = gap.count === 1 ? `wal segment ${gap.missing} is` : `${gap.count} wal segments from ${gap.missing} are`;
  const where = gap.after ? `between ${gap.after} and ${gap.before}` : `between the start of timeline ${gap.timeline} and ${gap.before}`;
  return `${what} missing from the archive on timeline ${gap.timeline}, ${where} (archived at ${beforeCreated}); recovery cannot pass ${gap.missing}: take a new base backup now, and check archive_command and pg_stat_archiver on the server`;
}

function historyAlerts(catalogue: Catalogue, now: Date, thresholds: AlertThresholds): OpenAlert[] {
  const out: OpenAlert[] = [];
  for (const timeline of timelinesWithoutHistory(catalogue)) {
    const file = historyFileName(timeline);
    // The history file is archived at promotion, but its event may trail
    // the first segments of the new timeline; give it the grace period.
    const times: string[] = [];
    for (const e of Object.values(catalogue.wal)) if (classifyWalFileName(e.name)?.timeline === timeline) times.push(e.created);
    for (const r of catalogue.walRuns ?? []) if (r.timeline === timeline) times.push(r.firstCreated);
    for (const b of Object.values(catalogue.backups)) if (b.timeline === timeline) times.push(b.stopTime);
    const settled = catalogue.settled?.timelines[String(timeline)];
    if (settled !== undefined) times.push(settled);
    const first = times.sort(compareTimes)[0];
    if (!olderThan(first, thresholds.gapGraceSeconds, now)) continue;
    out.push(
      alert(
        'timeline-without-history',
        `timeline-without-history:${timeline}`,
        `timeline ${timeline} has wal in the archive since ${first} but no ${file}, so recovery cannot follow the fork onto it: archive ${file} from the server's pg_wal with gcwal wal-push`,
        { timeline, file, since: first },
        now,
      ),
    );
  }
  return out;
}

function stallAlert(catalogue: Catalogue, now: Date, thresholds: AlertThresholds): OpenAlert[] {
  const last =
    catalogue.lastWalArrival ?? latest([...Object.values(catalogue.wal).map((e) => e.created), ...(catalogue.walRuns ?? []).map((r) => r.lastCreated)]);
  if (!olderThan(last, thresholds.stallSeconds, now)) return [];
  return [
    alert(
      'archiving-stalled',
      'archiving-stalled',
      `no wal has reached the archive since ${last}, longer than ${formatDuration(thresholds.stallSeconds)}: check archive_command and pg_stat_archiver on the server, and on a quiet database set archive_timeout below that`,
      { lastWalArrival: last, stallSeconds: thresholds.stallSeconds },
      now,
    ),
  ];
}

function backupAlerts(catalogue: Catalogue, now: Date, thresholds: AlertThresholds): OpenAlert[] {
  const known = Object.values(catalogue.backups).filter((b) => !isPlaceholderBackup(b));
  const valid = known.filter((b) => b.state === 'valid');
  // Settled backups (settled.ts) are valid; an update sees only their summary.
  const settled = catalogue.settled;
  if (valid.length === 0 && !settled?.newest) {
    if (known.some((b) => b.state === 'pending' && !olderThan(b.stopTime, thresholds.unvalidatedSeconds, now))) return [];
    // A new archive gets as long as a backup may be old to receive its first one.
    const times = [
      ...Object.values(catalogue.wal).map((e) => e.created),
      ...(catalogue.walRuns ?? []).map((r) => r.firstCreated),
      ...Object.values(catalogue.backups).map((b) => b.stopTime),
    ].filter((t) => !Number.isNaN(Date.parse(t)));
    const since = times.sort(compareTimes)[0];
    if (!olderThan(since, thresholds.backupMaxAgeSeconds, now)) return [];
    const corrupt = known.length - known.filter((b) => b.state === 'pending').length;
    return [
      alert(
        'no-valid-backup',
        'no-valid-backup',
        `the archive holds no valid base backup${corrupt > 0 ? ` (${corrupt} failed validation)` : ''}, so nothing can be restored: run gcwal backup-push now`,
        { backups: known.length, corrupt, archiveSince: since },
        now,
      ),
    ];
  }
  let newest: { name: string; stopTime: string } | undefined = settled?.newest;
  for (const b of known) if (b.state !== 'corrupt' && (newest === undefined || compareTimes(b.stopTime, newest.stopTime) > 0)) newest = b;
  if (newest === undefined) return [];
  if (!olderThan(newest.stopTime, thresholds.backupMaxAgeSeconds, now)) return [];
  return [
    alert(
      'backup-too-old',
      'backup-too-old',
      `the newest backup ${newest.name} finished at ${newest.stopTime}, more than ${formatDuration(thresholds.backupMaxAgeSeconds)} ago: run gcwal backup-push and check its schedule`,
      { backup: newest.name, stopTime: newest.stopTime, backupMaxAgeSeconds: thresholds.backupMaxAgeSeconds },
      now,
    ),
  ];
}

function unvalidatedAlert(catalogue: Catalogue, now: Date, thresholds: AlertThresholds): OpenAlert[] {
  const waiting: { key: string; since: string }[] = [];
  for (const e of Object.values(catalogue.wal)) if (e.state === 'pending') waiting.push({ key: walObjectKey(e.name), since: e.created });
  for (const p of Object.values(catalogue.parts)) if (p.state === 'pending') waiting.push({ key: p.key, since: p.created });
  for (const b of Object.values(catalogue.backups)) if (b.state === 'pending') waiting.push({ key: backupMetaKey(b.name), since: b.stopTime });
  const late = waiting
    .filter((w) => olderThan(w.since, thresholds.unvalidatedSeconds, now))
    .sort((a, b) => compareTimes(a.since, b.since) || (a.key < b.key ? -1 : 1));
  if (late.length === 0) return [];
  const oldest = late[0];
  const count = late.length === 1 ? '1 object has' : `${late.length} objects have`;
  return [
    alert(
      'objects-unvalidated',
      'objects-unvalidated',
      `${count} waited more than ${formatDuration(thresholds.unvalidatedSeconds)} for validation, the oldest ${oldest.key} since ${oldest.since}: check that the validate function is deployed, triggered by this bucket, and not failing in its logs`,
      { count: late.length, oldest: oldest.key, since: oldest.since, keys: late.slice(0, DETAIL_KEYS).map((w) => w.key) },
      now,
    ),
  ];
}

/**
 * The incidents the catalogue shows at `now`, sorted by id, each with
 * `opened` = now (diffAlerts keeps the time of those already open). Ids are
 * stable: the same problem always gets the same id.
 *
 * - `corrupt-object:<key>:<generation>` (CRITICAL): a WAL file, part or backup failed validation.
 * - `wal-gap:<timeline>:<first missing>` (CRITICAL): a hole in a timeline
 *   (see walGaps) that the segment after it, and any deletion inside it, have
 *   left alone for `gapGraceSeconds`.
 * - `timeline-without-history:<timeline>` (ERROR): a fork whose `.history`
 *   is still missing `gapGraceSeconds` after the timeline's first object.
 * - `archiving-stalled` (ERROR): no WAL object created for `stallSeconds`.
 * - `no-valid-backup` (CRITICAL): no valid backup, once the archive is older
 *   than `backupMaxAgeSeconds` and no backup is freshly awaiting validation.
 * - `backup-too-old` (WARNING): the newest backup not known corrupt finished
 *   more than `backupMaxAgeSeconds` ago.
 * - `objects-unvalidated` (WARNING): objects pending for `unvalidatedSeconds`.
 * - `malformed-event:<event id>` (ERROR): raised by a function that could
 *   not read an event (see malformed.ts), kept open for a day.
 *
 * Times in the future (clock skew) never make anything old.
 */
export function evaluateAlerts(catalogue: Catalogue, now: Date, thresholds: AlertThresholds): OpenAlert[] {
  return [
    ...corruptObjects(catalogue, now),
    ...gapAlerts(catalogue, now, thresholds),
    ...historyAlerts(catalogue, now, thresholds),
    ...stallAlert(catalogue, now, thresholds),
    ...backupAlerts(catalogue, now, thresholds),
    ...unvalidatedAlert(catalogue, now, thresholds),
    ...keptMalformedEventAlerts(catalogue.alerts, now),
  ].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** What changed between the announced incidents and the current ones. */
export interface AlertDiff {
  /** incidents not open before, `opened` = now: announce them */
  opened: OpenAlert[];
  /** incidents open before and gone now, as they were announced: announce they cleared */
  resolved: OpenAlert[];
  /** the open set to store: every current incident, keeping `opened` of continuing ones */
  next: Record<string, OpenAlert>;
}

/**
 * Compare the stored open set with the current incidents (evaluateAlerts).
 * A continuing incident keeps its first `opened` time and takes the current
 * summary and details. Pure; `opened` and `resolved` are sorted by id.
 */
export function diffAlerts(open: Readonly<Record<string, OpenAlert>>, current: readonly OpenAlert[], now: Date): AlertDiff {
  const next: Record<string, OpenAlert> = {};
  const opened: OpenAlert[] = [];
  for (const incident of [...current].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const before = Object.hasOwn(open, incident.id) ? open[incident.id] : undefined;
    if (before) {
      next[incident.id] = { ...incident, opened: before.opened };
    } else {
      next[incident.id] = { ...incident, opened: now.toISOString() };
      opened.push(next[incident.id]);
    }
  }
  const resolved = Object.keys(open)
    .filter((id) => !Object.hasOwn(next, id))
    .sort()
    .map((id) => open[id]);
  return { opened, resolved, next };
}

/**
 * The message announcing that `alert` opened or resolved, for the alerts
 * topic. `cluster` is the system identifier (`unknown` when undefined). A
 * resolution keeps the alert's severity (so it reaches whoever got the
 * opening), says how long the incident lasted, and repeats the summary.
 */
export function alertMessage(alert: OpenAlert, status: 'open' | 'resolved', cluster: string | undefined, repository: string, now: Date): AlertMessage {
  const summary = status === 'open' ? alert.summary : `resolved after ${formatElapsed(now.getTime() - Date.parse(alert.opened))}: ${alert.summary}`;
  return {
    format: 1,
    id: alert.id,
    status,
    severity: alert.severity,
    cluster: cluster ?? 'unknown',
    kind: alert.kind,
    summary,
    details: { ...alert.details, opened: alert.opened },
    repository,
    time: now.toISOString(),
  };
}
