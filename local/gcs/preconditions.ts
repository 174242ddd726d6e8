/**
 * GCS's generation and metageneration preconditions
 * (`ifGenerationMatch`, `ifGenerationNotMatch`, `ifMetagenerationMatch`,
 * `ifMetagenerationNotMatch`). A failed "Match" is 412 `conditionNotMet`; a
 * failed "NotMatch" is 304, as on GCS. `ifGenerationMatch=0` means "no live
 * object may exist", `ifGenerationNotMatch=0` "a live object must exist".
 */
import { ApiError, invalid } from './errors.ts';
import type { ObjectRecord } from './store.ts';

/** The preconditions of one request, as decimal strings. */
export interface Preconditions {
  ifGenerationMatch?: string;
  ifGenerationNotMatch?: string;
  ifMetagenerationMatch?: string;
  ifMetagenerationNotMatch?: string;
}

const NAMES = ['ifGenerationMatch', 'ifGenerationNotMatch', 'ifMetagenerationMatch', 'ifMetagenerationNotMatch'] as const;

/** Read the preconditions from a query string; 400 `invalid` when one is not a number. */
export function parsePreconditions(query: URLSearchParams): Preconditions {
  const out: Preconditions = {};
  for (const name of NAMES) {
    const value = query.get(name);
    if (value === null || value === '') continue;
    if (!/^\d+$/.test(value)) throw invalid(`Invalid value for ${name}: ${value}`);
    // Normalise ("007" and "7" are the same generation).
    out[name] = BigInt(value).toString();
  }
  return out;
}

/** The error GCS sends when a "Match" precondition fails. */
export function conditionNotMet(): ApiError {
  return new ApiError(412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
}

function notModified(): ApiError {
  return new ApiError(304, 'notModified', 'Not Modified');
}

/**
 * Throw unless `preconditions` hold for `current` (the live object, or
 * undefined when there is none). All "Match" conditions are checked before
 * the "NotMatch" ones so that a request failing both reports 412.
 */
export function checkPreconditions(preconditions: Preconditions, current: ObjectRecord | undefined): void {
  const { ifGenerationMatch, ifGenerationNotMatch, ifMetagenerationMatch, ifMetagenerationNotMatch } = preconditions;
  if (ifGenerationMatch !== undefined) {
    const holds = ifGenerationMatch === '0' ? current === undefined : current?.generation === ifGenerationMatch;
    if (!holds) throw conditionNotMet();
  }
  if (ifMetagenerationMatch !== undefined) {
    if (current === undefined || String(current.metageneration) !== ifMetagenerationMatch) throw conditionNotMet();
  }
  if (ifGenerationNotMatch !== undefined) {
    // No live object: "does not match" cannot be evaluated, so it fails.
    if (current === undefined || current.generation === ifGenerationNotMatch) throw notModified();
  }
  if (ifMetagenerationNotMatch !== undefined) {
    if (current === undefined || String(current.metageneration) === ifMetagenerationNotMatch) throw notModified();
  }
}

/** Whether any precondition is set. */
export function hasPreconditions(preconditions: Preconditions): boolean {
  return NAMES.some((name) => preconditions[name] !== undefined);
}
