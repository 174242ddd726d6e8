/**
 * scripts/build-functions.mjs on stand-in function sources (generated here,
 * importing the real core modules the functions use): one self-contained
 * bundle per function that the functions-framework loads and finds its
 * function in, a package.json that installs only what cannot be bundled at
 * the locked versions, and a deterministic zip of exactly those two files.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { exec } from '../../local/testkit/exec.ts';
import { ROOT } from '../terraform/hcl.ts';

const NAMES = ['validate', 'catalogue', 'prune', 'watchdog'];
const SCRIPT = path.join(ROOT, 'scripts', 'build-functions.mjs');
const lock = JSON.parse(await readFile(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };
const locked = (name: string) => lock.packages[`node_modules/${name}`].version;

/**
 * A scratch directory inside the repository: a bundle resolves the packages
 * it leaves external from node_modules above it, as a deployed function does
 * from its own.
 */
async function scratch(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  await mkdir(path.join(ROOT, '.tmp'), { recursive: true });
  const dir = await mkdtemp(path.join(ROOT, '.tmp', 'build-functions-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Stand-ins for functions/<name>.ts: register the function and touch the codecs and the storage driver. */
async function writeSources(src: string, names: readonly string[]): Promise<void> {
  await mkdir(src, { recursive: true });
  const core = (file: string) => JSON.stringify(path.join(ROOT, 'core', file));
  for (const name of names) {
    await writeFile(
      path.join(src, `${name}.ts`),
      [
        "import { cloudEvent } from '@google-cloud/functions-framework';",
        `import { codecFromName } from ${core('codec/index.ts')};`,
        `import { openStorage } from ${core('storage/open.ts')};`,
        `cloudEvent(${JSON.stringify(name)}, async (event) => {`,
        "  const codec = codecFromName('lzo', 'x');",
        '  console.log(event.type, codec.name, typeof openStorage);',
        '});',
        '',
      ].join('\n'),
    );
  }
  await writeFile(path.join(src, 'index.ts'), names.map((name) => `import './${name}.ts';\n`).join(''));
}

async function build(src: string, out: string) {
  return exec(process.execPath, [SCRIPT, '--src', src, '--outdir', out], { env: { PATH: process.env.PATH }, timeoutMs: 120_000 });
}

/** In a fresh node: import the bundle, then ask the framework's registry for the function. */
async function registered(bundle: string, names: readonly string[]): Promise<string[]> {
  const program = [
    `await import(${JSON.stringify(bundle)});`,
    "const { getFunction } = await import('@google-cloud/functions-framework/testing');",
    `console.log(JSON.stringify(${JSON.stringify(names)}.filter((name) => typeof getFunction(name) === 'function')));`,
  ].join('\n');
  const result = await exec(process.execPath, ['--input-type=module', '-e', program], { cwd: path.dirname(bundle), env: { PATH: process.env.PATH } });
  if (result.code !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout) as string[];
}

test('each function is bundled into one file with a package.json and zipped, and the framework finds it', async (t) => {
  const { dir, cleanup } = await scratch();
  t.teardown(cleanup);
  const src = path.join(dir, 'src');
  const out = path.join(dir, 'dist');
  await writeSources(src, NAMES);
  const result = await build(src, out);
  t.is(result.code, 0, result.stderr);

  for (const name of NAMES) {
    const bundle = path.join(out, name, 'index.mjs');
    const manifest = JSON.parse(await readFile(path.join(out, name, 'package.json'), 'utf8'));
    t.is(manifest.type, 'module');
    t.is(manifest.main, 'index.mjs');
    t.true(manifest.private);
    // the framework is always installed; the codecs need their native and wasm packages; lzo (the native encoder) never
    t.is(manifest.dependencies['@google-cloud/functions-framework'], locked('@google-cloud/functions-framework'));
    t.is(manifest.dependencies['lzo-wasm'], locked('lzo-wasm'));
    t.is(manifest.dependencies['zstd-napi'], locked('zstd-napi'));
    t.is(manifest.dependencies['@google-cloud/storage'], locked('@google-cloud/storage'));
    t.false('lzo' in manifest.dependencies);
    t.false('sse4_crc32' in manifest.dependencies);

    const listing = await exec('unzip', ['-Z1', path.join(out, `${name}.zip`)], { env: { PATH: process.env.PATH } });
    t.deepEqual(listing.stdout.split('\n').filter(Boolean), ['index.mjs', 'package.json']);
    const zipped = await exec('sh', ['-c', 'unzip -p "$1" index.mjs | cmp - "$2" && echo same', 'sh', path.join(out, `${name}.zip`), bundle], {
      env: { PATH: process.env.PATH },
    });
    t.is(zipped.stdout.trim(), 'same');

    t.deepEqual(await registered(bundle, NAMES), [name], `${name}/index.mjs registers only ${name}`);
  }
  t.deepEqual(await registered(path.join(out, 'index.mjs'), NAMES), NAMES, 'index.mjs registers all four for the local stack');
});

test('building twice gives byte-identical archives', async (t) => {
  const { dir, cleanup } = await scratch();
  t.teardown(cleanup);
  const src = path.join(dir, 'src');
  await writeSources(src, NAMES);
  t.is((await build(src, path.join(dir, 'a'))).code, 0);
  t.is((await build(src, path.join(dir, 'b'))).code, 0);
  for (const name of NAMES) t.deepEqual(await readFile(path.join(dir, 'a', `${name}.zip`)), await readFile(path.join(dir, 'b', `${name}.zip`)), name);
});

test('a missing or broken function source fails the build, naming the file, and leaves no stale archive', async (t) => {
  const { dir, cleanup } = await scratch();
  t.teardown(cleanup);
  const src = path.join(dir, 'src');
  const out = path.join(dir, 'dist');
  await writeSources(src, NAMES);
  t.is((await build(src, out)).code, 0);
  await rm(path.join(src, 'prune.ts'));
  const result = await build(src, out);
  t.is(result.code, 1);
  t.regex(result.stderr, /prune\.ts missing/);

  await writeSources(src, NAMES);
  await writeFile(path.join(src, 'validate.ts'), 'this is not typescript {');
  const broken = await build(src, out);
  t.is(broken.code, 1);
  t.regex(broken.stderr, /validate\.ts/);
  await t.throwsAsync(readFile(path.join(out, 'validate.zip')), { code: 'ENOENT' });
});

test('--list prints the functions it builds', async (t) => {
  const result = await exec(process.execPath, [SCRIPT, '--list'], { env: { PATH: process.env.PATH } });
  t.is(result.code, 0);
  t.deepEqual(JSON.parse(result.stdout), NAMES);
});
