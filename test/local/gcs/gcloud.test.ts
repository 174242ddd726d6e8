/**
 * `gcloud storage` (SDK 528) against the emulator over plain HTTP, with a
 * bearer token the emulator checks: small files go up as multipart (name in
 * the JSON part, single-quoted boundary, bare LF), large ones as resumable
 * uploads under `/resumable/upload/...`; downloads follow `mediaLink`.
 * gcloud takes seconds to start, so the invocations are few.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AccessControl } from '../../../local/auth/types.ts';
import { exec } from '../../../local/testkit/exec.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { childEnv } from '../../../local/testkit/users.ts';
import { bytes, logRequests, startTestEmulator } from './harness.ts';

const GCLOUD = '/usr/bin/gcloud';

const access: AccessControl = {
  identify: (token) => (token === 'tok' ? 'gcloud-user@test.iam.gserviceaccount.com' : undefined),
  allowed: () => true,
};

test('gcloud storage copies files up and down, lists, cats and removes them', async (t) => {
  if (!existsSync(GCLOUD)) {
    t.fail('gcloud is not installed (Google Cloud SDK)');
    return;
  }
  const { emu } = await startTestEmulator(t, { access });
  await emu.createBucket('gc-bucket');
  const log = logRequests(emu);
  const work = await makeTempDir('gcloud');
  t.teardown(() => work.cleanup());
  const configDir = path.join(work.path, 'config');
  await mkdir(configDir);
  const env = await childEnv({
    CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: `${emu.url}/`,
    CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok',
    CLOUDSDK_CORE_PROJECT: 'test',
    CLOUDSDK_CONFIG: configDir,
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
    CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
  });
  const gcloud = async (...args: string[]) => {
    const result = await exec(GCLOUD, ['storage', ...args], { env, cwd: work.path, timeoutMs: 120_000 });
    t.is(result.code, 0, `gcloud storage ${args.join(' ')}:\n${result.stderr}`);
    return result;
  };

  const small = Buffer.from('hello from gcloud\n');
  const big = bytes(9 * 1000 * 1000, 11);
  await writeFile(path.join(work.path, 'small.txt'), small);
  await writeFile(path.join(work.path, 'big.bin'), big);

  await gcloud('cp', 'small.txt', 'big.bin', 'gs://gc-bucket/dir/');
  t.true(
    log.some((line) => line.startsWith('POST /upload/storage/v1/b/gc-bucket/o') && line.includes('uploadType=multipart')),
    log.join('\n'),
  );
  t.true(
    log.some((line) => line.startsWith('POST /resumable/upload/storage/v1/b/gc-bucket/o') && line.includes('uploadType=resumable')),
    log.join('\n'),
  );

  const listed = await gcloud('ls', 'gs://gc-bucket/dir/');
  t.deepEqual(listed.stdout.trim().split('\n'), ['gs://gc-bucket/dir/big.bin', 'gs://gc-bucket/dir/small.txt']);

  const cat = await gcloud('cat', 'gs://gc-bucket/dir/small.txt');
  t.is(cat.stdout, small.toString());

  await gcloud('cp', 'gs://gc-bucket/dir/big.bin', 'down.bin');
  t.true((await readFile(path.join(work.path, 'down.bin'))).equals(big));
  t.true(
    log.some((line) => line.startsWith('GET /download/storage/v1/b/gc-bucket/o/dir%2Fbig.bin')),
    log.join('\n'),
  );

  await gcloud('rm', 'gs://gc-bucket/dir/small.txt');
  const after = await gcloud('ls', 'gs://gc-bucket/dir/');
  t.deepEqual(after.stdout.trim().split('\n'), ['gs://gc-bucket/dir/big.bin']);
});

test('gcloud storage is refused without a token the emulator knows', async (t) => {
  const { emu } = await startTestEmulator(t, { access });
  await emu.createBucket('gc-bucket');
  const work = await makeTempDir('gcloud');
  t.teardown(() => work.cleanup());
  const env = await childEnv({
    CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: `${emu.url}/`,
    CLOUDSDK_AUTH_ACCESS_TOKEN: 'not-a-known-token',
    CLOUDSDK_CORE_PROJECT: 'test',
    CLOUDSDK_CONFIG: work.path,
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
    CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
  });
  const result = await exec(GCLOUD, ['storage', 'ls', 'gs://gc-bucket/'], { env, cwd: work.path, timeoutMs: 120_000 });
  t.not(result.code, 0);
  t.regex(result.stderr, /401|Invalid Credentials/);
});
