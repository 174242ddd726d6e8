/**
 * Every entry point Terraform deploys is a function the code registers:
 * functions/<name>.ts calls cloudEvent('<name>', ...) and functions/index.ts
 * imports it, and the bundler builds exactly those functions.
 */
import { readFile } from 'node:fs/promises';
import type { ExecutionContext } from 'ava';
import path from 'node:path';
import test from 'ava';
import { exec } from '../../local/testkit/exec.ts';
import { loadAllModules, moduleAt, ROOT, type Body } from './hcl.ts';

const modules = await loadAllModules();
const pipeline = moduleAt(modules, 'terraform/modules/pipeline');
/** A file under functions/, or a failed test naming it when it does not exist. */
async function source(t: ExecutionContext, file: string): Promise<string | undefined> {
  try {
    return await readFile(path.join(ROOT, 'functions', file), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    t.fail(`functions/${file} does not exist, but Terraform deploys it`);
    return undefined;
  }
}

const entryPoints = Object.values(pipeline.locals.get('functions') as Record<string, Body>).map((row) => String(row.entry_point));

test('Terraform deploys the four functions', (t) => {
  t.deepEqual([...entryPoints].sort(), ['catalogue', 'prune', 'validate', 'watchdog']);
});

for (const name of entryPoints) {
  test(`functions/${name}.ts registers the CloudEvent function ${name} exactly once`, async (t) => {
    const text = await source(t, `${name}.ts`);
    if (text === undefined) return;
    const registrations = [...text.matchAll(/\bcloudEvent\(\s*(['"])([^'"]+)\1/g)].map((m) => m[2]);
    t.deepEqual(registrations, [name]);
    t.regex(text, /from '@google-cloud\/functions-framework'/);
  });
}

test('functions/index.ts imports every deployed function', async (t) => {
  const text = await source(t, 'index.ts');
  if (text === undefined) return;
  for (const name of entryPoints)
    t.regex(text, new RegExp(`(?:import|export)\\s+(?:[^'"]*?\\s*from\\s+)?'\\./${name}\\.ts'`), `functions/index.ts does not import ./${name}.ts`);
});

test('the bundler builds exactly the functions Terraform deploys', async (t) => {
  const result = await exec(process.execPath, [path.join(ROOT, 'scripts', 'build-functions.mjs'), '--list'], { env: { PATH: process.env.PATH } });
  t.is(result.code, 0, result.stderr);
  t.deepEqual((JSON.parse(result.stdout) as string[]).sort(), [...entryPoints].sort());
});
