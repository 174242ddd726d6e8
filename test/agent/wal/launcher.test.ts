/**
 * The sh launcher (agent/wal/launcher.sh, filled in by agent/wal/launcher.mjs):
 * `gcwal wal-push <segment>` with a marker the Node side wrote
 * (agent/wal/marker.ts) is answered by the shell alone, and everything else
 * reaches Node with its arguments untouched. "Node" here is /bin/false (a
 * call that reaches it fails) or a stub that prints its arguments and exits
 * 42, so each test sees which way a call went. The build's dist/gcwal and
 * the package's bin are checked at the end.
 */
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileIdentity, formatMarker, MARKER_DIR, shellLine, writeMarker, type PushedMarker } from '../../../agent/wal/marker.ts';
import { fillLauncher, renderLauncher, writeLauncher } from '../../../agent/wal/launcher.mjs';
import { exec, execOk } from '../../../local/testkit/exec.ts';
import { projectRoot } from '../../../local/testkit/install.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { childEnv } from '../../../local/testkit/users.ts';

const NAME = '00000001000000000000002A';
const REPO = "file:///srv/gcwal/it's a repo";
const STUB_EXIT = 42;

let work: TempDir;
/** answers from markers; anything that reaches Node fails (/bin/false) */
let withoutNode: string;
/** reaching Node prints the bundle and the arguments, one per line, and exits 42 */
let withStub: string;
let bundle: string;
/** a directory with nothing in it, for PATH without stat */
let emptyBin: string;

test.before(async () => {
  work = await makeTempDir('launcher');
  bundle = path.join(work.path, 'gcwal.mjs');
  await writeFile(bundle, '');
  const stub = path.join(work.path, 'stub-node');
  await writeFile(stub, `#!/bin/sh\nprintf '%s\\n' "$@"\nexit ${STUB_EXIT}\n`, { mode: 0o755 });
  withoutNode = path.join(work.path, 'gcwal-without-node');
  await writeLauncher(withoutNode, { node: '/bin/false', bundle });
  withStub = path.join(work.path, 'gcwal-with-stub');
  await writeLauncher(withStub, { node: stub, bundle });
  emptyBin = path.join(work.path, 'empty-bin');
  await mkdir(emptyBin);
});

test.after.always(async () => {
  await work?.cleanup();
});

let counter = 0;

/** A data directory holding pg_wal/NAME (64 KiB), with a marker for it written by the Node side when `marked`. */
async function dataDir(
  options: { marked?: boolean; repo?: string; base?: string } = {},
): Promise<{ data: string; walDir: string; segment: string; marker: PushedMarker }> {
  const data = path.join(options.base ?? work.path, `data-${++counter}`);
  const walDir = path.join(data, 'pg_wal');
  await mkdir(walDir, { recursive: true });
  const segment = path.join(walDir, NAME);
  await writeFile(segment, Buffer.alloc(64 * 1024, counter));
  const file = await fileIdentity(segment);
  if (!file) throw new Error('no segment');
  const marker: PushedMarker = { format: 1, repo: options.repo ?? REPO, name: NAME, key: `wal/${NAME}`, rawSize: 65536, rawCrc32c: 'AAAAAA==', file };
  if (options.marked ?? true) await writeMarker(walDir, marker);
  return { data, walDir, segment, marker };
}

/** Run a launcher; `env` adds to (or with undefined removes from) the test's environment, with GCWAL_REPO=REPO by default. */
async function run(launcher: string, args: readonly string[], cwd: string, env: Record<string, string | undefined> = {}, shell: readonly string[] = []) {
  // Node's own roots unless a test is about the trust store: the stub then sees exactly the bundle and the arguments.
  const e = await childEnv({ GCWAL_REPO: REPO, GCWAL_CA_STORE: 'node', ...env });
  return shell.length > 0 ? exec(shell[0]!, [...shell.slice(1), launcher, ...args], { env: e, cwd }) : exec(launcher, args, { env: e, cwd });
}

/** Every file under `dir` with its size, mtime and content: what "wrote nothing" is checked against. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    const file = path.join(dir, entry);
    const st = await stat(file, { bigint: true });
    out.push(`${entry} ${st.size} ${st.mtimeNs} ${st.isFile() ? (await readFile(file)).toString('base64') : 'dir'}`);
  }
  return out.sort();
}

const fastPaths: { how: string; args: (d: { data: string; segment: string }) => [string[], string]; env?: Record<string, string>; shell?: string[] }[] = [
  { how: 'pg_wal/<name> relative to the data directory, as archive_command passes %p', args: ({ data }) => [['wal-push', `pg_wal/${NAME}`], data] },
  { how: 'an absolute path', args: ({ segment }) => [['wal-push', segment], os.tmpdir()] },
  { how: 'a bare name inside pg_wal', args: ({ data }) => [['wal-push', NAME], path.join(data, 'pg_wal')] },
  { how: 'GCWAL_VERBOSE=false', args: ({ data }) => [['wal-push', `pg_wal/${NAME}`], data], env: { GCWAL_VERBOSE: 'false' } },
  { how: 'GCWAL_VERBOSE empty', args: ({ data }) => [['wal-push', `pg_wal/${NAME}`], data], env: { GCWAL_VERBOSE: '' } },
  { how: 'a symbolic link in the path', args: ({ data }) => [['wal-push', `wal-link/${NAME}`], data] },
  { how: 'bash instead of dash', args: ({ data }) => [['wal-push', `pg_wal/${NAME}`], data], shell: ['bash'] },
  { how: 'bash --posix', args: ({ data }) => [['wal-push', `pg_wal/${NAME}`], data], shell: ['bash', '--posix'] },
];

for (const { how, args, env, shell } of fastPaths) {
  test(`a valid marker answers wal-push with exit 0 and no output, without Node: ${how}`, async (t) => {
    const dir = await dataDir();
    await symlink('pg_wal', path.join(dir.data, 'wal-link'));
    const before = await snapshot(dir.data);
    const [argv, cwd] = args(dir);
    const r = await run(withoutNode, argv, cwd, env, shell);
    t.deepEqual(r, { code: 0, signal: null, stdout: '', stderr: '' });
    t.deepEqual(await snapshot(dir.data), before, 'the launcher wrote nothing, the marker stays');
  });
}

test('the same call without a marker reaches Node, which here fails', async (t) => {
  const dir = await dataDir({ marked: false });
  const r = await run(withoutNode, ['wal-push', `pg_wal/${NAME}`], dir.data);
  t.is(r.code, 1);
});

type Setup = Awaited<ReturnType<typeof dataDir>>;
const toNode: {
  why: string;
  setup?: (d: Setup) => Promise<unknown>;
  marked?: boolean;
  repo?: string;
  args?: (d: Setup) => string[];
  env?: Record<string, string | undefined>;
}[] = [
  { why: 'there is no marker', marked: false },
  {
    why: 'the segment was touched since (same content, new time)',
    setup: ({ segment }) => utimes(segment, new Date(2_000_000_000_000), new Date(2_000_000_000_000)),
  },
  {
    why: 'the segment was rewritten in place with the same size',
    // (a rewrite within one tick of the kernel's coarse clock would keep the mtime: PostgreSQL never rewrites a ready segment)
    setup: async ({ segment }) => (await sleep(30), await writeFile(segment, Buffer.alloc(64 * 1024, 0xee))),
  },
  {
    why: 'the segment was replaced by a copy with the same content and times (another inode)',
    setup: async ({ segment }) => (await execOk('cp', ['-p', segment, `${segment}.copy`]), await rename(`${segment}.copy`, segment)),
  },
  { why: 'the segment is gone', setup: ({ segment }) => rm(segment) },
  { why: 'GCWAL_REPO names another repository', env: { GCWAL_REPO: 'file:///srv/gcwal/other' } },
  { why: 'GCWAL_REPO only starts like the marked repository', env: { GCWAL_REPO: REPO.slice(0, -1) } },
  { why: 'GCWAL_REPO extends the marked repository', env: { GCWAL_REPO: `${REPO}/x` } },
  { why: 'GCWAL_REPO is not set', env: { GCWAL_REPO: undefined } },
  { why: 'GCWAL_REPO is empty', env: { GCWAL_REPO: '' } },
  { why: 'the repository URL holds a newline (its marker has no shell line)', repo: 'file:///srv/a\nb', env: { GCWAL_REPO: 'file:///srv/a\nb' } },
  { why: 'GCWAL_VERBOSE=true', env: { GCWAL_VERBOSE: 'true' } },
  { why: 'GCWAL_VERBOSE=1', env: { GCWAL_VERBOSE: '1' } },
  { why: 'GCWAL_VERBOSE=ON', env: { GCWAL_VERBOSE: 'ON' } },
  { why: 'GCWAL_VERBOSE is not a boolean (Node reports it)', env: { GCWAL_VERBOSE: 'maybe' } },
  { why: 'a flag comes before the path', args: ({ segment }) => ['wal-push', `--repo=${REPO}`, segment] },
  { why: 'a flag comes after the path', args: ({ segment }) => ['wal-push', segment, '--verbose'] },
  { why: 'the path looks like a flag', args: () => ['wal-push', `-${NAME}`] },
  { why: 'wal-push has no path', args: () => ['wal-push'] },
  { why: 'the command is not wal-push', args: ({ segment }) => ['wal-fetch', segment] },
  { why: 'the path ends in a slash', args: ({ walDir }) => ['wal-push', `${walDir}/`] },
  {
    why: 'the name is not a full segment name (a .partial beside a marker of that name)',
    setup: async ({ walDir, segment, marker }) => {
      await copyFile(segment, `${segment}.partial`);
      await writeMarker(walDir, { ...marker, name: `${NAME}.partial`, file: (await fileIdentity(`${segment}.partial`))! });
    },
    args: ({ segment }) => ['wal-push', `${segment}.partial`],
  },
  {
    why: 'the name is in lower case (beside a marker of that name)',
    setup: async ({ walDir, segment, marker }) => {
      const lower = path.join(walDir, NAME.toLowerCase());
      await rename(segment, lower);
      await writeMarker(walDir, { ...marker, name: NAME.toLowerCase(), file: (await fileIdentity(lower))! });
    },
    args: ({ walDir }) => ['wal-push', path.join(walDir, NAME.toLowerCase())],
  },
  {
    why: 'the marker was written for another segment',
    setup: ({ walDir, marker }) => writeFile(path.join(walDir, MARKER_DIR, NAME), formatMarker({ ...marker, name: '00000001000000000000002B' })),
  },
  {
    why: 'the marker is in the JSON-only format',
    setup: ({ walDir, marker }) => writeFile(path.join(walDir, MARKER_DIR, NAME), JSON.stringify(marker) + '\n'),
  },
  { why: "the marker's line has no newline", setup: ({ walDir, marker }) => writeFile(path.join(walDir, MARKER_DIR, NAME), shellLine(marker)!) },
  {
    why: 'the marker is unreadable (a directory)',
    setup: async ({ walDir }) => (await rm(path.join(walDir, MARKER_DIR, NAME)), await mkdir(path.join(walDir, MARKER_DIR, NAME))),
  },
  { why: 'stat is not on PATH', env: { PATH: '' } },
];

for (const { why, setup, marked, repo, args, env } of toNode) {
  test(`wal-push goes to Node, arguments unchanged and nothing written, when ${why}`, async (t) => {
    const dir = await dataDir({ marked, repo });
    await setup?.(dir);
    const argv = args?.(dir) ?? ['wal-push', `pg_wal/${NAME}`];
    const before = await snapshot(dir.data);
    const r = await run(withStub, argv, dir.data, env?.PATH === '' ? { ...env, PATH: emptyBin } : env);
    t.is(r.stderr, '');
    t.is(r.stdout, [bundle, ...argv].map((a) => `${a}\n`).join(''));
    t.is(r.code, STUB_EXIT);
    t.deepEqual(await snapshot(dir.data), before);
  });
}

test('the empty PATH case really hides stat, and the same call answers with stat on PATH', async (t) => {
  const dir = await dataDir();
  t.is((await run(withoutNode, ['wal-push', `pg_wal/${NAME}`], dir.data)).code, 0);
  t.is((await run(withoutNode, ['wal-push', `pg_wal/${NAME}`], dir.data, { PATH: emptyBin })).code, 1);
});

/** File systems the tests and PostgreSQL may run on here: the temp dir (ext4 or overlay) and tmpfs. */
async function fileSystems(): Promise<{ name: string; dir: string; cleanup: () => Promise<void> }[]> {
  const out = [{ name: `os.tmpdir() (${await fsType(os.tmpdir())})`, dir: work.path, cleanup: async () => {} }];
  if (existsSync('/dev/shm') && (await fsType('/dev/shm')) === 'tmpfs') {
    const dir = path.join('/dev/shm', `gcwal-launcher-${process.pid}`);
    await mkdir(dir, { recursive: true });
    out.push({ name: '/dev/shm (tmpfs)', dir, cleanup: () => rm(dir, { recursive: true, force: true }) });
  }
  return out;
}

async function fsType(dir: string): Promise<string> {
  return (await execOk('stat', ['-f', '-c', '%T', dir])).stdout.trim();
}

test("the marker's first line is what GNU stat prints for the file, on every file system here", async (t) => {
  for (const { name, dir, cleanup } of await fileSystems()) {
    try {
      const d = await dataDir({ base: dir });
      const { stdout } = await execOk('stat', ['-L', '-c', '%d %i %s %.9Y', d.segment], { env: { ...(await childEnv()), LC_ALL: 'C' } });
      t.is(shellLine(d.marker), `gcwal-marker 1 ${NAME} ${stdout.trim()} ${REPO}`, name);
      const line = (await readFile(path.join(d.walDir, MARKER_DIR, NAME), 'utf8')).split('\n')[0];
      t.is(line, shellLine(d.marker) ?? 'no shell line', name);
      const r = await run(withoutNode, ['wal-push', `pg_wal/${NAME}`], d.data);
      t.is(r.code, 0, `${name}: ${r.stderr}`);
    } finally {
      await cleanup();
    }
  }
});

test('modification times are printed with nine fractional digits, zeros kept', (t) => {
  const marker = (mtimeNs: string): PushedMarker => ({
    format: 1,
    repo: 'gs://b',
    name: NAME,
    key: 'k',
    rawSize: 1,
    rawCrc32c: 'c',
    file: { dev: '2049', ino: '18446744073709551615', size: '16777216', mtimeNs },
  });
  t.is(shellLine(marker('1700000000000000007')), `gcwal-marker 1 ${NAME} 2049 18446744073709551615 16777216 1700000000.000000007 gs://b`);
  t.is(shellLine(marker('0')), `gcwal-marker 1 ${NAME} 2049 18446744073709551615 16777216 0.000000000 gs://b`);
  t.is(shellLine(marker('-500000000')), undefined, 'before 1970: stat prints it another way');
  t.is(shellLine({ ...marker('1'), repo: 'gs://b\r' }), undefined);
});

test('filling the template quotes every setting for sh and refuses a broken template', async (t) => {
  const text = await renderLauncher({ node: "/opt/it's/node", nodeArgs: ['--max-old-space-size=64', 'a b'], bundle: '/x/gcwal.mjs' });
  t.true(text.includes(`gcwal_node='/opt/it'\\''s/node'\n`));
  t.true(text.includes(`gcwal_bundle='/x/gcwal.mjs'\n`));
  t.true(text.includes(`set -- '--max-old-space-size=64' 'a b' \${gcwal_ca_flag:+"$gcwal_ca_flag"} "$gcwal_bundle" "$@"\n`));
  t.false(/@[A-Z_]+@/.test(text), 'no placeholder left');
  t.is((await execOk('sh', ['-n', '-c', text])).code, 0);
  t.throws(() => fillLauncher('gcwal_node=@NODE@\n', {}), { message: /@NODE_ARGS@ exactly once/ });
  t.throws(() => fillLauncher('@NODE@ @NODE@ @NODE_ARGS@ @BUNDLE@', {}), { message: /@NODE@ exactly once/ });
  t.throws(() => fillLauncher('@NODE@ @NODE_ARGS@ @BUNDLE@', { node: '' }), { message: /empty/ });
});

test('the launcher passes node options and arguments with spaces and quotes through unchanged', async (t) => {
  const launcher = path.join(work.path, 'gcwal-with-options');
  await writeLauncher(launcher, { node: path.join(work.path, 'stub-node'), nodeArgs: ['--enable-source-maps', "it's"], bundle });
  const args = ['backup-push', "/data/o'brien dir", '', '*'];
  const r = await run(launcher, args, work.path);
  t.is(r.stdout, ['--enable-source-maps', "it's", bundle, ...args].map((a) => `${a}\n`).join(''));
  t.is(r.code, STUB_EXIT);
});

const CA = '/etc/ssl/certs/some-bundle.crt';
const caCases: { what: string; args: string[]; env?: Record<string, string | undefined>; kept: boolean }[] = [
  { what: 'wal-push into a file:// repository', args: ['wal-push', `pg_wal/${NAME}`], kept: false },
  { what: 'wal-fetch from a file:// repository', args: ['wal-fetch', NAME, `pg_wal/RECOVERYXLOG`], kept: false },
  { what: 'wal-push into a gs:// repository', args: ['wal-push', `pg_wal/${NAME}`], env: { GCWAL_REPO: 'gs://bucket/db' }, kept: true },
  { what: 'wal-fetch from a gs:// repository', args: ['wal-fetch', NAME, 'x'], env: { GCWAL_REPO: 'gs://bucket/db' }, kept: true },
  { what: 'wal-push with --repo among the arguments', args: ['wal-push', '--repo', 'gs://bucket/db', `pg_wal/${NAME}`], kept: true },
  { what: 'wal-push with --repo=…', args: ['wal-push', '--repo=gs://bucket/db', `pg_wal/${NAME}`], kept: true },
  { what: 'wal-push with GCWAL_REPO unset', args: ['wal-push', `pg_wal/${NAME}`], env: { GCWAL_REPO: undefined }, kept: true },
  { what: 'backup-push (it may connect to PostgreSQL over TLS)', args: ['backup-push', '/data'], kept: true },
  { what: 'status (the catalogue may be on gs://)', args: ['status'], kept: true },
];
for (const [index, { what, args, env, kept }] of caCases.entries()) {
  test(`NODE_EXTRA_CA_CERTS is ${kept ? 'passed to Node' : 'dropped before Node starts'} for ${what}`, async (t) => {
    const launcher = path.join(work.path, `gcwal-ca-probe-${index}`);
    const probe = path.join(work.path, `ca-probe-node-${index}`);
    await writeFile(probe, `#!/bin/sh\nprintf '%s\\n' "\${NODE_EXTRA_CA_CERTS-unset}"\nexit ${STUB_EXIT}\n`, { mode: 0o755 });
    await writeLauncher(launcher, { node: probe, bundle });
    const dir = await dataDir({ marked: false });
    const r = await run(launcher, args, dir.data, { NODE_EXTRA_CA_CERTS: CA, ...env });
    t.is(r.code, STUB_EXIT, r.stderr);
    t.is(r.stdout, `${kept ? CA : 'unset'}\n`);
  });
}

const walRouting: { args: string[]; withWalBundle: boolean; runs: 'gcwal.mjs' | 'gcwal-wal.cjs' }[] = [
  { args: ['wal-push', `pg_wal/${NAME}`], withWalBundle: true, runs: 'gcwal-wal.cjs' },
  { args: ['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], withWalBundle: true, runs: 'gcwal-wal.cjs' },
  { args: ['backup-push', '/data'], withWalBundle: true, runs: 'gcwal.mjs' },
  { args: ['--version'], withWalBundle: true, runs: 'gcwal.mjs' },
  { args: ['wal-push', `pg_wal/${NAME}`], withWalBundle: false, runs: 'gcwal.mjs' },
  { args: ['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], withWalBundle: false, runs: 'gcwal.mjs' },
];
for (const [index, { args, withWalBundle, runs }] of walRouting.entries()) {
  test(`${args[0]} runs ${runs}${withWalBundle ? ' when gcwal-wal.cjs is beside the bundle' : ' when there is no gcwal-wal.cjs'}, arguments unchanged`, async (t) => {
    const dir = path.join(work.path, `routing-${index}`);
    await mkdir(dir);
    await writeFile(path.join(dir, 'gcwal.mjs'), '');
    if (withWalBundle) await writeFile(path.join(dir, 'gcwal-wal.cjs'), '');
    // Installed as npm does: the bundle found beside the launcher.
    const launcher = path.join(dir, 'gcwal');
    await writeLauncher(launcher, { node: path.join(work.path, 'stub-node') });
    const data = await dataDir({ marked: false });
    const r = await run(launcher, args, data.data);
    t.is(r.code, STUB_EXIT, r.stderr);
    t.is(r.stdout, [path.join(dir, runs), ...args].map((a) => `${a}\n`).join(''));
  });
}

// --- the build and the package ----------------------------------------------

const packageJson = async () => JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

test("the build's dist/gcwal is the rendered template, executable by everyone, and runs the bundle with node from PATH", async (t) => {
  const { version } = await packageJson();
  const launcher = path.join(projectRoot, 'dist', 'gcwal');
  t.is(await readFile(launcher, 'utf8'), await renderLauncher());
  t.is((await stat(launcher)).mode & 0o777, 0o755);
  const r = await exec(launcher, ['--version'], { env: await childEnv() });
  t.deepEqual(r, { code: 0, signal: null, stdout: `gcwal ${version}\n`, stderr: '' });
});

test("the package's bin is the sh launcher, and npm pack ships it with the whole bundle", async (t) => {
  t.deepEqual((await packageJson()).bin, { gcwal: 'dist/gcwal' });
  const { stdout } = await execOk('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: projectRoot, env: await childEnv() });
  const files = new Set((JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
  const built = (await readdir(path.join(projectRoot, 'dist'))).filter((f) => /\.[mc]js$/.test(f) || f === 'gcwal' || f === 'gcwal.externals.json');
  t.true(built.includes('gcwal-wal.cjs'), 'the WAL entry is built');
  t.true(built.length > 3);
  t.deepEqual(
    built.filter((f) => !files.has(`dist/${f}`)),
    [],
    'every file of the build is packed',
  );
  t.deepEqual(
    [...files].filter((f) => /^(dist\/(functions|npm)\/|node_modules\/|\.tmp\/)/.test(f)),
    [],
    'nothing else from dist or the work areas',
  );
});

test('installed as npm installs a bin (a relative link in a bin directory, maybe linked again), the launcher finds its bundle', async (t) => {
  const { version } = await packageJson();
  const prefix = path.join(work.path, 'prefix');
  const pkgDist = path.join(prefix, 'lib', 'node_modules', 'gcwal', 'dist');
  await mkdir(pkgDist, { recursive: true });
  for (const file of await readdir(path.join(projectRoot, 'dist'))) {
    if (/\.mjs$/.test(file) || file === 'gcwal') await copyFile(path.join(projectRoot, 'dist', file), path.join(pkgDist, file));
  }
  await chmod(path.join(pkgDist, 'gcwal'), 0o755);
  await mkdir(path.join(prefix, 'bin'));
  await symlink('../lib/node_modules/gcwal/dist/gcwal', path.join(prefix, 'bin', 'gcwal'));
  await symlink(path.join(prefix, 'bin', 'gcwal'), path.join(work.path, 'gcwal-alias'));
  for (const command of [path.join(prefix, 'bin', 'gcwal'), path.join(work.path, 'gcwal-alias')]) {
    const r = await exec(command, ['--version'], { env: await childEnv(), cwd: os.tmpdir() });
    t.deepEqual(r, { code: 0, signal: null, stdout: `gcwal ${version}\n`, stderr: '' }, command);
  }
  // Found on PATH, as archive_command = 'gcwal wal-push %p' runs it.
  const onPath = await exec('sh', ['-c', 'gcwal --version'], { env: await childEnv({ PATH: `${path.join(prefix, 'bin')}:${process.env.PATH}` }) });
  t.is(onPath.stdout, `gcwal ${version}\n`);
});

test('without its bundle the launcher says what is missing and what to do', async (t) => {
  const dir = path.join(work.path, 'no-bundle');
  await mkdir(dir);
  await copyFile(path.join(projectRoot, 'dist', 'gcwal'), path.join(dir, 'gcwal'));
  await chmod(path.join(dir, 'gcwal'), 0o755);
  const r = await exec(path.join(dir, 'gcwal'), ['--version'], { env: await childEnv() });
  t.is(r.stdout, '');
  t.is(r.stderr, `gcwal: error: the bundle ${dir}/gcwal.mjs is missing (reinstall gcwal, or run npm run build in a checkout)\n`);
  t.is(r.code, 11);
});

/** A probe "Node" that prints its arguments and then SSL_CERT_DIR. */
async function trustProbe(index: number): Promise<string> {
  const launcher = path.join(work.path, `gcwal-trust-${index}`);
  const probe = path.join(work.path, `trust-probe-node-${index}`);
  await writeFile(probe, `#!/bin/sh\nprintf '%s\\n' "$@" "dir=\${SSL_CERT_DIR-unset}"\nexit ${STUB_EXIT}\n`, { mode: 0o755 });
  await writeLauncher(launcher, { node: probe, bundle });
  return launcher;
}

test('by default Node trusts the system store: --use-openssl-ca with the hashed directory found, exported', async (t) => {
  const launcher = await trustProbe(1);
  const dir = await dataDir({ marked: false });
  const hashed = ['/etc/ssl/certs', '/etc/pki/tls/certs'].find((d) => existsSync(d) && readdirSync(d).some((f) => /\.0$/.test(f)));
  const r = await run(launcher, ['wal-push', `pg_wal/${NAME}`], dir.data, { GCWAL_CA_STORE: undefined, SSL_CERT_DIR: undefined });
  t.is(r.code, STUB_EXIT, r.stderr);
  if (!hashed) {
    t.is(r.stdout, `${bundle}\nwal-push\npg_wal/${NAME}\ndir=unset\n`, 'no hashed directory here: Node keeps its own roots');
    return;
  }
  t.is(r.stdout, `--use-openssl-ca\n${bundle}\nwal-push\npg_wal/${NAME}\ndir=${hashed}\n`);
});

test('an SSL_CERT_DIR already set is used as it is', async (t) => {
  const launcher = await trustProbe(2);
  const dir = await dataDir({ marked: false });
  const r = await run(launcher, ['backup-list'], dir.data, { GCWAL_CA_STORE: 'system', SSL_CERT_DIR: '/opt/my/certs' });
  t.is(r.code, STUB_EXIT, r.stderr);
  t.is(r.stdout, `--use-openssl-ca\n${bundle}\nbackup-list\ndir=/opt/my/certs\n`);
});

test("GCWAL_CA_STORE=node keeps Node's bundled roots and leaves SSL_CERT_DIR alone", async (t) => {
  const launcher = await trustProbe(3);
  const dir = await dataDir({ marked: false });
  const r = await run(launcher, ['wal-fetch', NAME, 'x'], dir.data, { GCWAL_CA_STORE: 'node', SSL_CERT_DIR: undefined });
  t.is(r.code, STUB_EXIT, r.stderr);
  t.is(r.stdout, `${bundle}\nwal-fetch\n${NAME}\nx\ndir=unset\n`);
});

for (const [index, args] of [
  ['--ca-store', 'node', 'backup-list'],
  ['--ca-store=node', 'backup-list'],
].entries()) {
  test(`${args.slice(0, -1).join(' ')} on the command line wins over GCWAL_CA_STORE=system`, async (t) => {
    const launcher = await trustProbe(10 + index);
    const dir = await dataDir({ marked: false });
    const r = await run(launcher, args, dir.data, { GCWAL_CA_STORE: 'system', SSL_CERT_DIR: '/opt/my/certs' });
    t.is(r.code, STUB_EXIT, r.stderr);
    t.is(r.stdout, `${bundle}\n${args.join('\n')}\ndir=/opt/my/certs\n`);
  });
}

test('Node learns how the launcher was run, $0 as given: a link by its own name, a relative path, a PATH lookup', async (t) => {
  const dir = path.join(work.path, 'invoked');
  await mkdir(path.join(dir, 'bin'), { recursive: true });
  const probe = path.join(work.path, 'launcher-probe-node');
  await writeFile(probe, `#!/bin/sh\nprintf '%s\\n' "\${GCWAL_LAUNCHER-unset}"\nexit ${STUB_EXIT}\n`, { mode: 0o755 });
  await writeLauncher(path.join(dir, 'bin', 'gcwal'), { node: probe, bundle });
  await symlink(path.join(dir, 'bin', 'gcwal'), path.join(dir, 'gcwal-link'));
  const env = await childEnv({ GCWAL_CA_STORE: 'node', GCWAL_LAUNCHER: 'stale' });
  const runs: [string, string[], string][] = [
    [path.join(dir, 'gcwal-link'), [], path.join(dir, 'gcwal-link')],
    ['./bin/gcwal', [], './bin/gcwal'],
    ['sh', ['-c', 'gcwal --version'], path.join(dir, 'bin', 'gcwal')],
  ];
  for (const [file, args, expected] of runs) {
    const r = await exec(file, args.length > 0 ? args : ['--version'], { env: { ...env, PATH: `${path.join(dir, 'bin')}:${env.PATH}` }, cwd: dir });
    t.is(r.code, STUB_EXIT, r.stderr);
    t.is(r.stdout, `${expected}\n`, file);
  }
});
