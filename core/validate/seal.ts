/**
 * A part's seal: one short string that says what a backup part holds, so the
 * backup's verdict can be computed from its parts' verdicts without reading
 * any part again (issue 15 part 2, docs/catalogue.md "Backup verdicts").
 *
 * The part's own validation computes it from what it read (the object's
 * generation, the decoded bytes' size and CRC32C, its tar entries); the
 * validation of backup.json computes it from what backup.json and the
 * manifest record for that part (the generation the listing shows). Equal
 * seals mean the part holds exactly what the backup says it holds.
 *
 * The entries are hashed as a multiset (each entry's SHA-256, added lane by
 * lane), so the tar's order and the manifest's need not agree, as the full
 * check (core/validate/backup.ts) never required it either.
 */
import { createHash } from 'node:crypto';

/** What both sides know of one entry: the manifest's fields the full check compares with the tar. */
export interface SealedEntry {
  path: string;
  type: string;
  size: number;
  /** files only */
  crc32c?: string;
}

const LANES = 8;

/** An order-independent digest of a part's entries. */
export class EntriesDigest {
  readonly #lanes = new Uint32Array(LANES);
  count = 0;
  files = 0;

  add(entry: SealedEntry): void {
    // Only a file's size and CRC32C are compared (directories are size 0 in both).
    const line = entry.type === 'file' ? `file\0${entry.path}\0${entry.size}\0${entry.crc32c ?? ''}` : `${entry.type}\0${entry.path}`;
    const hash = createHash('sha256').update(line).digest();
    for (let i = 0; i < LANES; i++) this.#lanes[i] = (this.#lanes[i] + hash.readUInt32BE(i * 4)) >>> 0;
    this.count++;
    if (entry.type === 'file') this.files++;
  }

  /** base64 of the lanes */
  value(): string {
    const out = Buffer.alloc(LANES * 4);
    for (let i = 0; i < LANES; i++) out.writeUInt32BE(this.#lanes[i], i * 4);
    return out.toString('base64');
  }
}

/** The facts a seal binds together. */
export interface SealFacts {
  /** the part object's generation */
  generation: string;
  rawSize: number;
  rawCrc32c: string;
  entries: number;
  files: number;
  /** EntriesDigest.value() */
  digest: string;
}

/** The seal of `facts`: 16 bytes of SHA-256, base64 (22 characters, no padding). */
export function partSeal(facts: SealFacts): string {
  const text = [BigInt(facts.generation).toString(), facts.rawSize, facts.rawCrc32c, facts.entries, facts.files, facts.digest].join('\0');
  return createHash('sha256').update(text).digest().subarray(0, 16).toString('base64url');
}
