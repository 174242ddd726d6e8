/**
 * `gcwal delete` on gs:// through the local stack, where the agent's
 * identity may create and read objects but not delete them (as deployed):
 * the dry run works, and --confirm stops at the first refused delete with
 * the permission error (exit 8) and a hint saying what to do instead.
 */
import test from 'ava';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import type { DeleteReport } from '../../../agent/retention/report.ts';
import { CATALOGUE_KEY, REPOSITORY_KEY } from '../../../core/layout.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { cataloguedRepository, SEG } from './catalogued-repository.ts';

const PREFIX = 'clusters/prune';
let agent: InstalledAgent;
let stack: LocalStack;

test.before(async () => {
  agent = await installAgent();
  stack = await startLocalStack({ prefix: PREFIX });
});
test.after.always(async () => {
  await stack?.close();
  await agent?.cleanup();
});

/** As the bucket's admin (behind the agent's back): create an object, and list the names under the prefix. */
async function adminCall(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(`${stack.emulator.url}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${stack.adminToken()}`, ...(init.headers as Record<string, string> | undefined) },
  });
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${await res.text()}`);
  return res;
}
async function writeObject(name: string, body: Buffer): Promise<{ generation: string; size: string }> {
  const res = await adminCall(`/upload/storage/v1/b/${stack.bucket}/o?uploadType=media&name=${encodeURIComponent(name)}&ifGenerationMatch=0`, {
    method: 'POST',
    body: new Uint8Array(body),
  });
  return (await res.json()) as { generation: string; size: string };
}
async function listNames(prefix: string): Promise<string[]> {
  const names: string[] = [];
  let pageToken = '';
  do {
    const res = await adminCall(
      `/storage/v1/b/${stack.bucket}/o?prefix=${encodeURIComponent(prefix)}${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ''}`,
    );
    const body = (await res.json()) as { items?: { name: string }[]; nextPageToken?: string };
    names.push(...(body.items ?? []).map((i) => i.name));
    pageToken = body.nextPageToken ?? '';
  } while (pageToken);
  return names;
}

test('without storage.objects.delete, delete --confirm exits 8 with a hint to use another identity or the prune function, and deletes nothing', async (t) => {
  const put = async (key: string, body: string) => {
    const resource = await writeObject(`${PREFIX}/${key}`, Buffer.from(body));
    return { generation: resource.generation, size: Number(resource.size) };
  };
  // The repository's identity, as gcwal repo-create writes it: without one, delete exits 13.
  await put(REPOSITORY_KEY, JSON.stringify({ format: 1, systemIdentifier: '7300000000000000001', walSegmentSize: SEG, created: new Date().toISOString() }));
  const catalogue = await cataloguedRepository(put);
  await put(CATALOGUE_KEY, JSON.stringify(catalogue));
  const names = () => listNames(`${PREFIX}/`);
  const before = await names();

  const dry = await runGcwal(agent.command, ['delete', '--retain-full', '1', '--json'], { env: stack.env });
  t.is(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as DeleteReport;
  t.is(plan.source, 'catalogue');
  t.is(plan.plan.delete.length, 6);

  const confirmed = await runGcwal(agent.command, ['delete', '--retain-full', '1', '--confirm'], { env: stack.env });
  t.is(confirmed.code, 8, confirmed.stderr);
  const line = confirmed.stderr.trim().split('\n').at(-1)!;
  t.regex(
    line,
    /^gcwal: error: delete stopped after 0 of 6 objects: delete gs:\/\/.*\/clusters\/prune\/backups\/base_000000010000000000000002\/backup\.json was refused as gcwal-agent@.*: permission denied/,
  );
  t.regex(
    line,
    /\(the agent's own identity normally may not delete: run gcwal delete as an identity with storage\.objects\.delete on the bucket .*, or let the prune function apply the policy\)$/,
  );
  t.regex(confirmed.stdout, /^mode {9}deleting \(--confirm\)$/m, 'the plan was shown before the attempt');
  t.deepEqual(await names(), before);
});
