import test from 'ava';
import { realpathSync } from 'node:fs';
import { parseBackupLabel, parseGucBytes, readClusterInfo, shortVersion, startBackup, stopBackup } from '../../../agent/backup/pg-backup.ts';
import { connectPostgres } from '../../../agent/pg/connect.ts';
import { InvalidInputError, PostgresError } from '../../../core/errors.ts';
import { formatLsn } from '../../../core/wal/lsn.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';

async function session(t: { teardown: (fn: () => Promise<void> | void) => void }, cluster: Cluster) {
  const { client } = await connectPostgres({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres', password: undefined });
  t.teardown(() => client.end());
  return client;
}

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
  t.deepEqual(parseBackupLabel('START WAL LOCATION: 1A/FF000028 (file 000000030000001A000000FF)\n'), {
    lsn: 0x1aff000028n,
    walFile: '000000030000001A000000FF',
    timeline: undefined,
  });
});

test('text that is not a backup label is refused', (t) => {
  t.throws(() => parseBackupLabel('LABEL: x\n'), { instanceOf: InvalidInputError });
});

test('the server settings a backup needs are read from a real server', async (t) => {
  const cluster = await startCluster({ walSegSizeMB: 1 });
  t.teardown(() => cluster.destroy());
  const client = await session(t, cluster);
  const info = await readClusterInfo(client);
  const [control] = await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  t.is(info.systemIdentifier, control.id);
  t.is(info.walSegmentSize, 1024 * 1024);
  t.is(realpathSync(info.dataDirectory), realpathSync(cluster.pgdata));
  t.true(info.versionNum >= 130000);
  t.is(info.major, Math.floor(info.versionNum / 10000));
  t.regex(info.version, /^\d+(\.\d+)?$/);
  t.false(info.inRecovery);
  t.is(info.archiveMode, 'on');
});

test('a backup started and stopped on one session gives a label that matches its start', async (t) => {
  const cluster = await startCluster({ archiveCommand: '/bin/true' });
  t.teardown(() => cluster.destroy());
  const client = await session(t, cluster);
  const info = await readClusterInfo(client);
  const start = await startBackup(client, info.versionNum, 'gcwal test');
  t.is(start.timeline, 1);
  const stop = await stopBackup(client, info.versionNum, true);
  t.true(stop.lsn > start.lsn);
  const label = parseBackupLabel(stop.backupLabel);
  t.is(label.lsn, start.lsn);
  t.is(label.timeline, 1);
  t.regex(stop.backupLabel, /^LABEL: gcwal test$/m);
  t.is(stop.tablespaceMap, '');
  t.is(formatLsn(label.lsn), formatLsn(start.lsn));
});

test('stopping without waiting ends backup mode, so the session can start another', async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  const client = await session(t, cluster);
  const info = await readClusterInfo(client);
  await startBackup(client, info.versionNum, 'first');
  // Starting twice in one session is refused by the server...
  await t.throwsAsync(startBackup(client, info.versionNum, 'again'), { instanceOf: PostgresError, message: /sqlstate 55000/ });
  // ...and once stopped (archiving is not configured, so waiting would hang) it is allowed again.
  await stopBackup(client, info.versionNum, false);
  await t.notThrowsAsync(startBackup(client, info.versionNum, 'second'));
  await stopBackup(client, info.versionNum, false);
});

test('stopping a backup that was never started is a postgres error', async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  const client = await session(t, cluster);
  const info = await readClusterInfo(client);
  await t.throwsAsync(stopBackup(client, info.versionNum, false), { instanceOf: PostgresError, message: /^stopping the backup failed: .*not in progress/ });
});
