/**
 * The catalogue's backups in retention order, each with whether it can
 * restore on its own: valid, of the repository's cluster, with plausible
 * times, and every WAL segment from its start to its stop present and
 * validated.
 */
import { walEntry } from '../catalogue/runs.ts';
import type { Catalogue, CatalogueBackup } from '../catalogue/types.ts';
import { parseLsn } from '../wal/lsn.ts';
import { parseWalSegmentName, walSegmentName } from '../wal/name.ts';
import { walPosition } from './wal-items.ts';

/** A backup with what retention needs to know about it. */
export interface AssessedBackup {
  backup: CatalogueBackup;
  /** index in the ordered list */
  index: number;
  startMs: number;
  stopMs: number;
  /** start or stop after now, or unreadable: kept, never counted, ordered as the newest */
  future: boolean;
  ownCluster: boolean;
  /** its timeline (1 when the catalogue holds nonsense, so it protects the most WAL) */
  timeline: number;
  /** walPosition of its start segment; 0 when unreadable, so it protects the most WAL */
  startPosition: bigint;
  restorable: boolean;
  problem?: string;
}

function lsnOrZero(text: string): bigint {
  try {
    return parseLsn(text);
  } catch {
    return 0n;
  }
}

function compare<T>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Why the backup's WAL from start to stop segment does not let it restore,
 * or undefined when every segment is there and valid. Stops at the first
 * problem, so a nonsensical range costs at most one step per WAL entry.
 */
function walProblem(catalogue: Catalogue, b: CatalogueBackup): string | undefined {
  const segSize = catalogue.walSegmentSize;
  if (segSize === undefined) return 'the catalogue does not know the wal segment size yet';
  let start, stop;
  try {
    start = parseWalSegmentName(b.startWalSegment, segSize);
    stop = parseWalSegmentName(b.stopWalSegment, segSize);
  } catch {
    return `its wal segment names ${b.startWalSegment} and ${b.stopWalSegment} are not valid at ${segSize}-byte segments`;
  }
  if (start.timeline !== stop.timeline || stop.segNo < start.segNo)
    return `its wal segments ${b.startWalSegment} to ${b.stopWalSegment} are not a range on one timeline`;
  for (let segNo = start.segNo; segNo <= stop.segNo; segNo++) {
    const name = walSegmentName(start.timeline, segNo, segSize);
    const entry = walEntry(catalogue, name);
    if (!entry) return `wal segment ${name} between its start and stop is missing`;
    if (entry.state === 'pending') return `wal segment ${name} between its start and stop is not validated yet`;
    if (entry.state === 'corrupt') return `wal segment ${name} between its start and stop is corrupt`;
  }
  return undefined;
}

function backupProblem(catalogue: Catalogue, a: Omit<AssessedBackup, 'restorable' | 'problem' | 'index'>, clusterId: string | undefined): string | undefined {
  const b = a.backup;
  if (b.state === 'corrupt') return `it is corrupt${b.problem ? `: ${b.problem}` : ''}`;
  if (b.state === 'pending') return 'it is not validated yet';
  if (!a.ownCluster) return `it belongs to another cluster (system identifier ${b.systemIdentifier}, the repository's is ${clusterId})`;
  if (a.future) return 'its times are after now or unreadable (clock skew)';
  return walProblem(catalogue, b);
}

/**
 * An incremental backup restores only with its whole chain: one whose
 * parent is not in the catalogue, or not restorable itself, is not
 * restorable either. Parents start earlier, so they come first in `backups`
 * and their own chain is settled by then.
 */
function chainProblems(backups: AssessedBackup[]): void {
  const byName = new Map(backups.map((a) => [a.backup.name, a]));
  for (const a of backups) {
    const parentName = a.backup.parent;
    if (parentName === undefined || !a.restorable) continue;
    const parent = byName.get(parentName);
    const problem =
      parent === undefined
        ? `its parent backup ${parentName} is missing`
        : parent.index > a.index || !parent.restorable
          ? `its parent backup ${parentName} is not restorable${parent.problem ? ` (${parent.problem})` : ''}`
          : undefined;
    if (problem) Object.assign(a, { restorable: false, problem });
  }
}

/**
 * The repository's cluster: the catalogue's system identifier, or when it
 * has none yet, that of the oldest backup (backups of any other cluster are
 * then the ones left alone).
 */
export function repositoryCluster(catalogue: Catalogue, ordered: readonly CatalogueBackup[]): string | undefined {
  return catalogue.systemIdentifier ?? ordered[0]?.systemIdentifier;
}

/**
 * Every backup of the catalogue, oldest first: by start time, then start LSN,
 * then name (as core/backup/list.ts orders them: after a point-in-time
 * recovery a newer timeline can start at a lower LSN), except that backups
 * with times after `now` (or unreadable) come last, as the newest.
 */
export function assessBackups(catalogue: Catalogue, now: Date): { backups: AssessedBackup[]; clusterId: string | undefined } {
  const nowMs = now.getTime();
  const rows = Object.values(catalogue.backups).map((backup) => {
    const startMs = Date.parse(backup.startTime);
    const stopMs = Date.parse(backup.stopTime);
    const future = !(startMs <= nowMs && stopMs <= nowMs);
    return { backup, startMs, stopMs, future, lsn: lsnOrZero(backup.startLsn) };
  });
  rows.sort(
    (a, b) =>
      compare(Number(a.future), Number(b.future)) ||
      compare(Number.isNaN(a.startMs) ? Infinity : a.startMs, Number.isNaN(b.startMs) ? Infinity : b.startMs) ||
      compare(a.lsn, b.lsn) ||
      compare(a.backup.name, b.backup.name),
  );
  const clusterId = repositoryCluster(
    catalogue,
    rows.map((r) => r.backup),
  );
  const backups = rows.map(({ backup, startMs, stopMs, future }, index): AssessedBackup => {
    const timeline = Number.isInteger(backup.timeline) && backup.timeline >= 1 ? backup.timeline : 1;
    const partial = {
      backup,
      startMs,
      stopMs,
      future,
      ownCluster: clusterId === undefined || backup.systemIdentifier === clusterId,
      timeline,
      startPosition: walPosition(backup.startWalSegment) ?? 0n,
    };
    const problem = backupProblem(catalogue, partial, clusterId);
    return { ...partial, index, restorable: problem === undefined, problem };
  });
  chainProblems(backups);
  return { backups, clusterId };
}
