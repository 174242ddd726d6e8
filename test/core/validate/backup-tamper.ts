/**
 * Rewrite pieces of a stored backup in a file:// repository while keeping
 * every checksum that records them consistent, so validation has to find
 * the fault by comparing the pieces (a writer bug, not damage at rest).
 */
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { serializeBackupMeta, type BackupMeta, type ManifestEntry } from '../../../core/backup/meta.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { getCodec } from '../../../core/codec/index.ts';
import { backupMetaKey } from '../../../core/layout.ts';
import type { FileStorage } from '../../../core/storage/file/storage.ts';
import { replaceObject, storedBytes } from './tamper.ts';

/** One tar entry held in memory (test backups are small). */
export interface HeldEntry {
  header: tar.Header;
  data: Buffer;
}

async function collect(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function transform(bytes: Buffer, stage: Transform): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([bytes]), stage, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(chunk);
  });
  return Buffer.concat(chunks);
}

async function untar(raw: Buffer): Promise<HeldEntry[]> {
  const extract = tar.extract();
  const entries: HeldEntry[] = [];
  const reading = (async () => {
    for await (const entry of extract) entries.push({ header: entry.header, data: await collect(entry as unknown as AsyncIterable<Buffer>) });
  })();
  extract.end(raw);
  await reading;
  return entries;
}

async function retar(entries: HeldEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const out = collect(pack as unknown as AsyncIterable<Buffer>);
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => pack.entry(e.header, e.data, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  return out;
}

/** Write backup.json again (after its record was edited), under its own name's key or `key`. */
export async function writeMeta(storage: FileStorage, meta: BackupMeta, key = backupMetaKey(meta.name)): Promise<void> {
  await replaceObject(storage, key, Buffer.from(serializeBackupMeta(meta)));
}

/**
 * Decode part `index`, let `edit` change its entries, encode it again with
 * its codec (dropping the last `cut` bytes of the tar, e.g. its end marker),
 * store it, and record its new sizes and checksums in backup.json. Returns
 * the new metadata.
 */
export async function rewritePart(
  storage: FileStorage,
  meta: BackupMeta,
  index: number,
  edit: (entries: HeldEntry[]) => HeldEntry[],
  cut = 0,
): Promise<BackupMeta> {
  const part = meta.parts[index];
  const codec = getCodec(part.codec);
  const raw = await transform(await storedBytes(storage, part.key), codec.decompressor());
  const edited = await retar(edit(await untar(raw)));
  const newRaw = edited.subarray(0, edited.length - cut);
  const stored = await transform(newRaw, codec.compressor());
  await replaceObject(storage, part.key, stored);
  const parts = meta.parts.map((p, i) =>
    i === index
      ? { ...p, rawSize: newRaw.length, rawCrc32c: crc32cBase64(crc32c(newRaw)), storedSize: stored.length, storedCrc32c: crc32cBase64(crc32c(stored)) }
      : p,
  );
  const next = { ...meta, parts, storedSize: parts.reduce((n, p) => n + p.storedSize, 0) };
  await writeMeta(storage, next);
  return next;
}

/** Replace the manifest's entries and record its new size, checksum and entry count in backup.json. */
export async function rewriteManifest(storage: FileStorage, meta: BackupMeta, edit: (entries: ManifestEntry[]) => ManifestEntry[]): Promise<BackupMeta> {
  const text = (await storedBytes(storage, meta.manifest.key)).toString('utf8');
  const entries = edit(
    text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as ManifestEntry),
  );
  const body = Buffer.from(entries.map((e) => JSON.stringify(e) + '\n').join(''));
  await replaceObject(storage, meta.manifest.key, body);
  const next = { ...meta, manifest: { ...meta.manifest, storedSize: body.length, storedCrc32c: crc32cBase64(crc32c(body)), entries: entries.length } };
  await writeMeta(storage, next);
  return next;
}
