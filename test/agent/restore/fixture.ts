/**
 * Synthetic backups for restore tests: tar parts built with tar-stream,
 * compressed with a real codec, written to a real repository with the
 * manifest and metadata backup-push would write. Hooks let a test damage any
 * layer (tar entries, manifest lines, stored bytes, metadata).
 */
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import type { BackupMeta, BackupTablespace, ManifestEntry } from '../../../core/backup/meta.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { getCodec } from '../../../core/codec/index.ts';
import type { CodecName } from '../../../core/codec/types.ts';
import { backupManifestKey, backupMetaKey, backupPartKey, Meta } from '../../../core/layout.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';

export interface FixtureEntry {
  path: string;
  /** `link` (a hard link) is what a hostile part may hold; the manifest lists it as a file */
  type?: 'file' | 'directory' | 'symlink' | 'link';
  content?: Buffer | string;
  mode?: number;
  mtime?: string;
  /** symlink or hard link target */
  target?: string;
  /** part holding the entry (default 0) */
  part?: number;
}

export interface FixtureOptions {
  name?: string;
  entries: FixtureEntry[];
  parts?: number;
  codec?: CodecName;
  tablespaces?: BackupTablespace[];
  backupLabel?: string;
  /** replace the entries packed into a part's tar */
  tarEntries?: (part: number, entries: FixtureEntry[]) => FixtureEntry[];
  /** replace the manifest's entries */
  manifest?: (entries: ManifestEntry[]) => ManifestEntry[];
  /** damage a part's stored bytes after its checksums were recorded */
  storedBytes?: (part: number, bytes: Buffer) => Buffer;
  /** change the metadata before it is written */
  meta?: (meta: BackupMeta) => BackupMeta;
}

export const BACKUP_NAME = 'base_000000010000000000000004';

export const BACKUP_LABEL =
  'START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\nCHECKPOINT LOCATION: 0/4000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2024-05-01 12:00:00 UTC\nLABEL: gcwal\nSTART TIMELINE: 1\n';

const DEFAULT_MTIME = '2024-05-01T11:59:58.000Z';

function bytes(e: FixtureEntry): Buffer {
  return Buffer.from(e.content ?? '');
}

async function collect(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function tarOf(entries: FixtureEntry[]): Promise<Buffer> {
  const p = pack();
  const done = collect(p as unknown as AsyncIterable<Buffer>);
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.path,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o700 : 0o600),
      mtime: new Date(e.mtime ?? DEFAULT_MTIME),
      linkname: e.target,
    };
    await new Promise<void>((resolve, reject) => {
      if (type === 'file') p.entry(header, bytes(e), (err) => (err ? reject(err) : resolve()));
      else p.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  p.finalize();
  return done;
}

/** The manifest line backup-push would write for an entry. */
export function manifestEntryOf(e: FixtureEntry): ManifestEntry {
  const type = e.type === 'link' ? 'file' : (e.type ?? 'file');
  const content = bytes(e);
  return {
    path: e.path,
    type,
    size: type === 'file' ? content.length : 0,
    ...(type === 'file' ? { crc32c: crc32cBase64(crc32c(content)) } : {}),
    part: e.part ?? 0,
    mode: e.mode ?? (type === 'directory' ? 0o700 : 0o600),
    mtime: e.mtime ?? DEFAULT_MTIME,
    ...(e.target !== undefined ? { target: e.target } : {}),
  };
}

async function store(storage: Storage, key: string, body: Buffer, metadata: Record<string, string>) {
  return storage.write(key, Readable.from([body]), { metadata });
}

/** The cluster of the fixture's repository (gcwal.json) and, unless `meta` changes it, of its backups. */
export const SYSTEM_IDENTIFIER = '7300000000000000001';

/** Create the repository for cluster SYSTEM_IDENTIFIER, as gcwal repo-create does; idempotent. */
export async function createFixtureRepository(storage: Storage): Promise<void> {
  await repoCreate(storage, { systemIdentifier: SYSTEM_IDENTIFIER, walSegmentSize: 16 * 1024 * 1024 });
}

/** Write a complete synthetic backup to `storage` (created first if need be) and return its metadata. */
export async function writeFixtureBackup(storage: Storage, options: FixtureOptions): Promise<BackupMeta> {
  await createFixtureRepository(storage);
  const name = options.name ?? BACKUP_NAME;
  const codecName = options.codec ?? 'none';
  const codec = getCodec(codecName);
  const partCount = options.parts ?? 1;
  const parts: BackupMeta['parts'] = [];
  for (let i = 0; i < partCount; i++) {
    const own = options.entries.filter((e) => (e.part ?? 0) === i);
    const raw = await tarOf(options.tarEntries ? options.tarEntries(i, own) : own);
    const stored = await collect(Readable.from([raw]).pipe(codec.compressor()));
    const key = backupPartKey(name, i);
    parts.push({
      key,
      rawSize: raw.length,
      rawCrc32c: crc32cBase64(crc32c(raw)),
      storedSize: stored.length,
      storedCrc32c: crc32cBase64(crc32c(stored)),
      codec: codecName,
      files: own.filter((e) => (e.type ?? 'file') === 'file').length,
    });
    const written = options.storedBytes ? options.storedBytes(i, Buffer.from(stored)) : stored;
    await store(storage, key, written, { [Meta.codec]: codecName, [Meta.rawSize]: String(raw.length), [Meta.rawCrc32c]: crc32cBase64(crc32c(raw)) });
  }
  let manifest = options.entries.map(manifestEntryOf);
  if (options.manifest) manifest = options.manifest(manifest);
  const manifestBody = Buffer.from(manifest.map((m) => JSON.stringify(m) + '\n').join(''));
  const manifestKey = backupManifestKey(name);
  await store(storage, manifestKey, manifestBody, {
    [Meta.codec]: 'none',
    [Meta.rawSize]: String(manifestBody.length),
    [Meta.rawCrc32c]: crc32cBase64(crc32c(manifestBody)),
  });

  const files = options.entries.filter((e) => (e.type ?? 'file') === 'file');
  const tablespaces = options.tablespaces ?? [];
  let meta: BackupMeta = {
    format: 1,
    name,
    systemIdentifier: SYSTEM_IDENTIFIER,
    pgVersionNum: 150010,
    pgVersion: '15.10',
    walSegmentSize: 16 * 1024 * 1024,
    timeline: 1,
    startLsn: '0/4000028',
    stopLsn: '0/4000100',
    startWalSegment: '000000010000000000000004',
    stopWalSegment: '000000010000000000000004',
    startTime: '2024-05-01T12:00:00.000Z',
    stopTime: '2024-05-01T12:00:05.000Z',
    rawSize: files.reduce((n, e) => n + bytes(e).length, 0),
    storedSize: parts.reduce((n, p) => n + p.storedSize, 0),
    fileCount: files.length,
    codec: codecName,
    parts,
    tablespaces,
    backupLabel: options.backupLabel ?? BACKUP_LABEL,
    tablespaceMap: tablespaces.map((t) => `${t.oid} ${t.location}\n`).join(''),
    manifest: { key: manifestKey, storedSize: manifestBody.length, storedCrc32c: crc32cBase64(crc32c(manifestBody)), entries: manifest.length },
    gcwalVersion: 'test',
  };
  if (options.meta) meta = options.meta(meta);
  await store(storage, backupMetaKey(name), Buffer.from(JSON.stringify(meta, null, 2)), { [Meta.codec]: 'none' });
  return meta;
}
