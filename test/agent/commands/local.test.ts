import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { exec } from '../../../local/testkit/exec.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(ROOT, 'agent/cli.ts');
const REQUIRED = ['GCWAL_REPO', 'STORAGE_EMULATOR_HOST', 'GCWAL_GCS_ENDPOINT', 'GCE_METADATA_HOST', 'GOOGLE_CLOUD_PROJECT'];

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** Start `gcwal local ARGS`, collect KEY=value lines until `ready`. */
async function startLocal(args: string[]) {
  const child = spawn(process.execPath, ['--import=tsx', CLI, 'local', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const env: Record<string, string> = {};
  const lines: string[] = [];
  const lineReader = createInterface({ input: child.stdout });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  for await (const line of lineReader) {
    lines.push(line);
    if (line === 'ready') break;
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  clearTimeout(timer);
  if (lines.at(-1) !== 'ready') throw new Error(`gcwal local never became ready: ${lines.join('\n')}\n${stderr}`);
  return { child, env, lines, exited, stderr: () => stderr };
}

test('gcwal local --no-pipeline prints the agent env, serves tokens and the bucket, and stops cleanly on SIGTERM', async (t) => {
  const tmp = await makeTempDir('local-cmd');
  t.teardown(() => tmp.cleanup());
  const dir = path.join(tmp.path, 'state');
  const local = await startLocal(['--dir', dir, '--bucket', 'cmd-bucket', '--no-pipeline']);
  t.teardown(() => void local.child.kill('SIGKILL'));

  t.deepEqual(
    local.lines
      .slice(0, -1)
      .map((l) => l.split('=')[0])
      .sort(),
    [...REQUIRED].sort(),
  );
  for (const line of local.lines.slice(0, -1)) t.regex(line, /^[A-Z_]+=\S+$/);
  t.is(local.env.GCWAL_REPO, 'gs://cmd-bucket');
  t.is(local.env.GOOGLE_CLOUD_PROJECT, 'gcwal-local');

  const tokenRes = await fetch(`http://${local.env.GCE_METADATA_HOST}/computeMetadata/v1/instance/service-accounts/default/token`, {
    headers: { 'Metadata-Flavor': 'Google' },
  });
  t.is(tokenRes.status, 200);
  const { access_token: token } = (await tokenRes.json()) as { access_token: string };
  const list = await fetch(`${local.env.STORAGE_EMULATOR_HOST}/storage/v1/b/cmd-bucket/o`, { headers: { Authorization: `Bearer ${token}` } });
  t.is(list.status, 200);
  t.is(((await list.json()) as { kind: string }).kind, 'storage#objects');
  const anonymous = await fetch(`${local.env.STORAGE_EMULATOR_HOST}/storage/v1/b/cmd-bucket/o`);
  t.is(anonymous.status, 401);
  t.regex(local.stderr(), /local stack running/);

  local.child.kill('SIGTERM');
  const { code, signal } = await local.exited;
  t.is(signal, null, 'it exits by itself rather than dying of the signal');
  // Stopping is how `gcwal local` is meant to end: a clean shutdown exits 0.
  t.is(code, 0, local.stderr());
  t.regex(local.stderr(), /local stack stopped/);
  t.true(await refused(Number(new URL(local.env.STORAGE_EMULATOR_HOST).port)), 'emulator port closed');
  t.true(await refused(Number(local.env.GCE_METADATA_HOST.split(':')[1])), 'metadata port closed');
  t.true((await readdir(dir)).length > 0, 'the --dir state is kept');
});

/** Pids of live (not zombie) processes whose command line mentions `needle`. */
async function processesMentioning(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (cmdline.includes(needle) && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') found.push(Number(entry));
  }
  return found;
}

test('gcwal local runs the pipeline by default, prints PUBSUB_EMULATOR_HOST and the project before ready, and stops it all on SIGTERM', async (t) => {
  const local = await startLocal(['--bucket', 'pipe-bucket']);
  // SIGTERM, not SIGKILL: a killed gcwal local cannot stop the emulator and functions it started.
  t.teardown(async () => {
    if (local.child.exitCode !== null || local.child.signalCode !== null) return;
    local.child.kill('SIGTERM');
    const timer = setTimeout(() => local.child.kill('SIGKILL'), 30_000);
    await local.exited;
    clearTimeout(timer);
  });
  t.deepEqual(
    local.lines
      .slice(0, -1)
      .map((l) => l.split('=')[0])
      .sort(),
    [...REQUIRED, 'PUBSUB_EMULATOR_HOST'].sort(),
  );
  t.regex(local.env.PUBSUB_EMULATOR_HOST, /^127\.0\.0\.1:\d+$/);
  t.is(local.env.GOOGLE_CLOUD_PROJECT, 'gcwal-local');
  const topics = await fetch(`http://${local.env.PUBSUB_EMULATOR_HOST}/v1/projects/gcwal-local/topics`);
  t.is(topics.status, 200);
  const names = ((await topics.json()) as { topics: { name: string }[] }).topics.map((x) => x.name.split('/').pop()).sort();
  t.deepEqual(names, ['gcwal-alerts', 'gcwal-events', 'gcwal-prune', 'gcwal-watchdog']);
  const running = /functions=\{([^}]*)\}/.exec(local.stderr());
  t.truthy(running, local.stderr());
  const urls = [...running![1].matchAll(/"(\w+)":"(http:[^"]+)"/g)].map((m) => [m[1], m[2]] as const);
  t.deepEqual(urls.map(([name]) => name).sort(), ['catalogue', 'prune', 'validate', 'watchdog']);
  const pubsubPort = local.env.PUBSUB_EMULATOR_HOST.split(':')[1];
  t.not((await processesMentioning(`--host-port=127.0.0.1:${pubsubPort}`)).length, 0);

  local.child.kill('SIGTERM');
  const { code } = await local.exited;
  t.is(code, 0, local.stderr());
  t.true(await refused(Number(pubsubPort)), 'pub/sub port closed');
  for (const [name, url] of urls) t.true(await refused(Number(new URL(url).port)), `${name} port closed`);
  t.deepEqual(await processesMentioning(`--host-port=127.0.0.1:${pubsubPort}`), [], 'no emulator process left');
  for (const [, url] of urls) t.deepEqual(await processesMentioning(`--port=${new URL(url).port}`), [], 'no function process left');
});

test('gcwal local refuses a bad bucket name with a usage error', async (t) => {
  const result = await exec(process.execPath, ['--import=tsx', CLI, 'local', '--bucket', 'NOT_VALID'], { cwd: ROOT, env: { PATH: process.env.PATH } });
  t.is(result.code, 2);
  t.regex(result.stderr, /^gcwal: error: invalid bucket name "NOT_VALID"/);
  t.is(result.stdout, '');
});

test('gcwal local takes no positional arguments', async (t) => {
  const result = await exec(process.execPath, ['--import=tsx', CLI, 'local', 'extra'], { cwd: ROOT, env: { PATH: process.env.PATH } });
  t.is(result.code, 2);
  t.regex(result.stderr, /local takes 0 arguments, got 1/);
});
