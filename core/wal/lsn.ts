/**
 * Log sequence numbers: byte positions in the WAL stream, unsigned 64-bit,
 * held as `bigint` because they exceed 2^53. Text form is PostgreSQL's
 * `%X/%X`: high and low 32 bits in hex, separated by a slash.
 */
import { InvalidInputError } from '../errors.ts';
import { quoteForMessage } from './quote.ts';

/** The largest LSN, FFFFFFFF/FFFFFFFF. */
export const MAX_LSN = 0xffff_ffff_ffff_ffffn;

const LSN_HINT = 'write an LSN as two hex numbers of 1 to 8 digits separated by a slash, as PostgreSQL prints it, e.g. 16/B374D848';

// Same grammar as PostgreSQL's pg_lsn input: 1 to 8 hex digits either side,
// either case, nothing else (no whitespace, no sign, no 0x prefix).
const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Whether `lsn` is within 0..MAX_LSN. */
export function isValidLsn(lsn: bigint): boolean {
  return lsn >= 0n && lsn <= MAX_LSN;
}

/**
 * Throw InvalidInputError unless `lsn` is an unsigned 64-bit value.
 * `what` names the value in the message, e.g. "stop lsn".
 */
export function assertValidLsn(lsn: bigint, what = 'lsn'): void {
  if (!isValidLsn(lsn)) throw new InvalidInputError(`${what} ${lsn} is out of range`, 'an LSN is an unsigned 64-bit number, 0/0 to FFFFFFFF/FFFFFFFF');
}

/**
 * Parse `16/B374D848` into a bigint. Accepts exactly what PostgreSQL's pg_lsn
 * type accepts (either case; leading zeros allowed, as PostgreSQL 18 prints
 * them). Throws InvalidInputError with a hint on anything else.
 */
export function parseLsn(text: string): bigint {
  const m = LSN_PATTERN.exec(text);
  if (!m) throw new InvalidInputError(`invalid lsn ${quoteForMessage(text)}`, LSN_HINT);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/**
 * Format an LSN exactly as PostgreSQL 10 to 17 print it: `%X/%X`, uppercase,
 * no zero padding (`0/0`, `16/B374D848`). Throws InvalidInputError when the
 * value is not an unsigned 64-bit number.
 */
export function formatLsn(lsn: bigint): string {
  assertValidLsn(lsn);
  const high = lsn >> 32n;
  const low = lsn & 0xffff_ffffn;
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
}
