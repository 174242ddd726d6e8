import test from 'ava';
import {
  backupManifestKey,
  backupMetaKey,
  backupName,
  backupNameFromKey,
  backupPartKey,
  backupPrefix,
  isBackupName,
  REPOSITORY_KEY,
  walFileNameFromKey,
  walObjectKey,
} from '../../core/layout.ts';

test('WAL files live under wal/ by their own name, without a codec extension', (t) => {
  t.is(walObjectKey('000000010000000000000003'), 'wal/000000010000000000000003');
  t.is(walObjectKey('00000002.history'), 'wal/00000002.history');
  t.is(walFileNameFromKey('wal/000000010000000000000003.partial'), '000000010000000000000003.partial');
  t.is(walFileNameFromKey('backups/base_000000010000000000000003/backup.json'), undefined);
});

test('backup keys sit in one folder per backup, metadata last by name', (t) => {
  const name = backupName('000000010000000000000004');
  t.is(name, 'base_000000010000000000000004');
  t.is(backupPrefix(name), 'backups/base_000000010000000000000004/');
  t.is(backupMetaKey(name), 'backups/base_000000010000000000000004/backup.json');
  t.is(backupManifestKey(name), 'backups/base_000000010000000000000004/manifest.jsonl');
  t.is(backupPartKey(name, 0), 'backups/base_000000010000000000000004/part_00000.tar');
  t.is(backupPartKey(name, 123), 'backups/base_000000010000000000000004/part_00123.tar');
});

test('part keys are fixed width so a listing comes back in part order', (t) => {
  const keys = [0, 1, 2, 9, 10, 11, 99, 100, 1000, 9999].map((i) => backupPartKey('base_000000010000000000000004', i));
  t.deepEqual([...keys].sort(), keys);
});

test('WAL keys of one timeline list in LSN order', (t) => {
  const names = ['0000000100000000000000FF', '000000010000000100000000', '000000010000000100000001', '000000020000000000000001'];
  const keys = names.map(walObjectKey);
  t.deepEqual([...keys].sort(), keys);
});

test('a backup name is read back from any of its keys', (t) => {
  t.is(backupNameFromKey('backups/base_000000010000000000000004/part_00001.tar'), 'base_000000010000000000000004');
  t.is(backupNameFromKey('backups/base_000000010000000000000004/backup.json'), 'base_000000010000000000000004');
  t.is(backupNameFromKey('backups/'), undefined);
  t.is(backupNameFromKey('wal/000000010000000000000004'), undefined);
});

const names: [string, boolean][] = [
  ['base_000000010000000000000004', true],
  ['base_000000010000000000000004_00000028', true],
  ['base_000000010000000000000004_0000028', false],
  ['base_00000001000000000000004', false],
  ['base_000000010000000000000004/..', false],
  ['LATEST', false],
  ['base_00000001000000000000000a', false],
];
for (const [name, valid] of names) {
  test(`"${name}" is ${valid ? '' : 'not '}a backup name`, (t) => {
    t.is(isBackupName(name), valid);
  });
}

test('the repository identity has a fixed key outside wal/ and backups/', (t) => {
  t.is(REPOSITORY_KEY, 'gcwal.json');
});
