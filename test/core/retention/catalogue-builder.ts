/**
 * Builds catalogues for the retention tests. Time and WAL position line up
 * by default: segment n of any timeline is created on day n (day 0 is
 * BASE), and a backup starting in segment n starts on day n at 01:00 and
 * stops at 02:00, so a scenario reads as a calendar.
 */
import type { Catalogue, CatalogueBackup, ValidationState } from '../../../core/catalogue/types.ts';
import { emptyCatalogue } from '../../../core/catalogue/types.ts';
import { backupManifestKey, backupMetaKey, backupName, backupNameFromKey, backupPartKey, walFileNameFromKey } from '../../../core/layout.ts';
import type { RetentionPlan } from '../../../core/retention/plan.ts';
import { formatLsn } from '../../../core/wal/lsn.ts';
import { historyFileName, walSegmentName } from '../../../core/wal/name.ts';

export const SEG_SIZE = 16 * 1024 * 1024;
export const CLUSTER = '7312345678901234567';
export const OTHER_CLUSTER = '7398765432109876543';
const DAY_MS = 24 * 60 * 60 * 1000;
const BASE_MS = Date.parse('2026-01-01T00:00:00.000Z');

/** The time `day` days (plus `hours`) after BASE, as a Date. */
export function dayDate(day: number, hours = 0): Date {
  return new Date(BASE_MS + day * DAY_MS + hours * 60 * 60 * 1000);
}

/** The same, ISO. */
export function dayTime(day: number, hours = 0): string {
  return dayDate(day, hours).toISOString();
}

/** Segment `n` of timeline `tl` at 16 MiB. */
export function seg(tl: number, n: number): string {
  return walSegmentName(tl, BigInt(n), SEG_SIZE);
}

/** The object keys of segments `from`..`to` of timeline `tl`. */
export function segKeys(tl: number, from: number, to: number): string[] {
  const keys: string[] = [];
  for (let n = from; n <= to; n++) keys.push(`wal/${seg(tl, n)}`);
  return keys;
}

export interface SegmentOptions {
  state?: ValidationState;
  /** day each segment is created; default: its number */
  day?: (n: number) => number;
}

export interface BackupOptions {
  /** stop segment; default the start segment */
  stop?: number;
  state?: ValidationState;
  systemIdentifier?: string;
  /** start day; default the start segment number */
  day?: number;
  /** stop day; default the start day (stop at 02:00) */
  stopDay?: number;
  parts?: number;
  partState?: ValidationState;
  /** archive the `.backup` history file PostgreSQL writes; default true */
  label?: boolean;
}

/** A mutable catalogue under construction; `build()` returns a copy. */
export class CatalogueBuilder {
  private readonly c: Catalogue;
  private generation = 1000;

  constructor(options: { systemIdentifier?: string | null; walSegmentSize?: number | null } = {}) {
    this.c = emptyCatalogue(dayDate(0));
    if (options.systemIdentifier !== null) this.c.systemIdentifier = options.systemIdentifier ?? CLUSTER;
    if (options.walSegmentSize !== null) this.c.walSegmentSize = options.walSegmentSize ?? SEG_SIZE;
  }

  private nextGeneration(): string {
    return String(this.generation++);
  }

  /** Add (or replace) one object under wal/. */
  wal(name: string, created: string, state: ValidationState = 'valid'): this {
    this.c.wal[name] = { name, generation: this.nextGeneration(), size: 1000, created, state };
    return this;
  }

  segments(tl: number, from: number, to: number, options: SegmentOptions = {}): this {
    for (let n = from; n <= to; n++) this.wal(seg(tl, n), dayTime(options.day ? options.day(n) : n), options.state);
    return this;
  }

  /** Remove objects from wal/ (a gap). */
  without(...names: string[]): this {
    for (const name of names) delete this.c.wal[name];
    return this;
  }

  history(tl: number, day: number): this {
    return this.wal(historyFileName(tl), dayTime(day, 0.5));
  }

  partial(tl: number, n: number, day: number): this {
    return this.wal(`${seg(tl, n)}.partial`, dayTime(day, 0.5));
  }

  /** Add a backup starting in segment `start` of timeline `tl`; returns its name. */
  backup(tl: number, start: number, options: BackupOptions = {}): string {
    const startSeg = seg(tl, start);
    const stop = options.stop ?? start;
    const name = backupName(startSeg);
    const day = options.day ?? start;
    const stopDay = options.stopDay ?? day;
    const keys = [backupManifestKey(name), backupMetaKey(name)];
    for (let i = 0; i < (options.parts ?? 2); i++) {
      const key = backupPartKey(name, i);
      keys.push(key);
      this.c.parts[key] = { key, generation: this.nextGeneration(), size: 5000, created: dayTime(day, 1.5), state: options.partState ?? 'valid' };
    }
    const backup: CatalogueBackup = {
      name,
      generation: this.nextGeneration(),
      state: options.state ?? 'valid',
      systemIdentifier: options.systemIdentifier ?? CLUSTER,
      pgVersionNum: 150010,
      timeline: tl,
      startLsn: formatLsn(BigInt(start) * BigInt(SEG_SIZE) + 0x28n),
      stopLsn: formatLsn(BigInt(stop) * BigInt(SEG_SIZE) + 0x100n),
      startWalSegment: startSeg,
      stopWalSegment: seg(tl, stop),
      startTime: dayTime(day, 1),
      stopTime: dayTime(stopDay, 2),
      rawSize: 10000,
      storedSize: 5000,
      keys: keys.sort(),
    };
    this.c.backups[name] = backup;
    if (options.label !== false) this.wal(`${startSeg}.00000028.backup`, dayTime(stopDay, 2));
    return name;
  }

  /** Change a part, WAL entry or backup after the fact. */
  edit(fn: (c: Catalogue) => void): this {
    fn(this.c);
    return this;
  }

  build(): Catalogue {
    return structuredClone(this.c);
  }
}

/** The catalogue `b` builds once `fn` has changed it. */
export function edited(b: CatalogueBuilder, fn: (c: Catalogue) => void): Catalogue {
  return b.edit(fn).build();
}

/**
 * The catalogue after the plan's deletes, as the catalogue function would
 * record them: each deleted generation removed; deleting a backup.json
 * removes the backup.
 */
export function applyDeletes(catalogue: Catalogue, plan: RetentionPlan): Catalogue {
  const next = structuredClone(catalogue);
  for (const o of plan.delete) {
    const walName = walFileNameFromKey(o.key);
    if (walName !== undefined) {
      if (next.wal[walName]?.generation === o.generation) delete next.wal[walName];
      continue;
    }
    if (next.parts[o.key] && next.parts[o.key].generation === o.generation) delete next.parts[o.key];
    const name = backupNameFromKey(o.key);
    if (name !== undefined && o.key === backupMetaKey(name) && next.backups[name]?.generation === o.generation) delete next.backups[name];
  }
  return next;
}

/** Every object key the catalogue knows, sorted. */
export function catalogueKeys(catalogue: Catalogue): string[] {
  const keys = new Set<string>([...Object.keys(catalogue.wal).map((n) => `wal/${n}`), ...Object.keys(catalogue.parts)]);
  for (const b of Object.values(catalogue.backups)) for (const k of [...b.keys, backupMetaKey(b.name)]) keys.add(k);
  return [...keys].sort();
}
