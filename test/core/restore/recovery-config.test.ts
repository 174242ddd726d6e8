import test from 'ava';
import { UsageError } from '../../../core/errors.ts';
import {
  describeTarget,
  normalizeTargetTime,
  normalizeTimeline,
  parseRecoveryOptions,
  quoteConfigValue,
  quoteShellWord,
  type RecoveryOptions,
  type RecoveryPlan,
  recoveryConfigBlock,
  restoreCommand,
} from '../../../core/restore/recovery-config.ts';

const times: [string, string][] = [
  ['2024-05-01 12:30:00+00', '2024-05-01 12:30:00+00:00'],
  ['2024-05-01T12:30:00Z', '2024-05-01 12:30:00+00:00'],
  ['2024-05-01 12:30:00 UTC', '2024-05-01 12:30:00+00:00'],
  ['2024-05-01 12:30+02', '2024-05-01 12:30:00+02:00'],
  ['2024-05-01 12:30:00.123456-03:30', '2024-05-01 12:30:00.123456-03:30'],
  ['2024-05-01 12:30:00.5+0530', '2024-05-01 12:30:00.5+05:30'],
  ['2024-02-29 00:00:00+00', '2024-02-29 00:00:00+00:00'],
  ['  2024-05-01 23:59:59z ', '2024-05-01 23:59:59+00:00'],
];
for (const [input, expected] of times) {
  test(`target time ${JSON.stringify(input)} is written as ${expected}`, (t) => {
    t.is(normalizeTargetTime(input), expected);
  });
}

const badTimes: [string, RegExp][] = [
  ['2024-05-01 12:30:00', /not a timestamp with a time zone/],
  ['yesterday', /not a timestamp/],
  ['2024-05-01', /not a timestamp/],
  ['2023-02-29 00:00:00+00', /no such date/],
  ['2024-13-01 00:00:00+00', /no such date/],
  ['2024-04-31 00:00:00+00', /no such date/],
  ['2024-05-01 24:00:00+00', /no such time of day/],
  ['2024-05-01 12:60:00+00', /no such time of day/],
  ['2024-05-01 12:00:00.1234567+00', /not a timestamp/],
  ['2024-05-01 12:00:00+16', /no such time zone offset/],
  ['2024-05-01 12:00:00 CEST', /not a timestamp/],
];
for (const [input, message] of badTimes) {
  test(`target time ${JSON.stringify(input)} is refused`, (t) => {
    const err = t.throws(() => normalizeTargetTime(input), { instanceOf: UsageError });
    t.regex(err!.message, message);
    t.regex(err!.hint, /time zone/);
  });
}

test('timelines are latest, current or a positive 32-bit number', (t) => {
  t.is(normalizeTimeline('latest'), 'latest');
  t.is(normalizeTimeline('CURRENT'), 'current');
  t.is(normalizeTimeline('2'), '2');
  t.is(normalizeTimeline('007'), '7');
  t.is(normalizeTimeline('4294967295'), '4294967295');
  for (const bad of ['0', '4294967296', '-1', '0x2', 'newest', '']) t.throws(() => normalizeTimeline(bad), { instanceOf: UsageError }, bad);
});

const plans: { name: string; options: RecoveryOptions; expected: RecoveryPlan | undefined }[] = [
  { name: 'no option asks for no recovery', options: {}, expected: undefined },
  {
    name: '--recovery alone recovers to the end of the archive',
    options: { recovery: true },
    expected: { target: undefined, timeline: undefined, action: undefined, exclusive: false },
  },
  {
    name: 'a timeline alone implies recovery',
    options: { targetTimeline: '3' },
    expected: { target: undefined, timeline: '3', action: undefined, exclusive: false },
  },
  {
    name: 'a time target is normalised',
    options: { targetTime: '2024-05-01T12:30:00Z', targetAction: 'promote' },
    expected: { target: { kind: 'time', time: '2024-05-01 12:30:00+00:00' }, timeline: undefined, action: 'promote', exclusive: false },
  },
  {
    name: 'an lsn target is normalised',
    options: { targetLsn: '0/0300ab28', targetExclusive: true },
    expected: { target: { kind: 'lsn', lsn: '0/300AB28' }, timeline: undefined, action: undefined, exclusive: true },
  },
  {
    name: 'a name target is kept as given',
    options: { targetName: "before 'drop'", targetTimeline: 'current' },
    expected: { target: { kind: 'name', name: "before 'drop'" }, timeline: 'current', action: undefined, exclusive: false },
  },
  {
    name: 'an immediate target',
    options: { targetImmediate: true, targetAction: 'shutdown' },
    expected: { target: { kind: 'immediate' }, timeline: undefined, action: 'shutdown', exclusive: false },
  },
];
for (const { name, options, expected } of plans) {
  test(`recovery options: ${name}`, (t) => {
    t.deepEqual(parseRecoveryOptions(options), expected);
  });
}

const refused: { name: string; options: RecoveryOptions; message: RegExp }[] = [
  {
    name: 'two targets',
    options: { targetTime: '2024-05-01 12:30:00+00', targetLsn: '0/3000000' },
    message: /mutually exclusive, got --target-time and --target-lsn/,
  },
  { name: 'immediate and a name', options: { targetImmediate: true, targetName: 'x' }, message: /mutually exclusive/ },
  { name: 'a malformed lsn', options: { targetLsn: '3000000' }, message: /invalid recovery target lsn "3000000"/ },
  { name: 'an lsn with a 0x prefix', options: { targetLsn: '0x0/3' }, message: /invalid recovery target lsn/ },
  { name: 'an empty restore point name', options: { targetName: '' }, message: /invalid restore point name/ },
  { name: 'a restore point name over 63 bytes', options: { targetName: 'é'.repeat(32) }, message: /invalid restore point name/ },
  { name: 'an unknown action', options: { targetImmediate: true, targetAction: 'stop' }, message: /invalid recovery target action "stop"/ },
  { name: 'an action without a target', options: { recovery: true, targetAction: 'promote' }, message: /--target-action needs a recovery target/ },
  { name: 'exclusive with a name target', options: { targetName: 'x', targetExclusive: true }, message: /--target-exclusive applies only/ },
  { name: 'exclusive without a target', options: { recovery: true, targetExclusive: true }, message: /--target-exclusive applies only/ },
];
for (const { name, options, message } of refused) {
  test(`recovery options refuse ${name}`, (t) => {
    const err = t.throws(() => parseRecoveryOptions(options), { instanceOf: UsageError });
    t.regex(err!.message, message);
  });
}

test('a restore point name of exactly 63 bytes is accepted', (t) => {
  t.deepEqual(parseRecoveryOptions({ targetName: 'n'.repeat(63) })?.target, { kind: 'name', name: 'n'.repeat(63) });
});

const shellWords: [string, string][] = [
  ['gcwal', "'gcwal'"],
  ['/opt/my tools/gcwal', "'/opt/my tools/gcwal'"],
  ["it's", "'it'\\''s'"],
  ['', "''"],
];
for (const [word, quoted] of shellWords) {
  test(`shell quoting of ${JSON.stringify(word)}`, (t) => {
    t.is(quoteShellWord(word), quoted);
  });
}

const configValues: [string, string][] = [
  ['plain', "'plain'"],
  ["a'b", "'a''b'"],
  ['back\\slash', "'back\\\\slash'"],
  ['', "''"],
];
for (const [value, quoted] of configValues) {
  test(`configuration quoting of ${JSON.stringify(value)}`, (t) => {
    t.is(quoteConfigValue(value), quoted);
  });
}

test('configuration values cannot hold a newline', (t) => {
  t.throws(() => quoteConfigValue('a\nb'), { instanceOf: UsageError, message: /control character/ });
});

const commands: { name: string; repo: string; gcwal: string; expected: string }[] = [
  { name: 'a plain repository', repo: 'gs://bucket/prod', gcwal: 'gcwal', expected: "env GCWAL_REPO='gs://bucket/prod' 'gcwal' wal-fetch %f %p" },
  {
    name: 'a path with a space and a single quote',
    repo: "file:///srv/o'brien backups",
    gcwal: '/usr/local/bin/gcwal',
    expected: "env GCWAL_REPO='file:///srv/o'\\''brien backups' '/usr/local/bin/gcwal' wal-fetch %f %p",
  },
  {
    name: 'percent signs, which PostgreSQL would expand',
    repo: 'file:///srv/100%fun',
    gcwal: '/opt/50%/gcwal',
    expected: "env GCWAL_REPO='file:///srv/100%%fun' '/opt/50%%/gcwal' wal-fetch %f %p",
  },
];
for (const { name, repo, gcwal, expected } of commands) {
  test(`restore_command for ${name}`, (t) => {
    t.is(restoreCommand(repo, gcwal), expected);
  });
}

test('the restore_command line quotes the shell quoting again for the configuration file', (t) => {
  const block = recoveryConfigBlock({
    plan: { target: undefined, timeline: undefined, action: undefined, exclusive: false },
    repoUrl: "file:///srv/o'brien backups",
    gcwalCommand: 'C:\\gcwal',
    backupName: 'base_000000010000000000000004',
  });
  t.is(block.split('\n')[1], "restore_command = 'env GCWAL_REPO=''file:///srv/o''\\\\''''brien backups'' ''C:\\\\gcwal'' wal-fetch %f %p'");
});

const reset = (except: string) =>
  ['recovery_target', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_xid']
    .filter((s) => s !== except)
    .map((s) => `${s} = ''`);

const blocks: { name: string; plan: RecoveryPlan; settings: string[] }[] = [
  {
    name: 'to the end of the archive',
    plan: { target: undefined, timeline: undefined, action: undefined, exclusive: false },
    settings: [...reset(''), 'recovery_target_inclusive = on', "recovery_target_timeline = 'latest'", "recovery_target_action = 'pause'"],
  },
  {
    name: 'to a time, exclusive, promoting',
    plan: { target: { kind: 'time', time: '2024-05-01 12:30:00+00:00' }, timeline: undefined, action: 'promote', exclusive: true },
    settings: [
      ...reset('recovery_target_time'),
      "recovery_target_time = '2024-05-01 12:30:00+00:00'",
      'recovery_target_inclusive = off',
      "recovery_target_timeline = 'latest'",
      "recovery_target_action = 'promote'",
    ],
  },
  {
    name: 'to an lsn on timeline 2',
    plan: { target: { kind: 'lsn', lsn: '0/3000060' }, timeline: '2', action: undefined, exclusive: false },
    settings: [
      ...reset('recovery_target_lsn'),
      "recovery_target_lsn = '0/3000060'",
      'recovery_target_inclusive = on',
      "recovery_target_timeline = '2'",
      "recovery_target_action = 'pause'",
    ],
  },
  {
    name: 'to a restore point with a quote in its name',
    plan: { target: { kind: 'name', name: "it's done" }, timeline: 'current', action: 'shutdown', exclusive: false },
    settings: [
      ...reset('recovery_target_name'),
      "recovery_target_name = 'it''s done'",
      'recovery_target_inclusive = on',
      "recovery_target_timeline = 'current'",
      "recovery_target_action = 'shutdown'",
    ],
  },
  {
    name: 'to consistency',
    plan: { target: { kind: 'immediate' }, timeline: undefined, action: undefined, exclusive: false },
    settings: [
      ...reset('recovery_target'),
      "recovery_target = 'immediate'",
      'recovery_target_inclusive = on',
      "recovery_target_timeline = 'latest'",
      "recovery_target_action = 'pause'",
    ],
  },
];
for (const { name, plan, settings } of blocks) {
  test(`the postgresql.auto.conf block for recovery ${name}`, (t) => {
    const block = recoveryConfigBlock({ plan, repoUrl: 'file:///repo', gcwalCommand: 'gcwal', backupName: 'base_000000010000000000000004' });
    t.true(block.endsWith('\n'));
    const lines = block.slice(0, -1).split('\n');
    t.regex(lines[0], /^# recovery settings written by gcwal backup-fetch base_000000010000000000000004/);
    t.is(lines[1], "restore_command = 'env GCWAL_REPO=''file:///repo'' ''gcwal'' wal-fetch %f %p'");
    t.deepEqual(lines.slice(2), settings);
  });
}

test('descriptions name the target, timeline and action', (t) => {
  t.is(describeTarget({ target: undefined, timeline: undefined, action: undefined, exclusive: false }), 'the end of the archive');
  t.is(
    describeTarget({ target: { kind: 'lsn', lsn: '0/3000060' }, timeline: '2', action: undefined, exclusive: false }),
    'lsn 0/3000060 on timeline 2, then pause',
  );
  t.is(describeTarget({ target: { kind: 'immediate' }, timeline: undefined, action: 'promote', exclusive: false }), 'the end of the backup, then promote');
});
