/**
 * A small repository the pipeline has catalogued, for `gcwal delete` over a
 * catalogue: stand-in objects (their content is never read) and the
 * catalogue the functions would keep of them.
 */
import { emptyCatalogue, type Catalogue } from '../../../core/catalogue/types.ts';
import { backupManifestKey, backupMetaKey, backupPartKey } from '../../../core/layout.ts';

export const SEG = 16 * 1024 * 1024;

/** The timeline-1 segment with number `n` (below 256). */
export const segment = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;

const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();

/** Writes one object (create-only) and says what was stored. */
export type PutObject = (key: string, body: string) => Promise<{ generation: string; size: number }>;

/**
 * Segments 1–8 and backups starting in 2 and 5 (each with backup.json, one
 * part and a manifest), all valid except segment 3, still pending. With
 * retain-full 1 the plan deletes the backup of 2 and segments 1, 2 and 4.
 * Returns the catalogue (to be written as CATALOGUE_KEY by the caller).
 */
export async function cataloguedRepository(put: PutObject): Promise<Catalogue> {
  const c = emptyCatalogue(new Date());
  c.systemIdentifier = '7300000000000000001';
  c.walSegmentSize = SEG;
  const object = (key: string) => put(key, `content of ${key}`);
  for (let n = 1; n <= 8; n++) {
    const info = await object(`wal/${segment(n)}`);
    c.wal[segment(n)] = { name: segment(n), generation: info.generation, size: info.size, created: daysAgo(9 - n), state: n === 3 ? 'pending' : 'valid' };
  }
  for (const n of [2, 5]) {
    const name = `base_${segment(n)}`;
    const meta = await object(backupMetaKey(name));
    const part = await object(backupPartKey(name, 0));
    await object(backupManifestKey(name));
    c.parts[backupPartKey(name, 0)] = { key: backupPartKey(name, 0), generation: part.generation, size: part.size, created: daysAgo(9 - n), state: 'valid' };
    c.backups[name] = {
      name,
      generation: meta.generation,
      state: 'valid',
      systemIdentifier: '7300000000000000001',
      pgVersionNum: 150010,
      timeline: 1,
      startLsn: `0/${n}000028`,
      stopLsn: `0/${n}000138`,
      startWalSegment: segment(n),
      stopWalSegment: segment(n),
      startTime: daysAgo(9 - n),
      stopTime: daysAgo(9 - n),
      rawSize: 1000,
      storedSize: part.size,
      keys: [backupMetaKey(name), backupPartKey(name, 0), backupManifestKey(name)],
    };
  }
  return c;
}
