/**
 * Restoring an incremental backup: its own parts hold what changed since its
 * parent, the older backups of its chain (core/backup/chain.ts) the rest.
 * Each older backup's parts that hold a file the restore needs are streamed
 * as usual (parts.ts), writing only those files and verifying each against
 * the manifest that stores it; parts holding none are not read. Every file
 * is written once, by the backup holding it, so nothing is overwritten and
 * nothing is kept aside: memory stays bounded as for a full backup.
 */
import { chainSources, resolveChain } from '../../core/backup/chain.ts';
import type { BackupMeta, ManifestEntry } from '../../core/backup/meta.ts';
import { CorruptObjectError } from '../../core/errors.ts';
import type { Storage } from '../../core/storage/types.ts';
import { readManifest } from './manifest.ts';

/** An older backup of the chain and what a restore takes from it. */
export interface ChainLink {
  meta: BackupMeta;
  /** its whole manifest: every entry of a part read is checked against it */
  manifest: Map<string, ManifestEntry>;
  /** the paths restored from its parts */
  take: Set<string>;
  /** its parts holding none of them: not read */
  skipParts: Set<number>;
  /** bytes of the files taken */
  bytes: number;
}

const HINT = 'the chain of incremental backups is damaged; restore an older backup whose chain is whole (gcwal backup-list), and take a full backup';

/** Refuse a part that is missing or not of its recorded size: found before anything is written. */
async function checkPartsPresent(storage: Storage, meta: BackupMeta, parts: Iterable<number>, last: string, signal?: AbortSignal): Promise<void> {
  for (const index of parts) {
    const part = meta.parts[index];
    const info = await storage.stat(part.key, { signal });
    const where = `part ${index} (${part.key}) of backup ${meta.name}${meta.name === last ? '' : `, in the chain of ${last},`}`;
    if (!info) throw new CorruptObjectError(`${where} is missing from the repository`, HINT);
    if (info.size !== part.storedSize) throw new CorruptObjectError(`${where} is ${info.size} bytes, its metadata says ${part.storedSize}`, HINT);
  }
}

/**
 * The older backups of `meta`'s chain, oldest first, each with the files a
 * restore of `meta` takes from it; `restored` is the manifest of `meta` as
 * restored (without the files a restore leaves out). Before anything is
 * written, throws CorruptObjectError naming the backup when a backup of the
 * chain is missing or its backup.json or manifest is damaged, a file refers
 * to a backup that does not store it, or a part to read is missing or of
 * another size. Empty for a full backup.
 */
export async function readChain(storage: Storage, meta: BackupMeta, restored: ReadonlyMap<string, ManifestEntry>, signal?: AbortSignal): Promise<ChainLink[]> {
  const chain = await resolveChain(storage, meta, signal);
  const older = chain.slice(0, -1);
  const manifests = new Map<string, Map<string, ManifestEntry>>();
  for (const b of older) manifests.set(b.name, await readManifest(storage, b, signal));
  const sources = chainSources(meta.name, restored, manifests);
  const links: ChainLink[] = [];
  for (const b of older) {
    const manifest = manifests.get(b.name)!;
    const take = sources.get(b.name)!;
    const used = new Set<number>();
    let bytes = 0;
    for (const p of take) {
      const entry = manifest.get(p)!;
      used.add(entry.part!);
      bytes += entry.size;
    }
    await checkPartsPresent(storage, b, used, meta.name, signal);
    const skipParts = new Set(b.parts.map((_, i) => i).filter((i) => !used.has(i)));
    links.push({ meta: b, manifest, take, skipParts, bytes });
  }
  if (older.length > 0)
    await checkPartsPresent(
      storage,
      meta,
      meta.parts.map((_, i) => i),
      meta.name,
      signal,
    );
  return links;
}
