import test from 'ava';
import { parseBackupLabel, parseGucBytes, shortVersion } from '../../../agent/backup/pg-backup.ts';
import { InvalidInputError, PostgresError } from '../../../core/errors.ts';

const sizes: [string, number][] = [
  ['16MB', 16 * 1024 * 1024],
  ['1GB', 1024 ** 3],
  ['1MB', 1024 * 1024],
  ['512kB', 512 * 1024],
  ['16777216', 16 * 1024 * 1024],
  ['64 MB', 64 * 1024 * 1024],
];

for (const [text, bytes] of sizes) {
  test(`wal_segment_size ${text} is ${bytes} bytes`, (t) => {
    t.is(parseGucBytes(text), bytes);
  });
}

test('an unexpected wal_segment_size is a postgres error', (t) => {
  t.throws(() => parseGucBytes('16 megs'), { instanceOf: PostgresError });
});

test('the server version drops the distribution suffix', (t) => {
  t.is(shortVersion('15.10 (Debian 15.10-1.pgdg120+1)'), '15.10');
  t.is(shortVersion('13.2'), '13.2');
  t.is(shortVersion('17beta1'), '17beta1');
});

test('the backup label gives the start WAL file, LSN and timeline', (t) => {
  const label = [
    'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)',
    'CHECKPOINT LOCATION: 0/2000060',
    'BACKUP METHOD: streamed',
    'BACKUP FROM: primary',
    'START TIME: 2024-05-01 12:00:00 UTC',
    'LABEL: gcwal 2024-05-01T12:00:00.000Z',
    'START TIMELINE: 1',
    '',
  ].join('\n');
  t.deepEqual(parseBackupLabel(label), { lsn: 0x2000028n, walFile: '000000010000000000000002', timeline: 1 });
});

test('a backup label without START TIMELINE has no timeline', (t) => {
  t.deepEqual(parseBackupLabel('START WAL LOCATION: 1A/FF000028 (file 000000030000001A000000FF)\n'), { lsn: 0x1AFF000028n, walFile: '000000030000001A000000FF', timeline: undefined });
});

test('text that is not a backup label is refused', (t) => {
  t.throws(() => parseBackupLabel('LABEL: x\n'), { instanceOf: InvalidInputError });
});
