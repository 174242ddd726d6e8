import test from 'ava';
import { classifyCatalogueKey, compareGenerations, compareTimes, isGeneration, type CatalogueKey } from '../../../core/catalogue/keys.ts';

const keys: [string, CatalogueKey | undefined][] = [
  ['wal/000000010000000000000003', { kind: 'wal', name: '000000010000000000000003' }],
  ['wal/00000002.history', { kind: 'wal', name: '00000002.history' }],
  ['wal/000000010000000000000003.partial', { kind: 'wal', name: '000000010000000000000003.partial' }],
  ['wal/000000010000000000000003.00000028.backup', { kind: 'wal', name: '000000010000000000000003.00000028.backup' }],
  ['wal/000000010000000000000003.tmp', undefined],
  ['wal/00000001000000000000000a', undefined],
  ['backups/base_000000010000000000000002/part_00000.tar', { kind: 'part', backup: 'base_000000010000000000000002' }],
  ['backups/base_000000010000000000000002/backup.json', { kind: 'backup-meta', backup: 'base_000000010000000000000002' }],
  ['backups/base_000000010000000000000002/manifest.jsonl', { kind: 'backup-manifest', backup: 'base_000000010000000000000002' }],
  ['backups/base_000000010000000000000002/part_0.tar', undefined],
  ['backups/base_000000010000000000000002/x/backup.json', undefined],
  ['backups/other/backup.json', undefined],
  ['gcwal.json', undefined],
  ['catalogue/catalogue.json', undefined],
];

for (const [key, expected] of keys) {
  test(`classifyCatalogueKey reads ${key} as ${expected?.kind ?? 'not catalogued'}`, (t) => {
    t.deepEqual(classifyCatalogueKey(key), expected);
  });
}

test('compareGenerations orders decimal strings by value, beyond 2^53', (t) => {
  t.true(compareGenerations('9', '10') < 0);
  t.true(compareGenerations('1714521600123457', '1714521600123456') > 0);
  t.is(compareGenerations('9007199254740993', '9007199254740993'), 0);
  t.true(compareGenerations('9007199254740992', '9007199254740993') < 0);
});

test('isGeneration accepts decimal strings only', (t) => {
  t.true(isGeneration('0'));
  t.true(isGeneration('1714521600123456'));
  for (const bad of ['', '1.5', '-1', '0x10', ' 1', 12, undefined]) t.false(isGeneration(bad), String(bad));
});

test('compareTimes orders by instant, not by text', (t) => {
  t.true(compareTimes('2024-05-01T00:00:00Z', '2024-05-01T00:00:00.500Z') < 0);
  t.true(compareTimes('2024-05-01T01:00:00+02:00', '2024-05-01T00:00:00Z') < 0);
  t.true(compareTimes('garbage', '2024-05-01T00:00:00Z') < 0);
  t.is(compareTimes('2024-05-01T00:00:00Z', '2024-05-01T00:00:00Z'), 0);
  t.not(compareTimes('2024-05-01T00:00:00Z', '2024-05-01T00:00:00.000Z'), 0, 'equal instants still order by text, so the order is total');
});
