import test from 'ava';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  fileIdentity,
  formatMarker,
  MARKER_DIR,
  parseMarker,
  pruneMarkers,
  shellLine,
  takeMarker,
  writeMarker,
  type PushedMarker,
} from '../../../agent/wal/marker.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let work: TempDir;
test.before(async () => {
  work = await makeTempDir('wal-marker');
});
test.after.always(async () => {
  await work?.cleanup();
});

const NAME = '000000010000000000000007';
const REPO = 'file:///var/lib/gcwal';

let counter = 0;
/** A fresh pg_wal-like directory holding NAME. */
async function walDir(): Promise<string> {
  const dir = path.join(work.path, `pg_wal-${++counter}`);
  await mkdir(dir);
  await writeFile(path.join(dir, NAME), Buffer.alloc(4096, 7));
  return dir;
}

async function markerFor(dir: string, overrides: Partial<PushedMarker> = {}): Promise<PushedMarker> {
  const file = await fileIdentity(path.join(dir, NAME));
  if (!file) throw new Error('no file');
  return { format: 1, repo: REPO, name: NAME, key: `wal/${NAME}`, rawSize: 4096, rawCrc32c: 'AAAAAA==', file, ...overrides };
}

test('a marker survives formatting and parsing unchanged', async (t) => {
  const marker = await markerFor(await walDir());
  t.deepEqual(parseMarker(formatMarker(marker)), marker);
});

test('anything but a complete marker parses as none', (t) => {
  const file = { dev: '1', ino: '2', size: '3', mtimeNs: '4' };
  const good: PushedMarker = { format: 1, repo: REPO, name: NAME, key: 'k', rawSize: 1, rawCrc32c: 'c', file };
  const line = shellLine(good)!;
  const json = (value: unknown) => `${line}\n${JSON.stringify(value)}\n`;
  for (const text of [
    '',
    'not json',
    `${line}\nnull\n`,
    `${line}\n[]\n`,
    json({ ...good, format: 2 }),
    json({ ...good, repo: 5 }),
    json({ ...good, file: { ...file, ino: 2 } }),
    json({ ...good, rawSize: '1' }),
    // the format before the shell line, and lines that do not match the record
    JSON.stringify(good) + '\n',
    `\n${JSON.stringify(good)}\n`,
    json({ ...good, repo: 'file:///elsewhere' }),
    json({ ...good, file: { ...file, mtimeNs: '5' } }),
    `${line} \n${JSON.stringify(good)}\n`,
    // cut short, or with more after the record
    `${line}\n${JSON.stringify(good)}`,
    `${line}\n${JSON.stringify(good)}\nmore\n`,
  ]) {
    t.is(parseMarker(text), undefined, text);
  }
  t.deepEqual(parseMarker(json(good)), good);
  t.is(formatMarker(good), json(good));
});

test('a marker whose repository the shell cannot match has an empty first line and still serves Node', (t) => {
  const odd: PushedMarker = {
    format: 1,
    repo: 'file:///srv/a\nb',
    name: NAME,
    key: 'k',
    rawSize: 1,
    rawCrc32c: 'c',
    file: { dev: '1', ino: '2', size: '3', mtimeNs: '4' },
  };
  t.is(shellLine(odd), undefined);
  t.true(formatMarker(odd).startsWith('\n{'));
  t.deepEqual(parseMarker(formatMarker(odd)), odd);
});

test('a marker for this repository and the unchanged file is taken once', async (t) => {
  const dir = await walDir();
  const marker = await markerFor(dir);
  await writeMarker(dir, marker);
  t.is((await stat(path.join(dir, MARKER_DIR))).mode & 0o777, 0o700);
  t.deepEqual(await takeMarker(dir, NAME, REPO, path.join(dir, NAME)), marker);
  t.is(await takeMarker(dir, NAME, REPO, path.join(dir, NAME)), undefined, 'consumed');
  t.deepEqual(await readdir(path.join(dir, MARKER_DIR)), []);
});

const stale: { why: string; change: (dir: string) => Promise<{ repo?: string; name?: string }> }[] = [
  { why: 'another repository', change: async () => ({ repo: 'gs://other-bucket' }) },
  // (a rewrite of the same size may keep the same mtime on a coarse clock; the size tells)
  { why: 'a file that grew since', change: async (dir) => (await writeFile(path.join(dir, NAME), Buffer.alloc(4097, 8)), {}) },
  { why: 'a file whose time changed', change: async (dir) => (await utimes(path.join(dir, NAME), new Date(1000), new Date(1000)), {}) },
  {
    why: 'a file replaced by another one',
    change: async (dir) => (
      await writeFile(path.join(dir, 'x'), Buffer.alloc(4096, 7)),
      await import('node:fs/promises').then((fs) => fs.rename(path.join(dir, 'x'), path.join(dir, NAME))),
      {}
    ),
  },
  { why: 'a missing file', change: async (dir) => (await import('node:fs/promises').then((fs) => fs.rm(path.join(dir, NAME))), {}) },
  {
    why: 'a marker written under another name',
    change: async (dir) => (
      await writeFile(
        path.join(dir, MARKER_DIR, NAME),
        formatMarker({ ...(await markerFor(dir).catch(() => ({}) as PushedMarker)), name: '000000010000000000000008' }),
      ),
      {}
    ),
  },
  { why: 'a damaged marker', change: async (dir) => (await writeFile(path.join(dir, MARKER_DIR, NAME), '{"format":1,'), {}) },
];

for (const { why, change } of stale) {
  test(`a marker is not trusted for ${why}, and is removed`, async (t) => {
    const dir = await walDir();
    await writeMarker(dir, await markerFor(dir));
    const { repo } = await change(dir);
    t.is(await takeMarker(dir, NAME, repo ?? REPO, path.join(dir, NAME)), undefined);
    t.deepEqual(await readdir(path.join(dir, MARKER_DIR)), []);
  });
}

test('no marker directory means no marker', async (t) => {
  const dir = await walDir();
  t.is(await takeMarker(dir, NAME, REPO, path.join(dir, NAME)), undefined);
});

test('markers of segments no longer ready are pruned, the others kept', async (t) => {
  const dir = await walDir();
  const other = '000000010000000000000008';
  await writeMarker(dir, await markerFor(dir));
  await writeMarker(dir, { ...(await markerFor(dir)), name: other });
  await pruneMarkers(dir, new Set([other]));
  t.deepEqual(await readdir(path.join(dir, MARKER_DIR)), [other]);
  await pruneMarkers(path.join(work.path, 'no-such-dir'), new Set());
});

test('a marker being written is not pruned, one left by a dead writer is', async (t) => {
  const dir = await walDir();
  await mkdir(path.join(dir, MARKER_DIR), { recursive: true });
  const fresh = path.join(dir, MARKER_DIR, `.${NAME}.123.abc`);
  const stale = path.join(dir, MARKER_DIR, `.${NAME}.456.def`);
  await writeFile(fresh, 'half');
  await writeFile(stale, 'half');
  const old = new Date(Date.now() - 10 * 60_000);
  await utimes(stale, old, old);
  await pruneMarkers(dir, new Set());
  t.deepEqual(await readdir(path.join(dir, MARKER_DIR)), [path.basename(fresh)]);
});
