import test from 'ava';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { pushWalFile } from '../../../agent/wal/push.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { CODEC_NAMES, type CodecName } from '../../../core/codec/types.ts';
import { NotFoundError } from '../../../core/errors.ts';
import { Meta, walObjectKey } from '../../../core/layout.ts';
import { createRepositoryIdentity, readRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import type { ObjectInfo } from '../../../core/storage/types.ts';
import { validateWalObject, type ValidationResult, type WalExpectations } from '../../../core/validate/index.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { copyObject, editSidecar, flipped, overwriteBytes, replaceObject, storedBytes } from './tamper.ts';
import { makeWalSource, type WalSource } from './wal-source.ts';

let source: WalSource;
let other: WalSource;
let work: TempDir;
const repos = new Map<CodecName, FileStorage>();
let expect: WalExpectations;

/** Every archived file, by a short label. */
function files(): Record<string, string> {
  return {
    segment: source.segments[0],
    'last segment of timeline 1': source.segments.at(-1)!,
    'first segment of timeline 2': source.firstOnTimeline2,
    '.partial': source.partial,
    '.history': source.history,
    '.backup': source.backupFile,
  };
}

/** A new repository of `of` (default the main source), created as gcwal repo-create does. */
async function repository(label: string, of: WalSource = source): Promise<FileStorage> {
  const storage = new FileStorage(pathToFileURL(path.join(work.path, label)).href);
  await storage.createRoot();
  await createRepositoryIdentity(storage, { systemIdentifier: of.systemIdentifier, walSegmentSize: of.segmentSize });
  return storage;
}

async function push(storage: FileStorage, file: string, codec: CodecName = 'lzo'): Promise<ObjectInfo> {
  await pushWalFile(storage, file, { codec, level: undefined });
  return (await storage.stat(walObjectKey(path.basename(file))))!;
}

test.before(async () => {
  work = await makeTempDir('validate-wal-repos');
  [source, other] = await Promise.all([makeWalSource(), makeWalSource()]);
  for (const codec of CODEC_NAMES) {
    const storage = await repository(codec);
    for (const file of Object.values(files())) await push(storage, file, codec);
    repos.set(codec, storage);
  }
  const identity = (await readRepositoryIdentity(repos.get('lzo')!))!;
  expect = { systemIdentifier: identity.systemIdentifier, walSegmentSize: identity.walSegmentSize };
});

test.after.always(async () => {
  await Promise.all([source?.cleanup(), other?.cleanup(), work?.cleanup()]);
});

async function validate(storage: FileStorage, name: string, expectations: WalExpectations = expect): Promise<ValidationResult> {
  return validateWalObject(storage, (await storage.stat(walObjectKey(name)))!, expectations);
}

/** A failed result with a one-line problem matching `pattern`. */
function assertProblem(t: import('ava').ExecutionContext, result: ValidationResult, pattern: RegExp): void {
  t.false(result.ok, JSON.stringify(result));
  t.regex(result.problem ?? '', pattern);
  t.notRegex(result.problem ?? '', /\n/);
}

for (const codec of CODEC_NAMES) {
  test(`every kind of WAL file archived with ${codec} validates, with its raw size and crc32c`, async (t) => {
    for (const [label, file] of Object.entries(files())) {
      const bytes = await readFile(file);
      const result = await validate(repos.get(codec)!, path.basename(file));
      t.true(result.ok, `${label}: ${result.problem}`);
      t.is(result.rawSize, bytes.length, label);
      t.is(result.rawCrc32c, crc32cBase64(crc32c(bytes)), label);
    }
  });
}

test('a segment reports its cluster, segment size and timelines', async (t) => {
  const result = await validate(repos.get('lzo')!, path.basename(source.segments[0]));
  t.like(result.details, {
    kind: 'segment',
    systemIdentifier: source.systemIdentifier,
    walSegmentSize: source.segmentSize,
    timeline: 1,
    headerTimeline: 1,
    pgMajor: 15,
  });
});

test('the first segment of a new timeline may carry the old timeline in its header', async (t) => {
  const result = await validate(repos.get('lzo')!, path.basename(source.firstOnTimeline2));
  t.like(result.details, { kind: 'segment', timeline: 2, headerTimeline: 1 });
});

test('history and backup history files report what they say', async (t) => {
  const history = await validate(repos.get('gzip')!, '00000002.history');
  t.like(history.details, { kind: 'history', timeline: 2 });
  t.deepEqual(
    (history.details!.history as { parentTimeline: number }[]).map((h) => h.parentTimeline),
    [1],
  );
  t.regex((history.details!.history as { switchLsn: string }[])[0].switchLsn, /^0\/B[0-9A-F]{5}$/);
  const backup = await validate(repos.get('gzip')!, path.basename(source.backupFile));
  t.like(backup.details, { kind: 'backup', timeline: 1, label: 'validate' });
  t.regex(String(backup.details?.startLsn), /^0\/A0+28$/);
});

for (const codec of CODEC_NAMES) {
  test(`a byte flipped at rest in a ${codec} segment fails, naming the object`, async (t) => {
    const storage = await repository(`flip-at-rest-${codec}`);
    const name = path.basename(source.segments[1]);
    const info = await push(storage, source.segments[1], codec);
    const original = await storedBytes(storage, info.key);
    await overwriteBytes(storage, info.key, flipped(original, Math.floor(original.length / 2)));
    // The stored crc32c is known only at the end; a codec with its own checks may object first.
    assertProblem(
      t,
      await validateWalObject(storage, info, expect),
      new RegExp(`^(stored bytes of )?wal/${name}: (crc32c .* does not match the recorded|.*(damaged|fails its|does not decode))`),
    );
  });

  test(`a byte flipped before the upload of a ${codec} segment fails its decoding or raw crc32c`, async (t) => {
    const storage = await repository(`flip-before-${codec}`);
    const info = await push(storage, source.segments[2], codec);
    const bytes = await storedBytes(storage, info.key);
    // Past the lzop header, into the data: the codec or the raw check must notice.
    await replaceObject(storage, info.key, flipped(bytes, Math.floor(bytes.length * 0.6)));
    assertProblem(t, await validateWalObject(storage, (await storage.stat(info.key))!, expect), /wal\/[0-9A-F]{24}: |[0-9A-F]{24} /);
  });

  test(`a truncated ${codec} segment fails`, async (t) => {
    const storage = await repository(`truncated-${codec}`);
    const info = await push(storage, source.segments[2], codec);
    const bytes = await storedBytes(storage, info.key);
    await replaceObject(storage, info.key, bytes.subarray(0, Math.floor(bytes.length / 2)));
    assertProblem(t, await validateWalObject(storage, (await storage.stat(info.key))!, expect), /truncated|ends|bytes instead of|unexpected end|damaged/);
  });

  test(`a ${codec} segment stored under another segment's name fails on its page address`, async (t) => {
    const storage = await repository(`renamed-${codec}`);
    const from = await push(storage, source.segments[0], codec);
    await copyObject(storage, from.key, storage, 'wal/000000010000000000000030');
    assertProblem(
      t,
      await validate(storage, '000000010000000000000030'),
      /^000000010000000000000030 holds WAL from 0\/[0-9A-F]+, but its name places it at 0\/3000000$/,
    );
  });
}

test('a segment of another cluster fails, by its metadata and by its header', async (t) => {
  const storage = await repository('foreign');
  await push(storage, source.segments[0]);
  const foreign = await repository('foreign-source', other);
  const info = await push(foreign, other.segments[1]);
  const name = path.basename(other.segments[1]);
  await copyObject(foreign, info.key, storage, info.key);
  assertProblem(
    t,
    await validate(storage, name),
    new RegExp(`^${name} was archived by cluster ${other.systemIdentifier}, not by the repository's cluster ${source.systemIdentifier}$`),
  );
  await editSidecar(storage, info.key, (s) => {
    delete s.metadata[Meta.systemId];
  });
  assertProblem(
    t,
    await validate(storage, name),
    new RegExp(`^${name} is WAL of cluster ${other.systemIdentifier}, not of the repository's cluster ${source.systemIdentifier}$`),
  );
  t.true((await validate(storage, name, {})).ok, 'without expectations only the content is checked');
});

test("a segment whose size is not the repository's fails before it is read", async (t) => {
  const name = path.basename(source.segments[0]);
  assertProblem(
    t,
    await validate(repos.get('none')!, name, { ...expect, walSegmentSize: 16 * 1024 * 1024 }),
    new RegExp(`^${name} is 1048576 bytes, but the repository's segments are 16777216 bytes$`),
  );
});

const badText: [string, string, string | Buffer, RegExp][] = [
  ['a malformed history file', '00000003.history', 'this is not a history file\n', /^00000003\.history: history file of timeline 3 line 1 is malformed/],
  ['a history file with no parent', '00000003.history', '# nothing here\n', /^00000003\.history lists no parent timeline$/],
  ['a history file that is not text', '00000003.history', Buffer.from([1, 0xff, 0xfe, 0, 10]), /^00000003\.history is not text/],
  ['a backup history file without a start', '000000010000000000000007.00000028.backup', 'LABEL: x\n', /has no START WAL LOCATION line$/],
];
for (const [label, name, content, problem] of badText) {
  test(`${label} fails`, async (t) => {
    const storage = await repository(`text-${name}-${label.length}`);
    const dir = await makeTempDir('validate-text');
    t.teardown(dir.cleanup);
    const file = path.join(dir.path, name);
    await import('node:fs/promises').then((fs) => fs.writeFile(file, content));
    const info = await push(storage, file, 'gzip');
    assertProblem(t, await validateWalObject(storage, info, expect), problem);
  });
}

test('a backup history file stored under another name fails', async (t) => {
  const storage = repos.get('none')!;
  const from = walObjectKey(path.basename(source.backupFile));
  await copyObject(storage, from, storage, 'wal/000000010000000000000005.00000028.backup');
  t.teardown(() => storage.delete('wal/000000010000000000000005.00000028.backup'));
  assertProblem(
    t,
    await validate(storage, '000000010000000000000005.00000028.backup'),
    /starts in segment 00000001000000000000000A, which its name does not give$/,
  );
});

test('an object under wal/ that is not named like a WAL file fails', async (t) => {
  const storage = repos.get('none')!;
  const info = await storage.write('wal/README', (await import('node:stream')).Readable.from([Buffer.from('hi')]), { metadata: { [Meta.codec]: 'none' } });
  t.teardown(() => storage.delete('wal/README'));
  assertProblem(t, await validateWalObject(storage, info, expect), /^wal\/README is not a WAL file name$/);
});

test('a segment whose metadata was lost or names an unknown codec fails', async (t) => {
  const storage = await repository('metadata');
  const info = await push(storage, source.segments[0], 'zstd');
  await editSidecar(storage, info.key, (s) => {
    s.metadata[Meta.codec] = 'brotli';
  });
  assertProblem(t, await validate(storage, path.basename(source.segments[0])), /names unknown codec "brotli"/);
  await editSidecar(storage, info.key, (s) => {
    delete s.metadata[Meta.rawCrc32c];
  });
  assertProblem(t, await validate(storage, path.basename(source.segments[0])), /lacks its raw size or crc32c metadata/);
});

test('an object deleted before it is read is a storage error, not a result', async (t) => {
  const storage = await repository('gone');
  const info = await push(storage, source.segments[0]);
  await storage.delete(info.key);
  await t.throwsAsync(validateWalObject(storage, info, expect), { instanceOf: NotFoundError });
});

test('an aborted validation rejects', async (t) => {
  const info = (await repos.get('lzo')!.stat(walObjectKey(path.basename(source.segments[0]))))!;
  const controller = new AbortController();
  controller.abort();
  const err = await t.throwsAsync(validateWalObject(repos.get('lzo')!, info, expect, { signal: controller.signal }), { any: true });
  t.is((err as { name?: string } | undefined)?.name, 'AbortError');
});

const exec = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);

async function probe(
  codec: CodecName,
  preload: string[],
): Promise<{ results: Record<string, ValidationResult>; packages: string[]; crc32c: string; check: number }> {
  const keys = Object.values(files()).map((f) => walObjectKey(path.basename(f)));
  const { stdout } = await exec(process.execPath, [...preload, '--import=tsx', path.join(here, 'probe.ts'), repos.get(codec)!.url, ...keys], {
    cwd: path.join(here, '../../..'),
  });
  return JSON.parse(stdout);
}

for (const codec of ['lzo', 'gzip', 'none'] as const) {
  test(`${codec} objects validate in a process where no native addon loads, and decoding loads neither lzo nor zstd-napi`, async (t) => {
    const plain = await probe(codec, []);
    t.false(plain.packages.includes('lzo'), plain.packages.join(' '));
    t.false(plain.packages.includes('zstd-napi'));
    const bare = await probe(codec, ['--require', path.join(here, 'no-native.cjs')]);
    t.is(bare.crc32c, 'javascript');
    t.is(bare.check, 0xe3069283, 'the JavaScript CRC32C gives the standard check value');
    for (const [key, result] of Object.entries(bare.results)) t.true(result.ok, `${key}: ${result.problem}`);
  });
}

test('zstd objects in a process where zstd-napi does not load fail with a clear problem, marked as not about the object', async (t) => {
  const bare = await probe('zstd', ['--require', path.join(here, 'no-native.cjs')]);
  for (const [key, result] of Object.entries(bare.results)) {
    t.false(result.ok);
    t.regex(result.problem!, new RegExp(`^cannot check ${key}: the zstd decoder does not load on node .* native addons are disabled`));
    t.like(result.details, { decoderUnavailable: true, codec: 'zstd' });
  }
});
