/**
 * Strict readers for the JSON a backup stores (backup.json, manifest lines).
 * The repository is untrusted input: every field must be one the format
 * defines, of its type and within its range, and a rejection names the field
 * (`parts[2].storedSize`) so the damage can be found.
 */
import type { CorruptObjectError } from '../errors.ts';
import { quoteForMessage } from '../wal/quote.ts';

/** Builds the error for `field` (a dotted path) and the reason it is refused. */
export type FieldError = (field: string, why: string) => CorruptObjectError;

/** Which keys an object must and may have. */
export interface Shape {
  required: readonly string[];
  optional?: readonly string[];
}

/** A short, safe rendering of an unexpected value for a message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return quoteForMessage(value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : typeof value;
}

/** The fields of one JSON object, read strictly; `path` is its place in the document ('' for the root). */
export class Fields {
  private constructor(
    private readonly value: Record<string, unknown>,
    readonly path: string,
    private readonly error: FieldError,
  ) {}

  /**
   * Check that `value` is an object with exactly the keys `shape` allows and
   * every required one. Throws the FieldError naming the first unknown or
   * missing field.
   */
  static of(value: unknown, path: string, shape: Shape, error: FieldError): Fields {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw error(path || 'the document', `is ${describeValue(value)}, not an object`);
    const record = value as Record<string, unknown>;
    const allowed = new Set([...shape.required, ...(shape.optional ?? [])]);
    const fields = new Fields(record, path, error);
    for (const key of Object.keys(record)) if (!allowed.has(key)) throw error(fields.name(key), 'is not a field of this format');
    for (const key of shape.required) if (record[key] === undefined) throw error(fields.name(key), 'is missing');
    return fields;
  }

  /** The dotted name of `key` in this object. */
  name(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  /** An error about `key`. */
  bad(key: string, why: string): CorruptObjectError {
    return this.error(this.name(key), why);
  }

  has(key: string): boolean {
    return this.value[key] !== undefined;
  }

  raw(key: string): unknown {
    return this.value[key];
  }

  /** A string of at most `max` characters. */
  string(key: string, max = 4096): string {
    const v = this.value[key];
    if (typeof v !== 'string') throw this.bad(key, `is ${describeValue(v)}, not a string`);
    if (v.length > max) throw this.bad(key, `is longer than ${max} characters`);
    return v;
  }

  /** A string matching `pattern`; `what` says what it should be. */
  matching(key: string, pattern: RegExp, what: string): string {
    const v = this.string(key);
    if (!pattern.test(v)) throw this.bad(key, `is ${quoteForMessage(v)}, not ${what}`);
    return v;
  }

  /** An integer from `min` to `max` (safe integers only). */
  integer(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.value[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw this.bad(key, `is ${describeValue(v)}, not an integer`);
    if (v < min) throw this.bad(key, `is ${v}, below ${min}`);
    if (v > max) throw this.bad(key, `is ${v}, above ${max}`);
    return v;
  }

  /** A size or count: an integer of at least 0. */
  count(key: string): number {
    return this.integer(key, 0);
  }

  /** A list. */
  list(key: string): unknown[] {
    const v = this.value[key];
    if (!Array.isArray(v)) throw this.bad(key, `is ${describeValue(v)}, not a list`);
    return v;
  }

  /** A nested object, read as strictly. */
  object(key: string, shape: Shape): Fields {
    return Fields.of(this.value[key], this.name(key), shape, this.error);
  }

  /** Element `index` of list `key`, an object read as strictly. */
  element(key: string, index: number, value: unknown, shape: Shape): Fields {
    return Fields.of(value, `${this.name(key)}[${index}]`, shape, this.error);
  }
}

/** A CRC32C as GCS writes it: the 4 bytes in base64. */
export const CRC32C_BASE64 = /^[A-Za-z0-9+/]{6}==$/;

/** An ISO 8601 time as Date.toISOString writes it, or with an explicit offset. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Milliseconds since the epoch of `key`, an ISO time. */
export function isoTime(fields: Fields, key: string): number {
  const text = fields.string(key, 64);
  const ms = ISO_TIME.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) throw fields.bad(key, `is ${quoteForMessage(text)}, not an ISO time`);
  return ms;
}
