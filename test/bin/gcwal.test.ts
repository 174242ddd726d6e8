import test from 'ava';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../helpers/exec.ts';
import { projectRoot } from '../helpers/install.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { childEnv } from '../helpers/users.ts';

test('the launcher runs the built CLI', async (t) => {
  const { version } = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
  const result = await exec(process.execPath, [path.join(projectRoot, 'bin', 'gcwal.js'), '--version'], { env: await childEnv() });
  t.is(result.stderr, '');
  t.is(result.stdout, `gcwal ${version}\n`);
  t.is(result.code, 0);
});

test('the launcher says to build when there is no build', async (t) => {
  const tmp = await makeTempDir('unbuilt');
  t.teardown(tmp.cleanup);
  await mkdir(path.join(tmp.path, 'bin'));
  await copyFile(path.join(projectRoot, 'bin', 'gcwal.js'), path.join(tmp.path, 'bin', 'gcwal.js'));
  // A package.json with "type": "module", as beside the real launcher.
  await copyFile(path.join(projectRoot, 'package.json'), path.join(tmp.path, 'package.json'));

  const result = await exec(process.execPath, [path.join(tmp.path, 'bin', 'gcwal.js'), '--version'], { env: await childEnv() });
  t.is(result.stdout, '');
  t.is(result.stderr, 'gcwal: error: gcwal is not built: run npm run build\n');
  t.not(result.code, 0);
});
