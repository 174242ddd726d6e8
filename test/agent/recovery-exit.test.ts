/**
 * restore_command's exit status as PostgreSQL reads it: 1-125 is "not in the
 * archive" (and in archive recovery without a target, promote), above 125
 * stops recovery. Each failure class × {archive recovery, standby, a shell}
 * → its exit code, through the installed launcher run as the postgres user,
 * in a directory that is what PostgreSQL would run it in: PG_VERSION for a
 * data directory, standby.signal on a standby (agent/recovery-exit.ts and
 * agent/wal/launcher.sh decide by these files).
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { crc32c, crc32cBase64 } from '../../core/checksum/crc32c.ts';
import { getCodec } from '../../core/codec/index.ts';
import { Meta } from '../../core/layout.ts';
import { createRepositoryIdentity } from '../../core/repository.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';
import { LAUNCHER_TEMPLATE, writeLauncher } from '../../agent/wal/launcher.mjs';
import { walFetch } from '../../agent/commands/wal-fetch.ts';
import { CONFIG_TABLE } from '../../agent/config.ts';
import { execOk } from '../../local/testkit/exec.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { runningAsRoot } from '../../local/testkit/users.ts';

/** in the repository */
const STORED = '000000010000000000000007';
/** not in the repository */
const ABSENT = '000000010000000000000008';

const PLACES = ['archive recovery', 'standby', 'a shell'] as const;
type Place = (typeof PLACES)[number];

let agent: InstalledAgent;
let work: TempDir;
let repo: string;
/** a launcher whose bundle is gone */
let noBundle: string;
/** an install without the CRC32C package (node_modules half copied) */
let broken: string;
let unreadableCa: string;
let throwInjection: string;
let rejectInjection: string;
/** installs whose gcwal-wal.cjs is cut short */
let truncatedMidStatement: string;
let truncatedAtBoundary: string;
/** a preload that notes Node's pid and its parent's, then blocks before gcwal's handlers exist */
let blockingPreload: string;

/** A copy of the install (its packages linked) with `walBundle` as its gcwal-wal.cjs; its launcher. */
async function copyInstall(name: string, walBundle: string): Promise<string> {
  const install = path.join(work.path, name);
  await mkdir(install);
  for (const file of await readdir(agent.dir)) if (/\.(mjs|cjs)$/.test(file)) await copyFile(path.join(agent.dir, file), path.join(install, file));
  await symlink(path.join(agent.dir, 'node_modules'), path.join(install, 'node_modules'));
  await writeFile(path.join(install, 'gcwal-wal.cjs'), walBundle);
  const launcher = path.join(install, 'gcwal');
  await writeLauncher(launcher, { node: process.execPath, bundle: path.join(install, 'gcwal.mjs') });
  return launcher;
}

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('recovery-exit', { owner: 'postgres' });

  repo = pathToFileURL(path.join(work.path, 'repo')).href;
  const storage = new FileStorage(repo);
  await storage.createRoot();
  await createRepositoryIdentity(storage, { systemIdentifier: '7000000000000000001', walSegmentSize: 1024 * 1024 });
  const body = Buffer.alloc(1024 * 1024, 'wal');
  await storage.write(`wal/${STORED}`, Readable.from([body]).pipe(getCodec('lzo').compressor()), {
    metadata: { [Meta.codec]: 'lzo', [Meta.rawSize]: String(body.length), [Meta.rawCrc32c]: crc32cBase64(crc32c(body)) },
  });

  const empty = path.join(work.path, 'no-bundle');
  await mkdir(empty);
  noBundle = path.join(empty, 'gcwal');
  await writeLauncher(noBundle, { node: process.execPath, bundle: path.join(empty, 'gcwal.mjs') });

  // The bundle copied, its packages linked, but one: as an interrupted or partial install leaves it.
  const install = path.join(work.path, 'broken-install');
  await mkdir(path.join(install, 'node_modules'), { recursive: true });
  for (const file of await readdir(agent.dir)) if (/\.(mjs|cjs)$/.test(file)) await copyFile(path.join(agent.dir, file), path.join(install, file));
  for (const pkg of await readdir(path.join(agent.dir, 'node_modules'))) {
    if (pkg !== 'fast-crc32c') await symlink(path.join(agent.dir, 'node_modules', pkg), path.join(install, 'node_modules', pkg));
  }
  broken = path.join(install, 'gcwal');
  await writeLauncher(broken, { node: process.execPath, bundle: path.join(install, 'gcwal.mjs') });

  // The WAL bundle cut short, as a full disk or an interrupted copy leaves
  // it: in the middle of a statement (a SyntaxError as Node loads it, exit
  // 1), and at a statement boundary (valid JavaScript that never runs the
  // command, exit 0).
  const walBundle = await readFile(path.join(agent.dir, 'gcwal-wal.cjs'), 'utf8');
  const entry = walBundle.lastIndexOf('\nvoid runAsProcess(');
  const table = walBundle.lastIndexOf('var WAL_COMMANDS = {');
  if (entry < 0 || table < 0) throw new Error('the WAL bundle does not end as this test expects (agent/wal/cli.ts)');
  truncatedMidStatement = await copyInstall('truncated-mid', walBundle.slice(0, table + 'var WAL_COMMANDS = {'.length));
  truncatedAtBoundary = await copyInstall('truncated-boundary', walBundle.slice(0, entry + 1));

  blockingPreload = path.join(work.path, 'block.cjs');
  await writeFile(
    blockingPreload,
    "require('node:fs').writeFileSync(process.env.PID_FILE, `${process.pid} ${process.ppid}\\n`); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000);\n",
  );

  // Faults from outside, through Node's own preload (no hook in gcwal): they
  // fire once the entry has run up to its first await, mid-command.
  throwInjection = path.join(work.path, 'throw.cjs');
  await writeFile(throwInjection, "process.nextTick(() => { throw new Error('injected fault'); });\n");
  rejectInjection = path.join(work.path, 'reject.cjs');
  await writeFile(rejectInjection, "process.nextTick(() => { Promise.reject(new Error('injected rejection')); });\n");

  await execOk('chmod', ['-R', 'a+rwX', work.path]);
  if (runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', work.path]);
  // Not readable by the postgres user: root's, mode 0 (and mode 0 is unreadable to a non-root owner too).
  unreadableCa = path.join(work.path, 'ca.pem');
  await writeFile(unreadableCa, '-----BEGIN CERTIFICATE-----\n');
  if (runningAsRoot()) await execOk('chown', ['root:root', unreadableCa]);
  await chmod(unreadableCa, 0);
});

test.after.always(async () => {
  await work?.cleanup();
  await agent?.cleanup();
});

let counter = 0;

/** Where restore_command would run, for each place: a directory with pg_wal/ and the files that tell. */
async function places(): Promise<Record<Place, string>> {
  const dirs = {} as Record<Place, string>;
  const n = ++counter;
  for (const [place, files] of [
    ['archive recovery', ['PG_VERSION']],
    ['standby', ['PG_VERSION', 'standby.signal']],
    ['a shell', []],
  ] as const) {
    const dir = path.join(work.path, `${place.replace(/ /g, '-')}-${n}`);
    await mkdir(path.join(dir, 'pg_wal'), { recursive: true });
    for (const file of files) await writeFile(path.join(dir, file), file === 'PG_VERSION' ? '15\n' : '');
    await execOk('chmod', ['-R', 'a+rwX', dir]);
    dirs[place] = dir;
  }
  return dirs;
}

interface Row {
  what: string;
  /** the exit code in archive recovery, on a standby, at a shell */
  codes: [number, number, number];
  env?: () => Record<string, string | undefined>;
  args?: string[];
  launcher?: () => string;
  /** what the one line on stderr says, in every place */
  says: RegExp;
}

const rows: Row[] = [
  { what: 'the file is not in the archive', codes: [1, 1, 1], says: new RegExp(`${ABSENT} is not in the archive`) },
  { what: 'GCWAL_REPO is not set', codes: [126, 2, 2], env: () => ({ GCWAL_REPO: undefined }), says: /GCWAL_REPO is not set/ },
  {
    what: 'GCWAL_REPO is malformed',
    codes: [126, 2, 2],
    env: () => ({ GCWAL_REPO: 'file:var/lib/gcwal' }),
    says: /GCWAL_REPO "file:var\/lib\/gcwal" is not a file:\/\/ or gs:\/\/ URL/,
  },
  { what: 'GCWAL_RETRIES is not a number', codes: [126, 2, 2], env: () => ({ GCWAL_RETRIES: 'five' }), says: /GCWAL_RETRIES must be an integer/ },
  {
    what: 'GCWAL_GCS_CA_FILE is unreadable',
    codes: [126, 2, 2],
    // The endpoint is never reached: the CA file is read first.
    env: () => ({ GCWAL_REPO: 'gs://gcwal-test/db', GCWAL_GCS_ENDPOINT: 'https://127.0.0.1:9', GCWAL_GCS_CA_FILE: unreadableCa }),
    says: /cannot read the CA file .* \(GCWAL_GCS_CA_FILE\): EACCES/,
  },
  { what: "restore_command lacks %p (wal-fetch's usage)", codes: [126, 2, 2], args: ['wal-fetch', ABSENT], says: /wal-fetch takes 2 arguments, got 1/ },
  { what: "the launcher's bundle is missing", codes: [126, 11, 11], launcher: () => noBundle, says: /the bundle .*\/no-bundle\/gcwal\.mjs is missing/ },
  // Realistic: the CRC32C module is loaded on first use, inside a stream's callback, where its absence escapes every await.
  {
    what: 'a package is missing from the install (an exception no handler catches)',
    codes: [126, 11, 11],
    launcher: () => broken,
    args: ['wal-fetch', STORED, 'pg_wal/RECOVERYXLOG'],
    says: /unexpected error: Cannot find module 'fast-crc32c'/,
  },
  {
    what: 'an exception escapes every handler',
    codes: [126, 11, 11],
    env: () => ({ NODE_OPTIONS: `--require ${throwInjection}` }),
    says: /unexpected error: injected fault/,
  },
  {
    what: 'a promise rejection is left unhandled',
    codes: [126, 11, 11],
    env: () => ({ NODE_OPTIONS: `--require ${rejectInjection}` }),
    says: /unexpected error: injected rejection/,
  },
  {
    what: 'the repository does not exist',
    codes: [126, 13, 13],
    env: () => ({ GCWAL_REPO: pathToFileURL(path.join(work.path, 'no-such-repo')).href }),
    says: /repository file:\/\/.*no-such-repo /,
  },
];

for (const { what, codes, env, args, launcher, says } of rows) {
  const expected = Object.fromEntries(PLACES.map((place, i) => [place, codes[i]]));
  test(`${what}: wal-fetch exits ${codes[0]} in archive recovery, ${codes[1]} on a standby, ${codes[2]} at a shell`, async (t) => {
    const dirs = await places();
    const got: Record<string, number> = {};
    for (const place of PLACES) {
      const r = await runGcwal(launcher?.() ?? agent.command, args ?? ['wal-fetch', ABSENT, 'pg_wal/RECOVERYXLOG'], {
        asUser: 'postgres',
        cwd: dirs[place],
        env: { GCWAL_REPO: repo, GCWAL_RETRIES: '0', ...env?.() },
      });
      got[place] = r.code;
      const lines = r.stderr.trimEnd().split('\n');
      t.is(lines.length, 1, `${place}: one line: ${r.stderr}`);
      t.regex(r.stderr, says, place);
      if (r.code === 126)
        t.regex(r.stderr, /; stopping recovery so that it does not end early \(.*, then start PostgreSQL again to resume recovery\)\n$/, place);
      t.false(existsSync(path.join(dirs[place], 'pg_wal', 'RECOVERYXLOG')), `${place}: nothing restored`);
    }
    t.deepEqual(got, expected);
  });
}

for (const [what, launcher, status] of [
  ['in the middle of a statement', () => truncatedMidStatement, 1],
  ['at a statement boundary', () => truncatedAtBoundary, 0],
] as const) {
  test(`a WAL bundle cut short ${what}: wal-fetch exits 126 in archive recovery, and Node's own ${status} on a standby and at a shell`, async (t) => {
    const dirs = await places();
    const got: Record<string, number> = {};
    for (const place of PLACES) {
      const r = await runGcwal(launcher(), ['wal-fetch', STORED, 'pg_wal/RECOVERYXLOG'], { asUser: 'postgres', cwd: dirs[place], env: { GCWAL_REPO: repo } });
      got[place] = r.code;
      t.false(existsSync(path.join(dirs[place], 'pg_wal', 'RECOVERYXLOG')), `${place}: nothing restored`);
      if (place !== 'archive recovery') continue;
      // Node's own report (a SyntaxError's lines) may come first; the launcher's is one line, the last.
      const last = r.stderr.trimEnd().split('\n').at(-1) ?? '';
      const why = status === 0 ? 'wal-fetch exited 0 but no file is at pg_wal/RECOVERYXLOG' : 'Node exited with status 1 before wal-fetch reported an outcome';
      t.is(
        last,
        `gcwal: error: ${why}; stopping recovery so that it does not end early (the install may be damaged: reinstall gcwal or run npm run build, then start PostgreSQL again to resume recovery)`,
      );
    }
    t.deepEqual(got, { 'archive recovery': 126, standby: status, 'a shell': status });
  });
}

test('a segment in the archive: wal-fetch exits 0 with the file at %p in archive recovery, on a standby and at a shell, options before or among its arguments', async (t) => {
  const dirs = await places();
  for (const place of PLACES) {
    for (const args of [
      ['wal-fetch', STORED, 'pg_wal/RECOVERYXLOG'],
      ['wal-fetch', '--retries', '0', STORED, '--verbose', 'pg_wal/RECOVERYXLOG'],
    ]) {
      const r = await runGcwal(agent.command, args, { asUser: 'postgres', cwd: dirs[place], env: { GCWAL_REPO: repo, GCWAL_PREFETCH: '0' } });
      t.is(r.code, 0, `${place} ${args.join(' ')}: ${r.stderr}`);
      t.is((await readFile(path.join(dirs[place], 'pg_wal', 'RECOVERYXLOG'))).length, 1024 * 1024, place);
      await rm(path.join(dirs[place], 'pg_wal', 'RECOVERYXLOG'));
    }
  }
});

test('the launcher knows every boolean option, so that it finds %p among any options', async (t) => {
  const script = await readFile(LAUNCHER_TEMPLATE, 'utf8');
  const line = /^ *((?:--[a-z-]+ \| )+)--\*=\*\) ;;$/m.exec(script);
  t.truthy(line, 'the case of boolean options in launcher.sh');
  const known = line![1]
    .split(' | ')
    .map((w) => w.trim())
    .filter(Boolean)
    .sort();
  const booleans = [
    ...CONFIG_TABLE.filter((e) => e.kind === 'bool').map((e) => `--${e.flag}`),
    ...Object.entries(walFetch.options)
      .filter(([, o]) => o.type === 'boolean')
      .map(([f]) => `--${f}`),
  ].sort();
  t.deepEqual(known, booleans);
});

for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  test(`${signal} to the launcher waiting for wal-fetch in archive recovery ends Node too`, async (t) => {
    const dirs = await places();
    const pidFile = path.join(dirs['archive recovery'], 'node.pid');
    const run = runGcwal(agent.command, ['wal-fetch', STORED, 'pg_wal/RECOVERYXLOG'], {
      asUser: 'postgres',
      cwd: dirs['archive recovery'],
      env: { GCWAL_REPO: repo, NODE_OPTIONS: `--require ${blockingPreload}`, PID_FILE: pidFile },
    });
    let ids: number[] = [];
    for (let i = 0; i < 1200 && ids.length !== 2; i++) {
      // Only a whole line counts: the preload may be writing it.
      const line = await readFile(pidFile, 'utf8').catch(() => '');
      ids = line.endsWith('\n') ? line.trim().split(' ').map(Number) : [];
      if (ids.length !== 2) await sleep(50);
    }
    const [node, launcher] = ids;
    t.truthy(node, 'Node started');
    try {
      process.kill(launcher, signal);
      const r = await run;
      t.is(r.code, 128 + constants.signals[signal], r.stderr);
      t.false(alive(node), 'Node is gone with the launcher');
    } finally {
      if (node && alive(node)) process.kill(node, 'SIGKILL');
    }
  });
}

/** Whether the process `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
