/**
 * Settled backups, kept apart (issue 15 part 1; docs/catalogue.md). A backup
 * found valid, with every part of it valid, does not change again until
 * retention deletes it, yet it and its parts are most of the catalogue (a
 * thousand backups of four parts weigh ten times an archive's 30 days of WAL
 * runs). So the store keeps them in a second gzip member of the catalogue
 * object that an update copies as bytes, without decompressing, parsing or
 * serialising it, and the changes of WAL events see only a summary of them
 * (SettledSummary, in `Catalogue.settled`). A change that does need one of
 * them (an event about a settled backup's object) throws SettledNeeded, and
 * the store runs it again on the whole catalogue.
 */
import { compareTimes } from './keys.ts';
import type { Catalogue, CatalogueBackup, CataloguePartEntry, SettledSummary } from './types.ts';

/** The settled backups and their parts, as the second member of the catalogue object holds them. */
export interface SettledBackups {
  backups: Record<string, CatalogueBackup>;
  parts: Record<string, CataloguePartEntry>;
}

/**
 * Thrown by a change (applyCatalogueEvents) that met an event about a settled
 * backup while the catalogue it works on holds only their summary: the store
 * catches it and runs the change again on the whole catalogue.
 */
export class SettledNeeded extends Error {
  constructor(readonly key: string) {
    super(`the change needs the settled backup holding ${key}`);
  }
}

/** Whether `backup` is settled: valid, its verdict in, its metadata read (not a placeholder, see apply.ts), and every part of it the catalogue knows valid. */
export function isSettledBackup(backup: CatalogueBackup, part: (key: string) => CataloguePartEntry | undefined): boolean {
  if (backup.state !== 'valid' || backup.awaiting || backup.timeline === 0) return false;
  for (const key of backup.keys) {
    const entry = part(key);
    if (entry && entry.state !== 'valid') return false;
  }
  return true;
}

/** Whether `catalogue` (in the split form) keeps backup `name` among the settled ones. */
export function isSettledName(catalogue: Catalogue, name: string): boolean {
  const names = catalogue.settled?.backups;
  if (!names) return false;
  // Sorted (summarise): a binary search, since a thousand names are looked up per backup event.
  let lo = 0;
  let hi = names.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (names[mid] === name) return true;
    if (names[mid] < name) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** What the alerts need to know of `settled`: their names, how many parts, the newest, each timeline's earliest. */
export function summarise(settled: SettledBackups): SettledSummary {
  const backups = Object.keys(settled.backups).sort();
  let newest: { name: string; stopTime: string } | undefined;
  const timelines: Record<string, string> = {};
  for (const name of backups) {
    const b = settled.backups[name];
    if (!newest || compareTimes(b.stopTime, newest.stopTime) > 0) newest = { name, stopTime: b.stopTime };
    const key = String(b.timeline);
    if (timelines[key] === undefined || compareTimes(b.stopTime, timelines[key]) < 0) timelines[key] = b.stopTime;
  }
  return { backups, parts: Object.keys(settled.parts).length, ...(newest ? { newest } : {}), timelines };
}

/**
 * `catalogue` (whole: no `settled`) split into what stays in the main member
 * (with `settled` summarising the rest) and the settled backups with their
 * parts; `settled` undefined when no backup is settled.
 */
export function splitCatalogue(catalogue: Catalogue): { main: Catalogue; settled?: SettledBackups } {
  const part = (key: string) => (Object.hasOwn(catalogue.parts, key) ? catalogue.parts[key] : undefined);
  const settled: SettledBackups = { backups: {}, parts: {} };
  const backups: Record<string, CatalogueBackup> = {};
  const parts = { ...catalogue.parts };
  let any = false;
  for (const [name, backup] of Object.entries(catalogue.backups)) {
    if (!isSettledBackup(backup, part)) {
      backups[name] = backup;
      continue;
    }
    any = true;
    settled.backups[name] = backup;
    for (const key of backup.keys) {
      const entry = part(key);
      if (!entry) continue;
      settled.parts[key] = entry;
      delete parts[key];
    }
  }
  const { settled: _old, ...rest } = catalogue;
  if (!any) return { main: rest };
  return { main: { ...rest, backups, parts, settled: summarise(settled) }, settled };
}

/** The whole catalogue from its main member and the settled backups (the inverse of splitCatalogue). */
export function mergeCatalogue(main: Catalogue, settled: SettledBackups | undefined): Catalogue {
  const { settled: _summary, ...rest } = main;
  if (!settled) return rest;
  return { ...rest, backups: { ...settled.backups, ...main.backups }, parts: { ...settled.parts, ...main.parts } };
}

/**
 * Whether the main member of a split catalogue holds a backup that has
 * become settled since (so the settled member must be written anew).
 */
export function hasNewlySettled(main: Catalogue): boolean {
  const part = (key: string) => (Object.hasOwn(main.parts, key) ? main.parts[key] : undefined);
  return Object.values(main.backups).some((b) => isSettledBackup(b, part));
}
