import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { BackupMeta, ManifestEntry } from '../../../core/backup/meta.ts';
import { CorruptObjectError } from '../../../core/errors.ts';
import { Meta } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { entriesOfPart, findRepeatedPath, manifestObject, pathHash, surveyManifest } from '../../../core/validate/manifest.ts';

const dirs: string[] = [];
test.after.always(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

function entry(p: string, part: number, type: ManifestEntry['type'] = 'file'): ManifestEntry {
  return type === 'file'
    ? { path: p, type, size: p.length, crc32c: 'AAAAAA==', part, mode: 0o600, mtime: '2024-05-01T00:00:00Z' }
    : { path: p, type, size: 0, part, mode: 0o700, mtime: '2024-05-01T00:00:00Z' };
}

/** A manifest stored as gcwal stores it, and the backup.json fields that describe it. */
async function stored(body: string | Buffer, parts = 3): Promise<{ storage: FileStorage; meta: BackupMeta }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gcwal-validate-manifest-'));
  dirs.push(dir);
  const storage = new FileStorage(pathToFileURL(dir).href);
  const info = await storage.write('backups/b/manifest.jsonl', Readable.from([Buffer.from(body)]), { metadata: { [Meta.codec]: 'none' } });
  const meta = {
    name: 'b',
    parts: Array.from({ length: parts }, () => ({})),
    manifest: { key: info.key, storedSize: info.size, storedCrc32c: info.crc32c, entries: 0 },
  } as unknown as BackupMeta;
  return { storage, meta };
}

const lines = (entries: ManifestEntry[]) => entries.map((e) => JSON.stringify(e) + '\n').join('');

test("the survey counts entries, files and bytes per part and finds where each part's lines lie", async (t) => {
  const entries = [
    entry('pg_tblspc/1', 0, 'symlink'),
    entry('base', 0, 'directory'),
    entry('base/1', 0),
    entry('global/é', 1),
    entry('global/2', 1),
    entry('global/pg_control', 2),
  ];
  delete (entries[0] as Partial<ManifestEntry>).part;
  const { storage, meta } = await stored(lines(entries));
  const survey = await surveyManifest(storage, manifestObject((await storage.stat(meta.manifest.key))!, meta, 'm'), meta, 'm');
  t.is(survey.entries, 6);
  t.is(survey.files, 4);
  t.is(survey.fileBytes, 'base/1'.length + 'global/é'.length + 'global/2'.length + 'global/pg_control'.length);
  t.deepEqual(
    survey.parts.map((p) => [p.entries, p.files]),
    [
      [2, 1],
      [2, 2],
      [1, 1],
    ],
  );
  t.is(survey.suspects.size, 0);
  for (const part of [0, 1, 2]) {
    const got: string[] = [];
    for await (const e of entriesOfPart(storage, survey, meta, part, 'm')) got.push(e.path);
    t.deepEqual(
      got,
      entries.filter((e) => e.part === part).map((e) => e.path),
      `part ${part}`,
    );
  }
});

test('a repeat suspected from a hash is confirmed only when the path really repeats', async (t) => {
  const { storage, meta } = await stored(lines([entry('a', 0), entry('b', 1), entry('a', 2)]));
  const survey = await surveyManifest(storage, manifestObject((await storage.stat(meta.manifest.key))!, meta, 'm'), meta, 'm');
  t.deepEqual([...survey.suspects], [pathHash('a')]);
  t.is(await findRepeatedPath(storage, survey, meta, 'm'), 'a');
  // As if 'b' had collided with another path: nothing repeats.
  t.is(await findRepeatedPath(storage, { ...survey, suspects: new Set([pathHash('b')]) }, meta, 'm'), undefined);
});

const damaged: [string, string | Buffer, RegExp][] = [
  ['a line that is not json', '{"path":\n', /^m: line 1 is not valid json$/],
  [
    'a line that is not utf-8',
    Buffer.concat([Buffer.from(lines([entry('a', 0)])), Buffer.from('{"path":"'), Buffer.from([0xff]), Buffer.from('"}\n')]),
    /^m: line 2 is not valid utf-8$/,
  ],
  [
    'an entry naming a part that does not exist',
    lines([{ ...entry('base', 0, 'directory'), part: 7 }]),
    /base has part that is 7, a part the backup does not have/,
  ],
  ['an unsafe path', lines([entry('../x', 0)]), /unsafe path/],
];
for (const [label, body, problem] of damaged) {
  test(`a manifest with ${label} is corrupt`, async (t) => {
    const { storage, meta } = await stored(body);
    await t.throwsAsync(surveyManifest(storage, manifestObject((await storage.stat(meta.manifest.key))!, meta, 'm'), meta, 'm'), {
      instanceOf: CorruptObjectError,
      message: problem,
    });
  });
}

test('a manifest whose size or crc32c differ from backup.json is corrupt', async (t) => {
  const { storage, meta } = await stored(lines([entry('a', 0)]));
  const info = (await storage.stat(meta.manifest.key))!;
  t.throws(() => manifestObject(info, { ...meta, manifest: { ...meta.manifest, storedSize: 1 } }, 'm'), {
    instanceOf: CorruptObjectError,
    message: /^m is \d+ bytes with crc32c .*, but backup\.json records 1 bytes/,
  });
});
