/**
 * Folding object events into the catalogue. Storage events arrive late,
 * twice and in any order, and several function instances update the one
 * catalogue object, so `applyCatalogueEvents` is a join: every field is the
 * result of a commutative, idempotent choice over the events seen (the
 * highest generation, the latest validation, the earliest creation time), and
 * tombstones remember deletions so a late finalize cannot resurrect an object.
 */
import { InvalidInputError } from '../errors.ts';
import { backupMetaKey } from '../layout.ts';
import { settleBackup } from './backup-verdicts.ts';
import { classifyCatalogueKey, compareGenerations, compareTimes, isGeneration } from './keys.ts';
import { isSettledName, SettledNeeded } from './settled.ts';
import { entryInRun, findSpan, segmentId, segmentTombstoneOf, withoutSegment, withSegment, withSegmentTombstone } from './runs.ts';
import type {
  BackupSummaryForCatalogue,
  Catalogue,
  CatalogueBackup,
  CatalogueWalRun,
  SegmentTombstones,
  CatalogueEvent,
  CatalogueWalEntry,
  CatalogueWalRecords,
  CataloguePartEntry,
  Tombstone,
  ValidationState,
} from './types.ts';

/** How long a tombstone is kept: an event later than this after its delete may resurrect the object. */
export const TOMBSTONE_TTL_MS = 7 * 24 * 60 * 60 * 1000;

type FinalizedEvent = Extract<CatalogueEvent, { type: 'finalized' }>;
type DeletedEvent = Extract<CatalogueEvent, { type: 'deleted' }>;
type ValidatedEvent = Extract<CatalogueEvent, { type: 'validated' }>;

/** What wal entries, parts and backups share: a generation and a validation outcome. */
interface Outcome {
  generation: string;
  state: ValidationState;
  problem?: string;
  validated?: string;
}

/** What wal entries and parts share on top: the object's size and creation time. */
interface Tracked extends Outcome {
  size: number;
  created: string;
}

/** A record map copied on first write, so the input catalogue is never touched. */
function draft<T>(source: Record<string, T>) {
  let copy: Record<string, T> | undefined;
  return {
    get: (key: string): T | undefined => (Object.hasOwn(copy ?? source, key) ? (copy ?? source)[key] : undefined),
    /** store `value` (undefined removes); returns whether anything changed */
    put(key: string, value: T | undefined): boolean {
      const current = this.get(key);
      if (value === current) return false;
      copy ??= { ...source };
      if (value === undefined) delete copy[key];
      else copy[key] = value;
      return true;
    },
    keys: (): string[] => Object.keys(copy ?? source),
    result: (): Record<string, T> => copy ?? source,
  };
}

function buried(tombstone: Tombstone | undefined, generation: string): boolean {
  return tombstone !== undefined && compareGenerations(tombstone.generation, generation) >= 0;
}

function earlier(a: string, b: string): string {
  return compareTimes(a, b) <= 0 ? a : b;
}

/** Validation outcomes in a total order: later time, then corrupt over valid, then problem text. */
function compareOutcome(a: { time: string; corrupt: boolean; problem: string }, b: { time: string; corrupt: boolean; problem: string }): number {
  return compareTimes(a.time, b.time) || Number(a.corrupt) - Number(b.corrupt) || (a.problem < b.problem ? -1 : a.problem > b.problem ? 1 : 0);
}

/** `record` with the event's outcome if that outcome wins over the one it has. */
function withOutcome<T extends Outcome>(record: T, event: ValidatedEvent): T {
  const incoming = { time: event.time, corrupt: !event.ok, problem: event.ok ? '' : (event.problem ?? 'validation failed') };
  if (record.state !== 'pending' && record.validated !== undefined) {
    const held = { time: record.validated, corrupt: record.state === 'corrupt', problem: record.problem ?? '' };
    if (compareOutcome(held, incoming) >= 0) return record;
  }
  const { problem: _problem, validated: _validated, ...rest } = record;
  const state: ValidationState = event.ok ? 'valid' : 'corrupt';
  return (event.ok ? { ...rest, state, validated: event.time } : { ...rest, state, problem: incoming.problem, validated: event.time }) as T;
}

function finalizeTracked<T extends Tracked>(
  entry: T | undefined,
  tombstone: Tombstone | undefined,
  event: FinalizedEvent,
  make: (generation: string) => T,
): T | undefined {
  if (buried(tombstone, event.generation)) return entry;
  if (entry) {
    const order = compareGenerations(entry.generation, event.generation);
    if (order > 0) return entry;
    if (order === 0) {
      // Same object seen again (or first seen through its validation): size
      // from the finalize, creation time the earliest either event knew.
      const size = Math.max(entry.size, event.size);
      const created = earlier(entry.created, event.created);
      return size === entry.size && created === entry.created ? entry : { ...entry, size, created };
    }
  }
  return { ...make(event.generation), size: event.size, created: event.created, state: 'pending' };
}

function validateTracked<T extends Tracked>(
  entry: T | undefined,
  tombstone: Tombstone | undefined,
  event: ValidatedEvent,
  make: (generation: string) => T,
): T | undefined {
  if (buried(tombstone, event.generation)) return entry;
  let base: T;
  const order = entry ? compareGenerations(entry.generation, event.generation) : -1;
  if (entry && order > 0) return entry;
  if (entry && order === 0) {
    const created = earlier(entry.created, event.time);
    base = created === entry.created ? entry : { ...entry, created };
  } else {
    // Validated before its finalize was seen: the object existed by then;
    // the finalize fills in size and the real creation time.
    base = { ...make(event.generation), size: 0, created: event.time, state: 'pending' };
  }
  return withOutcome(base, event);
}

const BACKUP_SUMMARY_FIELDS = [
  'systemIdentifier',
  'pgVersionNum',
  'timeline',
  'startLsn',
  'stopLsn',
  'startWalSegment',
  'stopWalSegment',
  'startTime',
  'stopTime',
  'rawSize',
  'storedSize',
] as const;

function summaryFields(name: string, summary: BackupSummaryForCatalogue): BackupSummaryForCatalogue {
  const out: Record<string, unknown> = { name };
  for (const field of BACKUP_SUMMARY_FIELDS) out[field] = summary[field];
  if (summary.parent !== undefined) out.parent = summary.parent;
  out.keys = [...summary.keys];
  return out as unknown as BackupSummaryForCatalogue;
}

/**
 * The fields of a backup whose backup.json could not be read as metadata
 * (validation reported it corrupt without a summary): timeline 0, LSNs 0/0,
 * empty names and times. Such a backup is never restorable; see
 * isPlaceholderBackup.
 */
export function placeholderBackupFields(name: string): BackupSummaryForCatalogue {
  return {
    name,
    systemIdentifier: '',
    pgVersionNum: 0,
    timeline: 0,
    startLsn: '0/0',
    stopLsn: '0/0',
    startWalSegment: '',
    stopWalSegment: '',
    startTime: '',
    stopTime: '',
    rawSize: 0,
    storedSize: 0,
    keys: [backupMetaKey(name)],
  };
}

/** Whether `backup` carries placeholder fields (its metadata was never read): skip it when planning. */
export function isPlaceholderBackup(backup: CatalogueBackup): boolean {
  return backup.timeline === 0;
}

function validateBackup(
  backup: CatalogueBackup | undefined,
  tombstone: Tombstone | undefined,
  event: ValidatedEvent,
  name: string,
): CatalogueBackup | undefined {
  if (buried(tombstone, event.generation)) return backup;
  const order = backup ? compareGenerations(backup.generation, event.generation) : -1;
  if (backup && order > 0) return backup;
  let base: CatalogueBackup;
  if (backup && order === 0) {
    // Metadata of one generation never changes, so a summary fills in a
    // placeholder whichever event brought it.
    base = isPlaceholderBackup(backup) && event.backup ? { ...backup, ...summaryFields(name, event.backup) } : backup;
  } else {
    const fields = event.backup ? summaryFields(name, event.backup) : placeholderBackupFields(name);
    base = { ...fields, generation: event.generation, state: 'pending' };
  }
  if (event.ok && event.partSeals) {
    // Only backup.json and the manifest checked out: the parts' verdicts
    // decide (settleBackup). A backup settled already, or awaiting the same
    // seals, stays as it is.
    if (base.state !== 'pending' || base.awaiting) return base;
    return { ...base, awaiting: { checked: event.time, seals: [...event.partSeals] } };
  }
  const next = withOutcome(base, event);
  if (next.state === 'pending' || !next.awaiting) return next;
  const { awaiting: _awaiting, ...settled } = next;
  return settled;
}

/** A part's entry with the seal of a successful validation of its generation. */
function withSeal(entry: CataloguePartEntry | undefined, event: ValidatedEvent): CataloguePartEntry | undefined {
  if (!entry || entry.generation !== event.generation) return entry;
  if (entry.state === 'valid' && event.ok && event.seal !== undefined) return entry.seal === event.seal ? entry : { ...entry, seal: event.seal };
  if (entry.state !== 'corrupt' || entry.seal === undefined) return entry;
  const { seal: _seal, ...rest } = entry;
  return rest;
}

function mergeTombstone(tombstone: Tombstone | undefined, event: DeletedEvent): Tombstone {
  if (tombstone) {
    const order = compareGenerations(tombstone.generation, event.generation) || compareTimes(tombstone.deleted, event.time);
    if (order >= 0) return tombstone;
  }
  return { generation: event.generation, deleted: event.time };
}

/**
 * Fold `events` into `catalogue` and return the result; the input is never
 * modified (the result shares unchanged parts with it, and is `catalogue`
 * itself when nothing changed). The result does not depend on the order of
 * `events` nor on how they are split across calls, and applying an event
 * again changes nothing — provided each event arrives within
 * TOMBSTONE_TTL_MS of the delete it races with, since tombstones older than
 * that (relative to `now`) are trimmed. `updated` becomes `now` whenever
 * anything changed.
 *
 * - `finalized` of a `wal/` file or a backup part adds it `pending`, unless a
 *   tombstone of that generation or a newer one exists; a newer generation
 *   replaces the entry, an older one is ignored. Any `wal/` finalize moves
 *   `lastWalArrival` up to its creation time. Other keys are ignored.
 * - `deleted` removes the entry, part or (for `backup.json`) backup if its
 *   generation is not newer, and leaves a tombstone.
 * - `validated` sets the state of that generation (creating the entry if its
 *   finalize has not been seen); of several outcomes for one generation the
 *   latest wins, corrupt over valid at the same time. For `backup.json` it
 *   creates or updates the backup from `event.backup` (placeholder fields
 *   when absent, see placeholderBackupFields). A successful validation's
 *   `systemIdentifier`/`walSegmentSize`/`history` fill in what is unset, and
 *   a valid segment's `records` (its transaction end times and restore points).
 *
 * Generations compare as numbers. Events with an uncatalogued key or a
 * generation that is not a decimal string are ignored. On a catalogue in the
 * form an update works on (`settled` set, see settled.ts), an event about an
 * object of a settled backup throws SettledNeeded.
 */
export function applyCatalogueEvents(catalogue: Catalogue, events: readonly CatalogueEvent[], now: Date): Catalogue {
  const wal = draft(catalogue.wal);
  const parts = draft(catalogue.parts);
  const backups = draft(catalogue.backups);
  const tombstones = draft(catalogue.tombstones);
  let runs: readonly CatalogueWalRun[] = catalogue.walRuns;
  let segmentTombstones: readonly SegmentTombstones[] = catalogue.segmentTombstones;
  let { systemIdentifier, walSegmentSize, lastWalArrival } = catalogue;
  let changed = false;
  // Runs are kept at the segment size they were folded with (the catalogue's as it came in).
  const segSize = catalogue.walSegmentSize;

  for (const event of events) {
    const target = classifyCatalogueKey(event.key);
    if (!target || !isGeneration(event.generation)) continue;
    // A settled backup's objects live in the settled member (settled.ts): the store runs this again on the whole catalogue.
    if (
      (target.kind === 'part' || target.kind === 'backup-meta') &&
      !(target.kind === 'part' ? parts.get(event.key) : backups.get(target.backup)) &&
      isSettledName(catalogue, target.backup)
    )
      throw new SettledNeeded(event.key);
    const segment = target.kind === 'wal' && segSize !== undefined ? segmentId(target.name, segSize) : undefined;
    const range = segment ? segmentTombstoneOf(segmentTombstones, target.kind === 'wal' ? target.name : '', segSize!) : undefined;
    const tombstone = tombstones.get(event.key) ?? (range ? { generation: range.generation, deleted: range.deleted } : undefined);
    // An event about a folded segment: nothing to do when it brings what the
    // run already holds (the same or an older object, arrived or found
    // valid); otherwise the segment leaves its run as an entry, which the
    // event then changes like any other (and which folds back if still valid).
    let settled = false;
    if (segment && target.kind === 'wal' && !wal.get(target.name)) {
      const index = findSpan(runs, segment.timeline, segment.segNo, segSize!);
      if (index >= 0) {
        const run = runs[index];
        const held = compareGenerations(event.generation, run.generation) <= 0;
        if (held && (event.type === 'finalized' || (event.type === 'validated' && event.ok))) settled = true;
        else {
          wal.put(target.name, entryInRun(run, segment.segNo, segSize!, held ? event.generation : run.generation));
          runs = withoutSegment(runs, index, segment.segNo, segSize!);
          changed = true;
        }
      }
    }
    const makeWal = (generation: string): CatalogueWalEntry => ({
      name: target.kind === 'wal' ? target.name : '',
      generation,
      size: 0,
      created: '',
      state: 'pending',
    });
    const makePart = (generation: string): CataloguePartEntry => ({ key: event.key, generation, size: 0, created: '', state: 'pending' });

    if (event.type === 'finalized') {
      if (target.kind === 'wal') {
        if (!settled) changed = wal.put(target.name, finalizeTracked(wal.get(target.name), tombstone, event, makeWal)) || changed;
        if (lastWalArrival === undefined || compareTimes(event.created, lastWalArrival) > 0) {
          lastWalArrival = event.created;
          changed = true;
        }
      } else if (target.kind === 'part') {
        changed = parts.put(event.key, finalizeTracked(parts.get(event.key), tombstone, event, makePart)) || changed;
      }
    } else if (event.type === 'deleted') {
      if (segment) {
        const next = withSegmentTombstone(segmentTombstones, segment.timeline, segment.segNo, event.generation, event.time, segSize!);
        changed = next !== segmentTombstones || changed;
        segmentTombstones = next;
      } else changed = tombstones.put(event.key, mergeTombstone(tombstone, event)) || changed;
      const covers = (record: { generation: string } | undefined) => record !== undefined && compareGenerations(record.generation, event.generation) <= 0;
      if (target.kind === 'wal' && covers(wal.get(target.name))) changed = wal.put(target.name, undefined) || changed;
      if (target.kind === 'part' && covers(parts.get(event.key))) changed = parts.put(event.key, undefined) || changed;
      if (target.kind === 'backup-meta' && covers(backups.get(target.backup))) changed = backups.put(target.backup, undefined) || changed;
    } else {
      if (target.kind === 'wal' && !settled) {
        let entry = validateTracked(wal.get(target.name), tombstone, event, makeWal);
        if (entry && !entry.history && event.ok && event.history && target.name.endsWith('.history') && entry.generation === event.generation) {
          entry = { ...entry, history: event.history.map((line) => ({ parentTimeline: line.parentTimeline, switchLsn: line.switchLsn })) };
        }
        if (entry && !entry.records && event.ok && event.records && entry.state === 'valid' && entry.generation === event.generation) {
          entry = { ...entry, records: walRecords(event.records) };
        }
        changed = wal.put(target.name, entry) || changed;
      } else if (target.kind === 'part') {
        changed = parts.put(event.key, withSeal(validateTracked(parts.get(event.key), tombstone, event, makePart), event)) || changed;
      } else if (target.kind === 'backup-meta') {
        changed = backups.put(target.backup, validateBackup(backups.get(target.backup), tombstone, event, target.backup)) || changed;
      }
      // Facts of the one cluster the repository holds. Validation checks them
      // against gcwal.json, so events agree; the smaller value wins only so a
      // disagreement could not make the result depend on the order.
      if (event.ok && isGeneration(event.systemIdentifier) && (systemIdentifier === undefined || BigInt(event.systemIdentifier) < BigInt(systemIdentifier))) {
        systemIdentifier = event.systemIdentifier;
        changed = true;
      }
      if (
        event.ok &&
        Number.isInteger(event.walSegmentSize) &&
        event.walSegmentSize! > 0 &&
        (walSegmentSize === undefined || event.walSegmentSize! < walSegmentSize)
      ) {
        walSegmentSize = event.walSegmentSize;
        changed = true;
      }
    }
  }

  const cutoff = now.getTime() - TOMBSTONE_TTL_MS;
  for (const key of tombstones.keys()) {
    if (Date.parse(tombstones.get(key)!.deleted) < cutoff) changed = tombstones.put(key, undefined) || changed;
  }
  const kept = segmentTombstones.filter((range) => !(Date.parse(range.deleted) < cutoff));
  if (kept.length !== segmentTombstones.length) {
    segmentTombstones = kept;
    changed = true;
  }
  // Valid segments join their runs (only what this call touched can be
  // unfolded and valid; a catalogue read in the old format is folded by the store).
  if (walSegmentSize !== undefined) {
    const folded = foldValidSegments(
      wal.keys().map((name) => wal.get(name)!),
      runs,
      walSegmentSize,
    );
    if (folded.names.length > 0) {
      for (const name of folded.names) wal.put(name, undefined);
      runs = folded.runs;
      changed = true;
    }
  }

  // A backup awaiting its parts' verdicts settles once the last is known, whichever event brought it.
  for (const name of backups.keys()) {
    const backup = backups.get(name)!;
    if (backup.awaiting) changed = backups.put(name, settleBackup(backup, parts.get)) || changed;
  }

  if (!changed) return catalogue;
  const result: Catalogue = {
    ...catalogue,
    updated: now.toISOString(),
    wal: wal.result(),
    walRuns: runs as CatalogueWalRun[],
    parts: parts.result(),
    backups: backups.result(),
    tombstones: tombstones.result(),
    segmentTombstones: segmentTombstones as SegmentTombstones[],
  };
  if (systemIdentifier !== undefined) result.systemIdentifier = systemIdentifier;
  if (walSegmentSize !== undefined) result.walSegmentSize = walSegmentSize;
  if (lastWalArrival !== undefined) result.lastWalArrival = lastWalArrival;
  return result;
}

/** The record facts a catalogue keeps, copied field by field (an event may carry more). */
function walRecords(r: CatalogueWalRecords): CatalogueWalRecords {
  return {
    ...(r.firstXactTime !== undefined ? { firstXactTime: r.firstXactTime } : {}),
    ...(r.lastXactTime !== undefined ? { lastXactTime: r.lastXactTime } : {}),
    ...(r.lastXactLsn !== undefined ? { lastXactLsn: r.lastXactLsn } : {}),
    restorePoints: (r.restorePoints ?? []).map((p) => ({ name: p.name, time: p.time, lsn: p.lsn })),
  };
}

/**
 * Fold the valid segments among `entries` into `runs` at `segSize`; returns
 * the new runs and the names folded (to drop from the entries). A segment
 * whose creation time does not parse is left unfolded.
 */
export function foldValidSegments(
  entries: Iterable<CatalogueWalEntry>,
  runs: readonly CatalogueWalRun[],
  segSize: number,
): { runs: readonly CatalogueWalRun[]; names: string[] } {
  const names: string[] = [];
  const valid = [...entries].filter((e) => e.state === 'valid' && segmentId(e.name, segSize) !== undefined && !Number.isNaN(Date.parse(e.created)));
  // In segment order, so a catalogue's worth of segments folds in one pass.
  valid.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let out = runs;
  for (const entry of valid) {
    out = withSegment(out, entry, segSize);
    names.push(entry.name);
  }
  return { runs: out, names };
}

/** The fields of a Cloud Storage object resource (`storage#object`, the data of a storage CloudEvent) read here. */
export interface StorageObjectResource {
  name?: unknown;
  generation?: unknown;
  /** decimal string in the JSON API */
  size?: unknown;
  timeCreated?: unknown;
  timeDeleted?: unknown;
  updated?: unknown;
}

const EVENT_KINDS: Record<string, 'finalized' | 'deleted'> = {
  finalized: 'finalized',
  deleted: 'deleted',
  'google.cloud.storage.object.v1.finalized': 'finalized',
  'google.cloud.storage.object.v1.deleted': 'deleted',
};

/**
 * The catalogue event for a storage notification: `type` is `finalized` or
 * `deleted`, or the CloudEvent type (`google.cloud.storage.object.v1.…`);
 * `resource` the object resource; `repositoryPrefix` the repository's path in
 * the bucket (`''` at the root; slashes either side are optional). The key is
 * made relative to the repository. Returns undefined for other event types,
 * objects outside the prefix and objects the catalogue does not track
 * (including the catalogue itself, whose own writes trigger events).
 * A deletion's time is the resource's `timeDeleted`, else `eventTime`, else
 * its `updated`. Throws InvalidInputError when the resource lacks a name, a
 * decimal generation, a size or a time.
 */
export function catalogueEventFromObjectResource(
  type: string,
  resource: StorageObjectResource,
  repositoryPrefix: string,
  eventTime?: string,
): CatalogueEvent | undefined {
  const kind = EVENT_KINDS[type];
  if (!kind) return undefined;
  const bad = (what: string) =>
    new InvalidInputError(`storage object event ${what}`, 'the trigger must deliver google.cloud.storage.object.v1 events with the object resource as data');
  if (typeof resource?.name !== 'string') throw bad('has no object name');
  const trimmed = repositoryPrefix.replace(/^\/+|\/+$/g, '');
  const prefix = trimmed === '' ? '' : `${trimmed}/`;
  if (!resource.name.startsWith(prefix)) return undefined;
  const key = resource.name.slice(prefix.length);
  if (!classifyCatalogueKey(key)) return undefined;
  const generation = typeof resource.generation === 'number' ? String(resource.generation) : resource.generation;
  if (!isGeneration(generation)) throw bad(`for ${resource.name} has no decimal generation`);
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  if (kind === 'deleted') {
    const time = text(resource.timeDeleted) ?? text(eventTime) ?? text(resource.updated);
    if (!time) throw bad(`for ${resource.name} has no time`);
    return { type: 'deleted', key, generation, time };
  }
  const size = (typeof resource.size === 'string' && resource.size !== '') || typeof resource.size === 'number' ? Number(resource.size) : Number.NaN;
  if (!Number.isSafeInteger(size) || size < 0) throw bad(`for ${resource.name} has no valid size`);
  const created = text(resource.timeCreated) ?? text(eventTime);
  if (!created) throw bad(`for ${resource.name} has no creation time`);
  return { type: 'finalized', key, generation, size, created };
}
