/**
 * What a wal-push to gs:// loads: PostgreSQL's archiver starts gcwal once per
 * segment, and @google-cloud/storage (120-170 ms) and google-auth-library
 * (~70 ms) would be paid on every call. On a host whose credentials are the
 * metadata server (the local stack's, found through GCE_METADATA_HOST), a
 * segment that compresses below the upload chunk size goes up without
 * either, and so does its wal-fetch. The installed bundle runs as
 * archive_command does, with a preload that writes at exit every module
 * Node's CommonJS loader was asked for and every file in its cache (both
 * packages are loaded through require(), see core/storage/gcs/library.ts).
 */
import test from 'ava';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { startWalSource, type WalSource } from '../../functions/wal-source.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';

const PRELOAD = `
const Module = require('node:module');
const fs = require('node:fs');
const requested = new Set();
const load = Module._load;
Module._load = function (request, ...rest) {
  requested.add(request);
  return load.call(this, request, ...rest);
};
process.on('exit', () => {
  fs.writeFileSync(process.env.GCWAL_TEST_LOAD_REPORT, JSON.stringify({ requested: [...requested], files: Object.keys(require.cache) }));
});
`;

const HEAVY = /(^|[\\/])(@google-cloud[\\/]storage|google-auth-library)([\\/]|$)/;

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;
let wal: WalSource;
let segment: string;
let reports = 0;

test.before(async () => {
  work = await makeTempDir('push-lean', { owner: 'postgres' });
  const preload = path.join(work.path, 'preload.cjs');
  await writeFile(preload, PRELOAD);
  await chmod(preload, 0o644);
  agent = await installAgent({ nodeArgs: ['--require', preload] });
  stack = await startLocalStack({ prefix: 'lean' });
  wal = await startWalSource();
  await runRepoCreate(agent.command, wal.cluster, { ...stack.env, GCWAL_TEST_LOAD_REPORT: path.join(work.path, 'report-repo-create.json') });
  const [name] = await wal.produce(1);
  segment = wal.file(name!);
});

test.after.always(async () => {
  await wal?.stop();
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

/** Run gcwal as archive_command does and return what it loaded. */
async function run(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stderr: string; requested: string[]; files: string[] }> {
  const report = path.join(work.path, `report-${++reports}.json`);
  const r = await runGcwal(agent.command, args, { asUser: 'postgres', cwd: work.path, env: { ...stack.env, ...extraEnv, GCWAL_TEST_LOAD_REPORT: report } });
  const { requested, files } = JSON.parse(await readFile(report, 'utf8')) as { requested: string[]; files: string[] };
  return { code: r.code, stderr: r.stderr, requested, files };
}

test.serial('a wal-push to gs:// below the chunk size loads neither @google-cloud/storage nor google-auth-library', async (t) => {
  const r = await run(['wal-push', segment]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    r.requested.filter((m) => HEAVY.test(m)),
    [],
  );
  t.deepEqual(
    r.files.filter((f) => HEAVY.test(f)),
    [],
  );
  // The report sees the packages the bundle does require at run time.
  t.true(
    r.files.some((f) => /node_modules[\\/](fast-crc32c|sse4_crc32)[\\/]/.test(f)),
    'the CRC32C addon was seen loading',
  );
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o/${encodeURIComponent(`lean/wal/${path.basename(segment)}`)}`, {
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
  });
  t.is(res.status, 200, 'the segment is in the bucket');
});

test.serial('its wal-fetch loads neither either', async (t) => {
  const dest = path.join(work.path, 'fetched');
  const r = await run(['wal-fetch', path.basename(segment), dest]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    r.requested.filter((m) => HEAVY.test(m)),
    [],
  );
  t.deepEqual(
    r.files.filter((f) => HEAVY.test(f)),
    [],
  );
  t.true((await readFile(dest)).equals(await readFile(segment)));
});

test.serial('the report does see them when a command needs the client library (a listing)', async (t) => {
  const r = await run(['backup-list']);
  t.is(r.code, 0, r.stderr);
  t.true(
    r.files.some((f) => /node_modules[\\/]@google-cloud[\\/]storage[\\/]/.test(f)),
    'the client library was loaded',
  );
});

test.serial('with GOOGLE_APPLICATION_CREDENTIALS the push asks google-auth-library instead', async (t) => {
  // A key file that does not exist: the library fails at once, as an auth error.
  const r = await run(['wal-push', segment], { GOOGLE_APPLICATION_CREDENTIALS: path.join(work.path, 'no-such-key.json'), GCWAL_RETRIES: '0' });
  t.is(r.code, 8, r.stderr);
  t.true(
    r.files.some((f) => /node_modules[\\/](.*[\\/])?google-auth-library[\\/]/.test(f)),
    'google-auth-library was loaded',
  );
});
