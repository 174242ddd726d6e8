import test from 'ava';
import { UsageError } from '../../../core/errors.ts';
import { planRetention, type RetentionPolicy } from '../../../core/retention/plan.ts';
import { validateRetentionPolicy } from '../../../core/retention/policy.ts';
import { NOW } from './check.ts';
import { linear } from './scenarios.ts';

// [title, policy, message]
const badPolicies: [string, RetentionPolicy, RegExp][] = [
  ['no retention at all', {}, /^retention policy keeps nothing in particular$/],
  ['only a wal window', { walRetainDays: 7 }, /keeps nothing in particular/],
  ['retain-full 0', { retainFull: 0 }, /^retain-full 0 is not a whole number of at least 1$/],
  ['a negative retain-full', { retainFull: -2 }, /^retain-full -2 is not/],
  ['a fractional retain-full', { retainFull: 1.5 }, /^retain-full 1.5 is not/],
  ['a NaN retain-full', { retainFull: Number.NaN }, /^retain-full NaN is not/],
  ['retain-days 0', { retainDays: 0 }, /^retain-days 0 is not a positive number of days$/],
  ['a negative retain-days', { retainDays: -1 }, /^retain-days -1 is not/],
  ['a NaN retain-days', { retainDays: Number.NaN }, /^retain-days NaN is not/],
  ['an infinite retain-days', { retainDays: Number.POSITIVE_INFINITY }, /^retain-days Infinity is not/],
  ['a zero wal window', { retainFull: 2, walRetainDays: 0 }, /^wal-retain-days 0 is not/],
  ['a wal window shorter than the backup window', { retainDays: 7, walRetainDays: 3 }, /^wal-retain-days 3 is shorter than retain-days 7$/],
  ['a retain-full given as text', { retainFull: '2' as unknown as number }, /^retain-full "2" is not/],
];

for (const [title, policy, message] of badPolicies) {
  test(`validateRetentionPolicy refuses ${title} with a usage error and a hint`, (t) => {
    const err = t.throws(() => validateRetentionPolicy(policy), { instanceOf: UsageError });
    t.regex(err!.message, message);
    t.true(err!.hint.length > 0 && err!.hint !== 'run gcwal --help');
  });
}

test('planRetention validates the policy before planning', (t) => {
  t.throws(() => planRetention(linear().build(), { retainFull: 0 }, NOW), { instanceOf: UsageError, message: /^retain-full 0 is not/ });
});

// [title, policy]
const goodPolicies: [string, RetentionPolicy][] = [
  ['a backup count alone', { retainFull: 1 }],
  ['days alone, fractional', { retainDays: 0.5 }],
  ['both with a longer wal window', { retainFull: 2, retainDays: 7, walRetainDays: 30 }],
  ['a wal window equal to the backup window', { retainDays: 7, walRetainDays: 7 }],
  ['a wal window with a backup count only', { retainFull: 3, walRetainDays: 1 }],
];

for (const [title, policy] of goodPolicies) {
  test(`validateRetentionPolicy accepts ${title}`, (t) => {
    t.notThrows(() => validateRetentionPolicy(policy));
  });
}
