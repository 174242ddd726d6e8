/**
 * Child-process probe for adc.test.ts: runs the unmodified google-auth-library
 * ADC path (GoogleAuth → Compute via the metadata server in GCE_METADATA_HOST)
 * in a fresh process, so gcp-metadata's per-process detection cache and the
 * real environment lookup are exercised, and prints one JSON line.
 *
 * argv[2]: which copy of the library: `top` (google-auth-library 10, the
 * agent's) or `storage` (the one @google-cloud/storage 7 bundles).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const which = process.argv[2] ?? 'top';
const modulePath = which === 'storage' ? createRequire(require.resolve('@google-cloud/storage'))('google-auth-library') : require('google-auth-library');
const { GoogleAuth } = modulePath as typeof import('google-auth-library');

const out: Record<string, unknown> = { which };
try {
  const auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/devstorage.read_write'] });
  const client = await auth.getClient();
  out.client = client.constructor.name;
  out.projectId = await auth.getProjectId();
  const token = await auth.getAccessToken();
  out.token = token;
  out.credentialsEmail = (await auth.getCredentials()).client_email;
} catch (err) {
  const e = err as Error & { status?: number; code?: unknown; response?: { status?: number; data?: unknown } };
  out.error = {
    name: e.name,
    constructor: e.constructor?.name,
    message: e.message,
    status: e.status,
    code: e.code,
    responseStatus: e.response?.status,
    responseData: e.response?.data,
  };
}
process.stdout.write(JSON.stringify(out) + '\n');
