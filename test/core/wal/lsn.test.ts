import test from 'ava';
import { InvalidInputError } from '../../../core/errors.ts';
import { assertValidLsn, formatLsn, isValidLsn, MAX_LSN, parseLsn } from '../../../core/wal/lsn.ts';

// [text as PostgreSQL prints it, value]
const canonical: [string, bigint][] = [
  ['0/0', 0n],
  ['0/1', 1n],
  ['0/FFFFFFFF', 0xffff_ffffn],
  ['1/0', 0x1_0000_0000n],
  ['1/1', 0x1_0000_0001n],
  ['16/B374D848', 0x16_b374_d848n],
  ['0/3000158', 0x300_0158n],
  ['A/10', 0xa_0000_0010n],
  ['FFFFFFFF/0', 0xffff_ffff_0000_0000n],
  ['FFFFFFFF/FFFFFFFF', MAX_LSN],
];

for (const [text, value] of canonical) {
  test(`parseLsn reads ${text}`, (t) => {
    t.is(parseLsn(text), value);
  });
  test(`formatLsn prints ${text} as PostgreSQL does`, (t) => {
    t.is(formatLsn(value), text);
  });
}

// Other spellings PostgreSQL's pg_lsn input accepts.
const accepted: [string, bigint][] = [
  ['16/b374d848', 0x16_b374_d848n],
  ['00000016/B374D848', 0x16_b374_d848n],
  ['0/00000001', 1n],
  ['ffffffff/ffffffff', MAX_LSN],
];

for (const [text, value] of accepted) {
  test(`parseLsn also accepts ${JSON.stringify(text)} and formatLsn normalises it`, (t) => {
    t.is(parseLsn(text), value);
    t.is(formatLsn(parseLsn(text)), formatLsn(value));
  });
}

const malformed = [
  '',
  '0',
  '/',
  '0/',
  '/0',
  '16B374D848',
  '123456789/0',
  '0/123456789',
  ' 0/0',
  '0/0 ',
  '0x1/0',
  '-1/0',
  '+1/0',
  'G/0',
  '0//0',
  '0/0/0',
  '1/2\n',
  '1/2\nsecond line',
  '１/0',
];

for (const text of malformed) {
  test(`parseLsn rejects ${JSON.stringify(text)} with a one-line message and a hint`, (t) => {
    const err = t.throws(() => parseLsn(text), { instanceOf: InvalidInputError });
    t.is(err.code, 'invalid_input');
    t.regex(err.message, /^invalid lsn /);
    t.false(err.message.includes('\n'));
    t.regex(err.hint, /16\/B374D848/);
  });
}

test('parseLsn keeps a huge malformed input out of the message', (t) => {
  const err = t.throws(() => parseLsn('x'.repeat(10_000)), { instanceOf: InvalidInputError });
  t.true(err.message.length < 100);
});

test('formatLsn rejects values outside the unsigned 64-bit range', (t) => {
  for (const value of [-1n, MAX_LSN + 1n, -(2n ** 64n)]) {
    t.throws(() => formatLsn(value), { instanceOf: InvalidInputError, message: /out of range/ });
  }
});

test('isValidLsn and assertValidLsn accept exactly 0 to 2^64-1', (t) => {
  t.true(isValidLsn(0n));
  t.true(isValidLsn(MAX_LSN));
  t.false(isValidLsn(-1n));
  t.false(isValidLsn(MAX_LSN + 1n));
  t.notThrows(() => assertValidLsn(MAX_LSN));
  t.throws(() => assertValidLsn(-1n, 'stop lsn'), { instanceOf: InvalidInputError, message: /^stop lsn -1 is out of range$/ });
});

// Deterministic pseudo-random 64-bit values (xorshift64), so failures reproduce.
function* randomLsns(count: number, seed = 0x9e37_79b9_7f4a_7c15n): Generator<bigint> {
  let x = seed;
  for (let i = 0; i < count; i++) {
    x ^= (x << 13n) & MAX_LSN;
    x ^= x >> 7n;
    x ^= (x << 17n) & MAX_LSN;
    // Mix in small and single-half values, where zero padding would show.
    yield i % 3 === 0 ? x : i % 3 === 1 ? x & 0xffff_ffffn : x >> 40n;
  }
}

test('parseLsn inverts formatLsn over many values', (t) => {
  for (const value of randomLsns(2000)) t.is(parseLsn(formatLsn(value)), value);
});

test('formatLsn inverts parseLsn on canonical text', (t) => {
  for (const value of randomLsns(2000)) {
    const text = formatLsn(value);
    t.regex(text, /^(0|[1-9A-F][0-9A-F]{0,7})\/(0|[1-9A-F][0-9A-F]{0,7})$/);
    t.is(formatLsn(parseLsn(text)), text);
  }
});
