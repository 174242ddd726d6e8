/**
 * One request from arrival to answer: route it, apply the fault plan,
 * authenticate, run the operation, and turn any failure into Google's JSON
 * error body. A request whose connection is gone gets no answer at all.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { deleteBucket, getBucket, insertBucket, listBuckets, patchBucket } from './buckets-api.ts';
import { authenticate, authorizeRoute, type Backend, type RequestContext } from './context.ts';
import { composeObject, rewriteObject } from './copy.ts';
import { handleDownload } from './download.ts';
import { ApiError, sendError } from './errors.ts';
import { corruptInTransit, loseAnswer, type Fault, type FaultInjector } from './faults.ts';
import { deleteObject, getObject, listObjects, patchObject } from './objects-api.ts';
import { handleSessionDelete, handleSessionPut } from './resumable.ts';
import { downloads, route, uploadsBody, type Route } from './router.ts';
import { handleUploadPost } from './uploads.ts';

/** Counters reported by the emulator's stats(). */
export interface RequestCounters {
  requests: number;
  faults: number;
  /** faults injected by kind (a status fault by its status) */
  faultKinds: Record<string, number>;
}

/** What the request handler needs besides the request. */
export interface DispatchState {
  backend: Backend;
  counters: RequestCounters;
  /** the current fault plan, if any (read per request, so setFaults applies at once) */
  faults(): FaultInjector | undefined;
  /** aborted when the emulator closes (ends `slow` delays at once) */
  closing: AbortSignal;
}

function faultError(status: 429 | 503): ApiError {
  return status === 429
    ? new ApiError(
        429,
        'rateLimitExceeded',
        'The rate of change requests to the object exceeds the rate limit. Please reduce the rate of create, update, and delete requests.',
      )
    : new ApiError(503, 'backendError', 'We encountered an internal error. Please try again.');
}

/** Read part of the request body, then drop the connection without answering. */
async function resetUpload(req: IncomingMessage): Promise<void> {
  // Keep the socket: breaking out of the iteration below destroys `req`,
  // after which req.socket is null and the connection would stay open.
  const socket = req.socket;
  const length = Number(req.headers['content-length'] ?? NaN);
  const want = Number.isFinite(length) ? Math.min(Math.floor(length / 2), 64 * 1024) : 1;
  let seen = 0;
  if (want > 0) {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      seen += chunk.length;
      if (seen >= want) break;
    }
  }
  socket.destroy();
}

async function run(ctx: RequestContext, r: Route): Promise<void> {
  switch (r.op) {
    case 'bucket.list':
      return listBuckets(ctx);
    case 'bucket.insert':
      return insertBucket(ctx);
    case 'bucket.get':
      return getBucket(ctx, r.bucket);
    case 'bucket.patch':
      return patchBucket(ctx, r.bucket);
    case 'bucket.delete':
      return deleteBucket(ctx, r.bucket);
    case 'object.list':
      return listObjects(ctx, r.bucket);
    case 'object.get':
      return getObject(ctx, r.bucket, r.name);
    case 'object.download':
      return handleDownload(ctx, r.bucket, r.name);
    case 'object.patch':
      return patchObject(ctx, r.bucket, r.name, false);
    case 'object.update':
      return patchObject(ctx, r.bucket, r.name, true);
    case 'object.delete':
      return deleteObject(ctx, r.bucket, r.name);
    case 'object.compose':
      return composeObject(ctx, r.bucket, r.name);
    case 'object.rewrite':
    case 'object.copy':
      return rewriteObject(ctx, { bucket: r.bucket, name: r.name }, { bucket: r.destBucket, name: r.destName }, r.op === 'object.rewrite' ? 'rewrite' : 'copy');
    case 'upload.post':
      return handleUploadPost(ctx, r.bucket);
    case 'upload.session.put':
      return handleSessionPut(ctx, r.uploadId);
    case 'upload.session.delete':
      return handleSessionDelete(ctx, r.uploadId);
  }
}

/** Handle one request that arrived over `scheme`. Never rejects. */
export async function dispatch(state: DispatchState, req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https'): Promise<void> {
  state.counters.requests++;
  const method = req.method ?? 'GET';
  const baseUrl = `${scheme}://${req.headers.host ?? `127.0.0.1:${req.socket.localPort}`}`;
  try {
    const url = new URL(req.url ?? '/', baseUrl);
    const r = route(method, url);
    const injector = state.faults();
    let fault: Fault | undefined = injector?.decide({
      method,
      path: req.url ?? '/',
      uploadsBody: uploadsBody(r, method, url, req.headers as Record<string, string>),
      downloads: downloads(r),
    });
    // Before any await: the parser pushes body bytes as soon as this returns.
    if (fault?.kind === 'corrupt-upload') corruptInTransit(req);
    if (fault?.kind === 'lose-answer') loseAnswer(req, res);
    if (injector?.latencyMs) await sleep(injector.latencyMs, undefined, { signal: state.closing });
    if (fault) {
      state.counters.faults++;
      const kind = fault.kind === 'status' ? String(fault.status) : fault.kind;
      state.counters.faultKinds[kind] = (state.counters.faultKinds[kind] ?? 0) + 1;
      if (fault.kind === 'slow') {
        await sleep(fault.ms, undefined, { signal: state.closing });
        fault = undefined;
      } else if (fault.kind === 'status') {
        throw faultError(fault.status);
      } else if (fault.kind === 'reset-upload') {
        return await resetUpload(req);
      }
    }
    // Every route checks its caller here, before its handler reads anything (ROUTE_TABLE);
    // a token that is sent must be valid even where the session URI would do.
    const identity = authenticate(req, state.backend.access);
    const ctx: RequestContext = { req, res, url, baseUrl, identity, fault, backend: state.backend };
    authorizeRoute(ctx, r);
    await run(ctx, r);
  } catch (err) {
    if (!req.socket || req.socket.destroyed) return;
    sendError(res, err);
    // Let the connection be reused: read and discard what the client still sends.
    if (!req.readableEnded) req.resume();
  }
}
