/**
 * The metadata-server stand-in against the unmodified google-auth-library, in
 * child processes with a clean environment: no key file, an empty HOME and
 * CLOUDSDK_CONFIG (so no gcloud ADC file), only GCE_METADATA_HOST. Both
 * copies of the library are checked: the agent's (10.x) and the one
 * @google-cloud/storage 7 bundles (9.x).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { TokenAuthority } from '../../../local/auth/authority.ts';
import { startMetadataServer } from '../../../local/metadata/server.ts';
import { exec } from '../../../local/testkit/exec.ts';
import { freePort } from '../../../local/process/port.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PROBE = path.join(ROOT, 'test/local/metadata/adc-probe.ts');
const SA = 'gcwal-agent@gcwal-local.iam.gserviceaccount.com';

interface ProbeResult {
  which: string;
  client?: string;
  projectId?: string;
  token?: string;
  credentialsEmail?: string;
  error?: { constructor: string; message: string; status?: number; code?: unknown; responseStatus?: number; responseData?: unknown };
}

async function probe(t: { teardown(fn: () => unknown): void }, which: 'top' | 'storage', metadataHost: string): Promise<ProbeResult> {
  const home = await makeTempDir('adc-home');
  t.teardown(() => home.cleanup());
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home.path, CLOUDSDK_CONFIG: home.path, GCE_METADATA_HOST: metadataHost };
  const result = await exec(process.execPath, ['--import=tsx', PROBE, which], { env, cwd: ROOT, timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`probe exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as ProbeResult;
}

async function startStandIn(t: { teardown(fn: () => unknown): void }) {
  const authority = new TokenAuthority();
  const metadata = await startMetadataServer({ authority, identity: SA, projectId: 'gcwal-local' });
  t.teardown(() => metadata.close());
  return { authority, metadata };
}

for (const which of ['top', 'storage'] as const) {
  test(`google-auth-library (${which}) finds Compute credentials, a token and the project through the stand-in`, async (t) => {
    const { authority, metadata } = await startStandIn(t);
    const result = await probe(t, which, metadata.host);
    t.is(result.error, undefined, JSON.stringify(result.error));
    t.is(result.client, 'Compute');
    t.is(result.projectId, 'gcwal-local');
    t.is(result.credentialsEmail, SA);
    t.is(authority.identify(result.token!), SA);
    t.true(metadata.requests() >= 3, 'detection, project and token requests reached the stand-in');
  });

  test(`google-auth-library (${which}) rejects getAccessToken with a 403 GaxiosError for a revoked account`, async (t) => {
    const { authority, metadata } = await startStandIn(t);
    authority.revoke(SA);
    const result = await probe(t, which, metadata.host);
    t.is(result.client, 'Compute', 'the client is still chosen: detection does not need a token');
    t.is(result.token, undefined);
    const err = result.error!;
    t.is(err.constructor, 'GaxiosError');
    t.is(err.status, 403);
    t.is(err.responseStatus, 403);
    t.is(err.responseData, `service account ${SA} is disabled or its credentials were revoked`);
    t.regex(
      err.message,
      /^A Forbidden error was returned while attempting to retrieve an access token for the Compute Engine built-in service account\..*Could not refresh access token: /,
    );
    t.false(err.message.includes('\n'), 'one line');
  });

  test(`google-auth-library (${which}) reports no default credentials when nothing answers at GCE_METADATA_HOST`, async (t) => {
    const result = await probe(t, which, `127.0.0.1:${await freePort()}`);
    t.is(result.client, undefined);
    t.regex(result.error!.message, /^Could not load the default credentials\./);
  });
}
