/**
 * A catalogue built by listing the repository, for agents whose repository
 * has no pipeline functions keeping one. Nothing in it is validated: every
 * object is `pending`, except what could not even be read as what it claims
 * to be (a history file or backup.json that does not parse), which is
 * `corrupt` with the reason.
 */
import { parseBackupMeta } from '../backup/meta.ts';
import { CorruptObjectError, InvalidInputError, NotFoundError } from '../errors.ts';
import { BACKUP_PREFIX, backupMetaKey, WAL_PREFIX } from '../layout.ts';
import { readRepositoryIdentity } from '../repository.ts';
import { readSmallObject } from '../storage/objects.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import { BACKUP_META_LIMIT, backupSummary } from '../validate/backup-meta.ts';
import { parseHistoryFile } from '../wal/history.ts';
import { formatLsn } from '../wal/lsn.ts';
import { classifyWalFileName } from '../wal/name.ts';
import { placeholderBackupFields } from './apply.ts';
import { classifyCatalogueKey, compareTimes } from './keys.ts';
import { emptyCatalogue, type Catalogue, type CatalogueBackup, type CatalogueWalEntry } from './types.ts';

/** Largest history file read: one line of about 60 bytes per timeline. */
const HISTORY_LIMIT = 1024 * 1024;

/** Small objects read at once (latency-bound on gs://). */
const READ_CONCURRENCY = 8;

export interface BuildCatalogueOptions {
  signal?: AbortSignal;
  /** the catalogue's `updated` */
  now: Date;
}

/** Run `work` over `items` with at most READ_CONCURRENCY in flight. */
async function eachLimited<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, items.length) }, lane));
}

async function readText(storage: Storage, key: string, limit: number, signal?: AbortSignal): Promise<string | undefined> {
  try {
    return (await readSmallObject(storage, key, { signal, limit })).toString('utf8');
  } catch (err) {
    // Deleted between the listing and the read (a prune running): just gone.
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function historyEntry(storage: Storage, entry: CatalogueWalEntry, timeline: number, signal?: AbortSignal): Promise<CatalogueWalEntry | undefined> {
  const text = await readText(storage, WAL_PREFIX + entry.name, HISTORY_LIMIT, signal);
  if (text === undefined) return undefined;
  try {
    const lines = parseHistoryFile(text, timeline);
    return { ...entry, history: lines.map((l) => ({ parentTimeline: l.parentTimeline, switchLsn: formatLsn(l.switchLsn) })) };
  } catch (err) {
    if (err instanceof InvalidInputError || err instanceof CorruptObjectError) return { ...entry, state: 'corrupt', problem: err.message };
    throw err;
  }
}

async function backupEntry(storage: Storage, name: string, info: ObjectInfo, signal?: AbortSignal): Promise<CatalogueBackup | undefined> {
  const key = backupMetaKey(name);
  try {
    const text = await readText(storage, key, BACKUP_META_LIMIT, signal);
    if (text === undefined) return undefined;
    const meta = parseBackupMeta(text, key);
    if (meta.name !== name) throw new CorruptObjectError(`backup metadata ${key} names backup ${meta.name}`);
    return { ...backupSummary(meta, key), name, generation: info.generation, state: 'pending' };
  } catch (err) {
    if (!(err instanceof CorruptObjectError)) throw err;
    return { ...placeholderBackupFields(name), generation: info.generation, state: 'corrupt', problem: err.message };
  }
}

/**
 * List `wal/` and `backups/` and return the catalogue they describe: every
 * WAL file and backup part as an entry `pending`, each backup from its
 * backup.json (`pending`; `corrupt` with placeholder fields when it does not
 * parse), `.history` files with their lines read, the cluster and segment
 * size from gcwal.json, `lastWalArrival` from the newest WAL object. Objects
 * deleted while listing are left out. Throws on storage or auth failures and
 * on a damaged gcwal.json.
 */
export async function buildCatalogueFromListing(storage: Storage, options: BuildCatalogueOptions): Promise<Catalogue> {
  const { signal, now } = options;
  const catalogue = emptyCatalogue(now);
  const identity = await readRepositoryIdentity(storage, { signal });
  if (identity) {
    catalogue.systemIdentifier = identity.systemIdentifier;
    catalogue.walSegmentSize = identity.walSegmentSize;
  }

  const histories: [CatalogueWalEntry, number][] = [];
  for await (const info of storage.list(WAL_PREFIX, { signal })) {
    const name = info.key.slice(WAL_PREFIX.length);
    const kind = classifyWalFileName(name);
    if (!kind) continue;
    const entry: CatalogueWalEntry = { name, generation: info.generation, size: info.size, created: info.created.toISOString(), state: 'pending' };
    catalogue.wal[name] = entry;
    if (kind.kind === 'history') histories.push([entry, kind.timeline]);
    if (catalogue.lastWalArrival === undefined || compareTimes(entry.created, catalogue.lastWalArrival) > 0) catalogue.lastWalArrival = entry.created;
  }
  await eachLimited(histories, async ([entry, timeline]) => {
    const read = await historyEntry(storage, entry, timeline, signal);
    if (read) catalogue.wal[entry.name] = read;
    else delete catalogue.wal[entry.name];
  });

  const metas: [string, ObjectInfo][] = [];
  for await (const info of storage.list(BACKUP_PREFIX, { signal })) {
    const kind = classifyCatalogueKey(info.key);
    if (kind?.kind === 'part')
      catalogue.parts[info.key] = { key: info.key, generation: info.generation, size: info.size, created: info.created.toISOString(), state: 'pending' };
    else if (kind?.kind === 'backup-meta') metas.push([kind.backup, info]);
  }
  // Collected by position, so the catalogue's key order follows the listing, not the reads' timing.
  const backups = new Array<CatalogueBackup | undefined>(metas.length);
  await eachLimited(
    metas.map((m, i) => [i, ...m] as const),
    async ([i, name, info]) => {
      backups[i] = await backupEntry(storage, name, info, signal);
    },
  );
  for (const backup of backups) if (backup) catalogue.backups[backup.name] = backup;
  return catalogue;
}
