import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdaptiveLimiter } from '../../../../core/storage/gcs/throttle.ts';

async function peakConcurrency(limiter: AdaptiveLimiter, calls: number): Promise<number> {
  let running = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: calls }, () =>
      limiter.run(async () => {
        peak = Math.max(peak, ++running);
        await sleep(5);
        running--;
      }),
    ),
  );
  return peak;
}

test('no more calls run at once than the limit', async (t) => {
  t.is(await peakConcurrency(new AdaptiveLimiter(3), 20), 3);
});

test('a rate-limit answer halves the limit, down to one', async (t) => {
  const l = new AdaptiveLimiter(8);
  l.throttled();
  t.is(l.limit, 4);
  l.throttled();
  l.throttled();
  l.throttled();
  t.is(l.limit, 1);
  t.is(await peakConcurrency(l, 10), 1);
});

test('successes raise the limit again one step at a time, never above the maximum', async (t) => {
  const l = new AdaptiveLimiter(4, 2);
  l.throttled();
  l.throttled();
  t.is(l.limit, 1);
  for (let i = 0; i < 2; i++) l.succeeded();
  t.is(l.limit, 2);
  for (let i = 0; i < 100; i++) l.succeeded();
  t.is(l.limit, 4);
});
