import { UsageError } from '../errors.ts';

/**
 * Typed configuration tables: one row per setting (environment variable,
 * --flag, type, default, description), parsed once at a process edge. The
 * agent's CLI and the Cloud Functions each own a table; this module only
 * knows how to read one. The configuration reference (docs/configuration.md) is generated from
 * the tables (scripts/gen-reference.ts).
 */

export type ConfigKind = 'string' | 'int' | 'enum' | 'bool' | 'size';

/** One row per setting: environment variable, --flag, type, default. docs/configuration.md is generated from this table. */
export interface ConfigEntry {
  env: string;
  flag: string;
  kind: ConfigKind;
  values?: readonly string[];
  default?: string;
  min?: number;
  max?: number;
  description: string;
  /**
   * Set for a secret: the variable only, never the flag, since a command line
   * is visible to every user of the host (ps). The flag is still recognised,
   * to refuse it with this hint instead of as an unknown option.
   */
  envOnly?: { hint: string };
}

/** Parse `256MiB`, `1GiB`, `4096` into bytes. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)\s*(B|KiB|MiB|GiB|K|M|G)?$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? 'B').toUpperCase()[0];
  const mult = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

export function parseConfigValue(entry: ConfigEntry, raw: string, source: string): string | number | boolean {
  const bad = (what: string) => new UsageError(`${source} ${what}`, `fix ${entry.env}: ${entry.description}`);
  switch (entry.kind) {
    case 'string':
      if (raw === '') throw bad('is empty');
      return raw;
    case 'enum':
      if (!entry.values!.includes(raw)) throw bad(`must be one of ${entry.values!.join(', ')}, not "${raw}"`);
      return raw;
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off|)$/i.test(raw)) return false;
      throw bad(`must be true or false, not "${raw}"`);
    case 'int':
    case 'size': {
      const n = entry.kind === 'size' ? parseSize(raw) : /^-?\d+$/.test(raw.trim()) ? Number(raw) : undefined;
      if (n === undefined || !Number.isSafeInteger(n)) throw bad(`must be ${entry.kind === 'size' ? 'a size like 256MiB' : 'an integer'}, not "${raw}"`);
      if (entry.min !== undefined && n < entry.min) throw bad(`must be at least ${entry.min}, not ${n}`);
      if (entry.max !== undefined && n > entry.max) throw bad(`must be at most ${entry.max}, not ${n}`);
      return n;
    }
  }
}

/**
 * Read every row of `table` from flags (a flag wins) and the environment,
 * falling back to the row's default. Returns values keyed by variable name;
 * undefined where nothing is set. Throws UsageError naming the variable on
 * any malformed value.
 */
export function readConfigTable(
  table: readonly ConfigEntry[],
  flags: Readonly<Record<string, string | boolean | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string | number | boolean | undefined> {
  const v: Record<string, string | number | boolean | undefined> = {};
  for (const entry of table) {
    const flag = flags[entry.flag];
    if (entry.envOnly && flag !== undefined) {
      throw new UsageError(`--${entry.flag} is not accepted: a command line is visible to every user of the host (ps)`, entry.envOnly.hint);
    }
    const fromFlag = flag === true ? 'true' : typeof flag === 'string' ? flag : undefined;
    const raw = fromFlag ?? env[entry.env] ?? entry.default;
    const source = fromFlag !== undefined ? `--${entry.flag}` : env[entry.env] !== undefined ? entry.env : `default of ${entry.env}`;
    v[entry.env] = raw === undefined ? undefined : parseConfigValue(entry, raw, source);
  }
  return v;
}
