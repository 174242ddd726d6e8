/**
 * A synthetic backup of many small parts, made without PostgreSQL: each part
 * a plain (codec `none`) tar of a few small files, a manifest listing them,
 * and a backup.json that passes every check of core/backup/meta.ts. For the
 * tests and the bench of backup verdicts (issue 15 part 2), where what
 * matters is the number of parts, not their content.
 */
import tar from 'tar-stream';
import { serializeBackupMeta, type BackupMeta, type ManifestEntry } from '../../core/backup/meta.ts';
import { crc32c, crc32cBase64 } from '../../core/checksum/crc32c.ts';
import { backupManifestKey, backupMetaKey, backupName, backupPartKey, Meta } from '../../core/layout.ts';
import { writeSmallObject } from '../../core/storage/objects.ts';
import type { Storage } from '../../core/storage/types.ts';

export interface SyntheticBackupOptions {
  parts: number;
  /** files per part (default 2) */
  filesPerPart?: number;
  /** the backup's start segment (24 hex on timeline 1, 16 MiB segments; default its second segment) */
  startSegment?: string;
  systemIdentifier: string;
  /**
   * Indexes of parts written wrong, as a writer bug would: the tar holds
   * other bytes (same size) for its first file than the manifest records,
   * while backup.json records the part object exactly as stored, so only
   * comparing the tar with the manifest finds it.
   */
  damaged?: readonly number[];
  /** when the backup stopped (default now: a fresh backup) */
  stopTime?: Date;
}

/** One object of the backup, before it is written. */
export interface SyntheticObject {
  key: string;
  body: Buffer;
  metadata: Record<string, string>;
}

export interface SyntheticBackup {
  name: string;
  meta: BackupMeta;
  parts: SyntheticObject[];
  manifest: SyntheticObject;
  backupJson: SyntheticObject;
}

const SEG = 16 * 1024 * 1024;

async function tarOf(files: { path: string; data: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  })();
  for (const f of files) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: f.path, size: f.data.length, mode: 0o600, mtime: new Date(0) }, f.data, (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Build the backup's objects in memory. */
export async function makeSyntheticBackup(options: SyntheticBackupOptions): Promise<SyntheticBackup> {
  const startSegment = options.startSegment ?? '000000010000000000000002';
  const name = backupName(startSegment);
  const segNo = BigInt(`0x${startSegment.slice(16)}`) + BigInt(`0x${startSegment.slice(8, 16)}`) * 256n;
  const startLsn = segNo * BigInt(SEG) + 40n;
  const stopLsn = startLsn + 272n;
  const lsn = (n: bigint) => `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;
  const perPart = options.filesPerPart ?? 2;
  const damaged = new Set(options.damaged ?? []);
  const stop = options.stopTime ?? new Date();
  const mtime = new Date(stop.getTime() - 60_000).toISOString();
  const manifestLines: string[] = [];
  const parts: SyntheticObject[] = [];
  const records: BackupMeta['parts'] = [];
  let rawFiles = 0;
  for (let p = 0; p < options.parts; p++) {
    const files = Array.from({ length: perPart }, (_, f) => ({
      path: `base/5/${16384 + p * perPart + f}`,
      data: Buffer.from(`part ${p} file ${f} `.repeat(8)),
    }));
    for (const f of files) {
      const entry: ManifestEntry = { path: f.path, type: 'file', size: f.data.length, crc32c: crc32cBase64(crc32c(f.data)), part: p, mode: 0o600, mtime };
      manifestLines.push(JSON.stringify(entry));
      rawFiles += f.data.length;
    }
    if (damaged.has(p)) files[0] = { ...files[0], data: Buffer.from(files[0].data.toString('utf8').toUpperCase()) };
    const body = await tarOf(files);
    const crc = crc32cBase64(crc32c(body));
    const key = backupPartKey(name, p);
    parts.push({ key, body, metadata: { [Meta.codec]: 'none' } });
    records.push({ key, rawSize: body.length, rawCrc32c: crc, storedSize: body.length, storedCrc32c: crc, codec: 'none', files: perPart });
  }
  const manifestBody = Buffer.from(manifestLines.map((l) => l + '\n').join(''));
  const manifest: SyntheticObject = { key: backupManifestKey(name), body: manifestBody, metadata: { [Meta.codec]: 'none' } };
  const meta: BackupMeta = {
    format: 1,
    name,
    systemIdentifier: options.systemIdentifier,
    pgVersionNum: 150010,
    pgVersion: '15.10',
    walSegmentSize: SEG,
    timeline: 1,
    startLsn: lsn(startLsn),
    stopLsn: lsn(stopLsn),
    startWalSegment: startSegment,
    stopWalSegment: startSegment,
    startTime: new Date(stop.getTime() - 1000).toISOString(),
    stopTime: stop.toISOString(),
    rawSize: rawFiles,
    storedSize: records.reduce((n, r) => n + r.storedSize, 0),
    fileCount: options.parts * perPart,
    codec: 'none',
    parts: records,
    tablespaces: [],
    backupLabel: `START WAL LOCATION: ${lsn(startLsn)} (file ${startSegment})\nCHECKPOINT LOCATION: ${lsn(startLsn + 96n)}\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: ${new Date(stop.getTime() - 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC\nLABEL: synthetic\nSTART TIMELINE: 1\n`,
    tablespaceMap: '',
    manifest: { key: manifest.key, storedSize: manifestBody.length, storedCrc32c: crc32cBase64(crc32c(manifestBody)), entries: manifestLines.length },
    gcwalVersion: '0.0.0-synthetic',
  };
  const backupJson: SyntheticObject = { key: backupMetaKey(name), body: Buffer.from(serializeBackupMeta(meta)), metadata: {} };
  return { name, meta, parts, manifest, backupJson };
}

/** Write `objects` create-only, `concurrency` at a time. */
export async function writeObjects(storage: Storage, objects: readonly SyntheticObject[], concurrency = 16): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < objects.length) {
      const o = objects[next++];
      await writeSmallObject(storage, o.key, o.body, { metadata: o.metadata });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, objects.length) }, worker));
}
