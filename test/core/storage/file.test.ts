import test from 'ava';
import { mkdtemp, rm, writeFile, readFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { FileStorage } from '../../../core/storage/file.ts';
import { collect, storageContract } from './contract.ts';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-file-'));
  dirs.push(dir);
  return new FileStorage(pathToFileURL(join(dir, 'repo')).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

storageContract(test, 'file', fresh);

test('file: objects are plain files under the root so they can be read by hand', async (t) => {
  const s = await fresh();
  await s.write('wal/000000010000000000000001', Readable.from([Buffer.from('raw bytes')]));
  t.is(await readFile(join(s.root, 'wal', '000000010000000000000001'), 'utf8'), 'raw bytes');
});

test('file: an object whose metadata sidecar was lost still stats with its checksum', async (t) => {
  const s = await fresh();
  await mkdir(join(s.root, 'wal'), { recursive: true });
  await writeFile(join(s.root, 'wal', 'orphan'), 'data');
  const info = await s.stat('wal/orphan');
  t.is(info?.size, 4);
  t.deepEqual(info?.metadata, {});
  t.is((await collect(await s.read('wal/orphan'))).toString(), 'data');
});

test('file: keys that escape the root are refused', async (t) => {
  const s = await fresh();
  for (const key of ['../x', 'a/../../x', '/abs', 'a//b', '.gcwal/meta/x']) {
    await t.throwsAsync(s.write(key, Readable.from([Buffer.from('x')])), { message: /invalid object key/ }, key);
  }
});
