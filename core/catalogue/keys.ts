/**
 * Which repository objects the catalogue tracks, and how generations and
 * event times compare. Shared by apply (events), derive and listing.
 */
import { BACKUP_PREFIX, isBackupName, WAL_PREFIX } from '../layout.ts';
import { classifyWalFileName } from '../wal/name.ts';

/** What a catalogued object key is. */
export type CatalogueKey =
  /** a file from pg_wal under `wal/`: segment, `.history`, `.backup` or `.partial` */
  | { kind: 'wal'; name: string }
  /** `backups/<backup>/part_NNNNN.tar` */
  | { kind: 'part'; backup: string }
  /** `backups/<backup>/backup.json` */
  | { kind: 'backup-meta'; backup: string }
  /** `backups/<backup>/manifest.jsonl` */
  | { kind: 'backup-manifest'; backup: string };

const BACKUP_OBJECT = /^([^/]+)\/(?:(part_\d{5}\.tar)|(backup\.json)|(manifest\.jsonl))$/;

/**
 * Classify a key relative to the repository root, or undefined for anything
 * the catalogue does not track (gcwal.json, the catalogue itself, stray
 * objects, names PostgreSQL would never write).
 */
export function classifyCatalogueKey(key: string): CatalogueKey | undefined {
  if (key.startsWith(WAL_PREFIX)) {
    const name = key.slice(WAL_PREFIX.length);
    return classifyWalFileName(name) ? { kind: 'wal', name } : undefined;
  }
  if (!key.startsWith(BACKUP_PREFIX)) return undefined;
  const m = BACKUP_OBJECT.exec(key.slice(BACKUP_PREFIX.length));
  if (!m || !isBackupName(m[1])) return undefined;
  const backup = m[1];
  if (m[2]) return { kind: 'part', backup };
  if (m[3]) return { kind: 'backup-meta', backup };
  return { kind: 'backup-manifest', backup };
}

/** Whether `generation` is a GCS generation: a decimal string. */
export function isGeneration(generation: unknown): generation is string {
  return typeof generation === 'string' && /^\d+$/.test(generation);
}

/**
 * Order two generations numerically (they are int64 decimal strings, and
 * `'9' > '10'` lexically). Negative, zero or positive like a sort comparator.
 */
export function compareGenerations(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Order two ISO times by the instant they name (GCS writes `...00Z` and
 * `...00.123Z`, which sort wrongly as text). Unparsable times come first;
 * equal instants fall back to the text, so the order is total.
 */
export function compareTimes(a: string, b: string): number {
  const x = Date.parse(a);
  const y = Date.parse(b);
  const xBad = Number.isNaN(x);
  const yBad = Number.isNaN(y);
  if (xBad !== yBad) return xBad ? -1 : 1;
  if (!xBad && x !== y) return x < y ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
