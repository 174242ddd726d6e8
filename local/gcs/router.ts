/**
 * Request target → operation. Real clients reach the same operations by
 * several paths (see GCS-API.md §1, §8): the JSON API with or without the
 * `/storage/v1` prefix, uploads under `/upload/storage/v1`,
 * `/storage/v1/upload/storage/v1` and gcloud's `/resumable/upload/storage/v1`,
 * downloads by `?alt=media` or `/download/storage/v1`. Pure: no I/O.
 */
import { ApiError, invalid } from './errors.ts';

/** One operation with its parsed arguments. */
export type Route =
  | { op: 'bucket.list' | 'bucket.insert' }
  | { op: 'bucket.get' | 'bucket.patch' | 'bucket.delete'; bucket: string }
  | { op: 'object.list'; bucket: string }
  | { op: 'object.get' | 'object.patch' | 'object.update' | 'object.delete' | 'object.download' | 'object.compose'; bucket: string; name: string }
  | { op: 'object.rewrite' | 'object.copy'; bucket: string; name: string; destBucket: string; destName: string }
  | { op: 'upload.post'; bucket: string }
  | { op: 'upload.session.put' | 'upload.session.delete'; bucket: string; uploadId: string };

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw invalid(`Invalid percent-encoding in ${segment}`);
  }
}

function notFound(method: string, path: string): ApiError {
  return new ApiError(404, 'notFound', `Not Found: ${method} ${path}`);
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
