/**
 * Retention planning without the pipeline. A catalogue built from a listing
 * validates nothing, and planRetention trusts only validated backups, so the
 * agent validates, itself, what a plan would rest on: every backup the plan
 * keeps as restorable, with the WAL from its start to its stop. Objects the
 * plan deletes are older than the oldest of those and are not read (their
 * content no longer matters once they are superseded).
 *
 * It works to a fixed point: plan as if every unread object were valid,
 * validate the kept restorable backups not yet read, plan again with what
 * was found, until every backup the plan keeps as restorable has really been
 * read. A kept backup found damaged stops counting, and the next plan keeps
 * an older one instead, which is read in its turn.
 */
import { isPlaceholderBackup } from '../../core/catalogue/apply.ts';
import type { Catalogue, ValidationState } from '../../core/catalogue/types.ts';
import { NotFoundError } from '../../core/errors.ts';
import { backupMetaKey, backupPrefix, walObjectKey } from '../../core/layout.ts';
import { planRetention, type RetentionPlan, type RetentionPolicy } from '../../core/retention/plan.ts';
import type { ObjectInfo, Storage } from '../../core/storage/types.ts';
import { validateBackup, validateWalObject, type ValidationResult, type WalExpectations } from '../../core/validate/index.ts';
import { parseWalSegmentName, walSegmentName } from '../../core/wal/name.ts';
import type { Logger } from '../log.ts';

/** What the agent read and found while planning over a listing. */
export interface AgentValidation {
  /** each backup read, in the order read */
  backups: { name: string; ok: boolean; problem?: string }[];
  /** WAL segments read (those from each read backup's start to its stop) */
  walSegments: number;
  /** those that failed, with why */
  corruptWal: { name: string; problem: string }[];
  /** stored bytes read */
  bytesRead: number;
}

/** The outcome of reading one object, by key. */
interface Outcome {
  state: Exclude<ValidationState, 'pending'>;
  problem?: string;
  /** the generation read (the plan deletes exactly what was seen) */
  generation: string;
}

/** What planOverListing needs besides the plan's inputs. */
export interface ListingPlanOptions {
  signal?: AbortSignal;
  log: Logger;
}

/**
 * `listing` with each object read given its outcome, and every other
 * pending object taken as valid. Only the plan is made on this catalogue:
 * it is never shown or stored as a validation result.
 */
function assumeUnread(listing: Catalogue, outcomes: ReadonlyMap<string, Outcome>): Catalogue {
  const judge = <T extends { state: ValidationState; generation: string; problem?: string }>(key: string, entry: T): T => {
    const seen = outcomes.get(key);
    if (seen) return { ...entry, state: seen.state, generation: seen.generation, ...(seen.problem ? { problem: seen.problem } : {}) };
    return entry.state === 'pending' ? { ...entry, state: 'valid' } : entry;
  };
  return {
    ...listing,
    wal: Object.fromEntries(Object.entries(listing.wal).map(([name, e]) => [name, judge(walObjectKey(name), e)])),
    parts: Object.fromEntries(Object.entries(listing.parts).map(([key, p]) => [key, judge(key, p)])),
    backups: Object.fromEntries(Object.entries(listing.backups).map(([name, b]) => [name, judge(backupMetaKey(name), b)])),
  };
}

async function statOrUndefined(storage: Storage, key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
  try {
    return await storage.stat(key, { signal });
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

function outcomeOf(result: ValidationResult, info: ObjectInfo): Outcome {
  return result.ok
    ? { state: 'valid', generation: info.generation }
    : { state: 'corrupt', problem: result.problem ?? 'failed validation', generation: info.generation };
}

/** The segment names from a backup's start to its stop, or [] when they make no range. */
function backupSegments(start: string, stop: string, segSize: number | undefined): string[] {
  if (segSize === undefined) return [];
  try {
    const a = parseWalSegmentName(start, segSize);
    const b = parseWalSegmentName(stop, segSize);
    if (a.timeline !== b.timeline || b.segNo < a.segNo || b.segNo - a.segNo > 100_000n) return [];
    const names: string[] = [];
    for (let segNo = a.segNo; segNo <= b.segNo; segNo++) names.push(walSegmentName(a.timeline, segNo, segSize));
    return names;
  } catch {
    return [];
  }
}

/**
 * Plan `policy` over `listing` (a catalogue from buildCatalogueFromListing of
 * `storage`), reading every backup the plan keeps as restorable and the WAL
 * it needs from start to stop, as described above. Returns the final plan,
 * the catalogue it was made on, and what was read. Damaged content is a
 * finding (the backup stops counting), never an exception; storage and auth
 * errors and aborts throw.
 */
export async function planOverListing(
  storage: Storage,
  listing: Catalogue,
  policy: RetentionPolicy,
  now: Date,
  options: ListingPlanOptions,
): Promise<{ plan: RetentionPlan; catalogue: Catalogue; validation: AgentValidation }> {
  const { signal, log } = options;
  const expect: WalExpectations = { systemIdentifier: listing.systemIdentifier, walSegmentSize: listing.walSegmentSize };
  const outcomes = new Map<string, Outcome>();
  const validation: AgentValidation = { backups: [], walSegments: 0, corruptWal: [], bytesRead: 0 };

  const readWal = async (name: string) => {
    const key = walObjectKey(name);
    if (outcomes.has(key) || !listing.wal[name]) return;
    const info = await statOrUndefined(storage, key, signal);
    if (!info) {
      outcomes.set(key, { state: 'corrupt', problem: 'deleted while planning', generation: listing.wal[name].generation });
      return;
    }
    const result = await validateWalObject(storage, info, expect, { signal });
    outcomes.set(key, outcomeOf(result, info));
    validation.walSegments++;
    validation.bytesRead += info.size;
    if (!result.ok) validation.corruptWal.push({ name, problem: result.problem ?? 'failed validation' });
  };

  const readBackup = async (name: string) => {
    const key = backupMetaKey(name);
    const backup = listing.backups[name];
    const info = await statOrUndefined(storage, key, signal);
    if (!info) {
      outcomes.set(key, { state: 'corrupt', problem: 'deleted while planning', generation: backup.generation });
      validation.backups.push({ name, ok: false, problem: 'deleted while planning' });
      return;
    }
    log.info(`reading backup ${name} to check it before keeping it`, { storedSize: backup.storedSize });
    const result = await validateBackup(storage, info, expect, { signal });
    outcomes.set(key, outcomeOf(result, info));
    validation.backups.push({ name, ok: result.ok, ...(result.problem ? { problem: result.problem } : {}) });
    validation.bytesRead += backup.storedSize;
    if (!result.ok) {
      log.warn(`backup ${name} failed validation: ${result.problem}`);
      return;
    }
    // validateBackup checked every part against the metadata.
    for (const [partKey, part] of Object.entries(listing.parts)) {
      if (partKey.startsWith(backupPrefix(name))) outcomes.set(partKey, { state: 'valid', generation: part.generation });
    }
    for (const segment of backupSegments(backup.startWalSegment, backup.stopWalSegment, listing.walSegmentSize)) await readWal(segment);
  };

  for (;;) {
    const catalogue = assumeUnread(listing, outcomes);
    const plan = planRetention(catalogue, policy, now);
    const unread = plan.backups.filter(
      (b) =>
        b.action === 'keep' &&
        b.restorable &&
        !outcomes.has(backupMetaKey(b.name)) &&
        listing.backups[b.name] !== undefined &&
        !isPlaceholderBackup(listing.backups[b.name]),
    );
    if (unread.length === 0) return { plan, catalogue, validation };
    for (const b of unread) await readBackup(b.name);
  }
}
