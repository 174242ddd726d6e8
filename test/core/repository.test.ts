import test from 'ava';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureRepositoryIdentity, readRepositoryIdentity } from '../../core/repository.ts';
import { FileStorage } from '../../core/storage/file.ts';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-repo-id-'));
  dirs.push(dir);
  return new FileStorage(pathToFileURL(dir).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const cluster = { systemIdentifier: '7311234567890123456', walSegmentSize: 16 * 1024 * 1024 };

test('a fresh repository has no identity', async (t) => {
  t.is(await readRepositoryIdentity(await fresh()), undefined);
});

test('the first cluster claims the repository and later checks pass', async (t) => {
  const s = await fresh();
  const first = await ensureRepositoryIdentity(s, cluster);
  t.is(first.systemIdentifier, cluster.systemIdentifier);
  const again = await ensureRepositoryIdentity(s, cluster);
  t.is(again.created, first.created);
  t.deepEqual(await readRepositoryIdentity(s), first);
});

test('another cluster is refused with cluster_mismatch naming both identifiers', async (t) => {
  const s = await fresh();
  await ensureRepositoryIdentity(s, cluster);
  const err = await t.throwsAsync(ensureRepositoryIdentity(s, { ...cluster, systemIdentifier: '7311234567890123999' }));
  t.is((err as { code?: string }).code, 'cluster_mismatch');
  t.regex(err!.message, /belongs to cluster 7311234567890123456, not to this cluster 7311234567890123999/);
});

test('a different WAL segment size is refused', async (t) => {
  const s = await fresh();
  await ensureRepositoryIdentity(s, cluster);
  const err = await t.throwsAsync(ensureRepositoryIdentity(s, { ...cluster, walSegmentSize: 1024 * 1024 }));
  t.is((err as { code?: string }).code, 'cluster_mismatch');
});

test('racing first pushes agree on one identity', async (t) => {
  const s = await fresh();
  const results = await Promise.allSettled([ensureRepositoryIdentity(s, cluster), ensureRepositoryIdentity(s, cluster), ensureRepositoryIdentity(s, { ...cluster, systemIdentifier: '1' })]);
  const fulfilled = results.filter((r) => r.status === 'fulfilled');
  const stored = await readRepositoryIdentity(s);
  // Whoever won, the losers of another cluster are refused and the same cluster is accepted.
  for (const [i, r] of results.entries()) {
    const mine = i < 2 ? cluster.systemIdentifier : '1';
    t.is(r.status === 'fulfilled', mine === stored!.systemIdentifier, `racer ${i}`);
  }
  t.true(fulfilled.length >= 1);
});

test('a damaged identity is reported as corrupt, not as absent', async (t) => {
  const s = await fresh();
  await mkdir(s.root, { recursive: true });
  await writeFile(join(s.root, 'gcwal.json'), '{not json');
  const err = await t.throwsAsync(readRepositoryIdentity(s));
  t.is((err as { code?: string }).code, 'corrupt');
});
