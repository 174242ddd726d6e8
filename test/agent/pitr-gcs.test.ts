/**
 * The PITR scenario (test/agent/pitr-scenario.ts) on gs://, through the
 * local GCS emulator with auth enforced. The agent holds no key: it gets
 * its token from the metadata-server stand-in (Application Default
 * Credentials), and its identity may only create and read objects.
 */
import test from 'ava';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { runPitrScenario } from './pitr-scenario.ts';

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('pitr-gcs', { owner: 'postgres' });
  stack = await startLocalStack({ prefix: 'clusters/pitr' });
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

test('on gs:// with keyless auth, a cluster restores to a point in time and follows a promotion', async (t) => {
  t.true(stack.env.GCWAL_REPO.startsWith('gs://'));
  t.falsy(stack.env.GOOGLE_APPLICATION_CREDENTIALS, 'no key file anywhere');
  await runPitrScenario(t, { agent, workDir: work.path, env: { ...stack.env }, cleanup: (fn) => cleanups.push(fn) });
  // The agent's identity cannot delete, so everything it wrote is still there, once.
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o?prefix=clusters/pitr/`, {
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
  });
  const names = ((await res.json()) as { items: { name: string }[] }).items.map((i) => i.name);
  t.true(names.includes('clusters/pitr/gcwal.json'));
  t.true(names.includes('clusters/pitr/wal/00000002.history'));
  t.true(names.some((n) => /^clusters\/pitr\/backups\/base_[0-9A-F]{24}\/backup\.json$/.test(n)));
  t.is(new Set(names).size, names.length);
});
