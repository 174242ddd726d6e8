import test from 'ava';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import tar from 'tar-stream';
import { writeParts, type PartsOptions } from '../../../agent/backup/parts.ts';
import { planParts, tarBytes } from '../../../agent/backup/plan.ts';
import { writePart } from '../../../agent/backup/tar-parts.ts';
import { walkDataDirectory } from '../../../agent/backup/walk.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { getCodec } from '../../../core/codec/index.ts';
import type { Codec } from '../../../core/codec/types.ts';
import { InvalidInputError, StorageError } from '../../../core/errors.ts';
import { backupPartKey, Meta } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import type { Storage } from '../../../core/storage/types.ts';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-parts-'));
  dirs.push(dir);
  return dir;
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function setup(files: Record<string, Buffer>) {
  const root = await tempDir();
  const pgdata = join(root, 'pgdata');
  for (const [rel, data] of Object.entries(files)) {
    mkdirSync(join(pgdata, rel, '..'), { recursive: true });
    writeFileSync(join(pgdata, rel), data);
  }
  const storage = new FileStorage(pathToFileURL(join(root, 'repo')).href);
  await storage.createRoot();
  return { root, pgdata, storage };
}

interface Extracted {
  name: string;
  type: string;
  mode: number;
  data: Buffer;
}

/** Read a part back: decompress with its codec, untar with tar-stream. */
async function extractPart(storage: Storage, key: string, codec: Codec): Promise<{ raw: Buffer; entries: Extracted[] }> {
  const source = await storage.read(key);
  const rawChunks: Buffer[] = [];
  for await (const chunk of source.pipe(codec.decompressor()) as Readable) rawChunks.push(chunk as Buffer);
  const raw = Buffer.concat(rawChunks);
  const extract = tar.extract();
  const entries: Extracted[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      entries.push({ name: entry.header.name, type: entry.header.type, mode: entry.header.mode, data: Buffer.concat(chunks) });
    }
  })();
  extract.end(raw);
  await done;
  return { raw, entries };
}

function options(storage: Storage, extra: Partial<PartsOptions> = {}): PartsOptions {
  return {
    storage,
    backupName: 'base_000000010000000000000002',
    codec: getCodec('gzip'),
    concurrency: 3,
    retries: 0,
    signal: new AbortController().signal,
    ...extra,
  };
}

/** The manifest's block checksums of `data`: the CRC32C of each 8 KiB, 4 bytes big-endian each, base64. */
function blocksOf(data: Buffer): string {
  const out = Buffer.alloc(Math.ceil(data.length / 8192) * 4);
  for (let i = 0; i * 8192 < data.length; i++) out.writeUInt32BE(crc32c(data.subarray(i * 8192, (i + 1) * 8192)), i * 4);
  return out.toString('base64');
}

test('files are split into parts of about the part size and come back byte for byte', async (t) => {
  const files: Record<string, Buffer> = { 'global/pg_control': randomBytes(8192), empty: Buffer.alloc(0), one: Buffer.from('1') };
  for (let i = 0; i < 24; i++) files[`base/1/${16384 + i}`] = randomBytes(((i * 7919) % 90_000) + (i % 3 === 0 ? 511 : 513));
  files['base/1/big'] = Buffer.alloc(700_000, 7); // one file bigger than a part
  const { pgdata, storage } = await setup(files);
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  const partSize = 200 * 1024;
  const plans = planParts(walk.entries, partSize, ['global/pg_control']);
  let progressBytes = 0;
  let progressFiles = 0;
  const result = await writeParts(
    plans,
    options(storage, {
      onProgress: (b, f) => {
        progressBytes += b;
        progressFiles += f;
      },
    }),
  );

  t.is(result.parts.length, plans.length);
  t.true(plans.length >= 4);
  t.is(progressBytes, walk.totalBytes);
  t.is(progressFiles, walk.fileCount);
  const manifest = new Map(result.manifest.map((e) => [e.path, e]));
  t.is(manifest.size, walk.entries.length);

  for (const plan of plans) {
    // A part only grows past the part size with its last entry.
    const beforeLast = plan.entries.slice(0, -1).reduce((n, e) => n + tarBytes(e), 0);
    t.true(beforeLast < partSize, `part ${plan.index} started a new part too late`);
    // It ends before the part size only where a file of the part size or more starts a part of its own.
    const next = plans[plan.index + 1]?.entries[0];
    const nextAlone = next !== undefined && next.type === 'file' && tarBytes(next) >= partSize;
    if (!plan.last && plan.index < plans.length - 2 && !nextAlone) t.true(plan.bytes >= partSize, `part ${plan.index} ended too early`);
    if (plan.entries.some((e) => e.type === 'file' && tarBytes(e) >= partSize)) t.is(plan.entries.length, 1, `part ${plan.index} holds a big file and more`);

    const part = result.parts[plan.index];
    t.is(part.key, backupPartKey('base_000000010000000000000002', plan.index));
    const { raw, entries } = await extractPart(storage, part.key, getCodec('gzip'));
    t.is(part.rawSize, raw.length);
    t.is(part.rawCrc32c, crc32cBase64(crc32c(raw)));
    const info = await storage.stat(part.key);
    t.is(part.storedSize, info!.size);
    t.is(part.storedCrc32c, info!.crc32c);
    t.is(info!.metadata[Meta.codec], 'gzip');
    t.is(part.codec, 'gzip');
    t.is(part.files, plan.files);
    t.deepEqual(
      entries.map((e) => e.name.replace(/\/$/, '')),
      plan.entries.map((e) => e.path),
    );
    for (const entry of entries) {
      const line = manifest.get(entry.name.replace(/\/$/, ''))!;
      t.is(line.part, plan.index);
      if (entry.type === 'file') {
        t.deepEqual(entry.data, files[entry.name], entry.name);
        t.is(line.size, entry.data.length);
        t.is(line.crc32c, crc32cBase64(crc32c(entry.data)));
        // Files of 64 KiB and more carry the CRC32C of each 8 KiB block, for a delta restore.
        if (entry.data.length >= 64 * 1024) {
          t.is(line.blockSize, 8192, entry.name);
          t.is(line.blocks, blocksOf(entry.data), entry.name);
        } else {
          t.is(line.blocks, undefined, entry.name);
        }
        t.is(entry.mode, line.mode);
      } else {
        t.is(line.type, 'directory');
      }
    }
  }
  t.deepEqual(
    plans.at(-1)!.entries.map((e) => e.path),
    ['global/pg_control'],
  );
});

test('a file that shrinks while read is padded with zeros and one that grows is cut at the header size', async (t) => {
  const shrink = randomBytes(300_000);
  const grow = randomBytes(100_000);
  const { pgdata, storage } = await setup({ shrink, grow });
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  const [plan] = planParts(walk.entries, 1 << 30);
  const { part, manifest } = await writePart(plan, {
    storage,
    key: 'backups/b/part_00000.tar',
    codec: getCodec('none'),
    signal: new AbortController().signal,
    afterOpen: (entry) => {
      if (entry.path === 'shrink') truncateSync(join(pgdata, 'shrink'), 1000);
      if (entry.path === 'grow') appendFileSync(join(pgdata, 'grow'), randomBytes(50_000));
    },
  });
  const { entries } = await extractPart(storage, part.key, getCodec('none'));
  const byName = new Map(entries.map((e) => [e.name, e.data]));
  const expectedShrink = Buffer.concat([shrink.subarray(0, 1000), Buffer.alloc(shrink.length - 1000)]);
  t.deepEqual(byName.get('shrink'), expectedShrink);
  t.deepEqual(byName.get('grow'), grow);
  const lines = new Map(manifest.map((e) => [e.path, e]));
  t.is(lines.get('shrink')!.size, shrink.length);
  t.is(lines.get('shrink')!.crc32c, crc32cBase64(crc32c(expectedShrink)));
  t.is(lines.get('shrink')!.blocks, blocksOf(expectedShrink));
  t.is(lines.get('grow')!.size, grow.length);
  t.is(lines.get('grow')!.crc32c, crc32cBase64(crc32c(grow)));
  t.is(lines.get('grow')!.blocks, blocksOf(grow));
});

test('a file that vanished before it was opened is skipped', async (t) => {
  const { pgdata, storage } = await setup({ keep: Buffer.from('kept'), gone: Buffer.from('dropped table') });
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  unlinkSync(join(pgdata, 'gone'));
  const skipped: string[] = [];
  const result = await writeParts(planParts(walk.entries, 1 << 20), options(storage, { codec: getCodec('none'), onSkip: (p) => skipped.push(p) }));
  t.deepEqual(skipped, ['gone']);
  t.deepEqual(
    result.manifest.map((e) => e.path),
    ['keep'],
  );
  t.is(result.parts[0].files, 1);
  const { entries } = await extractPart(storage, result.parts[0].key, getCodec('none'));
  t.deepEqual(
    entries.map((e) => e.name),
    ['keep'],
  );
});

test('a file that cannot be read fails the backup and stores no part', async (t) => {
  const { pgdata, storage } = await setup({ a: randomBytes(1000), b: randomBytes(1000) });
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  // Replaced by a directory after the walk: open succeeds, read fails (EISDIR).
  rmSync(join(pgdata, 'b'));
  mkdirSync(join(pgdata, 'b'));
  const plans = planParts(walk.entries, 1 << 20);
  await t.throwsAsync(writeParts(plans, options(storage)), { instanceOf: InvalidInputError, message: /cannot read .*\/b: EISDIR/ });
  t.is(plans.length, 1);
  t.is(await storage.stat(backupPartKey('base_000000010000000000000002', 0)), undefined);
});

test('the last part is uploaded only after every other part is stored', async (t) => {
  const files: Record<string, Buffer> = { 'global/pg_control': randomBytes(8192) };
  for (let i = 0; i < 12; i++) files[`base/1/${i}`] = randomBytes(50_000);
  const { pgdata, storage } = await setup(files);
  const events: string[] = [];
  // Records the order of uploads around the real driver.
  const recording: Storage = {
    url: storage.url,
    stat: (k, o) => storage.stat(k, o),
    read: (k, o) => storage.read(k, o),
    list: (p, o) => storage.list(p, o),
    delete: (k, o) => storage.delete(k, o),
    write: async (k, s, o) => {
      events.push(`start ${k}`);
      const info = await storage.write(k, s, o);
      events.push(`end ${k}`);
      return info;
    },
  };
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  const plans = planParts(walk.entries, 100_000, ['global/pg_control']);
  await writeParts(plans, options(recording, { concurrency: 4 }));
  const lastKey = backupPartKey('base_000000010000000000000002', plans.length - 1);
  const lastStart = events.indexOf(`start ${lastKey}`);
  t.is(lastStart, events.length - 2);
  t.is(events.filter((e) => e.startsWith('end')).length, plans.length);
  // The others did run in parallel.
  t.true(events.slice(0, 4).every((e) => e.startsWith('start')));
});

/** The real driver, except that the first upload of `key` fails with `error` after taking some bytes. */
function failingOnce(storage: Storage, key: string, error: Error): Storage {
  let failed = false;
  return {
    url: storage.url,
    stat: (k, o) => storage.stat(k, o),
    read: (k, o) => storage.read(k, o),
    list: (p, o) => storage.list(p, o),
    delete: (k, o) => storage.delete(k, o),
    write: async (k, s, o) => {
      if (k !== key || failed) return storage.write(k, s, o);
      failed = true;
      for await (const _ of s) break; // the connection drops after the first chunk
      throw error;
    },
  };
}

test('a part whose upload fails transiently is rebuilt and uploaded again', async (t) => {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 6; i++) files[`f${i}`] = randomBytes(60_000);
  const { pgdata, storage } = await setup(files);
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  const plans = planParts(walk.entries, 100_000);
  const key = backupPartKey('base_000000010000000000000002', 1);
  const retries: string[] = [];
  let bytes = 0;
  let done = 0;
  const result = await writeParts(
    plans,
    options(failingOnce(storage, key, new StorageError('connection reset', true)), {
      retries: 2,
      onRetry: (index, attempt, err) => retries.push(`${index}/${attempt}: ${err.message}`),
      onProgress: (b, f) => {
        bytes += b;
        done += f;
      },
    }),
  );
  t.deepEqual(retries, ['1/1: connection reset']);
  t.is(bytes, walk.totalBytes);
  t.is(done, walk.fileCount);
  const { entries } = await extractPart(storage, key, getCodec('gzip'));
  t.deepEqual(
    entries.map((e) => e.data),
    plans[1].entries.map((e) => files[e.path]),
  );
  t.is(
    result.parts[1].rawSize,
    entries.reduce((n, e) => n + 512 + Math.ceil(e.data.length / 512) * 512, 1024),
  );
});

test('a part whose upload fails for good is not retried', async (t) => {
  const { pgdata, storage } = await setup({ a: randomBytes(1000) });
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  const key = backupPartKey('base_000000010000000000000002', 0);
  let retried = false;
  await t.throwsAsync(
    writeParts(
      planParts(walk.entries, 1 << 20),
      options(failingOnce(storage, key, new StorageError('permission denied', false)), { retries: 5, onRetry: () => (retried = true) }),
    ),
    { message: 'permission denied' },
  );
  t.false(retried);
  t.is(await storage.stat(key), undefined);
});
