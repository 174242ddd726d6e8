/**
 * The retention policy and the plan `planRetention` (core/retention/plan.ts)
 * derives from the catalogue. A plan accounts for every object the catalogue
 * knows: each one is either kept or deleted, with a stable reason code a
 * program can switch on and a sentence a person can read.
 */

/**
 * What to keep. At least one of `retainFull` and `retainDays` must be set;
 * when both are, the union is kept (the longer of the two). `walRetainDays`
 * additionally keeps every WAL object created within that many days, even
 * when no kept backup needs it; it cannot be shorter than `retainDays`.
 */
export interface RetentionPolicy {
  /** keep the newest N restorable backups (an integer ≥ 1) */
  retainFull?: number;
  /** keep every backup needed to restore any point in the last D days (D > 0, fractions allowed) */
  retainDays?: number;
  /** keep every WAL object created in the last D days (D > 0, at least retainDays) */
  walRetainDays?: number;
}

/** What kind of object a planned entry is. */
export type PlannedObjectKind =
  /** a 24-hex WAL segment */
  | 'segment'
  /** `<segment>.partial`, left on the old timeline at a promotion */
  | 'partial'
  /** `<timeline>.history` */
  | 'history'
  /** `<segment>.<offset>.backup`, the backup history file PostgreSQL archives */
  | 'backup-label'
  /** a name under `wal/` that is none of the above */
  | 'other-wal'
  /** `backups/<name>/backup.json` */
  | 'backup'
  /** `backups/<name>/part_NNNNN.tar` */
  | 'part'
  /** `backups/<name>/manifest.jsonl` */
  | 'manifest'
  /** any other key listed by a backup */
  | 'backup-object';

/** Why an object or backup is kept. */
export type KeepReasonCode =
  /** not validated yet: never deleted */
  | 'pending'
  /** its time is after `now` (clock skew): treated as the newest, never deleted */
  | 'future'
  /** nothing is deleted: no kept backup is valid and restorable */
  | 'no-restorable-backup'
  /** among the newest `retainFull` restorable backups */
  | 'retain-full'
  /** needed to restore a point in the last `retainDays` days */
  | 'retain-days'
  /** kept so the points of a timeline that branched before the oldest kept backup stay restorable */
  | 'timeline-branch'
  /** not restorable (corrupt, pending, incomplete WAL) but newer than the oldest kept restorable backup */
  | 'newer-than-restorable'
  /** the full or incremental backup a kept incremental backup is rebuilt from: a chain is kept whole */
  | 'chain-parent'
  /** a backup of another cluster (system identifier), or newer than one: never touched */
  | 'other-cluster'
  /** a WAL object a kept backup may replay */
  | 'needed-by-backup'
  /** a WAL object at or after the oldest kept restorable backup's start: not proven superseded */
  | 'not-superseded'
  /** a WAL object created within `walRetainDays` */
  | 'wal-window'
  /** the history file of a timeline that is kept, or that recovery may probe */
  | 'timeline-history'
  /** a name gcwal does not recognise (or one impossible at the catalogue's segment size) */
  | 'unrecognised'
  /** a part under a folder without backup.json: a backup still running or one that failed */
  | 'orphan-part';

/** Why an object or backup is deleted. */
export type DeleteReasonCode =
  /** a backup older than the oldest kept restorable backup */
  | 'superseded-backup'
  /** WAL before the oldest kept restorable backup's start that no kept backup can replay */
  | 'superseded-wal'
  /** the history file of a timeline nothing kept is on, below every kept backup's timeline */
  | 'superseded-history';

/** Every reason code; the delete codes are exactly DeleteReasonCode. */
export type RetentionReasonCode = KeepReasonCode | DeleteReasonCode;

/** One object of the repository, kept or to be deleted. */
export interface PlannedObject {
  /** object key relative to the repository root */
  key: string;
  /**
   * The generation the catalogue recorded (delete exactly this one, with
   * ifGenerationMatch). Absent for an object the catalogue does not track by
   * generation (a backup's manifest), which is deleted unconditionally.
   */
  generation?: string;
  /**
   * For a segment folded into a run (core/catalogue/runs.ts), whose own
   * generation the catalogue does not keep: its run's highest generation.
   * The live generation is deleted unless it is newer than this (replaced
   * after planning).
   */
  generationAtMost?: string;
  /**
   * For consecutive segments of one run planned alike (core/retention/wal-decide.ts):
   * the key of the last; `key` is the first's, `count` how many they are and
   * `segmentSize` what names them (plannedKeys lists them). Absent for one object.
   */
  through?: string;
  count?: number;
  segmentSize?: number;
  kind: PlannedObjectKind;
  /** the backup the object belongs to, for backup objects */
  backup?: string;
  /** the timeline in its name, for WAL objects */
  timeline?: number;
  code: RetentionReasonCode;
  /** one line, lowercase, no trailing period */
  reason: string;
}

/** The decision for one backup. */
export interface PlannedBackup {
  name: string;
  action: 'keep' | 'delete';
  code: RetentionReasonCode;
  reason: string;
  /** valid, own cluster, times not in the future, and every WAL segment from its start to its stop present and valid */
  restorable: boolean;
  /** why it is not restorable, when it is not */
  problem?: string;
}

/** What stays restorable once the plan is applied. */
export interface RetentionWindow {
  /** the oldest kept restorable backup: every point from its stop on stays restorable */
  backup?: string;
  /** its stop time (ISO): the earliest restorable point */
  from?: string;
  /** its stop LSN */
  fromLsn?: string;
  /** its timeline */
  timeline?: number;
  /** now − retainDays (ISO), when the policy has retainDays */
  requestedFrom?: string;
  /** now − walRetainDays (ISO), when the policy has walRetainDays: WAL created since is kept */
  walFrom?: string;
}

/** How many objects each reason accounts for. */
export interface RetentionReasonCount {
  action: 'keep' | 'delete';
  code: RetentionReasonCode;
  objects: number;
}

/**
 * A retention plan. `keep` and `delete` together hold every object the
 * catalogue knows, each exactly once. `keep` is sorted by key. `delete` is in
 * a safe execution order: every deleted backup's backup.json first (so a
 * backup half deleted is already invisible to list and restore), then the
 * other backup objects, then WAL, then history files; by key within each.
 */
export interface RetentionPlan {
  keep: PlannedObject[];
  delete: PlannedObject[];
  /** every backup with its decision, oldest first */
  backups: PlannedBackup[];
  /** objects per action and reason code, sorted by action then code */
  reasons: RetentionReasonCount[];
  /** names of kept backups, oldest first */
  keptBackups: string[];
  /** names of deleted backups, oldest first */
  deletedBackups: string[];
  window: RetentionWindow;
  /** one line each, lowercase: things a person should know (nothing deleted, fewer backups than asked, another cluster…) */
  warnings: string[];
}
