/**
 * The kill -9 harness's shared parts: a seeded random source (so a failing
 * run can be replayed), running the installed CLI in a process group of its
 * own and SIGKILLing the whole group after a delay or just before one of
 * its steps (crash-step.mjs), and a reader's check of a repository: every
 * object whole and verified, every backup complete.
 */
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyingStream } from '../../../core/checksum/verify.ts';
import type { BackupMeta } from '../../../core/backup/meta.ts';
import { listBackups } from '../../../core/backup/list.ts';
import { backupMetaKey, Meta, REPOSITORY_KEY } from '../../../core/layout.ts';
import { readSmallObject } from '../../../core/storage/objects.ts';
import { mulberry32 } from '../../../local/gcs/faults.ts';
import { openDecoded } from '../../../core/storage/decode.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { openDecodedObject } from '../../../core/validate/decode.ts';
import { validateBackup } from '../../../core/validate/index.ts';
import { asPostgres, childEnv } from '../../../local/testkit/users.ts';

/**
 * The seed of this run: GCWAL_CRASH_SEED when set (to replay a failure),
 * else a fresh one. Tests log it.
 */
export function crashSeed(): number {
  const given = process.env.GCWAL_CRASH_SEED;
  return given !== undefined && given !== '' ? Number(given) >>> 0 : Math.floor(Math.random() * 2 ** 32);
}

/**
 * How many kills per command and repository kind: GCWAL_CRASH_KILLS,
 * default 15 (30 per command, within the suite's time budget on 2 cores).
 */
export function crashKills(): number {
  return Number(process.env.GCWAL_CRASH_KILLS ?? 15);
}

/** A deterministic random source in [0, 1) for `seed`: the emulator's fault plans' own. */
export const seededRandom = mulberry32;

/** crash-step.mjs, to be copied where the postgres user can read it (see {@link KillOptions.steps}). */
export const CRASH_STEP_MODULE = new URL('./crash-step.mjs', import.meta.url);

export interface KillOptions {
  /** variables on top of a clean environment (see childEnv) */
  env: Readonly<Record<string, string | undefined>>;
  /** run as the postgres user, as archive_command and a DBA would */
  asPostgres?: boolean;
  /** SIGKILL the process group this long after the start; undefined lets it finish */
  killAfterMs?: number;
  /**
   * Load crash-step.mjs (from `module`, a path the user running the command
   * can read) into the command: it SIGKILLs itself just before step `at`
   * when given, and writes the number of steps it took to `countInto`.
   */
  steps?: { module: string; at?: number; countInto?: string };
  cwd?: string;
}

export interface KillOutcome {
  /** the group was killed before the command exited by itself */
  killed: boolean;
  /** exit status when it finished by itself */
  code: number | null;
  stderr: string;
  elapsedMs: number;
}

/**
 * Run `command args` as the leader of a new process group (so runuser, the
 * launcher, Node and anything they start are in it), SIGKILL the group after
 * `killAfterMs`, and resolve once no process of the group is left, so that
 * nothing of the killed run can still write when the next one starts.
 */
export async function runMaybeKilled(command: string, args: readonly string[], options: KillOptions): Promise<KillOutcome> {
  const [file, argv] = options.asPostgres ? asPostgres(command, args) : [command, [...args]];
  const env = { ...options.env };
  if (options.steps) {
    env.NODE_OPTIONS = `--import=${pathToFileURL(options.steps.module).href}`;
    if (options.steps.at !== undefined) env.CRASH_AT_STEP = String(options.steps.at);
    if (options.steps.countInto !== undefined) env.CRASH_STEPS_FILE = options.steps.countInto;
  }
  const started = Date.now();
  const child = spawn(file, argv, {
    env: await childEnv(env, options.asPostgres),
    cwd: options.cwd ?? '/tmp',
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let killed = false;
  const timer =
    options.killAfterMs === undefined
      ? undefined
      : setTimeout(() => {
          killed = true;
          killGroup(child.pid!);
        }, options.killAfterMs);
  const { code, signal } = await exited;
  clearTimeout(timer);
  const elapsedMs = Date.now() - started;
  // Killed by the timer only if it had not exited by itself first; at a step, it killed itself (runuser reports 128 + 9).
  killed = killed ? signal === 'SIGKILL' || code === null : options.steps?.at !== undefined && (signal === 'SIGKILL' || code === 137);
  killGroup(child.pid!);
  await groupGone(child.pid!);
  return { killed, code: killed ? null : code, stderr: Buffer.concat(stderr).toString(), elapsedMs };
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function groupGone(pgid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    killGroup(pgid);
    await sleep(10);
  }
  throw new Error(`process group ${pgid} survived SIGKILL`);
}

/** What checkRepository read (for the first time). */
export interface RepositoryCheck {
  objects: number;
  backups: number;
}

/**
 * Read the repository as any reader would and fail on anything partial:
 * every listed object is stat'ed (the same size and CRC32C as listed), read
 * whole and matches its stored size and CRC32C, and, when its metadata names
 * a codec, decodes to the raw size and CRC32C recorded; every backup.json
 * validates with all its parts and manifest, and backup-list's listing
 * names only such backups. Keys in `verified` are skipped (objects never
 * change once written); those read are added to it.
 */
export async function checkRepository(storage: Storage, verified = new Set<string>()): Promise<RepositoryCheck> {
  let objects = 0;
  let backups = 0;
  for await (const info of storage.list('')) {
    if (verified.has(info.key)) continue;
    objects++;
    const stat = await storage.stat(info.key);
    if (!stat || stat.size !== info.size || stat.crc32c !== info.crc32c)
      throw new Error(
        `object ${info.key} is listed as ${info.size} bytes ${info.crc32c} but stat says ${stat ? `${stat.size} bytes ${stat.crc32c}` : 'it is not there'}`,
      );
    if (info.key.endsWith('/backup.json')) {
      const result = await validateBackup(storage, info);
      if (!result.ok) throw new Error(`backup ${info.key} is visible but does not validate: ${result.problem}`);
      backups++;
      // Its manifest and parts (listed after backup.json) were read and verified whole just now.
      const meta = JSON.parse((await readSmallObject(storage, info.key)).toString()) as BackupMeta;
      verified.add(meta.manifest.key);
      for (const part of meta.parts) verified.add(part.key);
    }
    const sink = new Writable({ write: (_c, _e, done) => done() });
    try {
      // Decoded and checked against the raw size and CRC32C when recorded, else against the stored ones only.
      if (info.metadata[Meta.rawCrc32c] !== undefined) await pipeline(await openDecoded(storage, info), sink);
      else if (info.metadata[Meta.codec] !== undefined) await pipeline(await openDecodedObject(storage, info), sink);
      else await pipeline(await storage.read(info.key), verifyingStream({ size: info.size, crc32c: info.crc32c }, info.key), sink);
    } catch (err) {
      throw new Error(`object ${info.key} is visible but does not verify: ${(err as Error).message}`);
    }
    verified.add(info.key);
  }
  if (objects > 0 && !(await storage.stat(REPOSITORY_KEY))) throw new Error(`${REPOSITORY_KEY} is missing`);
  for (const meta of await listBackups(storage)) {
    if (!verified.has(backupMetaKey(meta.name))) throw new Error(`backup-list lists ${meta.name}, whose backup.json did not validate`);
  }
  return { objects, backups };
}
