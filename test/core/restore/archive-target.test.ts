import test from 'ava';
import type { WindowRecords } from '../../../core/catalogue/restorable.ts';
import { checkTargetAgainstArchive } from '../../../core/restore/archive-target.ts';
import { normalizeTargetTime } from '../../../core/restore/recovery-config.ts';

const window = (extra: Partial<WindowRecords> = {}): WindowRecords => ({
  timeline: 1,
  lastCommit: { time: '2024-05-01T12:09:17.123456Z', lsn: '0/6FFFE00', segment: '000000010000000000000006' },
  lastCommitCertain: true,
  restorePoints: [{ name: 'before the upgrade', time: '2024-05-01T12:05:00.000000Z', lsn: '0/5000100', segment: '000000010000000000000005' }],
  complete: true,
  ...extra,
});
const time = (text: string) => ({ kind: 'time' as const, time: normalizeTargetTime(text) });

const cases: {
  name: string;
  windows: WindowRecords[];
  target: Parameters<typeof checkTargetAgainstArchive>[1];
  expect: 'ok' | 'refuse' | 'warn';
  message?: RegExp;
}[] = [
  { name: 'a time before the last commit is reachable', windows: [window()], target: time('2024-05-01 12:09:00+00'), expect: 'ok' },
  { name: "the last commit's own time, to the microsecond, is reachable", windows: [window()], target: time('2024-05-01 12:09:17.123456+00'), expect: 'ok' },
  {
    name: 'a microsecond after the last commit is refused, naming it',
    windows: [window()],
    target: time('2024-05-01 12:09:17.123457+00'),
    expect: 'refuse',
    message:
      /^recovery target time 2024-05-01 12:09:17\.123457\+00:00 is after the last commit archived \(2024-05-01T12:09:17\.123456Z, at 0\/6FFFE00 in 000000010000000000000006 on timeline 1\)/,
  },
  { name: 'a time zone is taken into account', windows: [window()], target: time('2024-05-01 14:09:18+02:00'), expect: 'refuse' },
  {
    name: 'a later time while later WAL is not validated is a warning',
    windows: [window({ lastCommitCertain: false })],
    target: time('2024-05-01 13:00:00+00'),
    expect: 'warn',
    message: /not validated yet/,
  },
  { name: 'a time with no commit read yet is a warning', windows: [window({ lastCommit: null })], target: time('2024-05-01 13:00:00+00'), expect: 'warn' },
  {
    name: 'a time is judged on the newest timeline',
    windows: [window({ lastCommit: null }), window({ timeline: 2 })],
    target: time('2024-05-01 13:00:00+00'),
    expect: 'refuse',
    message: /on timeline 2/,
  },
  { name: 'a restore point in the archive is reachable', windows: [window()], target: { kind: 'name', name: 'before the upgrade' }, expect: 'ok' },
  {
    name: 'a restore point on an older timeline is reachable',
    windows: [window(), window({ timeline: 2, restorePoints: [] })],
    target: { kind: 'name', name: 'before the upgrade' },
    expect: 'ok',
  },
  {
    name: 'a name not in the archive is refused, listing those there are',
    windows: [window()],
    target: { kind: 'name', name: 'before the upgrad' },
    expect: 'refuse',
    message: /^restore point "before the upgrad" is not in the archive's recoverable WAL \(restore points there: "before the upgrade"\)$/,
  },
  {
    name: 'a name not found while some WAL is unread is a warning',
    windows: [window({ complete: false })],
    target: { kind: 'name', name: 'x' },
    expect: 'warn',
  },
  { name: 'a name with nothing restorable is a warning', windows: [], target: { kind: 'name', name: 'x' }, expect: 'warn' },
  { name: 'an LSN target is not judged here', windows: [window()], target: { kind: 'lsn', lsn: '9/0' }, expect: 'ok' },
];

for (const c of cases) {
  test(c.name, (t) => {
    const check = checkTargetAgainstArchive(c.windows, c.target);
    t.is(check.refusal !== undefined, c.expect === 'refuse', JSON.stringify(check));
    t.is(check.warning !== undefined, c.expect === 'warn', JSON.stringify(check));
    if (c.message) t.regex(check.refusal?.message ?? check.warning ?? '', c.message);
    if (check.refusal) t.regex(check.refusal.hint, /--force-target/);
  });
}
