import test from 'ava';
import { applyCatalogueEvents } from '../../../core/catalogue/apply.ts';
import { emptyCatalogue, type BackupSummaryForCatalogue, type CatalogueEvent } from '../../../core/catalogue/types.ts';
import { backupMetaKey, backupPartKey } from '../../../core/layout.ts';

const NAME = 'base_000000010000000000000002';
const now = new Date('2026-12-07T12:00:00.000Z');
const summary: BackupSummaryForCatalogue = {
  name: NAME,
  systemIdentifier: '7300000000000000042',
  pgVersionNum: 150010,
  timeline: 1,
  startLsn: '0/2000028',
  stopLsn: '0/2000138',
  startWalSegment: '000000010000000000000002',
  stopWalSegment: '000000010000000000000002',
  startTime: '2026-12-07T11:00:00.000Z',
  stopTime: '2026-12-07T11:00:01.000Z',
  rawSize: 100,
  storedSize: 30,
  keys: [backupPartKey(NAME, 0), backupPartKey(NAME, 1), backupPartKey(NAME, 2), backupMetaKey(NAME)],
};
const SEALS = ['sealAAAAAAAAAAAAAAAAAA', 'sealBBBBBBBBBBBBBBBBBB', 'sealCCCCCCCCCCCCCCCCCC'];

function partEvents(i: number, outcome: { seal?: string; problem?: string }): CatalogueEvent[] {
  const key = backupPartKey(NAME, i);
  return [
    { type: 'finalized', key, generation: String(100 + i), size: 10, created: '2026-12-07T11:00:00.000Z' },
    { type: 'validated', key, generation: String(100 + i), ok: outcome.problem === undefined, ...outcome, time: `2026-12-07T11:01:0${i}.000Z` },
  ];
}
const checked: CatalogueEvent = {
  type: 'validated',
  key: backupMetaKey(NAME),
  generation: '200',
  ok: true,
  time: '2026-12-07T11:00:30.000Z',
  backup: summary,
  partSeals: SEALS,
};

/** Every order of the groups, flattened (groups keep their own order: a part's finalize before its verdict). */
function orders<T>(groups: T[][]): T[][] {
  if (groups.length <= 1) return [groups.flat()];
  return groups.flatMap((g, i) => orders([...groups.slice(0, i), ...groups.slice(i + 1)]).map((rest) => [...g, ...rest]));
}

test("a backup is valid once every part carries the seal backup.json's check gave, in whatever order the events come", (t) => {
  const groups = [[checked], ...SEALS.map((seal, i) => partEvents(i, { seal }))];
  for (const events of orders(groups)) {
    const one = applyCatalogueEvents(emptyCatalogue(now), events, now);
    t.like(one.backups[NAME], { state: 'valid', validated: '2026-12-07T11:01:02.000Z' });
    t.is(one.backups[NAME].awaiting, undefined);
    // One event at a time, as separate function runs commit them.
    const stepwise = events.reduce((c, e) => applyCatalogueEvents(c, [e], now), emptyCatalogue(now));
    t.deepEqual(stepwise.backups, one.backups);
  }
});

test("until the last part's verdict is known the backup stays pending, holding the seals it waits for", (t) => {
  const c = applyCatalogueEvents(
    emptyCatalogue(now),
    [checked, ...partEvents(0, { seal: SEALS[0] }), ...partEvents(2, { seal: SEALS[2] }), partEvents(1, {})[0]],
    now,
  );
  t.like(c.backups[NAME], { state: 'pending', awaiting: { checked: checked.time, seals: SEALS } });
  t.is(applyCatalogueEvents(c, [checked], now), c, 'the same check again changes nothing');
});

test('a part whose seal differs, or which failed validation, makes the backup corrupt, naming the first such part', (t) => {
  const mismatched = applyCatalogueEvents(
    emptyCatalogue(now),
    [checked, ...partEvents(0, { seal: SEALS[0] }), ...partEvents(1, { seal: 'sealXXXXXXXXXXXXXXXXXX' }), ...partEvents(2, { seal: SEALS[2] })],
    now,
  );
  t.is(mismatched.backups[NAME].state, 'corrupt');
  t.regex(
    mismatched.backups[NAME].problem!,
    new RegExp(`^part 1 \\(backups/${NAME}/part_00001\\.tar\\) of backup ${NAME} does not hold what backup\\.json and the manifest record for it`),
  );
  t.is(mismatched.parts[backupPartKey(NAME, 1)].state, 'valid', 'the part alone is fine');

  const failed = applyCatalogueEvents(
    emptyCatalogue(now),
    [checked, ...partEvents(0, { problem: 'not a tar stream' }), ...partEvents(1, { seal: 'sealXXXXXXXXXXXXXXXXXX' }), ...partEvents(2, { seal: SEALS[2] })],
    now,
  );
  t.is(
    failed.backups[NAME].problem,
    `part 0 (backups/${NAME}/part_00000.tar) of backup ${NAME} failed validation (not a tar stream); 1 more of its 3 parts are bad too`,
  );
});

test('a part validated before gcwal recorded seals is waited for until it is validated again', (t) => {
  const old = applyCatalogueEvents(
    emptyCatalogue(now),
    [checked, ...partEvents(0, {}), ...partEvents(1, { seal: SEALS[1] }), ...partEvents(2, { seal: SEALS[2] })],
    now,
  );
  t.is(old.backups[NAME].state, 'pending');
  const again = applyCatalogueEvents(
    old,
    [{ ...(partEvents(0, { seal: SEALS[0] })[1] as Extract<CatalogueEvent, { type: 'validated' }>), time: '2026-12-07T11:05:00.000Z' }],
    now,
  );
  t.like(again.backups[NAME], { state: 'valid', validated: '2026-12-07T11:05:00.000Z' });
});

test('a backup.json check that failed settles the backup at once, without its parts', (t) => {
  const c = applyCatalogueEvents(
    emptyCatalogue(now),
    [
      { type: 'validated', key: backupMetaKey(NAME), generation: '200', ok: false, problem: 'part 1 is missing', time: checked.time, backup: summary },
      ...partEvents(0, { seal: SEALS[0] }),
    ],
    now,
  );
  t.like(c.backups[NAME], { state: 'corrupt', problem: 'part 1 is missing' });
  t.is(applyCatalogueEvents(c, [checked], now).backups[NAME].state, 'corrupt', 'a later passing check of the same generation does not reopen it');
});
