/**
 * A pgBackRest setup in a temp directory: its own config file, posix
 * repository, log and lock directories, and one stanza for a test cluster.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Cluster } from '../../test/helpers/cluster.ts';
import { execOk } from '../../test/helpers/exec.ts';
import { runOk, type RunOptions } from './proc.ts';

/** The stanza name every benchmark uses. */
export const STANZA = 'bench';

export interface PgBackRestOptions {
  /** compress-type: lz4, zst, gz, bz2, none */
  compressType: string;
  /** process-max for backup and restore; default 1 (pgBackRest's default) */
  processMax?: number;
}

/** A configured pgBackRest: run commands with {@link PgBackRest.args}. */
export interface PgBackRest {
  /** the config file, passed with --config */
  config: string;
  /** the posix repository directory (repo1-path) */
  repo: string;
  /** `--config=… --stanza=bench <command> …extra` */
  args(command: string, ...extra: string[]): string[];
}

/**
 * Write a config for `cluster` under `dir` (a directory the postgres user
 * owns): repository, logs (file logging at pgBackRest's default level,
 * console off, errors on stderr) and locks all inside `dir`. Everything is in
 * the file, not on the command line, so the restore_command pgBackRest writes
 * (`pgbackrest --config=… --stanza=bench archive-get`) finds it too.
 */
export async function configurePgBackRest(dir: string, cluster: Cluster, options: PgBackRestOptions): Promise<PgBackRest> {
  const repo = path.join(dir, 'repo');
  for (const sub of [repo, path.join(dir, 'log'), path.join(dir, 'lock')]) await mkdir(sub, { recursive: true });
  const config = path.join(dir, 'pgbackrest.conf');
  const lines = [
    '[global]',
    `repo1-path=${repo}`,
    'repo1-retention-full=99',
    `log-path=${path.join(dir, 'log')}`,
    `lock-path=${path.join(dir, 'lock')}`,
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
