/**
 * The catalogue: what the archive holds and what it can restore, kept in the
 * repository by the pipeline's functions (see functions/) and read by
 * `gcwal status` and `gcwal delete`. It is a pure data structure; every change
 * goes through `applyCatalogueEvents` (core/catalogue/apply.ts), which is
 * idempotent and order-independent, so duplicate and late object events are
 * harmless.
 */

import type { AlertMessage } from '../alerts/types.ts';

/** Where an object stands in validation. */
export type ValidationState = 'pending' | 'valid' | 'corrupt';

/** One object under `wal/`: a segment, a `.history`, a `.backup` or a `.partial` file. */
export interface CatalogueWalEntry {
  /** the pg_wal file name, e.g. `000000010000000000000003` */
  name: string;
  /** GCS generation (decimal string) of the object this entry describes */
  generation: string;
  /** stored bytes */
  size: number;
  /** when the object was created (object timeCreated), ISO */
  created: string;
  state: ValidationState;
  /** one line, for `corrupt` */
  problem?: string;
  /** when validation finished, ISO */
  validated?: string;
  /**
   * For a `.history` file whose content was read (by validation or a
   * listing): its lines, oldest ancestor first. Lets the catalogue follow
   * timeline forks without reading the file again.
   */
  history?: CatalogueHistoryLine[];
  /**
   * For a segment or `.partial` validated with its record walk: when its
   * transactions ended and the restore points it holds (the part of
   * SegmentRecordFacts, core/wal/records/facts.ts, that restores need).
   * Absent for one validated before gcwal walked records.
   */
  records?: CatalogueWalRecords;
}

/** What the records of one segment say about where recovery can stop. */
export interface CatalogueWalRecords {
  /** earliest and latest xact_time of its transaction ends (ISO, microseconds); absent when it has none */
  firstXactTime?: string;
  lastXactTime?: string;
  /** LSN of the record carrying lastXactTime */
  lastXactLsn?: string;
  /** named restore points (pg_create_restore_point), in WAL order */
  restorePoints: { name: string; time: string; lsn: string }[];
}

/** One line of a timeline history file: WAL of `parentTimeline` before `switchLsn` belongs to the child. */
export interface CatalogueHistoryLine {
  parentTimeline: number;
  /** `%X/%X`, as PostgreSQL prints it */
  switchLsn: string;
}

/** One data part of a backup, as seen by the pipeline. */
export interface CataloguePartEntry {
  key: string;
  generation: string;
  size: number;
  created: string;
  state: ValidationState;
  problem?: string;
  validated?: string;
  /**
   * The part's verdict for its backup, once it validated (core/validate/seal.ts):
   * what it holds, in 22 characters. Absent for a part validated before
   * gcwal recorded verdicts.
   */
  seal?: string;
}

/** A backup whose `backup.json` has landed. */
export interface CatalogueBackup {
  name: string;
  /** generation of its backup.json */
  generation: string;
  /** the whole backup: parts, manifest and metadata checked together */
  state: ValidationState;
  problem?: string;
  validated?: string;
  systemIdentifier: string;
  pgVersionNum: number;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  startWalSegment: string;
  stopWalSegment: string;
  startTime: string;
  stopTime: string;
  rawSize: number;
  storedSize: number;
  /** an incremental backup's parent (core/backup/meta.ts): retention keeps it while this backup is kept */
  parent?: string;
  /** object keys of its parts, manifest and metadata (what deleting the backup removes) */
  keys: string[];
  /**
   * While pending: backup.json and the manifest checked out at `checked`
   * and each part must carry the seal `seals[i]`; the backup settles when
   * every part's verdict is known (core/catalogue/backup-verdicts.ts).
   */
  awaiting?: { checked: string; seals: string[] };
}

/** Alert severities, as Cloud Logging names them. */
export type AlertSeverity = 'CRITICAL' | 'ERROR' | 'WARNING' | 'INFO';

/** What went wrong; stable strings consumers may switch on. */
export type AlertKind =
  | 'corrupt-object'
  | 'wal-gap'
  | 'timeline-without-history'
  | 'archiving-stalled'
  | 'backup-too-old'
  | 'no-valid-backup'
  | 'objects-unvalidated'
  | 'malformed-event';

/** An incident the pipeline has announced and not yet seen clear. */
export interface OpenAlert {
  /** stable incident id: the same problem always gets the same id (dedup key) */
  id: string;
  kind: AlertKind;
  severity: AlertSeverity;
  summary: string;
  details: Record<string, unknown>;
  /** ISO time it was first raised */
  opened: string;
}

/** An object deletion already seen, so a late finalize of the same generation stays deleted. */
export interface Tombstone {
  generation: string;
  /** ISO time of the delete */
  deleted: string;
}

/**
 * Consecutive valid segments of one timeline, folded into one record: what
 * the catalogue keeps of settled WAL (see docs/catalogue.md). Per-segment
 * generation, size and creation time are not kept: the run knows its ends'
 * creation times, its total size and its highest generation. A run spans at
 * most RUN_SPAN_MS of creation times (core/catalogue/runs.ts), so a folded
 * segment's creation time is known to within that.
 */
export interface CatalogueWalRun {
  timeline: number;
  /** first and last segment names, inclusive */
  first: string;
  last: string;
  /** stored bytes of all its segments */
  size: number;
  /** creation times of the first and the last segment, ISO */
  firstCreated: string;
  lastCreated: string;
  /** highest generation among its segments: a finalize of this one or older is an object it already holds */
  generation: string;
  /** latest validation time among its segments, ISO */
  validated: string;
  /**
   * Its segments' record facts together (the earliest first and the latest
   * last transaction end, every restore point), when every one of them had
   * its records read; absent otherwise.
   */
  records?: CatalogueWalRecords;
}

/** Deletions of consecutive segments of one timeline, folded (see CatalogueWalRun). */
export interface SegmentTombstones {
  timeline: number;
  first: string;
  last: string;
  /** the highest generation deleted among them */
  generation: string;
  /** the latest deletion among them, ISO */
  deleted: string;
}

/** The whole catalogue object (`catalogue/catalogue.json`). */
export interface Catalogue {
  /** 2 since runs (issue 15); a format-1 catalogue is converted when read (store.ts) */
  format: 2;
  /** the repository's cluster, once known (from gcwal.json or the first validated segment) */
  systemIdentifier?: string;
  walSegmentSize?: number;
  /** ISO time of the last change */
  updated: string;
  /**
   * WAL files not folded into `walRuns`, by pg_wal file name: segments
   * pending or corrupt (or valid before the segment size is known), and
   * every `.history`, `.backup` and `.partial` file. Use walEntry /
   * walEntries (runs.ts) to see every WAL file.
   */
  wal: Record<string, CatalogueWalEntry>;
  /** valid segments, folded; sorted by timeline, then first segment */
  walRuns: CatalogueWalRun[];
  /** by object key (`backups/<name>/part_NNNNN.tar`) */
  parts: Record<string, CataloguePartEntry>;
  /** by backup name */
  backups: Record<string, CatalogueBackup>;
  /** by object key, except WAL segments (segmentTombstones); trimmed after a week */
  tombstones: Record<string, Tombstone>;
  /** deleted WAL segments, folded; sorted by timeline, then first segment; trimmed after a week */
  segmentTombstones: SegmentTombstones[];
  /** by alert id */
  alerts: Record<string, OpenAlert>;
  /** ISO creation time of the newest WAL object seen (archiving-stalled watchdog) */
  lastWalArrival?: string;
  /**
   * Alert messages committed but not yet confirmed published. A function
   * commits an alert change and its messages in one write, publishes, then
   * removes them; if it dies in between, the next function run publishes
   * them, so an alert is never lost (a consumer may see one twice, with the
   * same id).
   */
  outbox?: AlertMessage[];
  /**
   * Only in the form an update works on (core/catalogue/store.ts, settled.ts):
   * the settled backups left out of `backups` and `parts`, summarised.
   * Absent in a catalogue read with readCatalogue, which holds every backup.
   */
  settled?: SettledSummary;
}

/** What a change working on the main member knows of the settled backups (core/catalogue/settled.ts). */
export interface SettledSummary {
  /** their names, sorted */
  backups: string[];
  /** how many part entries they hold */
  parts: number;
  /** the one that finished last */
  newest?: { name: string; stopTime: string };
  /** by timeline (decimal), the earliest stopTime among them */
  timelines: Record<string, string>;
}

/** The events a catalogue absorbs. Keys are relative to the repository root. */
export type CatalogueEvent =
  | { type: 'finalized'; key: string; generation: string; size: number; created: string }
  | { type: 'deleted'; key: string; generation: string; time: string }
  | {
      type: 'validated';
      key: string;
      generation: string;
      ok: boolean;
      problem?: string;
      time: string;
      backup?: BackupSummaryForCatalogue;
      systemIdentifier?: string;
      walSegmentSize?: number;
      history?: CatalogueHistoryLine[];
      records?: CatalogueWalRecords;
      /** a part's verdict for its backup (seal.ts) */
      seal?: string;
      /** backup.json: with `ok`, only it and the manifest checked out; the backup is valid once part i carries partSeals[i] */
      partSeals?: string[];
    };

/** What validation of a backup.json tells the catalogue about the backup. */
export type BackupSummaryForCatalogue = Omit<CatalogueBackup, 'generation' | 'state' | 'problem' | 'validated' | 'awaiting'>;

/** An empty catalogue. */
export function emptyCatalogue(now: Date): Catalogue {
  return { format: 2, updated: now.toISOString(), wal: {}, walRuns: [], parts: {}, backups: {}, tombstones: {}, segmentTombstones: [], alerts: {} };
}
