/**
 * The `none` codec: objects stored as they are.
 */
import { PassThrough, type Transform } from 'node:stream';
import { UsageError } from '../errors.ts';
import type { Codec } from './types.ts';

/** The identity codec: both directions are a PassThrough. A level is refused (UsageError). */
export function noneCodec(): Codec {
  return {
    name: 'none',
    extension: '',
    compressor(level?: number): Transform {
      if (level !== undefined) throw new UsageError(`compression level ${level} is not available without compression`, 'leave the compression level unset');
      return new PassThrough();
    },
    decompressor(): Transform {
      return new PassThrough();
    },
  };
}
