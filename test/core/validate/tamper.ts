/**
 * Damage objects of a file:// repository the way a failing disk, a buggy
 * writer or a careless operator would: the object file and its metadata
 * sidecar (`.gcwal/meta/<key>.json`) are edited in place, behind the driver.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import type { FileStorage } from '../../../core/storage/file/storage.ts';

function dataPath(storage: FileStorage, key: string): string {
  return path.join(storage.root, ...key.split('/'));
}

function sidecarPath(storage: FileStorage, key: string): string {
  return path.join(storage.root, '.gcwal', 'meta', ...key.split('/')) + '.json';
}

/** The stored bytes of `key`. */
export function storedBytes(storage: FileStorage, key: string): Promise<Buffer> {
  return readFile(dataPath(storage, key));
}

/** Edit the sidecar of `key` (size, crc32c, metadata, and whatever else the driver keeps). */
export async function editSidecar(
  storage: FileStorage,
  key: string,
  edit: (sidecar: Record<string, unknown> & { metadata: Record<string, string> }) => void,
): Promise<void> {
  const file = sidecarPath(storage, key);
  const sidecar = JSON.parse(await readFile(file, 'utf8'));
  edit(sidecar);
  await writeFile(file, JSON.stringify(sidecar));
}

/** Overwrite the bytes of `key`, leaving its recorded size and CRC32C as they were (damage at rest). */
export async function overwriteBytes(storage: FileStorage, key: string, bytes: Buffer): Promise<void> {
  await writeFile(dataPath(storage, key), bytes);
}

/**
 * Replace the bytes of `key` and record their true size and CRC32C, as if
 * they had been uploaded that way (damage before the upload: the store's own
 * checksum agrees with them). `metadata` entries are merged into the object's.
 */
export async function replaceObject(storage: FileStorage, key: string, bytes: Buffer, metadata: Record<string, string | undefined> = {}): Promise<void> {
  await writeFile(dataPath(storage, key), bytes);
  await editSidecar(storage, key, (s) => {
    s.size = bytes.length;
    s.crc32c = crc32cBase64(crc32c(bytes));
    for (const [k, v] of Object.entries(metadata)) {
      if (v === undefined) delete s.metadata[k];
      else s.metadata[k] = v;
    }
  });
}

/** Copy object `from` (bytes and sidecar) to `to`, in the same or another repository. */
export async function copyObject(from: FileStorage, fromKey: string, to: FileStorage, toKey: string): Promise<void> {
  await mkdir(path.dirname(dataPath(to, toKey)), { recursive: true });
  await mkdir(path.dirname(sidecarPath(to, toKey)), { recursive: true });
  await copyFile(dataPath(from, fromKey), dataPath(to, toKey));
  await copyFile(sidecarPath(from, fromKey), sidecarPath(to, toKey));
}

/** `bytes` with the byte at `at` (negative: from the end) inverted. */
export function flipped(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  const i = at < 0 ? copy.length + at : at;
  copy[i] ^= 0xff;
  return copy;
}
