import test from 'ava';
import { backoffDelay } from '../../core/backoff.ts';

test('the delay doubles per attempt from the base until the cap', (t) => {
  t.deepEqual(
    [0, 1, 2, 3, 6, 20].map((a) => backoffDelay(a, 500, 30_000, false)),
    [500, 1000, 2000, 4000, 30_000, 30_000],
  );
});

test('jitter keeps the delay between half and all of the unjittered one', (t) => {
  for (let attempt = 0; attempt < 8; attempt++) {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt, 250, 8000);
      const full = Math.min(8000, 250 * 2 ** attempt);
      t.true(d >= full / 2 && d < full, `attempt ${attempt}: ${d}`);
    }
  }
});
