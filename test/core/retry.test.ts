import test from 'ava';
import { isTransientNetworkError, retry, type RetryOptions } from '../../core/retry.ts';

/** An attempt that fails with `failures[n]` on try n and resolves 'done' after them. */
function failing(failures: unknown[]): { attempt: (n: number) => Promise<string>; tries: number[] } {
  const tries: number[] = [];
  return {
    tries,
    attempt: async (n) => {
      tries.push(n);
      if (n < failures.length) throw failures[n];
      return 'done';
    },
  };
}

class Busy extends Error {}
const transient = (err: unknown) => err instanceof Busy;
const quick: RetryOptions = { retries: 5, baseMs: 1, maxMs: 4, transient };

test('a transient failure is tried again until the attempt succeeds, each retry announced and awaited first', async (t) => {
  const { attempt, tries } = failing([new Busy('one'), new Busy('two')]);
  const events: string[] = [];
  const result = await retry(
    async (n) => {
      events.push(`try ${n}`);
      return attempt(n);
    },
    {
      ...quick,
      onRetry: async (retry, err) => {
        await new Promise((resolve) => setImmediate(resolve));
        events.push(`retry ${retry} after ${(err as Error).message}`);
      },
    },
  );
  t.is(result, 'done');
  t.deepEqual(tries, [0, 1, 2]);
  t.deepEqual(events, ['try 0', 'retry 1 after one', 'try 1', 'retry 2 after two', 'try 2']);
});

test('a failure that is not transient is thrown at once, without a retry', async (t) => {
  const permanent = new Error('permanent');
  const { attempt, tries } = failing([new Busy('first'), permanent, new Busy('never reached')]);
  const err = await t.throwsAsync(retry(attempt, quick));
  t.is(err, permanent);
  t.deepEqual(tries, [0, 1]);
});

test('when the retries are used up the last failure is thrown after retries + 1 tries', async (t) => {
  const failures = [new Busy('a'), new Busy('b'), new Busy('c'), new Busy('d')];
  const { attempt, tries } = failing(failures);
  const err = await t.throwsAsync(retry(attempt, { ...quick, retries: 2 }));
  t.is(err, failures[2]);
  t.deepEqual(tries, [0, 1, 2]);
});

test('no retry starts after the deadline and no wait runs past it, even with unlimited retries', async (t) => {
  // A clock of our own: each try takes 10 "ms"; the deadline is at 25.
  let clock = 0;
  const delays: number[] = [];
  const failures: Busy[] = [];
  const err = await t.throwsAsync(
    retry(
      async () => {
        clock += 10;
        const failure = new Busy(`at ${clock}`);
        failures.push(failure);
        throw failure;
      },
      { retries: Infinity, baseMs: 1000, maxMs: 1000, jitter: false, deadline: 25, now: () => clock, transient, onRetry: (_, __, ms) => void delays.push(ms) },
    ),
  );
  t.is(err, failures[2], 'the failure at 30, past the deadline, is thrown');
  t.is(failures.length, 3);
  t.deepEqual(delays, [15, 5], 'each wait ends at the deadline at the latest');
});

test('jitter keeps each wait between half and all of the doubled base, up to the cap; without it the waits are exact', async (t) => {
  for (let round = 0; round < 20; round++) {
    const delays: number[] = [];
    const { attempt } = failing(Array.from({ length: 6 }, () => new Busy('again')));
    await retry(attempt, { retries: 6, baseMs: 1, maxMs: 4, transient, onRetry: (_, __, ms) => void delays.push(ms) });
    t.is(delays.length, 6);
    delays.forEach((ms, i) => {
      const full = Math.min(4, 2 ** i);
      t.true(ms >= full / 2 && ms < full, `retry ${i + 1}: ${ms} ms of ${full}`);
    });
  }
  const exact: number[] = [];
  const { attempt } = failing(Array.from({ length: 5 }, () => new Busy('again')));
  await retry(attempt, { retries: 5, baseMs: 1, maxMs: 4, jitter: false, transient, onRetry: (_, __, ms) => void exact.push(ms) });
  t.deepEqual(exact, [1, 2, 4, 4, 4]);
});

test("an abort during a wait ends it with an AbortError carrying the signal's reason, and a failure after an abort is not retried", async (t) => {
  const waiting = new AbortController();
  const reason = new Error('stop');
  const { attempt, tries } = failing([new Busy('first'), new Busy('second')]);
  const err = await t.throwsAsync(retry(attempt, { ...quick, baseMs: 60_000, maxMs: 60_000, signal: waiting.signal, onRetry: () => waiting.abort(reason) }));
  t.is(err?.name, 'AbortError');
  t.is(err?.cause, reason);
  t.deepEqual(tries, [0]);

  const aborted = new AbortController();
  aborted.abort(new Error('already'));
  const failure = new Busy('after the abort');
  const second = failing([failure]);
  t.is(await t.throwsAsync(retry(second.attempt, { ...quick, signal: aborted.signal })), failure);
  t.deepEqual(second.tries, [0]);
});

test('dropped, refused and unreachable connections are transient network errors; other failures are not', (t) => {
  for (const code of [
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'ETIMEDOUT',
    'EAI_AGAIN',
    'ENOTFOUND',
    'EHOSTUNREACH',
    'ERR_STREAM_PREMATURE_CLOSE',
    'UND_ERR_SOCKET',
  ]) {
    t.true(isTransientNetworkError(Object.assign(new Error('x'), { code })), code);
  }
  t.true(isTransientNetworkError(new Error('socket hang up')));
  t.true(isTransientNetworkError(new Error('Premature close')));
  for (const err of [
    Object.assign(new Error('x'), { code: 'EACCES' }),
    Object.assign(new Error('x'), { code: 'ENOENT' }),
    new Error('bad request'),
    undefined,
    'ECONNRESET',
  ]) {
    t.false(isTransientNetworkError(err), String(err));
  }
});
