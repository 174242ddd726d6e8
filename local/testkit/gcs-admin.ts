/**
 * Reaching into a local stack's bucket as its admin, through the emulator's
 * JSON API: list, read, write (replacing, with chosen metadata) and delete
 * objects behind the agent's and the pipeline's backs, as a person with
 * storage.admin (or a bug) could.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalStack } from '../stack.ts';

/** The fields of a storage#object resource the tests read. */
export interface ObjectResource {
  name: string;
  generation: string;
  size: string;
  timeCreated: string;
  contentType?: string;
  metadata?: Record<string, string>;
}

async function call(stack: LocalStack, path: string, init: RequestInit = {}): Promise<Response> {
  // The emulator allows one mutation per object a second, as Cloud Storage
  // does; an admin replacing or deleting an object the agent or a function
  // has just written waits that out, like a person would. These are the
  // test's own writes: code under test gets no such help.
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${stack.emulator.url}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${stack.adminToken()}`, ...(init.headers as Record<string, string> | undefined) },
      signal: AbortSignal.timeout(30_000),
    });
    if (res.status !== 429 || attempt >= 3) return res;
    await res.arrayBuffer();
    await sleep(1000);
  }
}

async function ok(res: Response, what: string): Promise<Response> {
  if (!res.ok) throw new Error(`${what} answered ${res.status}: ${(await res.text()).trim()}`);
  return res;
}

const objectPath = (stack: LocalStack, name: string) => `/storage/v1/b/${stack.bucket}/o/${encodeURIComponent(name)}`;

/** Every object whose name starts with `prefix`, in name order. */
export async function listObjects(stack: LocalStack, prefix: string): Promise<ObjectResource[]> {
  const out: ObjectResource[] = [];
  let pageToken = '';
  do {
    const query = `prefix=${encodeURIComponent(prefix)}${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ''}`;
    const res = await ok(await call(stack, `/storage/v1/b/${stack.bucket}/o?${query}`), `listing ${prefix}`);
    const body = (await res.json()) as { items?: ObjectResource[]; nextPageToken?: string };
    out.push(...(body.items ?? []));
    pageToken = body.nextPageToken ?? '';
  } while (pageToken);
  return out;
}

/** The object's resource and stored bytes. */
export async function readObject(stack: LocalStack, name: string): Promise<{ resource: ObjectResource; body: Buffer }> {
  const resource = (await (await ok(await call(stack, objectPath(stack, name)), `stat ${name}`)).json()) as ObjectResource;
  const media = await ok(await call(stack, `${objectPath(stack, name)}?alt=media&generation=${resource.generation}`), `read ${name}`);
  return { resource, body: Buffer.from(await media.arrayBuffer()) };
}

/**
 * Write `body` as `name` with the given content type and custom metadata
 * (a multipart upload, as the client libraries make it), replacing any live
 * object. Resolves with the new object's resource.
 */
export async function writeObject(
  stack: LocalStack,
  name: string,
  body: Buffer,
  meta: { contentType?: string; metadata?: Record<string, string> } = {},
): Promise<ObjectResource> {
  const boundary = `gcwal-test-${Math.random().toString(16).slice(2)}`;
  const head = JSON.stringify({ name, contentType: meta.contentType ?? 'application/octet-stream', metadata: meta.metadata ?? {} });
  const payload = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${head}\r\n--${boundary}\r\nContent-Type: ${meta.contentType ?? 'application/octet-stream'}\r\n\r\n`,
    ),
    body,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const res = await call(stack, `/upload/storage/v1/b/${stack.bucket}/o?uploadType=multipart`, {
    method: 'POST',
    headers: { 'Content-Type': `multipart/related; boundary=${boundary}` },
    body: payload,
  });
  return (await (await ok(res, `write ${name}`)).json()) as ObjectResource;
}

/** Delete the live object `name`. */
export async function deleteObject(stack: LocalStack, name: string): Promise<void> {
  await ok(await call(stack, objectPath(stack, name), { method: 'DELETE' }), `delete ${name}`);
}
