/**
 * A GCE metadata-server stand-in on loopback. Pointing GCE_METADATA_HOST at it
 * makes the unmodified google-auth-library detect "Compute Engine" and fetch
 * its access tokens here, minted by the local TokenAuthority, so the agent's
 * real keyless ADC path runs end to end against the local emulator.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TokenAuthority } from '../auth/authority.ts';
import { identityToken } from './identity.ts';

export interface MetadataServerOptions {
  /** issues the tokens and tells whether the identity is disabled */
  authority: TokenAuthority;
  /** the instance's default service account email */
  identity: string;
  projectId: string;
  /** numeric project number; default a stable number derived from projectId */
  numericProjectId?: string;
  /** TCP port on 127.0.0.1; default 0 (the kernel picks one) */
  port?: number;
  /** lifetime of minted access tokens; default 3600 s, as on GCE */
  tokenTtlSeconds?: number;
  /** scopes reported for the service account; default cloud-platform */
  scopes?: readonly string[];
}

/** A running metadata-server stand-in. */
export interface MetadataServer {
  /** `127.0.0.1:PORT`, the value for GCE_METADATA_HOST */
  readonly host: string;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** change the default service account (tokens already issued stay valid) */
  setIdentity(email: string): void;
  /** requests served so far, including refused ones */
  requests(): number;
  /** stop listening and drop open connections; idempotent */
  close(): Promise<void>;
}

const BASE = '/computeMetadata/v1';
const DEFAULT_SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];

/**
 * Start the stand-in on 127.0.0.1. Like the real server it refuses requests
 * without `Metadata-Flavor: Google` (403), answers every response with that
 * header, and returns 404 for unknown paths. The token endpoint mints from the
 * authority for the current identity; for a revoked identity it answers 403,
 * which google-auth-library turns into a rejected getAccessToken().
 */
export async function startMetadataServer(options: MetadataServerOptions): Promise<MetadataServer> {
  const state = { identity: options.identity, requests: 0 };
  const ctx: Context = {
    authority: options.authority,
    identity: () => state.identity,
    projectId: options.projectId,
    numericProjectId: options.numericProjectId ?? numericIdFor(options.projectId),
    ttl: options.tokenTtlSeconds ?? 3600,
    scopes: options.scopes ?? DEFAULT_SCOPES,
  };
  const server = createServer((req, res) => {
    state.requests++;
    try {
      handle(ctx, req, res);
    } catch (err) {
      send(res, 500, `internal error: ${(err as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: options.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    setIdentity(email) {
      state.identity = email;
    },
    requests: () => state.requests,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

interface Context {
  authority: TokenAuthority;
  identity: () => string;
  projectId: string;
  numericProjectId: string;
  ttl: number;
  scopes: readonly string[];
}

function handle(ctx: Context, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://metadata.google.internal');
  const path = url.pathname;
  if (req.headers['metadata-flavor'] !== 'Google') {
    send(
      res,
      403,
      errorPage(403, `Your client does not have permission to get URL ${path} from this server. Missing Metadata-Flavor:Google header.`),
      'text/html; charset=UTF-8',
    );
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, errorPage(405, `The request method ${req.method} is inappropriate for the URL ${path}.`), 'text/html; charset=UTF-8');
    return;
  }
  const recursive = url.searchParams.get('recursive') === 'true';
  const email = ctx.identity();
  const account = { aliases: ['default'], email, scopes: [...ctx.scopes] };

  if (path === `${BASE}` || path === `${BASE}/`) return listing(res, ['instance/', 'project/']);
  // GCE detection probes `/instance`; both spellings answer.
  if (path === `${BASE}/instance` || path === `${BASE}/instance/`) {
    if (recursive) return json(res, { serviceAccounts: { default: account, [email]: account } });
    return listing(res, ['service-accounts/']);
  }
  if (path === `${BASE}/project` || path === `${BASE}/project/`) {
    if (recursive) return json(res, { numericProjectId: Number(ctx.numericProjectId), projectId: ctx.projectId });
    return listing(res, ['numeric-project-id', 'project-id']);
  }
  if (path === `${BASE}/project/project-id`) return text(res, ctx.projectId);
  if (path === `${BASE}/project/numeric-project-id`) return text(res, ctx.numericProjectId);
  if (path === `${BASE}/instance/service-accounts` || path === `${BASE}/instance/service-accounts/`) {
    if (recursive) return json(res, { default: account, [email]: account });
    return listing(res, ['default/', `${email}/`]);
  }

  const m = /^\/computeMetadata\/v1\/instance\/service-accounts\/([^/]+)(\/.*)?$/.exec(path);
  if (!m) return notFound(res, path);
  const who = decodeURIComponent(m[1]);
  // Only the attached account answers, by alias or by email; any other is unknown here.
  if (who !== 'default' && who !== email) return notFound(res, path);
  switch (m[2] ?? '') {
    case '':
    case '/':
      if (recursive) return json(res, account);
      return listing(res, ['aliases', 'email', 'identity', 'scopes', 'token']);
    case '/aliases':
      return text(res, 'default\n');
    case '/email':
      return text(res, email);
    case '/scopes':
      return text(res, ctx.scopes.map((s) => `${s}\n`).join(''));
    case '/token': {
      if (ctx.authority.isDisabled(email)) return disabled(res, email);
      const { token } = ctx.authority.issue(email, ctx.ttl);
      return json(res, { access_token: token, expires_in: Math.floor(ctx.ttl), token_type: 'Bearer' });
    }
    case '/identity': {
      const audience = url.searchParams.get('audience');
      if (!audience) return send(res, 400, 'non-empty audience parameter required');
      if (ctx.authority.isDisabled(email)) return disabled(res, email);
      return text(res, identityToken({ email, audience, ttlSeconds: ctx.ttl, full: url.searchParams.get('format') === 'full' }));
    }
    default:
      return notFound(res, path);
  }
}

/**
 * The answer for a disabled service account. GCE relays IAM's refusal; 403
 * keeps gaxios from retrying it (it retries 5xx) and google-auth-library
 * reports it as a Forbidden error with this body in the message.
 */
function disabled(res: ServerResponse, email: string): void {
  send(res, 403, `service account ${email} is disabled or its credentials were revoked`);
}

function send(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.statusCode = status;
  res.setHeader('Metadata-Flavor', 'Google');
  res.setHeader('Server', 'Metadata Server for VM');
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function text(res: ServerResponse, body: string): void {
  send(res, 200, body, 'application/text');
}

function json(res: ServerResponse, value: unknown): void {
  send(res, 200, JSON.stringify(value), 'application/json');
}

function listing(res: ServerResponse, entries: string[]): void {
  text(res, entries.map((e) => `${e}\n`).join(''));
}

function notFound(res: ServerResponse, path: string): void {
  send(res, 404, errorPage(404, `The requested URL ${path} was not found on this server.`), 'text/html; charset=UTF-8');
}

/** A short HTML error page, as the real server answers errors in HTML. */
function errorPage(status: number, message: string): string {
  const escaped = message.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!DOCTYPE html>\n<html lang=en>\n<title>Error ${status}</title>\n<p><b>${status}.</b> ${escaped}\n`;
}

/** A 12-digit project number that stays the same for the same project id. */
function numericIdFor(projectId: string): string {
  const n = createHash('sha256').update(projectId).digest().readBigUInt64BE(0) % 900_000_000_000n;
  return String(n + 100_000_000_000n);
}
