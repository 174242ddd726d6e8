/**
 * Reading GcsHttpClient's answers: a JSON answer whole (bounded), a
 * download as a stream that errors rather than ends short.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';

/** The most bytes of a JSON answer (object resource or error) read into memory. */
const ANSWER_LIMIT = 4 * 1024 * 1024;

/** The whole body of an answer, up to ANSWER_LIMIT bytes; rejects when the connection closes before its end. */
export function readAnswer(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > ANSWER_LIMIT) res.destroy(new Error(`Cloud Storage answered more than ${ANSWER_LIMIT} bytes where JSON was expected`));
      else chunks.push(chunk);
    });
    res.on('error', reject);
    res.on('end', () => (res.complete ? resolve(Buffer.concat(chunks)) : reject(prematureClose(bytes, undefined))));
  });
}

function prematureClose(received: number, expected: number | undefined): Error {
  const of = expected === undefined ? '' : ` of ${expected}`;
  return Object.assign(new Error(`the connection closed after ${received}${of} bytes`), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * The download's body as a stream that ends only when every byte announced
 * has arrived. Any failure (socket error, close before the end, a length
 * other than Content-Length, the signal) destroys it with `wrap(err)`; a
 * consumer that stops early destroys the connection.
 */
export function checkedBody(res: IncomingMessage, wrap: (err: unknown) => Error, signal: AbortSignal | undefined): Readable {
  const declared = res.headers['content-length'];
  const expected = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
  let received = 0;
  let settled = false;
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  const onAbort = () => fail(signal!.reason);
  const settle = () => {
    settled = true;
    signal?.removeEventListener('abort', onAbort);
  };
  const fail = (err: unknown) => {
    if (settled) return;
    settle();
    res.destroy();
    out.destroy(wrap(err));
  };
  res.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (!out.write(chunk)) res.pause();
  });
  out.on('drain', () => res.resume());
  res.on('end', () => {
    if (settled) return;
    if (!res.complete || (expected !== undefined && received !== expected)) return fail(prematureClose(received, expected));
    settle();
    out.end();
  });
  res.on('error', fail);
  // 'close' without 'end': the connection went away mid-body.
  res.on('close', () => fail(prematureClose(received, expected)));
  out.on('close', () => {
    if (settled) return;
    settle();
    res.destroy();
  });
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return out;
}
