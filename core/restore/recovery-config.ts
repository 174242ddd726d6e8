/**
 * Recovery settings for a restored data directory, as text: which recovery
 * target the user asked for (validated here, once), the restore_command that
 * fetches WAL from the repository, and the block appended to
 * postgresql.auto.conf. Pure: no I/O, no clock, no environment.
 */
import { InvalidInputError, UsageError } from '../errors.ts';
import { formatLsn, parseLsn } from '../wal/lsn.ts';
import { quoteForMessage } from '../wal/quote.ts';

/** What PostgreSQL does once the target is reached (recovery_target_action). */
export type TargetAction = 'pause' | 'promote' | 'shutdown';

export const TARGET_ACTIONS: readonly TargetAction[] = ['pause', 'promote', 'shutdown'];

/** The point recovery stops at; absent means "replay the whole archive". */
export type RecoveryTarget =
  /** normalised to `YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM`, a form recovery_target_time accepts */
  | { kind: 'time'; time: string }
  /** normalised like PostgreSQL prints it */
  | { kind: 'lsn'; lsn: string }
  /** a restore point created with pg_create_restore_point */
  | { kind: 'name'; name: string }
  /** stop as soon as the backup is consistent */
  | { kind: 'immediate' };

/** A validated recovery request. */
export interface RecoveryPlan {
  target: RecoveryTarget | undefined;
  /** `latest`, `current` or a decimal timeline ID; undefined keeps PostgreSQL's default (latest) */
  timeline: string | undefined;
  /** undefined keeps PostgreSQL's default (pause) */
  action: TargetAction | undefined;
  /** stop just before the target instead of just after it */
  exclusive: boolean;
}

/** The recovery-related command-line options, as parsed (strings and flags). */
export interface RecoveryOptions {
  recovery?: boolean;
  targetTime?: string;
  targetLsn?: string;
  targetName?: string;
  targetImmediate?: boolean;
  targetTimeline?: string;
  targetAction?: string;
  targetExclusive?: boolean;
}

const TIME_HINT = 'write the time as YYYY-MM-DD HH:MM[:SS[.ffffff]] followed by a time zone offset such as +00, +02:00 or Z, e.g. "2024-05-01 12:30:00+00"';

// Date, optional time of day, mandatory zone: without a zone PostgreSQL would
// read the time in its own TimeZone setting, which the person typing the
// command may not know; and PostgreSQL refuses zone abbreviations here.
const TIME_PATTERN = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * Validate a recovery target time and return it in a form PostgreSQL's
 * recovery_target_time accepts: `YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM`, with the
 * fraction kept to the microsecond. A time zone is required (offset, `Z` or
 * `UTC`). Throws UsageError with an example on anything else, including
 * impossible dates (February 30th).
 */
export function normalizeTargetTime(text: string): string {
  const m = TIME_PATTERN.exec(text.trim());
  const bad = (why: string) => new UsageError(`invalid recovery target time ${quoteForMessage(text)}: ${why}`, TIME_HINT);
  if (!m) throw bad('not a timestamp with a time zone');
  const [, y, mo, d, h, mi, s = '00', frac, zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) throw bad('no such date');
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) throw bad('no such time of day');
  let offset = '+00:00';
  if (!/^(Z|UTC)$/i.test(zone)) {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
    const zh = Number(z[2]);
    const zm = Number(z[3] ?? '0');
    if (zh > 15 || zm > 59) throw bad('no such time zone offset');
    offset = `${z[1]}${z[2]}:${z[3] ?? '00'}`;
  }
  return `${y}-${mo}-${d} ${h}:${mi}:${s}${frac ? `.${frac}` : ''}${offset}`;
}

/** Validate a timeline option: `latest`, `current` or a timeline ID 1..4294967295 (decimal). */
export function normalizeTimeline(text: string): string {
  const t = text.trim().toLowerCase();
  if (t === 'latest' || t === 'current') return t;
  if (/^\d{1,10}$/.test(t) && Number(t) >= 1 && Number(t) <= 0xffff_ffff) return String(Number(t));
  throw new UsageError(`invalid recovery target timeline ${quoteForMessage(text)}`, 'use latest, current, or a timeline number such as 2');
}

/** PostgreSQL keeps restore point names in a 64-byte buffer (MAXFNAMELEN), NUL included. */
const MAX_RESTORE_POINT_BYTES = 63;

/**
 * Turn the recovery options into a plan. Returns undefined when none was
 * given (the restore is left for the user to recover). Any target or timeline
 * option implies recovery; `recovery` alone means "to the end of the archive".
 * Throws UsageError when two targets are given, a value is malformed, or
 * `targetAction`/`targetExclusive` are given without a target they apply to.
 */
export function parseRecoveryOptions(options: RecoveryOptions): RecoveryPlan | undefined {
  const given: RecoveryTarget[] = [];
  if (options.targetTime !== undefined) given.push({ kind: 'time', time: normalizeTargetTime(options.targetTime) });
  if (options.targetLsn !== undefined) {
    let lsn: bigint;
    try {
      lsn = parseLsn(options.targetLsn.trim());
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err;
      throw new UsageError(`invalid recovery target lsn ${quoteForMessage(options.targetLsn)}`, err.hint);
    }
    given.push({ kind: 'lsn', lsn: formatLsn(lsn) });
  }
  if (options.targetName !== undefined) {
    const name = options.targetName;
    if (name === '' || Buffer.byteLength(name) > MAX_RESTORE_POINT_BYTES || /[\0-\x1f\x7f]/.test(name)) {
      throw new UsageError(
        `invalid restore point name ${quoteForMessage(name)}`,
        `use the name given to pg_create_restore_point (1 to ${MAX_RESTORE_POINT_BYTES} bytes, no control characters)`,
      );
    }
    given.push({ kind: 'name', name });
  }
  if (options.targetImmediate) given.push({ kind: 'immediate' });
  if (given.length > 1) {
    throw new UsageError(
      `recovery targets are mutually exclusive, got ${given.map((g) => `--target-${g.kind}`).join(' and ')}`,
      'give at most one of --target-time, --target-lsn, --target-name, --target-immediate',
    );
  }
  const target = given[0];
  const timeline = options.targetTimeline === undefined ? undefined : normalizeTimeline(options.targetTimeline);

  let action: TargetAction | undefined;
  if (options.targetAction !== undefined) {
    if (!TARGET_ACTIONS.includes(options.targetAction as TargetAction)) {
      throw new UsageError(`invalid recovery target action ${quoteForMessage(options.targetAction)}`, `use one of ${TARGET_ACTIONS.join(', ')}`);
    }
    // PostgreSQL ignores the action when recovery runs to the end of the archive.
    if (!target) throw new UsageError('--target-action needs a recovery target', 'add --target-time, --target-lsn, --target-name or --target-immediate');
    action = options.targetAction as TargetAction;
  }
  const exclusive = options.targetExclusive === true;
  // recovery_target_inclusive applies to time and LSN targets only (and xid).
  if (exclusive && target?.kind !== 'time' && target?.kind !== 'lsn') {
    throw new UsageError('--target-exclusive applies only to --target-time and --target-lsn', 'drop --target-exclusive or use a time or lsn target');
  }
  if (!target && timeline === undefined && !options.recovery) return undefined;
  return { target, timeline, action, exclusive };
}

/** Quote one word for a POSIX shell: single quotes, an embedded `'` as `'\''`. */
export function quoteShellWord(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Quote a value for postgresql.conf: single quotes, with `'` doubled and `\`
 * doubled (the configuration lexer treats backslash as an escape). Throws
 * UsageError on control characters, which a configuration line cannot hold.
 */
export function quoteConfigValue(value: string): string {
  if (/[\0-\x1f\x7f]/.test(value)) {
    throw new UsageError(
      `${quoteForMessage(value)} contains a control character and cannot be written to postgresql.auto.conf`,
      'remove newlines and other control characters from the value',
    );
  }
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * The shell command PostgreSQL runs to fetch one WAL file:
 * `env GCWAL_REPO='<repo>' '<gcwal>' wal-fetch %f %p`. Both words are quoted
 * for the shell, and every `%` in them is doubled because PostgreSQL expands
 * `%` sequences in restore_command before the shell sees it. The result still
 * needs quoteConfigValue to go into a configuration file.
 */
export function restoreCommand(repoUrl: string, gcwalCommand: string): string {
  if (repoUrl === '') throw new UsageError('the repository url is empty', 'set GCWAL_REPO');
  if (gcwalCommand === '') throw new UsageError('--gcwal-command is empty', 'give the path to the gcwal executable, e.g. /usr/local/bin/gcwal');
  const word = (w: string) => quoteShellWord(w).replace(/%/g, '%%');
  return `env GCWAL_REPO=${word(repoUrl)} ${word(gcwalCommand)} wal-fetch %f %p`;
}

const TARGET_SETTINGS = {
  immediate: 'recovery_target',
  lsn: 'recovery_target_lsn',
  name: 'recovery_target_name',
  time: 'recovery_target_time',
} as const;

/** Every setting that names a recovery target; PostgreSQL refuses more than one set. */
const ALL_TARGET_SETTINGS = ['recovery_target', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_xid'] as const;

function targetValue(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'immediate':
      return 'immediate';
    case 'lsn':
      return target.lsn;
    case 'name':
      return target.name;
    case 'time':
      return target.time;
  }
}

/** Inputs of recoveryConfigBlock. */
export interface RecoveryConfigInput {
  plan: RecoveryPlan;
  /** repository URL the restore_command reads from */
  repoUrl: string;
  /** the gcwal executable as PostgreSQL's shell should run it: an absolute path, so the server's PATH does not matter (see agent/self-command.ts) */
  gcwalCommand: string;
  /** backup restored, for the comment */
  backupName: string;
}

/**
 * The lines appended to postgresql.auto.conf, ending with a newline.
 *
 * The block is self-contained because it is appended to whatever
 * postgresql.auto.conf the backup holds, which may carry recovery settings
 * from an earlier restore of the source cluster: PostgreSQL applies only the
 * last occurrence of each setting, so every recovery setting is written here.
 * Unused targets are reset to '' *before* the one in use, because PostgreSQL
 * applies settings in file order and refuses a second target once one is set.
 * recovery_target_inclusive, _timeline and _action get PostgreSQL's defaults
 * (on, latest, pause) unless the plan says otherwise.
 */
export function recoveryConfigBlock(input: RecoveryConfigInput): string {
  const { plan } = input;
  const lines = [
    `# recovery settings written by gcwal backup-fetch ${input.backupName}; later lines override earlier ones`,
    `restore_command = ${quoteConfigValue(restoreCommand(input.repoUrl, input.gcwalCommand))}`,
  ];
  const used = plan.target ? TARGET_SETTINGS[plan.target.kind] : undefined;
  for (const setting of ALL_TARGET_SETTINGS) if (setting !== used) lines.push(`${setting} = ''`);
  if (plan.target && used) lines.push(`${used} = ${quoteConfigValue(targetValue(plan.target))}`);
  lines.push(`recovery_target_inclusive = ${plan.exclusive ? 'off' : 'on'}`);
  lines.push(`recovery_target_timeline = ${quoteConfigValue(plan.timeline ?? 'latest')}`);
  lines.push(`recovery_target_action = ${quoteConfigValue(plan.action ?? 'pause')}`);
  return lines.join('\n') + '\n';
}

/** A one-line description of where recovery will stop, for messages. */
export function describeTarget(plan: RecoveryPlan): string {
  const where = plan.target
    ? `${plan.target.kind === 'immediate' ? 'the end of the backup' : `${plan.target.kind} ${targetValue(plan.target)}`}`
    : 'the end of the archive';
  const timeline = plan.timeline ? ` on timeline ${plan.timeline}` : '';
  const action = plan.target ? `, then ${plan.action ?? 'pause'}` : '';
  return `${where}${timeline}${action}`;
}
