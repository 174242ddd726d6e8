/**
 * Google JSON API error bodies. Every failure the emulator reports is an
 * {@link ApiError} carrying the HTTP status and the `reason` GCS puts in
 * `errors[0].reason`, because clients branch on both (the Node client retries
 * on the status, gcwal's driver maps `conditionNotMet` to "already exists").
 */
import type { ServerResponse } from 'node:http';

/** One failure as GCS reports it: HTTP status, `reason`, human message. */
export class ApiError extends Error {
  /** HTTP status code */
  readonly status: number;
  /** `errors[0].reason`, e.g. `notFound`, `conditionNotMet` */
  readonly reason: string;
  /** extra response headers, e.g. `Content-Range` on a 416 */
  readonly headers: Readonly<Record<string, string>>;
  /** the body as text/html instead of the JSON error, where GCS answers so (see textError) */
  text?: string;

  constructor(status: number, reason: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.reason = reason;
    this.headers = headers;
  }
}

/** The JSON body GCS sends with an error status. */
export function errorBody(err: ApiError): string {
  return JSON.stringify({
    error: {
      code: err.status,
      message: err.message,
      errors: [{ domain: 'global', reason: err.reason, message: err.message }],
    },
  });
}

/**
 * Answer `res` with `err` (anything not an ApiError becomes a 500
 * `internalError`). Does nothing when the headers are already out: the
 * caller then has no way to report and the socket is destroyed instead, so
 * the client sees a broken response rather than a truncated "success".
 */
export function sendError(res: ServerResponse, err: unknown): void {
  const api = err instanceof ApiError ? err : new ApiError(500, 'internalError', `internal error: ${(err as Error)?.message ?? String(err)}`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // 304 must not carry a body.
  if (api.status === 304) {
    res.writeHead(304, api.headers);
    res.end();
    return;
  }
  const body = api.text ?? errorBody(api);
  res.writeHead(api.status, {
    ...api.headers,
    'Content-Type': api.text === undefined ? 'application/json; charset=UTF-8' : 'text/html; charset=UTF-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** 404 for a bucket that does not exist (GCS's wording, which does not name it). */
export function bucketNotFound(_bucket: string): ApiError {
  return new ApiError(404, 'notFound', 'The specified bucket does not exist.');
}

/** 404 for an object that does not exist (GCS's wording). */
export function objectNotFound(bucket: string, name: string): ApiError {
  return new ApiError(404, 'notFound', `No such object: ${bucket}/${name}`);
}

/**
 * `err` answered with its message as a text/html body, as GCS answers a
 * media download of a missing object ("No such object: bucket/name"), and
 * Google's front end a path no API serves.
 */
export function textError(err: ApiError, text = err.message): ApiError {
  err.text = text;
  return err;
}

/** 400 `invalid` with a message. */
export function invalid(message: string): ApiError {
  return new ApiError(400, 'invalid', message);
}

/** 400 `required`: a mandatory parameter is missing. */
export function required(message: string): ApiError {
  return new ApiError(400, 'required', message);
}
