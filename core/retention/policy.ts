import { UsageError } from '../errors.ts';
import type { RetentionPolicy } from './types.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

function describe(value: unknown): string {
  return typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
}

/**
 * Throw UsageError unless `policy` makes sense: at least one of retainFull
 * and retainDays; retainFull a whole number ≥ 1; each day count a finite
 * number > 0; walRetainDays not shorter than retainDays (WAL a kept backup
 * needs is kept anyway, so a shorter WAL window would silently mean nothing).
 */
export function validateRetentionPolicy(policy: RetentionPolicy): void {
  const { retainFull, retainDays, walRetainDays } = policy;
  if (retainFull === undefined && retainDays === undefined) {
    throw new UsageError(
      'retention policy keeps nothing in particular',
      'set retain-full (backups to keep) or retain-days (days of point-in-time recovery), or both',
    );
  }
  if (retainFull !== undefined && !(typeof retainFull === 'number' && Number.isInteger(retainFull) && retainFull >= 1)) {
    throw new UsageError(`retain-full ${describe(retainFull)} is not a whole number of at least 1`, 'set retain-full to how many full backups to keep, e.g. 2');
  }
  for (const [name, value] of [
    ['retain-days', retainDays],
    ['wal-retain-days', walRetainDays],
  ] as const) {
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
      throw new UsageError(`${name} ${describe(value)} is not a positive number of days`, `set ${name} to a number of days greater than 0, e.g. 7`);
    }
  }
  if (walRetainDays !== undefined && retainDays !== undefined && walRetainDays < retainDays) {
    throw new UsageError(
      `wal-retain-days ${walRetainDays} is shorter than retain-days ${retainDays}`,
      'the WAL window can only extend the backup window; set wal-retain-days to at least retain-days or leave it unset',
    );
  }
}

/** `now` minus `days` days, or undefined when `days` is. */
export function daysBefore(now: Date, days: number | undefined): Date | undefined {
  return days === undefined ? undefined : new Date(now.getTime() - days * DAY_MS);
}
