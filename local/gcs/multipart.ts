/**
 * A streaming parser for `multipart/related` upload bodies: a JSON metadata
 * part followed by the media part. Accepts what real clients send: quoted
 * (double or single, as gcloud does), or unquoted boundaries; CRLF or bare
 * LF line endings (gcloud uses LF); part headers or none; a preamble before
 * the first boundary; no line break after the closing boundary.
 *
 * The metadata part and the media part's headers are buffered (bounded);
 * the media bytes are yielded as they arrive, holding back only enough bytes
 * to recognise the closing delimiter, so large objects stream through.
 */
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
 * known with the head and an iterable of the media bytes; iterating it to
 * the end consumes the rest of the body and throws (400) when the body ends
 * before the closing delimiter, or rethrows when the connection breaks off,
 * so a cut-off upload is never mistaken for a complete one.
 */
export async function parseMultipart(source: AsyncIterable<Buffer>, boundary: string): Promise<{ head: MultipartHead; media: AsyncIterable<Buffer> }> {
  const iterator = source[Symbol.asyncIterator]();
  let buffered: Buffer = Buffer.alloc(0);
  for (;;) {
    const parsed = parseHead(buffered, boundary);
    if (parsed) {
      const delimiter = Buffer.from(`${parsed.eol}--${boundary}`);
      return { head: parsed.head, media: mediaBytes(iterator, buffered.subarray(parsed.mediaStart), delimiter) };
    }
    if (buffered.length > HEAD_LIMIT) throw invalid('Invalid multipart request: metadata part too large or boundary not found');
    const next = await iterator.next();
    if (next.done) throw invalid('Invalid multipart request: body ended before the media part');
    buffered = buffered.length === 0 ? next.value : Buffer.concat([buffered, next.value]);
  }
}

async function* mediaBytes(iterator: AsyncIterator<Buffer>, initial: Buffer, delimiter: Buffer): AsyncGenerator<Buffer> {
  let pending: Buffer = initial;
  const keep = delimiter.length - 1;
  for (;;) {
    const at = pending.indexOf(delimiter);
    if (at >= 0) {
      if (at > 0) yield pending.subarray(0, at);
      // Whatever follows (a closing "--", further parts, an epilogue) is read and ignored.
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        // drain
      }
      return;
    }
    if (pending.length > keep) {
      yield pending.subarray(0, pending.length - keep);
      pending = pending.subarray(pending.length - keep);
    }
    const next = await iterator.next();
    if (next.done) throw invalid('Invalid multipart request: body ended before the closing boundary');
    pending = pending.length === 0 ? next.value : Buffer.concat([pending, next.value]);
  }
}
