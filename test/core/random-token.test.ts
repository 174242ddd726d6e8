import test from 'ava';
import { randomToken } from '../../core/random-token.ts';

test('a token is two lowercase hex digits per byte asked for', (t) => {
  for (const bytes of [1, 4, 6, 8, 16]) t.regex(randomToken(bytes), new RegExp(`^[0-9a-f]{${bytes * 2}}$`));
  t.regex(randomToken(), /^[0-9a-f]{16}$/);
});

test('ten thousand tokens of six bytes are all different', (t) => {
  const seen = new Set(Array.from({ length: 10_000 }, () => randomToken(6)));
  t.is(seen.size, 10_000);
});
