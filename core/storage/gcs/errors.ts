import {
  AlreadyExistsError,
  AuthError,
  CorruptObjectError,
  GcwalError,
  NotFoundError,
  PreconditionFailedError,
  RepositoryMissingError,
  StorageError,
} from '../../errors.ts';
import { TRANSIENT_NETWORK_CODES } from '../../retry.ts';

/** What a failed call was doing, for messages. */
export interface CallSite {
  op: 'stat' | 'read' | 'write' | 'list' | 'delete' | 'auth';
  /** full object name in the bucket, or a prefix for list */
  name: string;
  bucket: string;
  /** the identity the driver authenticates as, when known */
  identity?: string;
  /** the ifGenerationMatch the call carried (`'0'` = create-only) */
  expectedGeneration?: string;
  /** GCWAL_GCS_ENDPOINT, when one is set, for messages */
  endpoint?: string;
}

const AUTH_PATTERNS =
  /default credentials|access token|refresh|invalid_grant|unauthorized_client|impersonat|metadata|computeMetadata|credential|invalid_scope|service account/i;

/**
 * The HTTP status of an error from @google-cloud/storage (ApiError.code),
 * gaxios (response.status, sometimes a numeric string in code) or
 * teeny-request, or undefined for network-level failures.
 */
export function httpStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const v of [e?.code, e?.status, e?.response?.status]) {
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
    if (typeof v === 'string' && /^[1-5]\d\d$/.test(v)) return Number(v);
  }
  const m = /status code (\d{3})/.exec(String((err as { message?: unknown })?.message ?? ''));
  return m ? Number(m[1]) : undefined;
}

function reasonOf(err: unknown): string | undefined {
  const errors = (err as { errors?: { reason?: string }[] })?.errors;
  return Array.isArray(errors) ? errors.find((e) => e?.reason)?.reason : undefined;
}

/**
 * How GCS words a missing bucket: the JSON API answers 404 `notFound` with
 * "The specified bucket does not exist." (the same reason as a missing
 * object, so only the message tells them apart), the XML API `NoSuchBucket`.
 * Anchored at the start: a missing object's message ("No such object:
 * <bucket>/<name>") carries the object name, which could contain anything.
 */
const BUCKET_MISSING = [/^\s*the specified bucket does not exist/i, /<Code>NoSuchBucket<\/Code>/];

/**
 * Whether a 404 says the bucket itself does not exist, judged from the error
 * body's message and its `errors[].message` (an ApiError of the client
 * library, or the parsed body of a download). Any other 404 is about the object.
 */
export function isBucketMissing(err: unknown): boolean {
  if (httpStatus(err) !== 404) return false;
  const e = err as { message?: unknown; errors?: { message?: unknown }[] } | undefined;
  const texts = [e?.message, ...(Array.isArray(e?.errors) ? e.errors.map((x) => x?.message) : [])];
  return texts.some((text) => typeof text === 'string' && BUCKET_MISSING.some((re) => re.test(text)));
}

/**
 * Whether a 404 is Cloud Storage saying an object of `bucket` does not
 * exist: its JSON error (reason `notFound`), or the text "No such object:
 * <bucket>/<name>" it answers a media download with. Not a missing bucket
 * (isBucketMissing), and not a 404 from anything else that may stand in
 * the way (a proxy, a wrong path in GCWAL_GCS_ENDPOINT): reading one of
 * those as "no such object" would end a recovery early.
 */
export function isObjectMissing(err: unknown, bucket: string): boolean {
  if (httpStatus(err) !== 404 || isBucketMissing(err)) return false;
  if (reasonOf(err) === 'notFound') return true;
  const message = (err as { message?: unknown })?.message;
  return typeof message === 'string' && message.trimStart().startsWith(`No such object: ${bucket}/`);
}

function firstLine(err: unknown): string {
  const raw = (err as { message?: unknown })?.message;
  const message = typeof raw === 'string' ? raw : String(err);
  return (message.split('\n')[0] || 'unknown error').replace(/\.$/, '');
}

/**
 * Translate whatever @google-cloud/storage, gaxios or google-auth-library
 * threw into gcwal's error classes. Missing objects become NotFoundError only
 * on a real 404 of a read; a missing bucket is RepositoryMissingError (exit
 * 13, not retried) for every operation, never NotFoundError; credentials problems become AuthError naming the
 * identity; 408/429/5xx and dropped connections are transient StorageErrors.
 * A 412 is AlreadyExistsError for a create-only write and
 * PreconditionFailedError for a call made for a given generation.
 */
export function mapGcsError(err: unknown, site: CallSite): GcwalError {
  if (err instanceof GcwalError) return err;
  const where = site.op === 'list' ? `listing gs://${site.bucket}/${site.name}` : `${site.op} gs://${site.bucket}/${site.name}`;
  const status = httpStatus(err);
  const code = (err as { code?: unknown })?.code;
  const who = site.identity ? `as ${site.identity}` : 'with the application default credentials';
  if (code === 'ABORT_ERR' || (err as Error)?.name === 'AbortError') {
    return new StorageError(`${where} was cancelled`, false, 'the command was interrupted', { cause: err });
  }
  if (code === 'FILE_NO_UPLOAD' || code === 'FILE_NO_UPLOAD_DELETE' || code === 'CONTENT_DOWNLOAD_MISMATCH' || isChecksumRefusal(err)) {
    return new StorageError(`${where}: checksum mismatch in transit (${firstLine(err)})`, true, 'the data was damaged on the network; retry', { cause: err });
  }
  if (code === 'UPLOAD_SESSION_GONE') {
    return new StorageError(`${where}: ${firstLine(err)}`, true, 'the upload is started again from the beginning; retry', { cause: err });
  }
  // Before the object case: a mistyped bucket must never read as "no such
  // object", or wal-fetch would exit 1 and end archive recovery early.
  if (isBucketMissing(err)) {
    return new RepositoryMissingError(`gs://${site.bucket}`, `cannot be used: bucket ${site.bucket} does not exist (${where})`, {
      cause: err,
      hint: `check the bucket name in GCWAL_REPO (gs://${site.bucket}); if it is new, create the bucket, then run gcwal repo-create`,
    });
  }
  if (status === 404 && !isObjectMissing(err, site.bucket)) {
    const endpoint = site.endpoint ? `GCWAL_GCS_ENDPOINT (${site.endpoint})` : 'GCWAL_GCS_ENDPOINT';
    return new StorageError(
      `${where}: HTTP 404 from something other than Cloud Storage (${firstLine(err).slice(0, 120)})`,
      false,
      `a proxy or a wrong path answered instead of Cloud Storage: check ${endpoint}, the API root (e.g. https://storage.googleapis.com, no path), and any proxy in between`,
      { cause: err },
    );
  }
  if (status === 404 && (site.op === 'read' || site.op === 'stat' || site.op === 'delete')) {
    return new NotFoundError(`object gs://${site.bucket}/${site.name} does not exist`, 'check the name and GCWAL_REPO', { cause: err });
  }
  if (status === 404) {
    return new StorageError(`${where}: bucket ${site.bucket} not found`, false, 'check the bucket name in GCWAL_REPO and that it exists', { cause: err });
  }
  if (status === 412 && site.expectedGeneration !== undefined && site.expectedGeneration !== '0') {
    return new PreconditionFailedError(site.name, site.expectedGeneration, undefined, { cause: err });
  }
  if (status === 412 && site.op === 'delete' && site.expectedGeneration === '0') {
    return new PreconditionFailedError(site.name, '0', undefined, { cause: err });
  }
  if (status === 412 && site.op === 'write') return new AlreadyExistsError(site.name, { cause: err });
  if (status === 401) {
    return new AuthError(
      `${where} was refused ${who}: not authenticated (${firstLine(err)})`,
      "check the host's credentials: the metadata server, GOOGLE_APPLICATION_CREDENTIALS or GCWAL_IMPERSONATE_SERVICE_ACCOUNT; the token may have been revoked",
      { cause: err },
    );
  }
  if (status === 403) {
    if (reasonOf(err) === 'retentionPolicyNotMet') {
      return new StorageError(
        `${where} is blocked by the bucket's retention policy`,
        false,
        'objects younger than the retention period cannot be deleted or replaced',
        { cause: err },
      );
    }
    const replacing = site.op === 'write' && site.expectedGeneration !== undefined && site.expectedGeneration !== '0';
    const need = replacing
      ? 'storage.objects.create and storage.objects.delete'
      : site.op === 'write'
        ? 'storage.objects.create'
        : site.op === 'list'
          ? 'storage.objects.list'
          : site.op === 'delete'
            ? 'storage.objects.delete'
            : 'storage.objects.get';
    return new AuthError(
      `${where} was refused ${who}: permission denied (${firstLine(err)})`,
      `grant ${need} on bucket ${site.bucket} (roles/storage.objectCreator and roles/storage.objectViewer for the agent)`,
      { cause: err },
    );
  }
  if (status === 408 || status === 429 || (status !== undefined && status >= 500)) {
    return new StorageError(
      `${where} failed with HTTP ${status} after retries (${firstLine(err)})`,
      true,
      'Cloud Storage is overloaded or unavailable; retry later',
      { cause: err },
    );
  }
  if (typeof code === 'string' && TRANSIENT_NETWORK_CODES.has(code)) {
    return new StorageError(`${where} failed: ${code}`, true, 'check the network path to Cloud Storage (or GCWAL_GCS_ENDPOINT) and retry', { cause: err });
  }
  const message = firstLine(err);
  const causeCode = (err as { cause?: { code?: unknown } })?.cause?.code;
  if (
    /socket hang up|connection|premature|aborted|reset|timeout|terminated|fetch failed|other side closed/i.test(message) ||
    (typeof causeCode === 'string' && (TRANSIENT_NETWORK_CODES.has(causeCode) || causeCode.startsWith('UND_ERR')))
  ) {
    return new StorageError(`${where} failed: ${message}`, true, 'check the network path to Cloud Storage and retry', { cause: err });
  }
  if (AUTH_PATTERNS.test(message)) {
    return new AuthError(
      `${where}: could not obtain credentials ${who} (${message})`,
      'on GCE/GKE check the attached service account; elsewhere set GOOGLE_APPLICATION_CREDENTIALS to a key, external_account or impersonated_service_account file',
      { cause: err },
    );
  }
  if (status === 400) {
    return new CorruptObjectError(`${where} was rejected as invalid: ${message}`, 'this is likely a bug in gcwal; please report it', { cause: err });
  }
  return new StorageError(`${where} failed: ${message}`, false, 'check the repository and retry', { cause: err });
}

/**
 * Whether the server refused an upload because the bytes it received do not
 * have the CRC32C (or MD5) the client claimed for them: a 400 "Provided
 * CRC32C … doesn't match calculated CRC32C …". No object was created.
 */
export function isChecksumRefusal(err: unknown): boolean {
  if (httpStatus(err) !== 400) return false;
  const message = String((err as { message?: unknown })?.message ?? '');
  return /\b(crc32c|md5)\b/i.test(message) && /match/i.test(message);
}

/** Whether an error from the client library is a rate-limit answer (drives the adaptive limiter). */
export function isRateLimited(err: unknown): boolean {
  return httpStatus(err) === 429;
}
