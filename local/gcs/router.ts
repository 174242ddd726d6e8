/**
 * Request target → operation. Real clients reach the same operations by
 * several paths (docs/gcs-wire-format.md, "Endpoints and paths"): the JSON API with or without the
 * `/storage/v1` prefix, uploads under `/upload/storage/v1`,
 * `/storage/v1/upload/storage/v1` and gcloud's `/resumable/upload/storage/v1`,
 * downloads by `?alt=media` or `/download/storage/v1`. Pure: no I/O.
 */
import type { Permission } from '../auth/types.ts';
import { ApiError, invalid, textError } from './errors.ts';

/** One operation with its parsed arguments. */
export type Route =
  | { op: 'bucket.list' | 'bucket.insert' }
  | { op: 'bucket.get' | 'bucket.patch' | 'bucket.delete'; bucket: string }
  | { op: 'object.list'; bucket: string }
  | { op: 'object.get' | 'object.patch' | 'object.update' | 'object.delete' | 'object.download' | 'object.compose'; bucket: string; name: string }
  | { op: 'object.rewrite' | 'object.copy'; bucket: string; name: string; destBucket: string; destName: string }
  | { op: 'upload.post'; bucket: string }
  | { op: 'upload.session.put' | 'upload.session.delete'; bucket: string; uploadId: string };

/** An operation's name. */
export type Op = Route['op'];

/**
 * What an operation asks of its caller, checked before its handler runs
 * (context.ts authorizeRoute): an IAM permission on the project (held
 * through a grant on every bucket) or on the route's bucket; or, for the
 * data requests of a resumable upload, the session URI itself, which on GCS
 * is the credential for them ("the session URI acts as an authentication
 * token"). Nothing else in the JSON API answers an anonymous caller.
 */
export type RouteAccess = { permission: Permission; on: 'project' | 'bucket' | 'object' } | { session: true };

/** One operation's access rule, and a request that reaches it. */
export interface RouteEntry {
  access: RouteAccess;
  /** a request the router maps to this operation, on bucket `bkt` and object `obj` (tests walk the table with it) */
  sample: { method: string; path: string };
}

/**
 * Every operation the emulator serves. Keyed by the Route union, so a new
 * operation does not compile until it says who may call it.
 */
export const ROUTE_TABLE: { readonly [K in Op]: RouteEntry } = Object.freeze({
  'bucket.list': { access: { permission: 'storage.buckets.list', on: 'project' }, sample: { method: 'GET', path: '/b?project=p' } },
  'bucket.insert': { access: { permission: 'storage.buckets.create', on: 'project' }, sample: { method: 'POST', path: '/storage/v1/b?project=p' } },
  'bucket.get': { access: { permission: 'storage.buckets.get', on: 'bucket' }, sample: { method: 'GET', path: '/storage/v1/b/bkt' } },
  'bucket.patch': { access: { permission: 'storage.buckets.update', on: 'bucket' }, sample: { method: 'PATCH', path: '/storage/v1/b/bkt' } },
  'bucket.delete': { access: { permission: 'storage.buckets.delete', on: 'bucket' }, sample: { method: 'DELETE', path: '/storage/v1/b/bkt' } },
  'object.list': { access: { permission: 'storage.objects.list', on: 'bucket' }, sample: { method: 'GET', path: '/storage/v1/b/bkt/o' } },
  'object.get': { access: { permission: 'storage.objects.get', on: 'object' }, sample: { method: 'GET', path: '/storage/v1/b/bkt/o/obj' } },
  'object.download': {
    access: { permission: 'storage.objects.get', on: 'object' },
    sample: { method: 'GET', path: '/download/storage/v1/b/bkt/o/obj?alt=media' },
  },
  'object.patch': { access: { permission: 'storage.objects.update', on: 'object' }, sample: { method: 'PATCH', path: '/storage/v1/b/bkt/o/obj' } },
  'object.update': { access: { permission: 'storage.objects.update', on: 'object' }, sample: { method: 'PUT', path: '/storage/v1/b/bkt/o/obj' } },
  'object.delete': { access: { permission: 'storage.objects.delete', on: 'object' }, sample: { method: 'DELETE', path: '/storage/v1/b/bkt/o/obj' } },
  // compose and rewrite also check reading the sources and creating the destination in their handlers
  'object.compose': { access: { permission: 'storage.objects.create', on: 'object' }, sample: { method: 'POST', path: '/storage/v1/b/bkt/o/obj/compose' } },
  'object.rewrite': {
    access: { permission: 'storage.objects.get', on: 'object' },
    sample: { method: 'POST', path: '/storage/v1/b/bkt/o/obj/rewriteTo/b/bkt/o/copy' },
  },
  'object.copy': {
    access: { permission: 'storage.objects.get', on: 'object' },
    sample: { method: 'POST', path: '/storage/v1/b/bkt/o/obj/copyTo/b/bkt/o/copy' },
  },
  'upload.post': {
    access: { permission: 'storage.objects.create', on: 'object' },
    sample: { method: 'POST', path: '/upload/storage/v1/b/bkt/o?uploadType=media&name=obj' },
  },
  'upload.session.put': { access: { session: true }, sample: { method: 'PUT', path: '/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=guessed' } },
  'upload.session.delete': {
    access: { session: true },
    sample: { method: 'DELETE', path: '/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=guessed' },
  },
});

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw invalid(`Invalid percent-encoding in ${segment}`);
  }
}

/** A path no API serves: Google's front end answers an HTML page, not the JSON API's error body. */
function notFound(method: string, path: string): ApiError {
  return textError(
    new ApiError(404, 'notFound', `Not Found: ${method} ${path}`),
    `<!DOCTYPE html>\n<title>Error 404 (Not Found)!!1</title>\n<p><b>404.</b> <ins>That’s an error.</ins>\n<p>The requested URL <code>${path.replace(/[<>&"]/g, '')}</code> was not found on this server. <ins>That’s all we know.</ins>\n`,
  );
}

/** Whether the operation sends object bytes from the client (for reset-upload faults). */
export function uploadsBody(route: Route, method: string, url: URL, headers: { 'content-length'?: string; 'content-range'?: string }): boolean {
  // A resumable start carries only JSON metadata.
  if (route.op === 'upload.post') return url.searchParams.get('uploadType') !== 'resumable';
  if (route.op !== 'upload.session.put') return false;
  // A status query carries no bytes.
  return !/^\s*bytes\s+\*\//i.test(headers['content-range'] ?? '') && headers['content-length'] !== '0' && method === 'PUT';
}

/** Whether the operation sends object bytes to the client (for reset-download faults). */
export function downloads(route: Route): boolean {
  return route.op === 'object.download';
}

/** Map `method` and `url` to a route; 404 for anything the emulator does not serve. */
export function route(method: string, url: URL): Route {
  let path = url.pathname.replace(/\/{2,}/g, '/');
  const query = url.searchParams;
  if (path.startsWith('/storage/v1/upload/')) path = path.slice('/storage/v1'.length);
  if (path.startsWith('/resumable/upload/')) path = path.slice('/resumable'.length);

  const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o\/?$/.exec(path);
  if (upload) {
    const bucket = decode(upload[1]);
    const uploadId = query.get('upload_id');
    if (uploadId) {
      if (method === 'PUT' || method === 'POST') return { op: 'upload.session.put', bucket, uploadId };
      if (method === 'DELETE') return { op: 'upload.session.delete', bucket, uploadId };
    } else if (method === 'POST') {
      return { op: 'upload.post', bucket };
    }
    throw notFound(method, url.pathname);
  }

  const download = /^\/download\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(path);
  if (download) {
    if (method === 'GET' || method === 'HEAD') return { op: 'object.download', bucket: decode(download[1]), name: decode(download[2]) };
    throw notFound(method, url.pathname);
  }

  if (path.startsWith('/storage/v1/')) path = path.slice('/storage/v1'.length);
  if (path === '/b' || path === '/b/') {
    if (method === 'GET') return { op: 'bucket.list' };
    if (method === 'POST') return { op: 'bucket.insert' };
    throw notFound(method, url.pathname);
  }
  const bucketOnly = /^\/b\/([^/]+)\/?$/.exec(path);
  if (bucketOnly) {
    const bucket = decode(bucketOnly[1]);
    if (method === 'GET') return { op: 'bucket.get', bucket };
    if (method === 'PATCH' || method === 'PUT') return { op: 'bucket.patch', bucket };
    if (method === 'DELETE') return { op: 'bucket.delete', bucket };
    throw notFound(method, url.pathname);
  }
  const list = /^\/b\/([^/]+)\/o\/?$/.exec(path);
  if (list) {
    if (method === 'GET') return { op: 'object.list', bucket: decode(list[1]) };
    throw notFound(method, url.pathname);
  }
  const rewrite = /^\/b\/([^/]+)\/o\/(.+)\/(rewriteTo|copyTo)\/b\/([^/]+)\/o\/(.+)$/.exec(path);
  if (rewrite && method === 'POST') {
    return {
      op: rewrite[3] === 'rewriteTo' ? 'object.rewrite' : 'object.copy',
      bucket: decode(rewrite[1]),
      name: decode(rewrite[2]),
      destBucket: decode(rewrite[4]),
      destName: decode(rewrite[5]),
    };
  }
  const compose = /^\/b\/([^/]+)\/o\/(.+)\/compose$/.exec(path);
  if (compose && method === 'POST') return { op: 'object.compose', bucket: decode(compose[1]), name: decode(compose[2]) };
  const object = /^\/b\/([^/]+)\/o\/(.+)$/.exec(path);
  if (object) {
    const bucket = decode(object[1]);
    const name = decode(object[2]);
    switch (method) {
      case 'GET':
      case 'HEAD':
        return { op: query.get('alt') === 'media' ? 'object.download' : 'object.get', bucket, name };
      case 'PATCH':
        return { op: 'object.patch', bucket, name };
      case 'PUT':
        return { op: 'object.update', bucket, name };
      case 'DELETE':
        return { op: 'object.delete', bucket, name };
    }
  }
  throw notFound(method, url.pathname);
}
