/**
 * A recovery target against what the archive's WAL records say (the
 * catalogue's record facts, core/catalogue/restorable.ts), before anything
 * is written. Archive recovery (recovery.signal, no standby) that runs out
 * of WAL before its target stops with "recovery ended before configured
 * recovery target was reached" and the server does not start (PostgreSQL
 * 13 and later): a time after the last transaction end archived, or a
 * restore point name the archive does not hold, can never be reached.
 */
import { isoMicros, type WindowRecords } from '../catalogue/restorable.ts';
import { targetTimeMicros } from './choose-backup.ts';
import type { RecoveryTarget } from './recovery-config.ts';

/** What to do about a target: refuse it (with a hint), warn, or nothing. */
export interface TargetCheck {
  refusal?: { message: string; hint: string };
  warning?: string;
}

const FORCE_HINT = 'or give --force-target if the WAL up to it will be archived before recovery gets there';

/**
 * Judge `target` against `windows` (every timeline's, ascending; a time is
 * judged on the newest, where recovery_target_timeline `latest` leads).
 * A refusal only when the records leave no doubt: every segment of the
 * window that could hold a later commit or the name was read.
 */
export function checkTargetAgainstArchive(windows: readonly WindowRecords[], target: RecoveryTarget | undefined): TargetCheck {
  if (target?.kind === 'time') {
    const w = windows.at(-1);
    if (!w) return {};
    const last = w.lastCommit;
    if (!last)
      return { warning: `cannot tell whether recovery reaches ${target.time}: no transaction end was read in the archived WAL of timeline ${w.timeline} yet` };
    const lastMicros = isoMicros(last.time);
    if (lastMicros === undefined || targetTimeMicros(target.time) <= lastMicros) return {};
    const what = `recovery target time ${target.time} is after the last commit archived (${last.time}, at ${last.lsn} in ${last.segment} on timeline ${w.timeline})`;
    if (!w.lastCommitCertain) return { warning: `${what} as far as validated WAL shows: later WAL is not validated yet` };
    return {
      refusal: {
        message: `${what}: archive recovery would run out of WAL before it and PostgreSQL would not start`,
        hint: `choose a time up to ${last.time} (gcwal status shows the window), ${FORCE_HINT}`,
      },
    };
  }
  if (target?.kind === 'name') {
    const points = windows.flatMap((w) => w.restorePoints);
    if (points.some((p) => p.name === target.name)) return {};
    const known = points.length === 0 ? 'none' : [...new Set(points.map((p) => JSON.stringify(p.name)))].join(', ');
    const what = `restore point ${JSON.stringify(target.name)} is not in the archive's recoverable WAL (restore points there: ${known})`;
    if (windows.length === 0 || !windows.every((w) => w.complete)) return { warning: `${what} as far as validated WAL shows: some of it is not validated yet` };
    return { refusal: { message: what, hint: `name one of the restore points gcwal status lists, ${FORCE_HINT}` } };
  }
  return {};
}
