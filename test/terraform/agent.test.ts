/**
 * What terraform/ grants and tells the database host: the agent's identity
 * may create and read objects and nothing else, and the postgresql.conf
 * lines in the outputs run commands the agent has, as it would write them.
 */
import test from 'ava';
import { COMMANDS } from '../../agent/commands/index.ts';
import { quoteConfigValue, restoreCommand } from '../../core/restore/recovery-config.ts';
import { loadAllModules, moduleAt, type Body, type TfModule } from './hcl.ts';

const modules = await loadAllModules();
const root = moduleAt(modules, 'terraform');
const identities = moduleAt(modules, 'terraform/modules/identities');

/** Roles the agent may hold: object create, object read/list. */
const AGENT_ROLES = new Set(['roles/storage.objectCreator', 'roles/storage.objectViewer']);

/** Every IAM grant in `mod` whose member is the service account `account` (google_service_account.<account>). */
function grantsTo(mod: TfModule, account: string): [string, Body][] {
  return [...mod.resources.entries()].filter(
    ([address, body]) => /_iam_member\./.test(address) && String(body.member).includes(`google_service_account.${account}.`),
  );
}

/** The role names a grant gives: a literal, or each element of the local list its for_each iterates. */
function rolesOf(mod: TfModule, body: Body): string[] {
  const role = String(body.role);
  if (!role.startsWith('${')) return [role];
  if (role === '${each.value}') {
    const m = /^\$\{(?:var\.\w+ \? )?toset\(local\.(\w+)\)/.exec(String(body.for_each));
    if (m) return mod.locals.get(m[1]) as string[];
  }
  return [role];
}

test('the agent is granted object create and read on the gcwal buckets, and nothing else', (t) => {
  const grants = grantsTo(identities, 'agent');
  t.deepEqual(grants.map(([address]) => address).sort(), [
    'google_storage_bucket_iam_member.agent_archive',
    'google_storage_bucket_iam_member.agent_catalogue',
  ]);
  for (const [address, body] of grants) {
    const roles = rolesOf(identities, body);
    t.true(roles.length > 0, address);
    for (const role of roles) {
      t.true(AGENT_ROLES.has(role), `${address}: ${role} is not one of ${[...AGENT_ROLES].join(', ')}`);
      t.notRegex(role, /admin|owner|editor|objectUser|legacy|delete/i, `${address}: ${role}`);
    }
  }
  t.is(grants.find(([address]) => address.endsWith('agent_archive'))![1].bucket, '${var.bucket_name}');
  t.is(grants.find(([address]) => address.endsWith('agent_catalogue'))![1].bucket, '${var.catalogue_bucket_name}');
  t.deepEqual(identities.locals.get('agent_catalogue_roles'), ['roles/storage.objectViewer'], 'the agent only reads the catalogue');
});

test("no module and no example grants the agent anything else (IAM on the agent's account is about who may act as it)", (t) => {
  for (const mod of modules.filter((m) => m !== identities)) {
    const grants = grantsTo(mod, 'agent');
    t.deepEqual(grants, [], `${mod.rel} grants the agent ${grants.map(([a]) => a).join(', ')}`);
    for (const [address, body] of mod.resources) {
      if (String(body.member ?? '').includes('agent_service_account')) t.fail(`${mod.rel}: ${address} grants a role to the agent`);
      if (address.startsWith('google_service_account_iam_member.')) t.is(body.role, 'roles/iam.workloadIdentityUser', `${mod.rel}: ${address}`);
    }
  }
});

test('neither the agent nor the functions get a project-wide role', (t) => {
  for (const mod of modules) {
    for (const [address, body] of mod.resources) {
      if (!address.startsWith('google_project_iam_member.')) continue;
      t.notRegex(String(body.member), /google_service_account\.(agent|functions)\./, `${mod.rel}: ${address}`);
    }
  }
});

test("the functions' custom role holds exactly object create, get, list and delete", (t) => {
  t.deepEqual([...(identities.locals.get('functions_object_permissions') as string[])].sort(), [
    'storage.objects.create',
    'storage.objects.delete',
    'storage.objects.get',
    'storage.objects.list',
  ]);
  const role = identities.resources.get('google_project_iam_custom_role.functions_objects')!;
  t.is(role.permissions, '${local.functions_object_permissions}');
  const [[address, grant]] = grantsTo(identities, 'functions');
  t.is(address, 'google_storage_bucket_iam_member.functions');
  t.is(grant.role, '${google_project_iam_custom_role.functions_objects.name}');
  t.is(grant.for_each, '${local.buckets}');
});

/** postgresql.conf `name = 'value'` → value (quotes doubled inside). */
function confValue(line: string): string {
  const m = /^(\w+) = '((?:[^']|'')*)'$/.exec(line);
  if (!m) throw new Error(`not a postgresql.conf line: ${line}`);
  return m[2].replace(/''/g, "'");
}

/** Split a shell command into words: plain words and single-quoted parts only (all gcwal writes). */
function shellWords(command: string): string[] {
  return command.split(/ +/).map((word) => word.replace(/'([^']*)'/g, '$1'));
}

/** Substitute the root locals a line uses, with a sample repository. */
function render(template: unknown, repositoryUrl: string): string {
  return String(template).replace('${local.repository_url}', repositoryUrl);
}

test('archive_command runs gcwal wal-push on %p with the repository', (t) => {
  const line = render(root.locals.get('archive_command'), 'gs://my-bucket/prod/db-1');
  t.is(line.split(' = ')[0], 'archive_command');
  t.deepEqual(shellWords(confValue(line)), ['GCWAL_REPO=gs://my-bucket/prod/db-1', 'gcwal', 'wal-push', '%p']);
  t.truthy(COMMANDS['wal-push']);
});

test('restore_command runs the same command gcwal backup-fetch writes on a restore', (t) => {
  const repo = 'gs://my-bucket/prod/db-1';
  const line = render(root.locals.get('restore_command'), repo);
  t.is(line.split(' = ')[0], 'restore_command');
  const ours = shellWords(confValue(line));
  const cores = shellWords(confValue(`restore_command = ${quoteConfigValue(restoreCommand(repo, 'gcwal'))}`));
  t.is(cores[0], 'env');
  t.deepEqual(ours, cores.slice(1));
  t.truthy(COMMANDS['wal-fetch']);
});
