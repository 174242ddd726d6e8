/** `npm run demo` is the README's first command: it must keep working. */
import test from 'ava';
import path from 'node:path';
import { exec } from '../helpers/exec.ts';
import { projectRoot } from '../helpers/install.ts';

test('the demo archives to gs://, restores to the point before the disaster and reports a match', async (t) => {
  const r = await exec(process.execPath, ['--import=tsx', path.join(projectRoot, 'local', 'demo.ts')], { cwd: projectRoot, timeoutMs: 240_000 });
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, /GCWAL_REPO=gs:\/\/gcwal-local\/demo-cluster/);
  t.regex(r.stdout, /no key file anywhere/);
  t.regex(r.stdout, /MATCH: the restore holds exactly the data committed before the target time/);
  t.notRegex(r.stdout, /MISMATCH/);
});
