/**
 * cloudbuild.yaml: valid, calls only npm scripts that exist, uses only
 * substitutions it declares, runs the steps the deployment issue lists in
 * order, and archives the same function bundles Terraform deploys.
 */
import { access, constants, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import test from 'ava';
import { loadModule, ROOT, TERRAFORM_DIR, type Body } from './terraform/hcl.ts';

/**
 * js-yaml comes with ava (through supertap); no YAML parser is a direct
 * dependency. v3 names its safe loader safeLoad, v4 load.
 */
interface JsYaml {
  load(text: string, options?: object): unknown;
  safeLoad?(text: string, options?: object): unknown;
}
const yaml = createRequire(import.meta.url)('js-yaml') as JsYaml;
const parseYaml = (text: string) => (yaml.safeLoad ?? yaml.load)(text, { filename: 'cloudbuild.yaml' });

interface Step {
  id?: string;
  name: string;
  entrypoint?: string;
  args?: string[];
  env?: string[];
  dir?: string;
  waitFor?: string[];
}
interface BuildConfig {
  steps: Step[];
  substitutions?: Record<string, string>;
  options?: Record<string, unknown>;
  timeout?: string;
}

const text = await readFile(path.join(ROOT, 'cloudbuild.yaml'), 'utf8');
const config = parseYaml(text) as BuildConfig;
const packageJson = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

/** Cloud Build's built-in substitutions that this file may use. */
const BUILT_IN = new Set([
  'PROJECT_ID',
  'PROJECT_NUMBER',
  'BUILD_ID',
  'LOCATION',
  'TRIGGER_NAME',
  'COMMIT_SHA',
  'SHORT_SHA',
  'REVISION_ID',
  'BRANCH_NAME',
  'TAG_NAME',
  'REPO_NAME',
  'REPO_FULL_NAME',
  'SERVICE_ACCOUNT_EMAIL',
]);

/** Everything a step runs, as one text: entrypoint, args and env. */
const stepText = (step: Step) => [step.entrypoint ?? '', ...(step.args ?? []), ...(step.env ?? [])].join('\n');
const stepById = (id: string) => config.steps.find((step) => step.id === id);

test('cloudbuild.yaml is a build config: steps with an image each, unique ids, a timeout', (t) => {
  t.true(Array.isArray(config.steps) && config.steps.length > 0);
  const ids = config.steps.map((step) => step.id);
  t.true(
    ids.every((id) => typeof id === 'string' && id !== ''),
    'every step has an id',
  );
  t.is(new Set(ids).size, ids.length, 'ids are unique');
  for (const step of config.steps) {
    t.is(typeof step.name, 'string', `${step.id}: name (the image)`);
    t.true(step.args === undefined || step.args.every((arg) => typeof arg === 'string'), `${step.id}: args are strings (quote numbers and booleans)`);
    for (const wait of step.waitFor ?? []) t.true(wait === '-' || ids.includes(wait), `${step.id} waits for unknown step ${wait}`);
  }
  t.regex(String(config.timeout), /^\d+s$/);
});

test('the steps install, type-check, test, bundle, pack, upload and deploy, in that order', (t) => {
  const order = ['npm-ci', 'typecheck', 'test', 'build', 'pack', 'upload-function-sources', 'terraform-init', 'terraform-plan', 'terraform-apply'];
  const ids = config.steps.map((step) => step.id!);
  const positions = order.map((id) => ids.indexOf(id));
  t.false(positions.includes(-1), `missing steps: ${order.filter((id) => !ids.includes(id)).join(', ')}`);
  t.deepEqual(
    positions,
    [...positions].sort((a, b) => a - b),
  );
  t.deepEqual(stepById('npm-ci')!.args, ['ci', '--no-audit', '--no-fund']);
  t.regex(stepText(stepById('test')!), /\.ci\/run/);
  t.regex(stepText(stepById('test')!), /google-cloud-cli-pubsub-emulator/);
  t.regex(stepText(stepById('test')!), /openjdk-\d+-jre-headless/);
  t.regex(stepText(stepById('pack')!), /\bnpm pack\b/);
  t.regex(stepText(stepById('terraform-plan')!), /terraform plan .*-out=tfplan/);
  t.regex(stepText(stepById('terraform-apply')!), /terraform apply -input=false tfplan/);
});

test('every npm script the build runs exists in package.json', (t) => {
  const called: string[] = [];
  for (const step of config.steps) {
    const words = stepText(step);
    for (const m of words.matchAll(/\bnpm run ([\w:.-]+)/g)) called.push(m[1]);
    if (step.entrypoint === 'npm' && step.args?.[0] === 'run') called.push(step.args[1]);
  }
  t.true(called.includes('typecheck') && called.includes('build'));
  for (const script of called) t.true(script in packageJson.scripts, `npm run ${script}: no such script in package.json`);
});

test('every substitution used is declared or built in, and every declared one is used', (t) => {
  const declared = new Set(Object.keys(config.substitutions ?? {}));
  for (const name of declared) t.regex(name, /^_[A-Z0-9_]+$/, `user substitutions start with an underscore: ${name}`);
  const used = new Set<string>();
  const scan = (value: string, where: string) => {
    // $$ is a literal $ for the shell; anything else after $ is a substitution
    for (const m of value.matchAll(/\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$(.)/g)) {
      if (m[0] === '$$') continue;
      const name = m[1] ?? m[2];
      if (name === undefined) {
        t.fail(`${where}: a lone $ before ${JSON.stringify(m[3])} (write $$ for the shell)`);
        continue;
      }
      t.true(declared.has(name) || BUILT_IN.has(name), `${where}: \${${name}} is not declared in substitutions`);
      used.add(name);
    }
  };
  for (const step of config.steps) for (const [i, value] of [stepText(step), step.dir ?? '', step.name].entries()) scan(value, `${step.id} [${i}]`);
  for (const [name, value] of Object.entries(config.substitutions ?? {})) scan(String(value), `substitution ${name}`);
  for (const name of declared) t.true(used.has(name), `substitution ${name} is declared but never used`);
});

test('the terraform steps run in terraform/ with Terraform 1.5 or later', (t) => {
  for (const id of ['terraform-init', 'terraform-plan', 'terraform-apply']) {
    const step = stepById(id)!;
    t.is(step.dir, 'terraform', id);
    const m = /^hashicorp\/terraform:(\d+)\.(\d+)/.exec(step.name);
    t.truthy(m, `${id}: image ${step.name}`);
    t.true(Number(m![1]) > 1 || Number(m![2]) >= 5, `${id}: ${step.name}`);
  }
  t.regex(stepText(stepById('terraform-init')!), /terraform fmt -check -recursive/);
  t.regex(stepText(stepById('terraform-init')!), /terraform validate/);
});

/** A shell glob (only `*`) as a RegExp over a path relative to the repository. */
const globToRegExp = (glob: string) =>
  new RegExp(
    `^${glob
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]*')}$`,
  );

test("the function sources it uploads are the bundles the functions' Terraform deploys", async (t) => {
  const root = await loadModule(TERRAFORM_DIR);
  const pipeline = await loadModule(path.join(TERRAFORM_DIR, 'modules', 'pipeline'));
  // terraform/: source_dir = coalesce(var.function_source_dir, "${path.module}/../dist/functions"), not overridden by the build
  const call = root.modules.get('pipeline') as Body;
  const m = /^\$\{coalesce\(var\.function_source_dir, "\$\{path\.module\}\/([^"]+)"\)\}$/.exec(String(call.source_dir));
  t.truthy(m, `unexpected source_dir ${String(call.source_dir)}`);
  const deployDir = path.relative(ROOT, path.resolve(TERRAFORM_DIR, m![1]));
  t.is(deployDir, path.join('dist', 'functions'));
  for (const id of ['terraform-plan', 'terraform-apply'])
    t.notRegex(stepText(stepById(id)!), /function_source_dir/, `${id} must deploy the default dist/functions`);
  t.is((pipeline.resources.get('google_storage_bucket_object.source') as Body).source, '${var.source_dir}/${each.key}.zip');

  const uploaded = [...stepText(stepById('upload-function-sources')!).matchAll(/(?:^|\s)(dist\/functions\/\S+\.zip)(?=\s|$)/g)].map((u) => u[1]);
  t.deepEqual(uploaded, ['dist/functions/*.zip']);
  for (const name of Object.keys(pipeline.locals.get('functions') as Body)) {
    const deployed = path.posix.join(deployDir.split(path.sep).join('/'), `${name}.zip`);
    t.true(
      uploaded.some((glob) => globToRegExp(glob).test(deployed)),
      `${deployed} is deployed but not uploaded`,
    );
  }

  // and the build step writes them there: the script it runs calls build-functions.mjs, whose default output directory that is
  const build = stepById('build')!;
  t.deepEqual(build.args, ['run', 'build']);
  t.regex(packageJson.scripts.build, /node scripts\/build-functions\.mjs(?: |$)/);
  const script = await readFile(path.join(ROOT, 'scripts', 'build-functions.mjs'), 'utf8');
  t.regex(script, /outdir: \{ type: 'string', default: 'dist\/functions' \}/);
});

test('the test step runs the CI script that exists in this repository', async (t) => {
  await t.notThrowsAsync(access(path.join(ROOT, '.ci', 'run'), constants.X_OK));
  t.regex(stepText(stepById('test')!), /GCWAL_CI_SKIP_NPM_CI=1/, 'npm ci ran in its own step');
});
