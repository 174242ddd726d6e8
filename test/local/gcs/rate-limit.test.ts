import test from 'ava';
import { MutationRateLimiter, rateLimitFromEnv } from '../../../local/gcs/rate-limit.ts';
import { raw, startTestEmulator } from './harness.ts';

const upload = (url: string, name: string, body: string, query = '') =>
  raw(`${url}/upload/storage/v1/b/bkt/o?uploadType=media&name=${name}${query}`, { method: 'POST', body });

test('a second mutation of one object within the interval is refused with 429 rateLimitExceeded, by default', async (t) => {
  const { emu } = await startTestEmulator(t, { objectRateLimitMs: 60_000 });
  await emu.createBucket('bkt');
  t.is((await upload(emu.url, 'hot', 'one')).status, 200);
  const again = await upload(emu.url, 'hot', 'two');
  t.is(again.status, 429);
  t.is(again.json().error.errors[0].reason, 'rateLimitExceeded');
  const patch = await raw(`${emu.url}/storage/v1/b/bkt/o/hot`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/json' },
    body: '{"metadata":{"k":"v"}}',
  });
  t.is(patch.status, 429);
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/hot`, { method: 'DELETE' })).status, 429);
  // The refused write changed nothing, and other names are not held back.
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/hot?alt=media`)).body.toString(), 'one');
  t.is((await upload(emu.url, 'cold', 'x')).status, 200);
});

test('a refused precondition does not count as a mutation', async (t) => {
  const { emu } = await startTestEmulator(t, { objectRateLimitMs: 60_000 });
  await emu.createBucket('bkt');
  t.is((await upload(emu.url, 'obj', 'x', '&ifGenerationMatch=5')).status, 412);
  t.is((await upload(emu.url, 'obj', 'x', '&ifGenerationMatch=0')).status, 200);
});

test('the emulator enforces one mutation per second unless told otherwise', async (t) => {
  const { emu } = await startTestEmulator(t, { objectRateLimitMs: undefined });
  await emu.createBucket('bkt');
  t.is((await upload(emu.url, 'hot', 'one')).status, 200);
  t.is((await upload(emu.url, 'hot', 'two')).status, 429);
});

test('with the limit off, an object may be rewritten at once', async (t) => {
  const { emu } = await startTestEmulator(t, { objectRateLimitMs: false });
  await emu.createBucket('bkt');
  t.is((await upload(emu.url, 'hot', 'one')).status, 200);
  t.is((await upload(emu.url, 'hot', 'two')).status, 200);
});

test('the limiter lets a name be mutated again once the interval has passed', (t) => {
  let now = 0;
  const limiter = new MutationRateLimiter(1000, () => now);
  limiter.record('b', 'o');
  now = 999;
  t.throws(() => limiter.check('b', 'o'), { message: /rate limit/ });
  now = 1000;
  t.notThrows(() => limiter.check('b', 'o'));
});

test('the environment turns the limit off, sets its interval or leaves the default', (t) => {
  t.is(rateLimitFromEnv('off'), false);
  t.is(rateLimitFromEnv('0'), false);
  t.is(rateLimitFromEnv('250'), 250);
  t.is(rateLimitFromEnv(undefined), undefined);
  t.throws(() => rateLimitFromEnv('fast'), { message: /not "off"/ });
});
