/**
 * What a tool asks of the GCS emulator: the requests it receives (counted and
 * sorted into kinds) and the sizes of the objects it stored.
 */
import type { LocalStack } from '../../local/stack.ts';

/** Requests the emulator has received, as "METHOD target" lines, collected until taken. */
export interface RequestLog {
  /** the lines received since the last call, oldest first; clears them */
  take(): string[];
}

/**
 * Start recording every request the stack's emulator receives. It uses the
 * emulator's fault hook with a fault rate of 0 (a request is seen, never
 * faulted), so it replaces any fault plan: not for runs that inject faults.
 */
export function recordRequests(stack: LocalStack): RequestLog {
  let lines: string[] = [];
  stack.emulator.setFaults({ rate: 0, kinds: [], match: (method, target) => (lines.push(`${method} ${target}`), false) });
  return {
    take() {
      const taken = lines;
      lines = [];
      return taken;
    },
  };
}

/**
 * The kind of a request line, in terms of the JSON API: which call it is,
 * without the bucket, object names and upload ids, so that lines of
 * different pushes group together.
 */
export function requestKind(line: string): string {
  const [method, target = '/'] = line.split(' ', 2);
  const url = new URL(target, 'http://emulator');
  const uploadType = url.searchParams.get('uploadType');
  const p = url.pathname;
  if (p.startsWith('/upload/')) {
    if (url.searchParams.has('upload_id')) return `${method} resumable upload data (to the session)`;
    if (uploadType === 'resumable') return `${method} start a resumable upload`;
    return `${method} one-request upload (uploadType=${uploadType ?? '?'})`;
  }
  // The storage client calls the API root it was given, which for an emulator lacks /storage/v1.
  if (/^(\/storage\/v1)?\/b\/[^/]+\/o\/.+/.test(p))
    return url.searchParams.get('alt') === 'media' ? `${method} object data (alt=media)` : `${method} object metadata`;
  if (/^(\/storage\/v1)?\/b\/[^/]+\/o$/.test(p)) return `${method} list objects`;
  return `${method} ${p}`;
}

/** Each kind of request in `lines` and how many times it occurs, most frequent first. */
export function countKinds(lines: readonly string[]): [kind: string, count: number][] {
  const counts = new Map<string, number>();
  for (const line of lines) counts.set(requestKind(line), (counts.get(requestKind(line)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/**
 * Name → size of every object under `prefix` in the stack's bucket, listed
 * through the JSON API as the stack's admin (all pages). Rejects on any
 * non-200 answer.
 */
export async function objectSizes(stack: LocalStack, prefix: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  let pageToken: string | undefined;
  do {
    const url = new URL(`${stack.emulator.url}/storage/v1/b/${encodeURIComponent(stack.bucket)}/o`);
    url.searchParams.set('prefix', prefix);
    if (pageToken) url.searchParams.set('pageToken', pageToken);
    const res = await fetch(url, { headers: { Authorization: `Bearer ${stack.adminToken()}` } });
    if (res.status !== 200) throw new Error(`listing ${prefix} in the emulator: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as { items?: { name: string; size: string }[]; nextPageToken?: string };
    for (const item of page.items ?? []) sizes.set(item.name, Number(item.size));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return sizes;
}
