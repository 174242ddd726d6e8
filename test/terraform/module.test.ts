/**
 * Static checks of terraform/ (root module, modules/, examples/): the Google
 * provider cannot be downloaded here, so what `terraform validate` would
 * catch about names and wiring is checked from the parsed HCL, and the
 * validation blocks are exercised with `terraform console`, which needs no
 * provider. `terraform validate` itself runs where a provider is available.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { exec } from '../../local/testkit/exec.ts';
import { dynamicBlockNames, loadAllModules, moduleAt, references, TERRAFORM_DIR, type TfModule } from './hcl.ts';

const modules = await loadAllModules();

/** The terraform binary, or undefined when it is not installed. */
function findTerraform(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v terraform'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const terraform = findTerraform();
const NO_TERRAFORM = 'skipped: no terraform binary on PATH (install Terraform >= 1.5 to run it)';

/** A directory holding registry.terraform.io/hashicorp/google, if any: init can install from it offline. */
function findGoogleProvider(): string | undefined {
  const candidates = [process.env.TF_PLUGIN_CACHE_DIR, path.join(os.homedir(), '.terraform.d', 'plugins'), path.join(TERRAFORM_DIR, '.terraform', 'providers')];
  return candidates.find(
    (dir): dir is string =>
      !!dir &&
      existsSync(path.join(dir, 'registry.terraform.io', 'hashicorp', 'google')) &&
      readdirSync(path.join(dir, 'registry.terraform.io', 'hashicorp', 'google')).length > 0,
  );
}
const providerDir = findGoogleProvider();

/** Terraform with no CLI configuration of the user's (no credentials, no mirrors) and no colour. */
function terraformEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), TF_IN_AUTOMATION: '1', TF_CLI_CONFIG_FILE: '/dev/null', CHECKPOINT_DISABLE: '1' };
}

const label = (mod: TfModule) => mod.rel;

test('the configuration has a root module, the three sub-modules and the three examples', (t) => {
  t.deepEqual(modules.map(label), [
    'terraform',
    'terraform/modules/bucket',
    'terraform/modules/identities',
    'terraform/modules/pipeline',
    'terraform/examples/gke-workload-identity',
    'terraform/examples/vm',
    'terraform/examples/workload-identity-federation',
  ]);
});

test('every module pins terraform >= 1.5 and the google provider to 6.x', (t) => {
  for (const mod of modules) {
    const required = mod.terraform.map((block) => block.required_version).filter(Boolean);
    t.deepEqual(required, ['>= 1.5'], `${mod.rel}: required_version`);
    const providers = mod.terraform.flatMap((block) => (block.required_providers ?? []) as Record<string, { source: string; version: string }>[]);
    t.is(providers.length, 1, `${mod.rel}: one required_providers block`);
    t.deepEqual(Object.keys(providers[0]), ['google'], `${mod.rel}: only the google provider (no google-beta)`);
    t.is(providers[0].google.source, 'hashicorp/google');
    t.regex(providers[0].google.version, /^~> 6\.\d+$/, `${mod.rel}: google version`);
  }
});

test('every variable has a description and a type, and every output a description', (t) => {
  for (const mod of modules) {
    for (const [name, body] of mod.variables) {
      t.true(typeof body.description === 'string' && body.description.length > 10, `${mod.rel}: variable ${name} has no description`);
      t.truthy(body.type, `${mod.rel}: variable ${name} has no type`);
    }
    for (const [name, body] of mod.outputs)
      t.true(typeof body.description === 'string' && body.description.length > 10, `${mod.rel}: output ${name} has no description`);
  }
});

test('every input of the root module that is not a bool or a list of addresses is validated', (t) => {
  const root = moduleAt(modules, 'terraform');
  for (const [name, body] of root.variables) {
    if (body.type === '${bool}') continue;
    t.true(Array.isArray(body.validation) && body.validation.length > 0, `variable ${name} has no validation block`);
  }
});

test('every declared variable is used in its module', async (t) => {
  const problems: string[] = [];
  for (const mod of modules) {
    const used = new Set((await references(mod)).filter((r) => r.value.startsWith('var.')).map((r) => r.value.split('.')[1]));
    for (const name of mod.variables.keys()) if (!used.has(name)) problems.push(`${mod.rel}: variable ${name} is declared but never used`);
  }
  t.deepEqual(problems, []);
});

test('every reference resolves to a declaration: variables, locals, resources, data sources, module outputs', async (t) => {
  const byDir = new Map(modules.map((mod) => [mod.dir, mod]));
  const problems: string[] = [];
  let checked = 0;
  for (const mod of modules) {
    const iterators = dynamicBlockNames(mod);
    for (const ref of await references(mod)) {
      checked++;
      const parts = ref.value.split('.');
      const at = `${mod.rel}/${ref.file} ${ref.where}: ${ref.value}`;
      switch (parts[0]) {
        case 'var':
          if (!mod.variables.has(parts[1])) problems.push(`${at}: no such variable`);
          break;
        case 'local':
          if (!mod.locals.has(parts[1])) problems.push(`${at}: no such local`);
          break;
        case 'data':
          if (!mod.data.has(parts.slice(0, 3).join('.'))) problems.push(`${at}: no such data source`);
          break;
        case 'module': {
          const call = mod.modules.get(parts[1]);
          const child = call && byDir.get(path.resolve(mod.dir, call.source as string));
          if (!call) problems.push(`${at}: no such module`);
          else if (!child) problems.push(`${at}: module source is not a module of this repository`);
          else if (parts.length > 2 && !child.outputs.has(parts[2])) problems.push(`${at}: ${child.rel} has no output ${parts[2]}`);
          break;
        }
        case 'each':
        case 'count':
        case 'path':
        case 'self':
        case 'terraform':
          break;
        default:
          if (!iterators.has(parts[0]) && !mod.resources.has(parts.slice(0, 2).join('.'))) problems.push(`${at}: no such resource`);
      }
    }
  }
  t.true(checked > 300, `only ${checked} references found: is the parser reading the files?`);
  t.deepEqual(problems, []);
});

test('every module call passes only variables the module declares, and every one it requires', (t) => {
  const byDir = new Map(modules.map((mod) => [mod.dir, mod]));
  const META = new Set(['source', 'depends_on', 'providers', 'count', 'for_each', 'version']);
  const problems: string[] = [];
  let calls = 0;
  for (const mod of modules) {
    for (const [name, call] of mod.modules) {
      calls++;
      const child = byDir.get(path.resolve(mod.dir, call.source as string));
      if (!child) {
        problems.push(`${mod.rel}: module ${name} source ${String(call.source)} is not in the repository`);
        continue;
      }
      const passed = Object.keys(call).filter((key) => !META.has(key));
      for (const key of passed) if (!child.variables.has(key)) problems.push(`${mod.rel}: module ${name} passes ${key}, which ${child.rel} does not declare`);
      for (const [variable, body] of child.variables) {
        if (!('default' in body) && !passed.includes(variable)) problems.push(`${mod.rel}: module ${name} does not pass required variable ${variable}`);
      }
    }
  }
  t.is(calls, 6, 'the root calls three modules and each example calls the root');
  t.deepEqual(problems, []);
});

test('every resource and data source that belongs to a project names it explicitly', (t) => {
  // These take their project from a parent resource named by a full ID.
  const WITHOUT_PROJECT = new Set([
    'google_storage_bucket_object',
    'google_storage_bucket_iam_member',
    'google_kms_crypto_key_iam_member',
    'google_service_account_iam_member',
  ]);
  for (const mod of modules) {
    for (const [address, body] of mod.resources) {
      if (WITHOUT_PROJECT.has(address.split('.')[0])) continue;
      t.truthy(body.project, `${mod.rel}: ${address} has no project (the root module configures no provider, so it must)`);
    }
    for (const [address, body] of mod.data) t.truthy(body.project ?? body.project_id, `${mod.rel}: ${address} has no project`);
  }
});

if (terraform) {
  test('terraform fmt -check passes on terraform/', async (t) => {
    const result = await exec(terraform, ['fmt', '-check', '-recursive', '-diff', '-no-color', TERRAFORM_DIR], { env: terraformEnv() });
    t.is(result.code, 0, `terraform fmt would change:\n${result.stdout}${result.stderr}`);
  });
} else {
  test.skip(`terraform fmt -check passes on terraform/ (${NO_TERRAFORM})`, (t) => t.pass());
}

/**
 * Exercise the root module's validation blocks: `terraform console` on a
 * copy of variables.tf alone evaluates the variables (and so their
 * validation) without any provider.
 */
const CONSOLE_CASES: { name: string; vars: Record<string, string>; rejects?: RegExp }[] = [
  { name: 'the required variables alone', vars: {} },
  {
    name: 'a full set of valid values',
    vars: {
      repository_prefix: 'prod/db-1',
      bucket_location: 'EU',
      retention_period_days: '30',
      retention_policy_locked: 'true',
      kms_key_name: 'projects/p/locations/eu/keyRings/r/cryptoKeys/k',
      soft_delete_retention_days: '0',
      retain_days: '14',
      wal_retain_days: '21',
      alert_email_addresses: '["dba@example.com"]',
      alert_push_endpoint: 'https://chat.example.com/hook',
    },
  },
  { name: 'a project number for project_id', vars: { project_id: '123456789012' }, rejects: /project_id must be a project ID/ },
  { name: 'a bucket name too long for the -catalogue suffix', vars: { bucket_name: 'a'.repeat(54) }, rejects: /bucket_name must be 3-53/ },
  { name: 'a prefix with a leading slash', vars: { repository_prefix: '/db' }, rejects: /repository_prefix must be empty or folder names/ },
  { name: 'a dual-region bucket location', vars: { bucket_location: 'EUR4' }, rejects: /bucket_location must be a region or one of the multi-regions/ },
  { name: 'a fractional retention period', vars: { retention_period_days: '1.5' }, rejects: /retention_period_days must be a whole number/ },
  {
    name: 'a soft-delete window below seven days',
    vars: { soft_delete_retention_days: '3' },
    rejects: /soft_delete_retention_days must be 0 or between 7 and 90/,
  },
  { name: 'a four-field cron schedule', vars: { prune_schedule: '0 3 * *' }, rejects: /prune_schedule must be a five-field cron expression/ },
  {
    name: 'a plain-http alert endpoint',
    vars: { alert_push_endpoint: 'http://chat.example.com/hook' },
    rejects: /alert_push_endpoint must be an https:\/\/ URL/,
  },
  { name: 'a name prefix too long for service account IDs', vars: { name_prefix: 'gcwal-production-eu-1' }, rejects: /name_prefix must be 2-20/ },
  { name: 'zero full backups kept', vars: { retain_full: '0' }, rejects: /retain_full must be a whole number between 1 and 10000/ },
];

for (const row of CONSOLE_CASES) {
  const title = `root variables: ${row.name} ${row.rejects ? 'is rejected' : 'is accepted'}`;
  if (!terraform) {
    test.skip(`${title} (${NO_TERRAFORM})`, (t) => t.pass());
    continue;
  }
  test(title, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gcwal-tfvars-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await cp(path.join(TERRAFORM_DIR, 'variables.tf'), path.join(dir, 'variables.tf'));
    const vars = { project_id: 'my-project-1', region: 'europe-west1', bucket_name: 'my-project-pg-archive', ...row.vars };
    const args = ['console', '-no-color', ...Object.entries(vars).flatMap(([name, value]) => ['-var', `${name}=${value}`])];
    const result = await exec(terraform!, args, { cwd: dir, env: terraformEnv(), input: 'var.bucket_name\n' });
    // console exits 0 even when a variable fails validation: read what it says
    const errors = result.stderr.replace(/\s*\n[\s│]*/g, ' ');
    if (row.rejects) {
      t.regex(errors, /Error: Invalid value for variable/, 'terraform accepted the value');
      t.regex(errors, row.rejects);
    } else {
      t.notRegex(errors, /Error:/, result.stderr);
      t.is(result.stdout.trim(), JSON.stringify(vars.bucket_name));
    }
  });
}

/**
 * `terraform validate` needs the provider's schema. Where a plugin cache or
 * an initialised terraform/ holds hashicorp/google, copy the tree and
 * validate the root and every example against it (init offline with
 * -plugin-dir).
 */
if (terraform && providerDir) {
  test.serial('terraform validate passes for the root module and every example', async (t) => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'gcwal-tfvalidate-'));
    t.teardown(() => rm(work, { recursive: true, force: true }));
    await cp(TERRAFORM_DIR, path.join(work, 'terraform'), { recursive: true, filter: (src) => !src.includes(`${path.sep}.terraform`) });
    for (const mod of modules.filter((m) => !m.rel.includes('/modules/'))) {
      const dir = path.join(work, mod.rel);
      const init = await exec(terraform, ['init', '-backend=false', '-input=false', '-no-color', `-plugin-dir=${providerDir}`], {
        cwd: dir,
        env: terraformEnv(),
        timeoutMs: 300_000,
      });
      t.is(init.code, 0, `${mod.rel}: terraform init\n${init.stdout}${init.stderr}`);
      const validate = await exec(terraform, ['validate', '-no-color'], { cwd: dir, env: terraformEnv(), timeoutMs: 300_000 });
      t.is(validate.code, 0, `${mod.rel}: terraform validate\n${validate.stdout}${validate.stderr}`);
    }
  });
} else {
  const why = terraform
    ? 'the hashicorp/google provider is not available offline: set TF_PLUGIN_CACHE_DIR to a plugin cache holding it, or run terraform init in terraform/'
    : NO_TERRAFORM;
  test.skip(`terraform validate passes for the root module and every example (skipped: ${why})`, (t) => t.pass());
}
