import anyTest, { type TestFn } from 'ava';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../../local/testkit/exec.ts';
import { installAgent, projectRoot, runtimePackages, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { asPostgres, childEnv } from '../../../local/testkit/users.ts';

// One install per test file, shared through the context: created before the tests, removed after them.
const test = anyTest as TestFn<{ agent: InstalledAgent }>;

test.before(async (t) => {
  t.context.agent = await installAgent();
});

test.after.always(async (t) => {
  await t.context.agent?.cleanup();
});

test('the installed agent prints its version when run as the postgres user', async (t) => {
  const { version } = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
  const result = await runGcwal(t.context.agent.command, ['--version'], { asUser: 'postgres' });
  t.is(result.stderr, '');
  t.is(result.code, 0);
  t.is(result.stdout, `gcwal ${version}\n`);
});

test('the installed agent exits non-zero on an unknown command', async (t) => {
  const result = await runGcwal(t.context.agent.command, ['no-such-command'], { asUser: 'postgres' });
  t.not(result.code, 0);
  t.regex(result.stderr, /no-such-command/);
});

test('the install directory is readable by every user', async (t) => {
  const { dir, command } = t.context.agent;
  t.is((await stat(dir)).mode & 0o777, 0o755);
  t.is((await stat(command)).mode & 0o777, 0o755);
  // Readable by all (the bundle may also be executable: esbuild keeps the entry's shebang).
  t.is((await stat(path.join(dir, 'gcwal.mjs'))).mode & 0o444, 0o444);
  t.is((await stat(path.join(dir, 'gcwal.mjs.map'))).mode & 0o777, 0o644);
  t.is((await stat(path.join(dir, 'node_modules', 'lzo', 'package.json'))).mode & 0o777, 0o644);
});

test('each external package loads from the install as it does from the project', async (t) => {
  const externals = JSON.parse(await readFile(path.join(projectRoot, 'dist', 'gcwal.externals.json'), 'utf8')) as string[];
  t.true(externals.length > 0);
  // Load each package the way the bundle does: require() relative to gcwal.mjs.
  const probe = (from: string) =>
    `const r = require('node:module').createRequire(${JSON.stringify(from)}); const out = {};` +
    `for (const n of ${JSON.stringify(externals)}) { try { r(n); out[n] = 'loads'; } catch (e) { out[n] = 'fails'; } }` +
    'process.stdout.write(JSON.stringify(out));';
  const inProject = await exec(process.execPath, ['-e', probe(path.join(projectRoot, 'dist', 'gcwal.mjs'))], { env: await childEnv() });
  const [file, args] = asPostgres(process.execPath, ['-e', probe(path.join(t.context.agent.dir, 'gcwal.mjs'))]);
  const inInstall = await exec(file, args, { env: await childEnv({}, true), cwd: t.context.agent.dir });
  t.is(inInstall.stderr, '');
  t.deepEqual(JSON.parse(inInstall.stdout), JSON.parse(inProject.stdout));
  // The native codecs must load: they are what makes wal-push fast.
  t.like(JSON.parse(inInstall.stdout), { lzo: 'loads', 'zstd-napi': 'loads', 'fast-crc32c': 'loads' });
});

test('runtime packages include dependencies found through package.json, not type packages', async (t) => {
  const dirs = (await runtimePackages(['lzo', 'zstd-napi', 'fast-crc32c'], projectRoot)).map((dir) => path.relative(projectRoot, dir));
  t.true(dirs.includes(path.join('node_modules', 'lzo')));
  // lzo requires bindings; fast-crc32c has sse4_crc32 as an optional dependency.
  t.true(dirs.includes(path.join('node_modules', 'bindings')));
  t.true(dirs.includes(path.join('node_modules', 'sse4_crc32')));
  t.false(dirs.some((dir) => dir.includes('@types')));
  // Nested packages travel inside their parent's directory.
  t.false(dirs.some((dir) => dirs.some((outer) => outer !== dir && dir.startsWith(outer + path.sep))));
});

test('a package that is not installed is reported with a hint', async (t) => {
  const error = await t.throwsAsync(runtimePackages(['gcwal-no-such-package'], projectRoot));
  t.regex(error?.message ?? '', /gcwal-no-such-package .* is not installed .*: run npm ci/);
});

test('installing without a build says to run the build', async (t) => {
  const error = await t.throwsAsync(installAgent({ distDir: path.join(projectRoot, 'no-such-dist') }));
  t.regex(error?.message ?? '', /run npm run build/);
});
