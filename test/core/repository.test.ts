import test from 'ava';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRepositoryIdentity, readRepositoryIdentity, requireRepositoryFor, requireRepositoryIdentity } from '../../core/repository.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';

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

test("repo-create's identity claims the repository for its cluster and creating it again changes nothing", async (t) => {
  const s = await fresh();
  const first = await createRepositoryIdentity(s, cluster);
  t.is(first.systemIdentifier, cluster.systemIdentifier);
  const again = await createRepositoryIdentity(s, cluster);
  t.is(again.created, first.created);
  t.deepEqual(await readRepositoryIdentity(s), first);
});

test('another cluster is refused with cluster_mismatch naming both identifiers', async (t) => {
  const s = await fresh();
  await createRepositoryIdentity(s, cluster);
  const err = await t.throwsAsync(createRepositoryIdentity(s, { ...cluster, systemIdentifier: '7311234567890123999' }));
  t.is((err as { code?: string }).code, 'cluster_mismatch');
  t.regex(err!.message, /belongs to cluster 7311234567890123456, not to this cluster 7311234567890123999/);
});

test('a different WAL segment size is refused', async (t) => {
  const s = await fresh();
  await createRepositoryIdentity(s, cluster);
  const err = await t.throwsAsync(createRepositoryIdentity(s, { ...cluster, walSegmentSize: 1024 * 1024 }));
  t.is((err as { code?: string }).code, 'cluster_mismatch');
});

test('racing creations agree on one identity', async (t) => {
  const s = await fresh();
  const results = await Promise.allSettled([
    createRepositoryIdentity(s, cluster),
    createRepositoryIdentity(s, cluster),
    createRepositoryIdentity(s, { ...cluster, systemIdentifier: '1' }),
  ]);
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

test('requiring an identity never creates one: a repository without gcwal.json is repo_missing (exit 13)', async (t) => {
  const s = await fresh();
  for (const call of [() => requireRepositoryIdentity(s), () => requireRepositoryFor(s, cluster)]) {
    const err = await t.throwsAsync(call());
    t.like(err, { code: 'repo_missing', exitCode: 13 });
    t.regex(err!.message, /has no gcwal\.json/);
    t.regex((err as unknown as { hint: string }).hint, /gcwal repo-create/);
  }
  t.is(await readRepositoryIdentity(s), undefined, 'still no identity');
});

test("requiring a cluster's repository accepts its own and refuses another cluster", async (t) => {
  const s = await fresh();
  const created = await createRepositoryIdentity(s, cluster);
  t.deepEqual(await requireRepositoryFor(s, cluster), created);
  const err = await t.throwsAsync(requireRepositoryFor(s, { ...cluster, systemIdentifier: '7311234567890123999' }));
  t.is((err as { code?: string }).code, 'cluster_mismatch');
});
