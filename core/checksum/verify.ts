import { Transform, type TransformCallback } from 'node:stream';
import { CorruptObjectError } from '../errors.ts';
import { crc32c, crc32cBase64 } from './crc32c.ts';

export interface Expected {
  size: number;
  /** CRC32C, base64 big-endian (GCS format) */
  crc32c: string;
}

/**
 * Checks bytes fed to it piece by piece against an expected size and
 * CRC32C, for loops that write as they read (no stream stage in between).
 * `update` throws CorruptObjectError as soon as more bytes than expected
 * arrive; `finish` throws it when the size or the CRC32C differs. `what`
 * names the data in messages (e.g. "stored bytes of wal/0000...").
 */
export class Verifier {
  readonly #expected: Expected;
  readonly #what: string;
  #size = 0;
  #crc = 0;

  constructor(expected: Expected, what: string) {
    this.#expected = expected;
    this.#what = what;
  }

  update(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > this.#expected.size) throw new CorruptObjectError(`${this.#what}: more than the expected ${this.#expected.size} bytes`);
    this.#crc = crc32c(chunk, this.#crc);
  }

  finish(): void {
    if (this.#size !== this.#expected.size) throw new CorruptObjectError(`${this.#what}: ${this.#size} bytes instead of ${this.#expected.size}`);
    const got = crc32cBase64(this.#crc);
    if (got !== this.#expected.crc32c) throw new CorruptObjectError(`${this.#what}: crc32c ${got} does not match the recorded ${this.#expected.crc32c}`);
  }
}

/**
 * A pass-through that fails the stream with CorruptObjectError when the bytes
 * that went through do not have the expected size and CRC32C. Fails early as
 * soon as more bytes than expected arrive. `what` names the data in messages
 * (e.g. "stored bytes of wal/0000...").
 */
export function verifyingStream(expected: Expected, what: string): Transform {
  const verifier = new Verifier(expected, what);
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      try {
        verifier.update(chunk);
      } catch (err) {
        return done(err as Error);
      }
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      try {
        verifier.finish();
      } catch (err) {
        return done(err as Error);
      }
      done();
    },
  });
}
