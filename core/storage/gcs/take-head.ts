import type { Readable } from 'node:stream';

/** The start of a stream, as `takeHead` returns it. */
export interface Head {
  chunks: Buffer[];
  bytes: number;
  /** the stream ended within the limit: `chunks` are all of it */
  ended: boolean;
}

/**
 * Buffer the start of `source`, up to `limit` bytes or its end, whichever
 * comes first; the stream is left paused after the head for the caller to go
 * on reading. Rejects with the stream's error, or the signal's reason (and
 * destroys the stream) when it aborts first. Drivers use it to send an
 * object that fits in one request in one request.
 */
export function takeHead(source: Readable, limit: number, signal?: AbortSignal): Promise<Head> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onAbort = () => {
      cleanup();
      source.destroy();
      reject(signal!.reason ?? new Error('aborted'));
    };
    const cleanup = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes >= limit) {
        source.pause();
        cleanup();
        resolve({ chunks, bytes, ended: false });
      }
    };
    const onEnd = () => {
      cleanup();
      resolve({ chunks, bytes, ended: true });
    };
    const onError = (err: unknown) => {
      cleanup();
      reject(err);
    };
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
  });
}
