/** The PITR scenario (test/agent/pitr-scenario.ts) on a file:// repository. */
import test from 'ava';
import path from 'node:path';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { runPitrScenario } from './pitr-scenario.ts';

let agent: InstalledAgent;
let work: TempDir;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('pitr', { owner: 'postgres' });
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

test('a cluster archived under load restores to a point in time, then follows a promotion to timeline 2', async (t) => {
  await runPitrScenario(t, {
    agent,
    workDir: work.path,
    env: { GCWAL_REPO: `file://${path.join(work.path, 'repo')}` },
    cleanup: (fn) => cleanups.push(fn),
  });
});
