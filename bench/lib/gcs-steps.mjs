/**
 * A measuring script, not a product: the steps `gcwal wal-push` takes to put
 * one segment into a gs:// repository, done one after another in a fresh
 * process with the same library and the same client options as
 * core/storage/gcs/library.ts, each timed on its own. It prints one JSON object of
 * milliseconds per step on stdout; the benchmark takes medians over runs.
 *
 * Steps: Node's bootstrap until this script runs; reading the segment and
 * its CRC32C; loading @google-cloud/storage (and its google-auth-library);
 * Application Default Credentials (detection + token from the metadata
 * server); GET gcwal.json with fetch (as GcsStorage.read does: the first
 * fetch also loads undici and opens a connection); the object's metadata
 * through the client (404 expected: its own first connection); starting a
 * resumable upload; compressing (LZO1X-1 in 256 KiB blocks with native CRC-32
 * framing, as bench/lib/floor-push.mjs: a little cheaper than gcwal's lzop
 * framing with Adler-32); and uploading the compressed bytes to the session.
 *
 * Must be copied into the gcwal install directory and run from there, so
 * that `import('@google-cloud/storage')` resolves exactly as the bundle's does.
 * Usage: node gcs-steps.mjs <segment> <endpoint> <gs://bucket/prefix> <object key under the prefix>
 * (GCE_METADATA_HOST and GOOGLE_CLOUD_PROJECT in the environment, as for gcwal).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';

const [segment, endpoint, repo, key] = process.argv.slice(2);
const [, bucketName, prefixPath = ''] = /^gs:\/\/([^/]+)\/?(.*)$/.exec(repo) ?? [];
const prefix = prefixPath ? `${prefixPath.replace(/\/+$/, '')}/` : '';
const require = createRequire(import.meta.url);
const steps = { bootstrap: performance.now() };
let mark = performance.now();
const step = (name) => {
  const now = performance.now();
  steps[name] = now - mark;
  mark = now;
};

const crc32c = require('fast-crc32c');
const data = readFileSync(segment);
const rawCrc = crc32c.calculate(data);
step('read + CRC32C');

const { Storage, IdempotencyStrategy } = await import('@google-cloud/storage');
const { GoogleAuth } = createRequire(import.meta.resolve('@google-cloud/storage'))('google-auth-library');
step('load @google-cloud/storage');

const auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/devstorage.read_write'], projectId: process.env.GOOGLE_CLOUD_PROJECT });
const headers = await auth.getRequestHeaders();
step('ADC: detect the metadata server, fetch a token');

const identityUrl = `${endpoint}/storage/v1/b/${encodeURIComponent(bucketName)}/o/${encodeURIComponent(`${prefix}gcwal.json`)}?alt=media`;
const identity = await fetch(identityUrl, { headers: new Headers(Object.entries(headers)) });
if (!identity.ok) throw new Error(`GET gcwal.json: ${identity.status}`);
await identity.text();
step('GET gcwal.json (first fetch: loads undici, connects)');

const toBase64 = (value) => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value >>> 0);
  return b.toString('base64');
};
const crc32cGenerator = () => {
  let value = 0;
  return { update: (b) => void (value = crc32c.calculate(b, value)), validate: (e) => toBase64(value) === e, toString: () => toBase64(value) };
};
const client = new Storage({
  authClient: auth,
  projectId: process.env.GOOGLE_CLOUD_PROJECT,
  apiEndpoint: endpoint,
  useAuthWithCustomEndpoint: true,
  crc32cGenerator,
  retryOptions: { autoRetry: true, maxRetries: 5, idempotencyStrategy: IdempotencyStrategy.RetryConditional },
});
const file = client.bucket(bucketName).file(prefix + key);
const found = await file.getMetadata().then(
  () => true,
  (err) => {
    if (err.code !== 404) throw err;
    return false;
  },
);
if (found) throw new Error(`${prefix}${key} exists already: pass a fresh key`);
step('GET object metadata, 404 (client: first request, connects)');

const metadata = { contentType: 'application/octet-stream', metadata: { 'gcwal-raw-crc32c': toBase64(rawCrc), 'gcwal-raw-size': String(data.length) } };
const preconditionOpts = { ifGenerationMatch: 0 };
const [uri] = await file.createResumableUpload({ metadata, preconditionOpts });
step('POST: start a resumable upload');

const lzo = require('lzo');
const BLOCK = 256 * 1024;
const parts = [];
for (let offset = 0; offset < data.length; offset += BLOCK) {
  const raw = data.subarray(offset, offset + BLOCK);
  const packed = lzo.compress(raw);
  const head = Buffer.allocUnsafe(16);
  head.writeUInt32BE(raw.length, 0);
  head.writeUInt32BE(packed.length, 4);
  head.writeUInt32BE(crc32(raw), 8);
  head.writeUInt32BE(crc32(packed), 12);
  parts.push(head, packed);
}
step('compress (LZO1X-1, native CRC-32 framing)');

const sink = file.createWriteStream({ uri, resumable: true, chunkSize: 8 * 1024 * 1024, metadata, preconditionOpts, validation: 'crc32c' });
await pipeline(Readable.from(parts), sink);
step('PUT: upload to the session, CRC32C checked');

process.stdout.write(`${JSON.stringify(steps)}\n`);
