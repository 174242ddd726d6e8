/**
 * A pgBackRest setup in a temp directory: its own config file, repository
 * (posix in the directory, or gcs on the local emulator), log and lock
 * directories, and one stanza for a test cluster.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Cluster } from '../../local/testkit/cluster.ts';
import { execOk } from '../../local/testkit/exec.ts';
import { runOk, type RunOptions } from './proc.ts';

/** The stanza name every benchmark uses. */
export const STANZA = 'bench';

export interface PgBackRestOptions {
  /** compress-type: lz4, zst, gz, bz2, none */
  compressType: string;
  /** process-max for backup and restore; default 1 (pgBackRest's default) */
  processMax?: number;
  /** a gcs repository instead of the default posix one in `dir`/repo */
  gcs?: GcsRepository;
}

/**
 * A `repo1-type=gcs` repository: pgBackRest always speaks HTTPS to it. TLS
 * verification is off, since the emulator's certificate is self-signed;
 * the token is sent as it is (`repo1-gcs-key-type=token`), so it must be one
 * the emulator's authority issued to an identity allowed to read, list,
 * create and delete objects under `path` (stanza-create writes and checks
 * info files there).
 */
export interface GcsRepository {
  bucket: string;
  /** `host:port` of the HTTPS endpoint */
  endpoint: string;
  token: string;
  /** repo1-path: the key prefix in the bucket, starting with `/` */
  path: string;
}

/** A configured pgBackRest: run commands with {@link PgBackRest.args}. */
export interface PgBackRest {
  /** the config file, passed with --config */
  config: string;
  /** repo1-path: the posix repository directory, or the key prefix in a gcs bucket (starting with `/`) */
  repo: string;
  /** `--config=… --stanza=bench <command> …extra` */
  args(command: string, ...extra: string[]): string[];
}

/**
 * Write a config for `cluster` under `dir` (a directory the postgres user
 * owns): repository (unless `options.gcs` puts it in a bucket), logs (file
 * logging at pgBackRest's default level, console off, errors on stderr),
 * locks and spool all inside `dir`. Everything is in
 * the file, not on the command line, so the restore_command pgBackRest writes
 * (`pgbackrest --config=… --stanza=bench archive-get`) finds it too.
 */
export async function configurePgBackRest(dir: string, cluster: Cluster, options: PgBackRestOptions): Promise<PgBackRest> {
  const repo = options.gcs?.path ?? path.join(dir, 'repo');
  const subdirs = [path.join(dir, 'log'), path.join(dir, 'lock'), path.join(dir, 'spool')];
  if (!options.gcs) subdirs.push(repo);
  for (const sub of subdirs) await mkdir(sub, { recursive: true });
  const config = path.join(dir, 'pgbackrest.conf');
  const gcs = options.gcs
    ? [
        'repo1-type=gcs',
        `repo1-gcs-bucket=${options.gcs.bucket}`,
        `repo1-gcs-endpoint=${options.gcs.endpoint}`,
        'repo1-storage-verify-tls=n',
        'repo1-gcs-key-type=token',
        `repo1-gcs-key=${options.gcs.token}`,
      ]
    : [];
  const lines = [
    '[global]',
    ...gcs,
    `repo1-path=${repo}`,
    'repo1-retention-full=99',
    `log-path=${path.join(dir, 'log')}`,
    `lock-path=${path.join(dir, 'lock')}`,
    `spool-path=${path.join(dir, 'spool')}`,
    'log-level-console=off',
    'log-level-stderr=error',
    `compress-type=${options.compressType}`,
    `process-max=${options.processMax ?? 1}`,
    // A spread checkpoint would make the backup wait minutes; gcwal asks for a fast one too.
    'start-fast=y',
    '',
    `[${STANZA}]`,
    `pg1-path=${cluster.pgdata}`,
    `pg1-port=${cluster.port}`,
    `pg1-socket-path=${cluster.host}`,
    '',
  ];
  await writeFile(config, lines.join('\n'));
  await execOk('chown', ['-R', 'postgres:postgres', dir]);
  return { config, repo, args: (command, ...extra) => [`--config=${config}`, `--stanza=${STANZA}`, command, ...extra] };
}

/** `pgbackrest stanza-create` for a running cluster; rejects with pgBackRest's error. */
export async function createStanza(pgbr: PgBackRest, options: RunOptions): Promise<void> {
  await runOk('pgbackrest', pgbr.args('stanza-create'), options);
}
