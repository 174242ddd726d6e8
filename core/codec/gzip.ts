/**
 * The `gzip` codec: gzip members through node's zlib, readable by `gzip -d`.
 */
import type { Transform } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { CorruptObjectError, UsageError } from '../errors.ts';
import type { Codec } from './types.ts';

/** Level 1, the fastest: gzip is here for compatibility, and level 6 halves the speed for a few percent smaller output (docs/performance.md). */
export const GZIP_DEFAULT_LEVEL = 1;

/**
 * zlib reports damaged input from its native handle by calling destroy(err)
 * directly, so destroy is the one place every such error passes. Only zlib's
 * own errors (code Z_...) are relabelled: an abort or a failure elsewhere in
 * the pipeline that destroys this stream keeps its identity.
 */
function relabelZlibErrors(stream: Transform): Transform {
  const destroy = stream.destroy.bind(stream);
  stream.destroy = (err?: Error) => {
    const code = (err as { code?: unknown } | undefined)?.code;
    if (err && typeof code === 'string' && code.startsWith('Z_')) {
      return destroy(new CorruptObjectError(`gzip stream is damaged: ${err.message.toLowerCase()}`, undefined, { cause: err }));
    }
    return destroy(err);
  };
  return stream;
}

/**
 * The gzip codec. `compressor(level)` takes 1-9 (default
 * {@link GZIP_DEFAULT_LEVEL}; UsageError otherwise). `decompressor()` reads
 * one or more gzip members (trailing zero bytes are ignored, as gzip does)
 * and fails with CorruptObjectError on an empty, truncated or damaged stream.
 */
export function gzipCodec(): Codec {
  return {
    name: 'gzip',
    extension: '.gz',
    compressor(level: number = GZIP_DEFAULT_LEVEL): Transform {
      if (!Number.isInteger(level) || level < 1 || level > 9) {
        throw new UsageError(`compression level ${level} is not available for gzip`, 'use an integer from 1 to 9');
      }
      return createGzip({ level });
    },
    decompressor(): Transform {
      return relabelZlibErrors(createGunzip());
    },
  };
}
