/** Reading a stored manifest in tests. */
import type { BackupMeta, ManifestEntry } from '../../../core/backup/meta.ts';
import type { FileStorage } from '../../../core/storage/file/storage.ts';
import { storedBytes } from './tamper.ts';

/** The manifest's entries, as stored (uncompressed). */
export async function manifestEntries(storage: FileStorage, meta: BackupMeta): Promise<ManifestEntry[]> {
  const text = (await storedBytes(storage, meta.manifest.key)).toString('utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as ManifestEntry);
}

/** Paths of the directories the manifest places in part `index`. */
export async function directoriesOfPart(storage: FileStorage, meta: BackupMeta, index: number): Promise<string[]> {
  return (await manifestEntries(storage, meta)).filter((e) => e.type === 'directory' && e.part === index).map((e) => e.path);
}
