/**
 * A streaming parser for `multipart/related` upload bodies: a JSON metadata
 * part followed by the media part. Accepts what real clients send: quoted
 * (double or single, as gcloud does), or unquoted boundaries; CRLF or bare
 * LF line endings (gcloud uses LF); part headers or none; a preamble before
 * the first boundary; no line break after the closing boundary.
 *
 * The metadata part and the media part's headers are buffered (bounded);
 * the media bytes stream through as they arrive, holding back one chunk
 * to recognise a delimiter split between chunks, so large objects stream through.
 */
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import { invalid } from './errors.ts';

/** The most bytes buffered before the media part starts (metadata and headers). */
const HEAD_LIMIT = 4 * 1024 * 1024;

/** The boundary from a `Content-Type: multipart/related; boundary=…` header, or undefined. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\//i.test(contentType)) return undefined;
  const match = /;\s*boundary\s*=\s*("([^"]*)"|'([^']*)'|([^;\s]+))/i.exec(contentType);
  if (!match) return undefined;
  return match[2] ?? match[3] ?? match[4];
}

/** What precedes the media bytes. */
export interface MultipartHead {
  /** the first part's body (JSON metadata), as bytes */
  metadata: Buffer;
  /** headers of the media part, lowercased names */
  mediaHeaders: Record<string, string>;
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * Split `body` (everything received so far) into the head and the offset
 * where media bytes begin; undefined when more bytes are needed.
 */
function parseHead(body: Buffer, boundary: string): { head: MultipartHead; eol: string; mediaStart: number } | undefined {
  const dash = Buffer.from(`--${boundary}`);
  // The first delimiter: at the very start or at the start of a line.
  let first = body.indexOf(dash);
  while (first > 0 && body[first - 1] !== 0x0a) first = body.indexOf(dash, first + 1);
  if (first < 0) return undefined;
  const afterFirst = first + dash.length;
  if (body.length < afterFirst + 2) return undefined;
  const eol = body[afterFirst] === 0x0d && body[afterFirst + 1] === 0x0a ? '\r\n' : body[afterFirst] === 0x0a ? '\n' : undefined;
  if (eol === undefined) throw invalid('Invalid multipart request: no line break after the first boundary');
  const blank = Buffer.from(eol + eol);
  const delimiter = Buffer.from(`${eol}--${boundary}`);

  // Part 1 headers end at the first blank line (searching from the boundary line's own EOL allows zero headers).
  const headersEnd1 = body.indexOf(blank, afterFirst);
  if (headersEnd1 < 0) return undefined;
  const metaStart = headersEnd1 + blank.length;
  const metaEnd = body.indexOf(delimiter, metaStart - eol.length);
  if (metaEnd < 0) return undefined;
  // The delimiter search may start inside the blank line when the part is empty.
  const metadata = metaEnd >= metaStart ? body.subarray(metaStart, metaEnd) : Buffer.alloc(0);
  const afterSecond = metaEnd + delimiter.length;
  if (body.length < afterSecond + 2) return undefined;
  if (body[afterSecond] === 0x2d && body[afterSecond + 1] === 0x2d) throw invalid('Invalid multipart request: the media part is missing');
  const headersEnd2 = body.indexOf(blank, afterSecond);
  if (headersEnd2 < 0) return undefined;
  const mediaHeaders = parseHeaders(body.subarray(afterSecond, headersEnd2).toString('latin1'));
  return { head: { metadata, mediaHeaders }, eol, mediaStart: headersEnd2 + blank.length };
}

/**
 * Parse a multipart/related body from `source`. Resolves once the head is
 * known with the head and a stream of the media bytes; reading it to the end
 * consumes the rest of the body and fails (400) when the body ends before
 * the closing delimiter, or with the connection's error when it breaks off,
 * so a cut-off upload is never mistaken for a complete one.
 */
export async function parseMultipart(source: Readable, boundary: string): Promise<{ head: MultipartHead; media: Readable }> {
  // Not destroyed when the head is read: the media part is piped from the same stream.
  const iterator = source.iterator({ destroyOnReturn: false });
  let buffered: Buffer = Buffer.alloc(0);
  for (;;) {
    const parsed = parseHead(buffered, boundary);
    if (parsed) {
      await iterator.return?.();
      const cut = new MediaCut(Buffer.from(`${parsed.eol}--${boundary}`), buffered.subarray(parsed.mediaStart));
      // The callback form returns `cut`, destroyed with the body's error if the connection breaks.
      return { head: parsed.head, media: pipeline(source, cut, () => {}) };
    }
    if (buffered.length > HEAD_LIMIT) throw invalid('Invalid multipart request: metadata part too large or boundary not found');
    const next = await iterator.next();
    if (next.done) throw invalid('Invalid multipart request: body ended before the media part');
    buffered = buffered.length === 0 ? (next.value as Buffer) : Buffer.concat([buffered, next.value as Buffer]);
  }
}

/**
 * Passes the media bytes through and stops at the delimiter; whatever follows
 * it (the closing "--", further parts, an epilogue) is read and ignored.
 * Each chunk is held until the next arrives, so that a delimiter split
 * between two chunks is found by looking at the junction only: no chunk is
 * copied, as a stream (not an async generator) so a body of megabytes moves
 * at the speed of a media upload's.
 */
class MediaCut extends Transform {
  readonly #delimiter: Buffer;
  #held: Buffer;
  #found = false;

  constructor(delimiter: Buffer, initial: Buffer) {
    super();
    this.#delimiter = delimiter;
    this.#held = initial;
    this.#settle();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#found) return callback();
    const keep = this.#delimiter.length - 1;
    if (chunk.length < keep) {
      // Too short to settle the junction: join it (rare, and small).
      this.#held = Buffer.concat([this.#held, chunk]);
    } else {
      const tail = this.#held.subarray(Math.max(0, this.#held.length - keep));
      const junction = Buffer.concat([tail, chunk.subarray(0, keep)]).indexOf(this.#delimiter);
      if (junction >= 0 && junction < tail.length) {
        this.#stopAt(this.#held.length - tail.length + junction);
        return callback();
      }
      if (this.#held.length > 0) this.push(this.#held);
      this.#held = chunk;
    }
    this.#settle();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    callback(this.#found ? null : invalid('Invalid multipart request: body ended before the closing boundary'));
  }

  /** If the held bytes contain the delimiter, pass what precedes it and stop. */
  #settle(): void {
    const at = this.#held.indexOf(this.#delimiter);
    if (at >= 0) this.#stopAt(at);
  }

  /** The delimiter starts at `end` of the held bytes: pass what precedes it, ignore the rest of the body. */
  #stopAt(end: number): void {
    if (end > 0) this.push(this.#held.subarray(0, end));
    this.#found = true;
    this.#held = Buffer.alloc(0);
  }
}
