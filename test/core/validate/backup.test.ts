import test, { type ExecutionContext } from 'ava';
import { cp } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { pushBackup } from '../../../agent/backup/push.ts';
import { createLogger } from '../../../agent/log.ts';
import { createProgress } from '../../../agent/progress.ts';
import type { BackupMeta } from '../../../core/backup/meta.ts';
import { CODEC_NAMES, type CodecName } from '../../../core/codec/types.ts';
import { backupMetaKey, Meta } from '../../../core/layout.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import type { ObjectInfo } from '../../../core/storage/types.ts';
import { validateBackup, validateBackupPart, type ValidationResult } from '../../../core/validate/index.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { rewriteManifest, rewritePart, writeMeta } from './backup-tamper.ts';
import { flipped, overwriteBytes, replaceObject, storedBytes } from './tamper.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';

let cluster: Cluster;
let work: TempDir;
const backups = new Map<CodecName, { storage: FileStorage; meta: BackupMeta }>();
let systemIdentifier: string;
const segmentSize = 1024 * 1024;

async function takeBackup(codec: CodecName): Promise<{ storage: FileStorage; meta: BackupMeta }> {
  const storage = new FileStorage(pathToFileURL(path.join(work.path, codec)).href);
  await repoCreate(storage, cluster);
  return { storage, meta: await pushInto(storage, codec) };
}

/** A backup of the cluster into `storage`, full unless `incremental`. */
async function pushInto(storage: FileStorage, codec: CodecName, incremental = false): Promise<BackupMeta> {
  const quiet = new PassThrough().resume();
  return pushBackup({
    pgdata: cluster.pgdata,
    storage,
    config: {
      compression: codec,
      compressionLevel: undefined,
      concurrency: 2,
      partSize: 2 * 1024 * 1024,
      retries: 0,
      pg: { host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres', password: undefined },
    },
    log: createLogger(quiet, 'text', false),
    signal: new AbortController().signal,
    version: '0.0.0-test',
    progress: (label) => createProgress({ out: quiet, interactive: false, label }),
    archiveCheck: false, // archive_command is /bin/true: no WAL reaches this repository
    incremental,
  });
}

test.before(async () => {
  work = await makeTempDir('validate-backup');
  cluster = await startCluster({ archiveCommand: '/bin/true', walSegSizeMB: 1 });
  await cluster.query('CREATE TABLE big AS SELECT n, md5(n::text) AS pad FROM generate_series(1, 60000) AS n');
  [{ id: systemIdentifier }] = await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  for (const codec of CODEC_NAMES) backups.set(codec, await takeBackup(codec));
});

test.after.always(async () => {
  await cluster?.destroy();
  await work?.cleanup();
});

const expect = () => ({ systemIdentifier, walSegmentSize: segmentSize });

/** A private copy of the lzo backup's repository, to damage. */
async function copyOf(t: ExecutionContext, codec: CodecName = 'lzo'): Promise<{ storage: FileStorage; meta: BackupMeta }> {
  const original = backups.get(codec)!;
  const dir = await makeTempDir('validate-backup-copy');
  t.teardown(dir.cleanup);
  await cp(original.storage.root, dir.path, { recursive: true });
  return { storage: new FileStorage(pathToFileURL(dir.path).href), meta: original.meta };
}

async function metaInfo(storage: FileStorage, meta: BackupMeta): Promise<ObjectInfo> {
  return (await storage.stat(backupMetaKey(meta.name)))!;
}

function assertProblem(t: ExecutionContext, result: ValidationResult, pattern: RegExp): void {
  t.false(result.ok, JSON.stringify(result));
  t.regex(result.problem ?? '', pattern);
  t.notRegex(result.problem ?? '', /\n/);
}

test('the test backups have several parts', (t) => {
  for (const { meta } of backups.values()) t.true(meta.parts.length >= 3, `${meta.parts.length} parts`);
});

for (const codec of CODEC_NAMES) {
  test(`a backup taken with ${codec} validates and is summarised for the catalogue`, async (t) => {
    const { storage, meta } = backups.get(codec)!;
    const result = await validateBackup(storage, await metaInfo(storage, meta), expect());
    t.true(result.ok, result.problem);
    t.like(result.details, { parts: meta.parts.length, files: meta.fileCount, entries: meta.manifest.entries, rawSize: meta.rawSize });
    t.deepEqual(result.backup, {
      name: meta.name,
      systemIdentifier,
      pgVersionNum: meta.pgVersionNum,
      timeline: 1,
      startLsn: meta.startLsn,
      stopLsn: meta.stopLsn,
      startWalSegment: meta.startWalSegment,
      stopWalSegment: meta.stopWalSegment,
      startTime: meta.startTime,
      stopTime: meta.stopTime,
      rawSize: meta.rawSize,
      storedSize: meta.storedSize,
      keys: [...meta.parts.map((p) => p.key), meta.manifest.key, backupMetaKey(meta.name)],
    });
  });

  test(`every part of a backup taken with ${codec} validates on its own, with the sizes and checksums backup.json records`, async (t) => {
    const { storage, meta } = backups.get(codec)!;
    for (const part of meta.parts) {
      const result = await validateBackupPart(storage, (await storage.stat(part.key))!);
      t.true(result.ok, result.problem);
      t.is(result.rawSize, part.rawSize);
      t.is(result.rawCrc32c, part.rawCrc32c);
      t.is(result.details?.files, part.files);
    }
  });
}

test('an incremental backup validates with its parent present, and fails naming the parent once it is gone', async (t) => {
  const { storage, meta: full } = await copyOf(t, 'none');
  const inc = await pushInto(storage, 'none', true);
  t.is(inc.parent, full.name);
  const result = await validateBackup(storage, await metaInfo(storage, inc), expect());
  t.true(result.ok, result.problem);
  t.is(result.backup?.parent, full.name);
  t.is(result.details?.files, inc.fileCount);
  await storage.delete(backupMetaKey(full.name));
  assertProblem(
    t,
    await validateBackup(storage, await metaInfo(storage, inc), expect()),
    new RegExp(`^backup ${inc.name} is incremental, but its parent ${full.name} is missing from the repository$`),
  );
});

test('a byte flipped at rest in a part fails the part and the backup', async (t) => {
  const { storage, meta } = await copyOf(t);
  const part = meta.parts[1];
  const bytes = await storedBytes(storage, part.key);
  await overwriteBytes(storage, part.key, flipped(bytes, Math.floor(bytes.length / 3)));
  // Parts carry no lzop block checksums: a flip that still decodes is caught by the part's raw CRC32C or, first, by a file's against the manifest.
  const pattern = new RegExp(`${part.key.replaceAll('/', '\\/')}.*(crc32c .* does not match|fails its|does not decode|has crc32c .*, but the manifest says)`);
  assertProblem(t, await validateBackupPart(storage, (await storage.stat(part.key))!), pattern);
  const result = await validateBackup(storage, await metaInfo(storage, meta), expect());
  assertProblem(t, result, pattern);
  t.is(result.backup?.name, meta.name, 'a corrupt backup is still summarised, so the catalogue can show it');
});

test('a part replaced by other bytes fails against the stored size and crc32c backup.json records', async (t) => {
  const { storage, meta } = await copyOf(t);
  await replaceObject(storage, meta.parts[0].key, await storedBytes(storage, meta.parts[1].key));
  assertProblem(
    t,
    await validateBackup(storage, await metaInfo(storage, meta), expect()),
    /^part 0 \(.*part_00000\.tar\) of backup base_[0-9A-F]{24} is \d+ bytes with crc32c .*, but backup\.json records/,
  );
});

test('a missing part fails the backup', async (t) => {
  const { storage, meta } = await copyOf(t);
  await storage.delete(meta.parts[2].key);
  assertProblem(t, await validateBackup(storage, await metaInfo(storage, meta), expect()), /^part 2 \(.*\) of backup .* is missing$/);
});

test("a file changed inside a part, with the part's own checksums rewritten to match, fails against the manifest", async (t) => {
  const { storage, meta } = await copyOf(t);
  let changed = '';
  const next = await rewritePart(storage, meta, 1, (entries) => {
    const victim = entries.find((e) => e.header.type === 'file' && e.data.length > 100)!;
    changed = victim.header.name;
    victim.data = flipped(victim.data, 50);
    return entries;
  });
  t.true((await validateBackupPart(storage, (await storage.stat(meta.parts[1].key))!)).ok, 'the part alone is a fine tar stream');
  assertProblem(
    t,
    await validateBackup(storage, await metaInfo(storage, next), expect()),
    new RegExp(`^"${changed}" in part 1 \\(.*\\) of backup .* has crc32c .*, but the manifest says`),
  );
});

test('a tar entry the manifest does not list fails, and so does a listed entry the tar lacks', async (t) => {
  const { storage, meta } = await copyOf(t);
  const dirs = (await import('./manifest-lines.ts')).directoriesOfPart;
  const [dropped] = await dirs(storage, meta, 0);
  const fewer = await rewriteManifest(storage, meta, (entries) => entries.filter((e) => e.path !== dropped));
  assertProblem(
    t,
    await validateBackup(storage, await metaInfo(storage, fewer), expect()),
    new RegExp(`^"${dropped}" in part 0 \\(.*\\) of backup .* is not in the manifest for this part$`),
  );

  const more = await rewriteManifest(storage, fewer, (entries) => [
    ...entries,
    { path: dropped, type: 'directory', size: 0, part: 0, mode: 0o700, mtime: new Date().toISOString() },
    { path: 'base/imaginary', type: 'directory', size: 0, part: 0, mode: 0o700, mtime: new Date().toISOString() },
  ]);
  assertProblem(
    t,
    await validateBackup(storage, await metaInfo(storage, more), expect()),
    /^the manifest lists "base\/imaginary" in part 0 \(.*\) of backup .*, which does not hold it$/,
  );
});

test('a manifest that lists a path twice fails', async (t) => {
  const { storage, meta } = await copyOf(t);
  const next = await rewriteManifest(storage, meta, (entries) => {
    const dir = entries.find((e) => e.type === 'directory')!;
    return [...entries, { ...dir, part: (dir.part! + 1) % meta.parts.length }];
  });
  assertProblem(t, await validateBackup(storage, await metaInfo(storage, next), expect()), /^manifest of backup .* lists ".*" twice$/);
});

test('a manifest whose counts differ from backup.json fails', async (t) => {
  const { storage, meta } = await copyOf(t);
  const next = await rewriteManifest(storage, meta, (entries) => entries.filter((e) => !(e.type === 'file' && e.part === 2)));
  assertProblem(t, await validateBackup(storage, await metaInfo(storage, next), expect()), /^manifest of backup .* lists \d+ files, backup\.json says \d+$/);
});

test('a part cut at an entry boundary, without its end-of-archive marker, fails on its own and in the backup', async (t) => {
  const { storage, meta } = await copyOf(t, 'gzip');
  const next = await rewritePart(storage, meta, 0, (entries) => entries, 1024);
  assertProblem(
    t,
    await validateBackupPart(storage, (await storage.stat(meta.parts[0].key))!),
    /part_00000\.tar is not a complete tar stream: it does not end with the end-of-archive marker/,
  );
  assertProblem(t, await validateBackup(storage, await metaInfo(storage, next), expect()), /is not a complete tar stream/);
});

test('a part that is not a tar stream fails', async (t) => {
  const { storage, meta } = await copyOf(t, 'none');
  const junk = Buffer.alloc(4096, 'not a tar header ');
  await replaceObject(storage, meta.parts[0].key, junk);
  assertProblem(t, await validateBackupPart(storage, (await storage.stat(meta.parts[0].key))!), /part_00000\.tar is not a valid tar stream/);
});

test('a backup of another cluster, or with another segment size, fails', async (t) => {
  const { storage, meta } = backups.get('none')!;
  const info = await metaInfo(storage, meta);
  assertProblem(
    t,
    await validateBackup(storage, info, { systemIdentifier: '42' }),
    new RegExp(`is a backup of cluster ${systemIdentifier}, not of the repository's cluster 42$`),
  );
  assertProblem(
    t,
    await validateBackup(storage, info, { walSegmentSize: 16 * 1024 * 1024 }),
    /records 1048576-byte segments, but the repository's are 16777216 bytes$/,
  );
});

const metaFaults: [string, (m: BackupMeta) => BackupMeta, RegExp][] = [
  [
    'names another backup',
    (m) => ({ ...m, name: 'base_000000010000000000000099' }),
    /name is base_000000010000000000000099, but the object is in the folder of "base_0+1[0-9A-F]+"$/,
  ],
  [
    'lists a part outside its folder',
    (m) => ({ ...m, parts: m.parts.map((p, i) => (i === 0 ? { ...p, key: 'wal/000000010000000000000001' } : p)) }),
    /parts\[0\]\.key is "wal\/000000010000000000000001", not backups\//,
  ],
  ['stops before it starts', (m) => ({ ...m, stopLsn: '0/1' }), /stopLsn is 0\/1, before startLsn/],
  [
    'has a start segment that does not hold its start',
    (m) => ({ ...m, startWalSegment: '000000010000000000000077' }),
    /startWalSegment is 000000010000000000000077, which does not hold startLsn/,
  ],
  [
    'has a label for another start',
    (m) => ({ ...m, backupLabel: 'START WAL LOCATION: 0/1 (file 000000010000000000000000)\n' }),
    /backupLabel does not start at startLsn/,
  ],
  ['miscounts its stored bytes', (m) => ({ ...m, storedSize: m.storedSize + 1 }), /stored bytes, but its parts add up to/],
];
for (const [label, edit, problem] of metaFaults) {
  test(`backup.json that ${label} fails`, async (t) => {
    const { storage, meta } = await copyOf(t, 'none');
    await writeMeta(storage, edit(meta), backupMetaKey(meta.name));
    assertProblem(t, await validateBackup(storage, await metaInfo(storage, meta), expect()), problem);
  });
}

test('backup.json that is not json fails without a summary', async (t) => {
  const { storage, meta } = await copyOf(t, 'none');
  await replaceObject(storage, backupMetaKey(meta.name), Buffer.from('{"format": 1,'));
  const result = await validateBackup(storage, await metaInfo(storage, meta), expect());
  assertProblem(t, result, /^backup metadata backups\/.*\/backup\.json is not valid json$/);
  t.is(result.backup, undefined);
});

test('a backup.json whose stored bytes differ from its event fails', async (t) => {
  const { storage, meta } = await copyOf(t, 'none');
  const info = await metaInfo(storage, meta);
  await replaceObject(storage, info.key, Buffer.from(JSON.stringify(meta)));
  assertProblem(t, await validateBackup(storage, info, expect()), /^stored bytes of backups\/.*\/backup\.json: /);
});

test('a manifest stored compressed, or not grouped by part, still validates', async (t) => {
  const { storage, meta } = await copyOf(t);
  // Every other line first: each part's lines are spread over the whole manifest.
  const shuffled = await rewriteManifest(storage, meta, (entries) => [...entries.filter((_, i) => i % 2 === 1), ...entries.filter((_, i) => i % 2 === 0)]);
  const result = await validateBackup(storage, await metaInfo(storage, shuffled), expect());
  t.true(result.ok, result.problem);

  const body = gzipSync(await storedBytes(storage, meta.manifest.key));
  await replaceObject(storage, meta.manifest.key, body, { [Meta.codec]: 'gzip' });
  const compressed = { ...shuffled, manifest: { ...shuffled.manifest, storedSize: body.length, storedCrc32c: crc32cBase64(crc32c(body)) } };
  await writeMeta(storage, compressed);
  const again = await validateBackup(storage, await metaInfo(storage, compressed), expect());
  t.true(again.ok, again.problem);
});
