import test from 'ava';
import { raw, startTestEmulator, type TestEmulator } from './harness.ts';

/** One object, created with a known generation and metageneration 2 (one patch). */
async function setup(t: Parameters<typeof startTestEmulator>[0]): Promise<TestEmulator & { generation: string; objectUrl: string }> {
  const env = await startTestEmulator(t);
  await env.emu.createBucket('bkt');
  const created = await raw(`${env.emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=obj`, { method: 'POST', body: 'payload' });
  const generation = created.json().generation as string;
  const objectUrl = `${env.emu.url}/storage/v1/b/bkt/o/obj`;
  await raw(objectUrl, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ metadata: { k: 'v' } }) });
  return { ...env, generation, objectUrl };
}

const cases: { title: string; query: (g: string) => string; status: number }[] = [
  { title: 'ifGenerationMatch equal', query: (g) => `ifGenerationMatch=${g}`, status: 200 },
  { title: 'ifGenerationMatch different', query: (g) => `ifGenerationMatch=${BigInt(g) + 1n}`, status: 412 },
  { title: 'ifGenerationMatch=0 on an existing object', query: () => 'ifGenerationMatch=0', status: 412 },
  { title: 'ifGenerationNotMatch equal', query: (g) => `ifGenerationNotMatch=${g}`, status: 304 },
  { title: 'ifGenerationNotMatch different', query: () => 'ifGenerationNotMatch=1', status: 200 },
  { title: 'ifMetagenerationMatch equal', query: () => 'ifMetagenerationMatch=2', status: 200 },
  { title: 'ifMetagenerationMatch different', query: () => 'ifMetagenerationMatch=1', status: 412 },
  { title: 'ifMetagenerationNotMatch equal', query: () => 'ifMetagenerationNotMatch=2', status: 304 },
  { title: 'ifMetagenerationNotMatch different', query: () => 'ifMetagenerationNotMatch=1', status: 200 },
];

for (const { title, query, status } of cases) {
  test(`${title} gives ${status} on get, download, patch and delete`, async (t) => {
    const { objectUrl, generation, emu } = await setup(t);
    const q = query(generation);
    const get = await raw(`${objectUrl}?${q}`);
    t.is(get.status, status, `get: ${get.body}`);
    const download = await raw(`${emu.url}/download/storage/v1/b/bkt/o/obj?${q}`);
    t.is(download.status, status, `download: ${download.body}`);
    if (status === 200) t.is(download.body.toString(), 'payload');
    if (status === 412) t.is(get.json().error.errors[0].reason, 'conditionNotMet');
    if (status === 304) t.is(get.body.length, 0);
    const patch = await raw(`${objectUrl}?${q}`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: '{"metadata":{"x":"y"}}' });
    t.is(patch.status, status, `patch: ${patch.body}`);
    // After a successful patch the metageneration moved on; only test delete where it cannot matter.
    if (!/Metageneration/.test(q) || status !== 200) {
      const del = await raw(`${objectUrl}?${q}`, { method: 'DELETE' });
      t.is(del.status, status === 200 ? 204 : status, `delete: ${del.body}`);
    }
  });
}

test('uploads honour preconditions: ifGenerationMatch=0 creates only, a matching generation replaces', async (t) => {
  const { emu, generation } = await setup(t);
  const upload = (q: string, body: string) => raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=obj&${q}`, { method: 'POST', body });
  t.is((await upload('ifGenerationMatch=0', 'no')).status, 412);
  t.is((await upload('ifGenerationMatch=1', 'no')).status, 412);
  t.is((await upload('ifGenerationNotMatch=' + generation, 'no')).status, 304);
  const replaced = await upload(`ifGenerationMatch=${generation}`, 'yes');
  t.is(replaced.status, 200);
  t.true(BigInt(replaced.json().generation) > BigInt(generation));
  t.is((await upload('ifGenerationMatch=0', 'new').then(() => raw(`${emu.url}/storage/v1/b/bkt/o/obj?alt=media`))).body.toString(), 'yes');
  t.is((await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=fresh&ifGenerationMatch=0`, { method: 'POST', body: 'f' })).status, 200);
});

test('a resumable upload applies the preconditions given at session start when it finalises', async (t) => {
  const { emu } = await setup(t);
  const start = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&name=later&ifGenerationMatch=0`, {
    method: 'POST',
    body: '{}',
    headers: { 'Content-Type': 'application/json' },
  });
  t.is(start.status, 200);
  const session = start.headers.location as string;
  // Someone else creates the object while the session is open.
  t.is((await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=later`, { method: 'POST', body: 'winner' })).status, 200);
  const finish = await raw(session, { method: 'PUT', headers: { 'Content-Range': 'bytes 0-4/5' }, body: 'loser' });
  t.is(finish.status, 412);
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/later?alt=media`)).body.toString(), 'winner');
});

test('of many concurrent creates of one name with ifGenerationMatch=0 exactly one wins', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const attempts = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=race&ifGenerationMatch=0`, { method: 'POST', body: `writer ${i}` }),
    ),
  );
  const statuses = attempts.map((r) => r.status).sort();
  t.deepEqual(statuses, [200, ...Array(11).fill(412)]);
  const winner = attempts.find((r) => r.status === 200)!;
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/race?alt=media`)).body.toString(), `writer ${attempts.indexOf(winner)}`);
});
