/**
 * mapGcsError on 404s: GCS gives a missing bucket and a missing object the
 * same status and reason (`notFound`), so only the message tells them apart.
 * The shapes are those the driver sees: an ApiError of @google-cloud/storage
 * (code, merged message, errors[]) and the parsed or raw body of a download.
 */
import test from 'ava';
import { isBucketMissing, isObjectMissing, mapGcsError, type CallSite } from '../../../../core/storage/gcs/errors.ts';

const BUCKET_MESSAGE = 'The specified bucket does not exist.';

/** An ApiError as the client library builds it from a JSON error body. */
function apiError(status: number, message: string, reason = 'notFound'): Error {
  return Object.assign(new Error(message), { code: status, errors: [{ domain: 'global', reason, message }] });
}

const cases: [string, unknown, boolean][] = [
  ['a JSON API error for a missing bucket', apiError(404, BUCKET_MESSAGE), true],
  ['a merged multi-line message that starts with the bucket wording', apiError(404, `${BUCKET_MESSAGE}\nsomething else`), true],
  ['a download body parsed by the driver', { code: 404, message: BUCKET_MESSAGE, errors: [{ reason: 'notFound' }] }, true],
  ['only errors[].message carrying the wording', { code: 404, message: 'Not Found', errors: [{ reason: 'notFound', message: BUCKET_MESSAGE }] }, true],
  [
    'an XML API NoSuchBucket body',
    { code: 404, message: `<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchBucket</Code><Message>${BUCKET_MESSAGE}</Message></Error>` },
    true,
  ],
  ['a missing object', apiError(404, 'No such object: b/wal/000000010000000000000001'), false],
  ['a missing object named like the bucket message', apiError(404, `No such object: b/${BUCKET_MESSAGE}`), false],
  ['a bare 404', { code: 404, message: 'Not Found' }, false],
  ['the bucket wording on another status', apiError(403, BUCKET_MESSAGE, 'forbidden'), false],
  ['no status at all', new Error(BUCKET_MESSAGE), false],
];

for (const [what, err, expected] of cases) {
  test(`isBucketMissing is ${expected} for ${what}`, (t) => {
    t.is(isBucketMissing(err), expected);
  });
}

const ops: CallSite['op'][] = ['stat', 'read', 'write', 'list', 'delete'];

for (const op of ops) {
  test(`a missing bucket on ${op} maps to a missing repository (exit 13), never retried`, (t) => {
    const mapped = mapGcsError(apiError(404, BUCKET_MESSAGE), { op, name: 'repo/wal/000000010000000000000001', bucket: 'typo-bucket' });
    t.is(mapped.code, 'repo_missing');
    t.is(mapped.exitCode, 13);
    t.falsy((mapped as { transient?: boolean }).transient);
    t.regex(mapped.message, /bucket typo-bucket does not exist/);
    t.notRegex(mapped.message, /\n|\.$/);
    t.regex(mapped.hint, /GCWAL_REPO/);
  });
}

for (const op of ['stat', 'read', 'delete'] as const) {
  test(`a missing object on ${op} still maps to not found`, (t) => {
    const mapped = mapGcsError(apiError(404, 'No such object: b/repo/k'), { op, name: 'repo/k', bucket: 'b' });
    t.is(mapped.code, 'not_found');
    t.is(mapped.exitCode, 1);
  });
}

const objectCases: [string, unknown, boolean][] = [
  ["Cloud Storage's JSON error for a missing object", apiError(404, 'No such object: b/repo/k'), true],
  ['the text Cloud Storage answers a media download of a missing object with', { code: 404, message: 'No such object: b/repo/k', errors: [] }, true],
  ['a missing bucket', apiError(404, BUCKET_MESSAGE), false],
  ["a proxy's page", { code: 404, message: '<html><head><title>404 Not Found</title></head><body><center>nginx</center></body></html>', errors: [] }, false],
  [
    "the client library's merged message for a page",
    { code: 404, message: 'Multiple errors occurred during the request.\n\n    1. Not Found\n    2. <html>404</html>', errors: [] },
    false,
  ],
  ["Google's front end page for a path no API serves", { code: 404, message: '<!DOCTYPE html>\n<title>Error 404 (Not Found)!!1</title>', errors: [] }, false],
  [
    "the XML API's NoSuchKey, from an endpoint path that is not the JSON API",
    { code: 404, message: "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code></Error>" },
    false,
  ],
  ["the text of another bucket's missing object", { code: 404, message: 'No such object: other/repo/k', errors: [] }, false],
  ['a bare 404', { code: 404, message: 'Not Found' }, false],
];

for (const [what, err, expected] of objectCases) {
  test(`isObjectMissing is ${expected} for ${what}`, (t) => {
    t.is(isObjectMissing(err, 'b'), expected);
  });
}

for (const op of ops) {
  test(`a 404 from something other than Cloud Storage on ${op} is a storage error naming GCWAL_GCS_ENDPOINT, not "not found"`, (t) => {
    const mapped = mapGcsError(
      { code: 404, message: '<html>404 Not Found</html>', errors: [] },
      { op, name: 'repo/k', bucket: 'b', endpoint: 'https://proxy.example/gcs' },
    );
    t.is(mapped.code, 'storage');
    t.false((mapped as { transient?: boolean }).transient);
    t.regex(mapped.message, /HTTP 404 from something other than Cloud Storage/);
    t.regex(mapped.hint, /GCWAL_GCS_ENDPOINT \(https:\/\/proxy\.example\/gcs\)/);
  });
}

test('the server refusing an upload whose CRC32C does not match is a transient storage error: nothing was created, a retry sends it again', (t) => {
  const mapped = mapGcsError(apiError(400, 'Provided CRC32C "AAAAAA==" doesn\'t match calculated CRC32C "BBBBBB==".', 'invalid'), {
    op: 'write',
    name: 'repo/k',
    bucket: 'b',
    expectedGeneration: '0',
  });
  t.is(mapped.code, 'storage');
  t.true((mapped as { transient?: boolean }).transient);
  t.regex(mapped.message, /checksum mismatch in transit/);
});
