/**
 * The status report as text for people: the repository and where the facts
 * come from, then per timeline what can be restored, then backups and
 * alerts. Pure; the JSON form is the interface for programs.
 */
import { formatTable } from '../commands/backup-list.ts';
import { formatBytes } from '../progress.ts';
import type { BackupStatus, ReportedRange, ReportedWal, StatusReport, TimelineStatus } from './report.ts';

/** `2024-05-01T12:34:56.789Z` → `2024-05-01 12:34:56Z`. */
export function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/**
 * `2024-05-01T12:34:56.789Z` → `2024-05-01 12:34:56.789Z`: a restorable
 * point keeps its milliseconds, so a target typed from it is not refused as
 * being before it.
 */
export function pointTime(iso: string): string {
  return iso.replace('T', ' ');
}

/** A rough age: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function walLine(w: ReportedWal): string {
  return `${w.name}, archived ${shortTime(w.created)} (${formatAge(w.ageSeconds)} ago)`;
}

function rangeLine(r: ReportedRange): string {
  const span = r.first === r.last ? r.first : `${r.first}..${r.last}`;
  const states = (
    [
      ['valid', r.valid],
      ['pending', r.pending],
      ['corrupt', r.corrupt],
      ['unvalidated', r.unvalidated],
    ] as const
  )
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
  return `${span}  ${r.segments} segment${r.segments === 1 ? '' : 's'} (${states})`;
}

function timelineLines(t: TimelineStatus, listing: boolean): string[] {
  const lines = [
    `timeline ${t.timeline}${t.historyMissing ? ` (its ${String(t.timeline).padStart(8, '0')}.history is missing: recovery cannot follow the fork onto it)` : ''}`,
  ];
  const label = (name: string) => `  ${name.padEnd(12)} `;
  if (t.window.spans.length === 0) {
    lines.push(`${label('restorable')}nothing: no ${listing ? '' : 'valid '}backup with unbroken WAL from its start to its end`);
  }
  for (const [i, span] of t.window.spans.entries()) {
    lines.push(`${label(i === 0 ? 'restorable' : '')}from ${span.from.lsn} at ${pointTime(span.from.time)} (end of backup ${span.from.backup})`);
    const unchecked =
      span.unvalidatedSegments > 0 && !listing ? `; ${span.unvalidatedSegments} segment${span.unvalidatedSegments === 1 ? '' : 's'} not validated yet` : '';
    lines.push(`${label('')}to   ${span.to.lsn} at about ${pointTime(span.to.time)} (end of ${span.to.segment}${unchecked})`);
  }
  if (t.window.earliest) {
    const c = t.window.lastCommit;
    const later = t.window.lastCommitCertain ? '' : '; later WAL is not validated yet';
    lines.push(
      c
        ? `${label('by time')}restorable from ${pointTime(t.window.earliest.time)} to ${pointTime(c.time)}, the last commit archived (${c.lsn} in ${c.segment}${later})`
        : `${label('by time')}restorable from ${pointTime(t.window.earliest.time)}; no commit read in the window's WAL yet${later}`,
    );
  }
  if (t.window.earliest) {
    if (t.restorePoints.length === 0) lines.push(`${label('named')}no restore point in the window`);
    for (const [i, p] of t.restorePoints.entries()) lines.push(`${label(i === 0 ? 'named' : '')}${JSON.stringify(p.name)} at ${pointTime(p.time)} (${p.lsn})`);
  }
  lines.push(`${label('newest wal')}${t.newestWal ? walLine(t.newestWal) : 'none'}`);
  if (t.walRanges.length === 0) lines.push(`${label('wal')}none`);
  for (const [i, r] of t.walRanges.entries()) lines.push(`${label(i === 0 ? 'wal' : '')}${rangeLine(r)}`);
  if (t.gaps.length === 0) lines.push(`${label('gaps')}none`);
  for (const [i, g] of t.gaps.entries()) {
    const what = g.count === 1 ? `${g.missing} missing` : `${g.count} segments missing from ${g.missing}`;
    lines.push(`${label(i === 0 ? 'gaps' : '')}${what}, ${g.after ? `after ${g.after}` : 'at the start of the timeline'}, before ${g.before}`);
  }
  return lines;
}

function backupRows(backups: readonly BackupStatus[]): string {
  // A PARENT column once a backup is incremental.
  const chains = backups.some((b) => b.parent !== undefined);
  const header = ['NAME', 'TIMELINE', 'STOP TIME', 'STOP LSN', 'STORED SIZE', ...(chains ? ['PARENT'] : []), 'STATE'];
  const rows = backups.map((b) => [
    b.name,
    b.timeline === null ? '-' : String(b.timeline),
    b.stopTime === null ? '-' : shortTime(b.stopTime),
    b.stopLsn ?? '-',
    b.storedSize === null ? '-' : formatBytes(b.storedSize),
    ...(chains ? [b.parent ?? '-'] : []),
    b.problem ? `${b.state}: ${b.problem}` : b.state,
  ]);
  return formatTable([header, ...rows])
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** The whole report as text, ending with a newline. */
export function formatStatusReport(report: StatusReport): string {
  const listing = report.source === 'listing';
  const out: string[] = [];
  const head = (name: string, value: string) => out.push(`${name.padEnd(12)} ${value}`);
  head('repository', report.repository);
  if (listing) {
    head('catalogue', `none at ${report.catalogue.location}`);
    head('source', "a listing of the repository: nothing below is validated (deploy the pipeline's functions for validation)");
  } else {
    const updated = report.catalogue.updated;
    const age = updated ? Math.max(0, Math.round((Date.parse(report.generatedAt) - Date.parse(updated)) / 1000)) : undefined;
    head('catalogue', `${report.catalogue.location}${updated ? `, updated ${shortTime(updated)} (${formatAge(age ?? 0)} ago)` : ''}`);
  }
  const { systemIdentifier, walSegmentSize } = report.cluster;
  head('cluster', `${systemIdentifier ?? 'unknown'}${walSegmentSize ? `, ${formatBytes(walSegmentSize)} WAL segments` : ''}`);
  head('newest wal', report.newestWal ? walLine(report.newestWal) : 'none archived yet');
  for (const t of report.timelines) {
    out.push('');
    out.push(...timelineLines(t, listing));
  }
  out.push('');
  if (report.backups.length === 0) {
    out.push('backups      none: run gcwal backup-push to take one');
  } else {
    out.push('backups');
    out.push(backupRows(report.backups));
  }
  out.push('');
  const whose = report.alertsSource === 'pipeline' ? 'open in the pipeline' : 'evaluated from the listing';
  if (report.alerts.length === 0) {
    out.push(`alerts       none ${whose}`);
  } else {
    out.push(`alerts (${whose})`);
    for (const a of report.alerts) {
      out.push(`  ${a.severity.padEnd(8)} ${a.kind}, since ${shortTime(a.opened)}`);
      out.push(`           ${a.summary}`);
    }
  }
  return out.join('\n') + '\n';
}
