import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { raw, startTestEmulator } from './harness.ts';

test("an object younger than the bucket's retention period can be neither deleted nor replaced", async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('locked', { retentionPeriodSeconds: 3600 });
  const bucket = (await raw(`${emu.url}/storage/v1/b/locked`)).json();
  t.is(bucket.retentionPolicy.retentionPeriod, '3600');

  const created = (await raw(`${emu.url}/upload/storage/v1/b/locked/o?uploadType=media&name=wal`, { method: 'POST', body: 'segment' })).json();
  t.is(Date.parse(created.retentionExpirationTime) - Date.parse(created.timeCreated), 3600 * 1000);

  const del = await raw(`${emu.url}/storage/v1/b/locked/o/wal`, { method: 'DELETE' });
  t.is(del.status, 403);
  t.is(del.json().error.errors[0].reason, 'retentionPolicyNotMet');
  t.regex(del.json().error.message, /^Object 'locked\/wal' is subject to bucket's retention policy/);

  const replace = await raw(`${emu.url}/upload/storage/v1/b/locked/o?uploadType=media&name=wal`, { method: 'POST', body: 'other' });
  t.is(replace.status, 403);
  t.is(replace.json().error.errors[0].reason, 'retentionPolicyNotMet');
  t.is((await raw(`${emu.url}/storage/v1/b/locked/o/wal?alt=media`)).body.toString(), 'segment');
});

test('once the retention period has passed the object can be deleted', async (t) => {
  const { emu } = await startTestEmulator(t);
  // A bucket made through the API with a one-second policy.
  const insert = await raw(`${emu.url}/storage/v1/b?project=test`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'brief', retentionPolicy: { retentionPeriod: '1' } }),
  });
  t.is(insert.status, 200);
  await raw(`${emu.url}/upload/storage/v1/b/brief/o?uploadType=media&name=x`, { method: 'POST', body: 'x' });
  t.is((await raw(`${emu.url}/storage/v1/b/brief/o/x`, { method: 'DELETE' })).status, 403);
  await sleep(1100);
  t.is((await raw(`${emu.url}/storage/v1/b/brief/o/x`, { method: 'DELETE' })).status, 204);
});
