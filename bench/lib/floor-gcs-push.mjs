/**
 * A reference point, not a product: the least a fresh Node process must do
 * to archive one WAL segment into a gs:// repository with the checks gcwal
 * makes, on node:http/node:https and no client library. It reads the
 * segment once and takes its CRC32C, compresses it (LZO1X-1 in 256 KiB
 * blocks with native CRC-32 framing, as floor-push.mjs), fetches a token
 * from the metadata server (one request: GCE_METADATA_HOST is set, so no
 * detection), reads gcwal.json and checks the system identifier (creating it
 * in an empty repository), then sends the object in one multipart upload that
 * carries the metadata and the CRC32C the server verifies, create-only
 * (ifGenerationMatch=0, so no stat before it). 3 storage requests: what
 * pgBackRest does per segment (archive.info, a listing, one upload).
 *
 * With a fourth argument `fetch` every request goes through Node's built-in
 * fetch (undici) instead, with the same bodies: the difference is what the
 * HTTP client costs.
 *
 * Must be copied into the gcwal install directory (lzo and fast-crc32c are
 * resolved from there). Prints the milliseconds of each step as JSON.
 * Usage: node floor-gcs-push.mjs <segment> <endpoint> <gs://bucket/prefix> [fetch]
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';

const [segment, endpoint, repo, client = 'node:https'] = process.argv.slice(2);
const [, bucket, prefixPath = ''] = /^gs:\/\/([^/]+)\/?(.*)$/.exec(repo) ?? [];
const prefix = prefixPath ? `${prefixPath.replace(/\/+$/, '')}/` : '';
const require = createRequire(import.meta.url);
const steps = { bootstrap: performance.now() };
let mark = performance.now();
const step = (name) => {
  const now = performance.now();
  steps[name] = now - mark;
  mark = now;
};
const base64 = (crc) => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
};

const crc32c = require('fast-crc32c');
const data = readFileSync(segment);
const rawCrc = crc32c.calculate(data);
// xlp_sysid of the long page header (little-endian on x86).
const systemIdentifier = data.readBigUInt64LE(24).toString();
step('read + CRC32C');

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
const stored = Buffer.concat(parts);
step('compress (LZO1X-1, native CRC-32 framing)');

// One keep-alive connection to the storage endpoint for both requests,
// trusting GCWAL_GCS_CA_FILE when it is set, as gcwal does (fetch cannot be
// given a CA: that variant needs NODE_EXTRA_CA_CERTS).
const storageLib = endpoint.startsWith('https:') ? https : http;
const ca = storageLib === https && process.env.GCWAL_GCS_CA_FILE ? { ca: readFileSync(process.env.GCWAL_GCS_CA_FILE) } : {};
const agent = new storageLib.Agent({ keepAlive: true, maxSockets: 1, ...ca });

/** One request; resolves with the status and the whole response body. `body` is a list of buffers sent in turn. */
const nodeCall = (lib, url, { method = 'GET', headers = {}, body = [], via } = {}) =>
  new Promise((resolve, reject) => {
    const length = body.reduce((n, b) => n + b.length, 0);
    const req = lib.request(url, { method, agent: via, headers: body.length ? { ...headers, 'Content-Length': length } : headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    for (const b of body) req.write(b);
    req.end();
  });

/** The same with fetch: the body is one Buffer (what a caller holding the whole object would send). */
const fetchCall = async (_lib, url, { method = 'GET', headers = {}, body = [] } = {}) => {
  const res = await fetch(url, { method, headers, body: body.length ? Buffer.concat(body) : undefined });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
};
const call = client === 'fetch' ? fetchCall : nodeCall;

const tokenResponse = await call(http, `http://${process.env.GCE_METADATA_HOST}/computeMetadata/v1/instance/service-accounts/default/token`, {
  headers: { 'Metadata-Flavor': 'Google' },
});
if (tokenResponse.status !== 200) throw new Error(`metadata token: ${tokenResponse.status}`);
const authorization = `Bearer ${JSON.parse(tokenResponse.body.toString()).access_token}`;
// With fetch, this first call also loads undici.
step('token from the metadata server');

/** One create-only multipart upload; resolves with the response, which the caller checks. */
const upload = (name, bytes, metadata) => {
  const boundary = `floor${process.pid}${Date.now()}`;
  const head = JSON.stringify({ name, contentType: 'application/octet-stream', crc32c: base64(crc32c.calculate(bytes)), metadata });
  return call(storageLib, `${endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=multipart&ifGenerationMatch=0`, {
    method: 'POST',
    via: agent,
    headers: { Authorization: authorization, 'Content-Type': `multipart/related; boundary=${boundary}` },
    body: [
      Buffer.from(
        `--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${head}\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
      bytes,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ],
  });
};

const identity = await call(storageLib, `${endpoint}/storage/v1/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(`${prefix}gcwal.json`)}?alt=media`, {
  via: agent,
  headers: { Authorization: authorization },
});
if (identity.status === 404) {
  const created = await upload(
    `${prefix}gcwal.json`,
    Buffer.from(JSON.stringify({ format: 1, systemIdentifier, walSegmentSize: data.length, created: new Date().toISOString() })),
    {},
  );
  if (created.status !== 200 && created.status !== 412) throw new Error(`create gcwal.json: ${created.status} ${created.body}`);
} else if (identity.status !== 200) {
  throw new Error(`GET gcwal.json: ${identity.status}`);
} else if (JSON.parse(identity.body.toString()).systemIdentifier !== systemIdentifier) {
  throw new Error('the repository belongs to another cluster');
}
step('GET gcwal.json, check the system identifier (connects)');

const name = `${prefix}wal/${path.basename(segment)}`;
const response = await upload(name, stored, {
  'gcwal-codec': 'floor',
  'gcwal-raw-size': String(data.length),
  'gcwal-raw-crc32c': base64(rawCrc),
  'gcwal-system-id': systemIdentifier,
});
// 412: the name exists; a product would compare checksums here, the floor only ever pushes new names.
if (response.status !== 200) throw new Error(`upload ${name}: ${response.status} ${response.body}`);
step('POST: multipart upload, create-only, CRC32C checked by the server');
agent.destroy();

process.stdout.write(`${JSON.stringify(steps)}\n`);
