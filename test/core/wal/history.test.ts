import test from 'ava';
import { InvalidInputError } from '../../../core/errors.ts';
import { MAX_LSN } from '../../../core/wal/lsn.ts';
import { formatHistoryFile, parseHistoryFile, timelineOfLsn, type TimelineHistoryEntry } from '../../../core/wal/history.ts';

// 00000003.history as PostgreSQL 15 writes it after two promotions: the
// parent's file copied, then a blank line and the new entry.
const THIRD_TIMELINE = '1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tbefore 2024-05-01 12:00:00+00\n';
const THIRD_ENTRIES: TimelineHistoryEntry[] = [
  { parentTimeline: 1, switchLsn: 0x300_0158n, reason: 'no recovery target specified' },
  { parentTimeline: 2, switchLsn: 0x500_0000n, reason: 'before 2024-05-01 12:00:00+00' },
];

test('parseHistoryFile reads a file as PostgreSQL writes it', (t) => {
  t.deepEqual(parseHistoryFile(THIRD_TIMELINE, 3), THIRD_ENTRIES);
});

test('formatHistoryFile writes the same bytes PostgreSQL does', (t) => {
  t.is(formatHistoryFile(THIRD_ENTRIES), THIRD_TIMELINE);
  t.is(formatHistoryFile(THIRD_ENTRIES.slice(0, 1)), '1\t0/3000158\tno recovery target specified\n');
  t.is(formatHistoryFile([]), '');
});

test('parseHistoryFile inverts formatHistoryFile', (t) => {
  const entries: TimelineHistoryEntry[] = [
    { parentTimeline: 1, switchLsn: 0n, reason: 'no recovery target specified' },
    { parentTimeline: 2, switchLsn: 0n, reason: 'at restore point "before upgrade"' },
    { parentTimeline: 5, switchLsn: 0x16_b374_d848n, reason: 'after transaction 734' },
    { parentTimeline: 6, switchLsn: MAX_LSN, reason: 'reason\twith a tab' },
  ];
  for (let n = 0; n <= entries.length; n++) {
    const some = entries.slice(0, n);
    t.deepEqual(parseHistoryFile(formatHistoryFile(some), 7), some);
  }
});

test('parseHistoryFile ignores comments, blank lines, indentation and CRLF', (t) => {
  const text =
    '# written by hand\r\n\r\n  1\t0/3000158\tno recovery target specified\r\n\t# indented comment\n\n2 0/5000000 before 2024-05-01 12:00:00+00   \n\n';
  t.deepEqual(parseHistoryFile(text, 3), THIRD_ENTRIES);
});

test('parseHistoryFile accepts a line without a reason and zero-padded LSNs', (t) => {
  t.deepEqual(parseHistoryFile('1\t0/03000158\n', 2), [{ parentTimeline: 1, switchLsn: 0x300_0158n, reason: '' }]);
});

test('parseHistoryFile of an empty file is an empty history', (t) => {
  t.deepEqual(parseHistoryFile('', 1), []);
  t.deepEqual(parseHistoryFile('\n# nothing\n', 2), []);
});

// [title, text, timeline, expected message]
const malformed: [string, string, number, RegExp][] = [
  ['a non-numeric timeline', 'x\t0/1\treason\n', 2, /line 1 is malformed: "x\\t0\/1\\treason"/],
  ['a missing switch point', '1\n', 2, /line 1 is malformed/],
  ['a malformed switch point', '1\tZZ/1\treason\n', 2, /line 1 is malformed/],
  ['a switch point with too many digits', '1\t0/123456789\treason\n', 2, /line 1 is malformed/],
  ['a negative timeline', '-1\t0/1\treason\n', 2, /line 1 is malformed/],
  ['timeline 0', '0\t0/1\treason\n', 2, /line 1 has an invalid timeline/],
  ['a timeline beyond 32 bits', '4294967296\t0/1\treason\n', 4294967295, /line 1 has an invalid timeline/],
  ['a repeated timeline', '1\t0/1\ta\n\n1\t0/2\tb\n', 3, /line 3 does not increase the timeline/],
  ['decreasing timelines', '2\t0/1\ta\n1\t0/2\tb\n', 3, /line 2 does not increase the timeline/],
  ["a parent equal to the file's timeline", '1\t0/1\ta\n\n2\t0/2\tb\n', 2, /line 3 names a timeline not below 2/],
  ["a parent after the file's timeline", '5\t0/1\ta\n', 3, /line 1 names a timeline not below 3/],
  ['switch points going backwards', '1\t0/5000000\ta\n\n2\t0/3000000\tb\n', 3, /line 3 has a switch point before the previous one/],
];

for (const [title, text, timeline, message] of malformed) {
  test(`parseHistoryFile rejects ${title}`, (t) => {
    const err = t.throws(() => parseHistoryFile(text, timeline), { instanceOf: InvalidInputError });
    t.regex(err.message, message);
    t.regex(err.message, new RegExp(`^history file of timeline ${timeline} `));
    t.false(err.message.includes('\n'));
    t.regex(err.hint, /parentTLI<TAB>switchpoint<TAB>reason/);
  });
}

test('parseHistoryFile rejects an invalid timeline argument', (t) => {
  t.throws(() => parseHistoryFile('', 0), { instanceOf: InvalidInputError, message: /timeline 0 is out of range/ });
});

// [lsn, timeline on the history of timeline 3 described by THIRD_ENTRIES]
const points: [bigint, number][] = [
  [0n, 1],
  [0x300_0157n, 1],
  [0x300_0158n, 2],
  [0x4ff_ffffn, 2],
  [0x500_0000n, 3],
  [0x16_b374_d848n, 3],
  [MAX_LSN, 3],
];

for (const [lsn, timeline] of points) {
  test(`timelineOfLsn places ${lsn.toString(16)} on timeline ${timeline}`, (t) => {
    t.is(timelineOfLsn(THIRD_ENTRIES, 3, lsn), timeline);
  });
}

test('timelineOfLsn without history is the current timeline', (t) => {
  t.is(timelineOfLsn([], 1, 0n), 1);
  t.is(timelineOfLsn([], 4, MAX_LSN), 4);
});

test('timelineOfLsn skips a timeline that ended where it began', (t) => {
  // Timeline 2 was promoted again before writing anything.
  const entries = parseHistoryFile('1\t0/3000000\ta\n\n2\t0/3000000\tb\n', 3);
  t.is(timelineOfLsn(entries, 3, 0x2ff_ffffn), 1);
  t.is(timelineOfLsn(entries, 3, 0x300_0000n), 3);
});

test('timelineOfLsn follows a history that skips timelines', (t) => {
  // Timeline 5 branched from 4, which branched from 1: 2 and 3 are elsewhere.
  const entries = parseHistoryFile('1\t0/3000000\ta\n\n4\t0/7000000\tb\n', 5);
  t.is(timelineOfLsn(entries, 5, 0x500_0000n), 4);
  t.is(timelineOfLsn(entries, 5, 0x700_0000n), 5);
});
