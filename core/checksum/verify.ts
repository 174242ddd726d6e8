import { Transform, type TransformCallback } from 'node:stream';
import { CorruptObjectError } from '../errors.ts';
import { crc32c, crc32cBase64 } from './crc32c.ts';

export interface Expected {
  size: number;
  /** CRC32C, base64 big-endian (GCS format) */
  crc32c: string;
}

/**
 * A pass-through that fails the stream with CorruptObjectError when the bytes
 * that went through do not have the expected size and CRC32C. Fails early as
 * soon as more bytes than expected arrive. `what` names the data in messages
 * (e.g. "stored bytes of wal/0000...").
 */
export function verifyingStream(expected: Expected, what: string): Transform {
  let size = 0;
  let crc = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      size += chunk.length;
      if (size > expected.size) return done(new CorruptObjectError(`${what}: more than the expected ${expected.size} bytes`));
      crc = crc32c(chunk, crc);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      if (size !== expected.size) return done(new CorruptObjectError(`${what}: ${size} bytes instead of ${expected.size}`));
      const got = crc32cBase64(crc);
      if (got !== expected.crc32c) return done(new CorruptObjectError(`${what}: crc32c ${got} does not match the recorded ${expected.crc32c}`));
      done();
    },
  });
}
