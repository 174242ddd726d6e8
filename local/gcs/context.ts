/**
 * What every request handler gets: the request and response, the parsed
 * URL, the base URL the client reached us at (for self links), the caller's
 * identity, and the emulator's shared state. Also the authentication and
 * authorisation checks, which need exactly these.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessControl, Permission } from '../auth/types.ts';
import { ApiError } from './errors.ts';
import type { EventDispatcher } from './events.ts';
import type { Fault } from './faults.ts';
import type { MutationRateLimiter } from './rate-limit.ts';
import { ROUTE_TABLE, type Route } from './router.ts';
import type { Store } from './store.ts';
import type { Sessions } from './sessions.ts';

/** State shared by all requests of one emulator. */
export interface Backend {
  store: Store;
  sessions: Sessions;
  events: EventDispatcher;
  access: AccessControl | undefined;
  /** base URL used in event payloads (the plain-HTTP URL) */
  eventsBaseUrl: string;
  /** one mutation per object name per interval (429 beyond); undefined = unlimited */
  rateLimit?: MutationRateLimiter;
}

/** One request being handled. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** scheme://host as the client addressed us, no trailing slash */
  baseUrl: string;
  /** the authenticated caller; undefined when anonymous (or auth is off) */
  identity: string | undefined;
  /** the fault chosen for this request (reset-download is acted on by the download handler) */
  fault: Fault | undefined;
  backend: Backend;
}

/**
 * The access token of a request: `Authorization: Bearer <token>`, or the raw
 * header value (pgBackRest's `repo-gcs-key-type=token` sends the token bare).
 */
export function tokenOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^\s*bearer\s+(.+?)\s*$/i.exec(header);
  return match ? match[1] : header.trim() || undefined;
}

/**
 * Who is calling. Undefined when no token was sent (anonymous; permission
 * checks then answer 401) or auth is off; 401 "Invalid Credentials" when a
 * token was sent but the authority does not know it.
 */
export function authenticate(req: IncomingMessage, access: AccessControl | undefined): string | undefined {
  if (!access) return undefined;
  const token = tokenOf(req);
  if (token === undefined) return undefined;
  const identity = access.identify(token);
  if (identity === undefined) {
    throw new ApiError(401, 'authError', 'Invalid Credentials', { 'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/"' });
  }
  return identity;
}

/**
 * Throw unless the caller holds `permission` on `bucket`: 401 `required` for
 * an anonymous caller, 403 `forbidden` with GCS's message otherwise. No-op
 * when auth is off. `on` names the resource in the message.
 */
export function authorize(ctx: RequestContext, permission: Permission, bucket: string, on: 'object' | 'bucket' = 'object'): void {
  authorizeIdentity(ctx.backend.access, ctx.identity, permission, bucket, on);
}

/** {@link authorize} for an identity remembered elsewhere (a resumable session's creator). */
export function authorizeIdentity(
  access: AccessControl | undefined,
  identity: string | undefined,
  permission: Permission,
  bucket: string,
  on: 'object' | 'bucket' | 'project' = 'object',
): void {
  if (!access) return;
  const resource = on === 'project' ? 'Google Cloud project' : `Google Cloud Storage ${on}`;
  const what = `${permission} access to the ${resource}. Permission '${permission}' denied on resource (or it may not exist).`;
  if (identity === undefined) {
    throw new ApiError(401, 'required', `Anonymous caller does not have ${what}`, { 'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/"' });
  }
  if (!access.allowed(identity, permission, bucket)) throw new ApiError(403, 'forbidden', `${identity} does not have ${what}`);
}

/** The bucket argument of a project-wide permission: a grant on every bucket holds it (local/auth ALL_BUCKETS). */
const PROJECT = '*';

/**
 * Throw unless the caller may call `route` at all, as ROUTE_TABLE says: 401
 * for an anonymous caller, 403 for one lacking the route's permission. A
 * resumable session's data requests pass without a token when their URI
 * names a live session of that bucket; otherwise an anonymous one is 401 (a
 * guessed or stale session id tells nothing to a caller with no credential),
 * and an authenticated one reaches the handler (404 for an unknown session).
 * Handlers still check what else an operation needs (compose and rewrite
 * read their sources and create their destination).
 */
export function authorizeRoute(ctx: RequestContext, route: Route): void {
  const { access } = ROUTE_TABLE[route.op];
  if ('session' in access) {
    if (ctx.identity !== undefined || !('uploadId' in route)) return;
    if (ctx.backend.sessions.get(route.uploadId)?.bucket === route.bucket) return;
    authorizeIdentity(ctx.backend.access, undefined, 'storage.objects.create', route.bucket);
    return;
  }
  const bucket = access.on === 'project' || !('bucket' in route) ? PROJECT : route.bucket;
  authorizeIdentity(ctx.backend.access, ctx.identity, access.permission, bucket, access.on);
}

/** Send a JSON body with status `status` (default 200). */
export function sendJson(res: ServerResponse, body: unknown, status = 200, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, no-store, max-age=0, must-revalidate',
  });
  res.end(text);
}
