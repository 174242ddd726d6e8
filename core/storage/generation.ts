import { UsageError } from '../errors.ts';

/**
 * A generation precondition in canonical decimal form (`'007'` → `'7'`), or
 * undefined when none was given. Throws UsageError when `value` is not a
 * non-negative decimal integer. `'0'` stays `'0'`: "no live object".
 */
export function normaliseGeneration(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`invalid generation "${value}"`, 'a generation is a decimal number, as stat and list report it');
  return BigInt(value).toString();
}
