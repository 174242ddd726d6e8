/** Builders for catalogue tests: events, entries and a seeded random source. */
import type { BackupSummaryForCatalogue, Catalogue, CatalogueBackup, CatalogueEvent, CatalogueWalEntry } from '../../../core/catalogue/types.ts';
import { emptyCatalogue } from '../../../core/catalogue/types.ts';
import { formatLsn } from '../../../core/wal/lsn.ts';
import { walSegmentName } from '../../../core/wal/name.ts';

export const MiB = 1024 * 1024;
export const SEG = 16 * MiB;
export const T0 = new Date('2024-05-01T00:00:00.000Z');

/** ISO time `minutes` after T0. */
export function at(minutes: number): string {
  return new Date(T0.getTime() + minutes * 60_000).toISOString();
}

/** Segment `segNo` of `timeline` at 16 MiB. */
export function seg(timeline: number, segNo: number): string {
  return walSegmentName(timeline, BigInt(segNo), SEG);
}

/** The LSN `offset` bytes into segment `segNo` at 16 MiB. */
export function lsnIn(segNo: number, offset: number): string {
  return formatLsn(BigInt(segNo) * BigInt(SEG) + BigInt(offset));
}

export function finalized(key: string, generation: string, created: string, size = 1000): CatalogueEvent {
  return { type: 'finalized', key, generation, size, created };
}

export function deleted(key: string, generation: string, time: string): CatalogueEvent {
  return { type: 'deleted', key, generation, time };
}

export function validated(
  key: string,
  generation: string,
  time: string,
  ok = true,
  extra: Partial<Extract<CatalogueEvent, { type: 'validated' }>> = {},
): CatalogueEvent {
  return { type: 'validated', key, generation, time, ok, ...(ok ? {} : { problem: 'crc32c mismatch' }), ...extra };
}

/** A summary of a backup of `timeline` from segment `start` to segment `stop`, finishing at `stopTime`. */
export function summary(timeline: number, start: number, stop: number, stopTime: string, parts = 1): BackupSummaryForCatalogue {
  const name = `base_${seg(timeline, start)}`;
  return {
    name,
    systemIdentifier: '7300000000000000001',
    pgVersionNum: 150010,
    timeline,
    startLsn: lsnIn(start, 0x28),
    stopLsn: lsnIn(stop, 0x138),
    startWalSegment: seg(timeline, start),
    stopWalSegment: seg(timeline, stop),
    startTime: stopTime,
    stopTime,
    rawSize: 1000,
    storedSize: 400,
    keys: [
      ...Array.from({ length: parts }, (_, i) => `backups/${name}/part_${String(i).padStart(5, '0')}.tar`),
      `backups/${name}/manifest.jsonl`,
      `backups/${name}/backup.json`,
    ],
  };
}

/** A catalogue backup record from a summary. */
export function backup(s: BackupSummaryForCatalogue, state: CatalogueBackup['state'] = 'valid', generation = '1'): CatalogueBackup {
  return { ...s, generation, state, ...(state === 'pending' ? {} : { validated: s.stopTime }) };
}

/** A wal entry. */
export function walEntry(
  name: string,
  created: string,
  state: CatalogueWalEntry['state'] = 'valid',
  extra: Partial<CatalogueWalEntry> = {},
): CatalogueWalEntry {
  return { name, generation: '1', size: 1000, created, state, ...(state === 'corrupt' ? { problem: 'crc32c mismatch' } : {}), ...extra };
}

/** A catalogue holding `entries` and `backups` (as-is). */
export function catalogueOf(entries: CatalogueWalEntry[], backups: CatalogueBackup[] = [], extra: Partial<Catalogue> = {}): Catalogue {
  const c = emptyCatalogue(T0);
  for (const e of entries) c.wal[e.name] = e;
  for (const b of backups) c.backups[b.name] = b;
  return { ...c, walSegmentSize: SEG, ...extra };
}

/** mulberry32: a small seeded generator, so a failing permutation can be replayed from its seed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy (Fisher–Yates). */
export function shuffle<T>(items: readonly T[], rnd: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Freeze `value` and everything it holds, so any mutation throws. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
