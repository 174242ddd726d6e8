/**
 * pgBackRest 2.45 with `repo1-type=gcs` against the emulator over HTTPS:
 * stanza-create, archive-push of a real WAL segment (once compressed, which
 * is a small media upload, once uncompressed, which is a 16 MiB resumable
 * upload in 4 MiB chunks), archive-get back, byte for byte; then a full
 * backup with archive_command set to pgBackRest. pgBackRest sends
 * its token as the raw Authorization value, so auth is enforced here.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AccessControl } from '../../../local/auth/types.ts';
import { startCluster } from '../../../local/testkit/cluster.ts';
import { exec, type ExecResult } from '../../../local/testkit/exec.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { asPostgres, childEnv } from '../../../local/testkit/users.ts';
import { logRequests, startTestEmulator } from './harness.ts';

const PGBACKREST = '/usr/bin/pgbackrest';
const TOKEN = 'pgbr-token';

const access: AccessControl = {
  identify: (token) => (token === TOKEN ? 'pgbackrest@test.iam.gserviceaccount.com' : undefined),
  allowed: () => true,
};

test('pgBackRest creates a stanza, pushes and gets WAL through the emulator over HTTPS', async (t) => {
  if (!existsSync(PGBACKREST)) {
    t.fail('pgbackrest is not installed: apt-get install -y pgbackrest');
    return;
  }
  const { emu } = await startTestEmulator(t, { https: true, access });
  await emu.createBucket('pgbr-bucket');
  const log = logRequests(emu);
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  const work = await makeTempDir('pgbr', { owner: 'postgres' });
  t.teardown(() => work.cleanup());

  const config = path.join(work.path, 'pgbackrest.conf');
  await writeFile(
    config,
    [
      '[global]',
      'repo1-type=gcs',
      'repo1-gcs-bucket=pgbr-bucket',
      `repo1-gcs-endpoint=${new URL(emu.httpsUrl!).host}`,
      'repo1-storage-verify-tls=n',
      'repo1-gcs-key-type=token',
      `repo1-gcs-key=${TOKEN}`,
      'repo1-path=/pgbr',
      `log-path=${work.path}`,
      `lock-path=${work.path}`,
      `spool-path=${work.path}`,
      'log-level-console=warn',
      'log-level-file=off',
      '',
      '[demo]',
      `pg1-path=${cluster.pgdata}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.host}`,
      '',
    ].join('\n'),
  );

  const env = await childEnv({}, true);
  const pgbackrest = async (...args: string[]): Promise<ExecResult> => {
    const [file, argv] = asPostgres(PGBACKREST, [`--config=${config}`, '--stanza=demo', ...args]);
    const result = await exec(file, argv, { env, cwd: work.path, timeoutMs: 120_000 });
    t.is(result.code, 0, `pgbackrest ${args.join(' ')}: ${result.stderr}${result.stdout}`);
    return result;
  };

  await pgbackrest('stanza-create');
  t.true(
    log.some((line) => line.startsWith('POST /upload/storage/v1/b/pgbr-bucket/o') && line.includes('uploadType=media')),
    log.join('\n'),
  );

  // archive_command is unset, so closed segments stay in pg_wal (.ready) for us to push by hand.
  await cluster.query('CREATE TABLE t (g int)');
  for (const compress of ['gz', 'none']) {
    // Some WAL in the current segment, so that the switch closes a new one.
    await cluster.query('INSERT INTO t SELECT generate_series(1, 1000)');
    const segment = await cluster.switchWal();
    const source = path.join(cluster.pgdata, 'pg_wal', segment);
    await pgbackrest(`--compress-type=${compress}`, 'archive-push', source);
    const fetched = path.join(work.path, `${segment}.fetched`);
    await pgbackrest('archive-get', segment, fetched);
    t.true((await readFile(fetched)).equals(await readFile(source)), `segment ${segment} (compress-type=${compress}) came back different`);
  }
  // The uncompressed 16 MiB segment went up as a resumable upload in chunks.
  const chunkPuts = log.filter((line) => line.startsWith('PUT /upload/storage/v1/b/pgbr-bucket/o') && line.includes('upload_id='));
  t.true(chunkPuts.length >= 4, log.join('\n'));

  // Now a full backup, with the server archiving through pgBackRest as in production.
  await cluster.query(`ALTER SYSTEM SET archive_command = '${PGBACKREST} --config=${config} --stanza=demo archive-push %p'`);
  await cluster.query('SELECT pg_reload_conf()');
  await pgbackrest('backup', '--type=full', '--start-fast', '--archive-timeout=60');
  const info = await pgbackrest('info', '--output=json');
  const stanza = JSON.parse(info.stdout)[0];
  t.is(stanza.status.code, 0, info.stdout);
  t.is(stanza.backup.length, 1, info.stdout);
  t.is(stanza.archive[0].min, '000000010000000000000001', info.stdout);
});
