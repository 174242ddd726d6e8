/**
 * The `zstd` codec: Zstandard frames (what the `zstd` CLI reads and writes)
 * through the native `zstd-napi` streams, loaded on first use.
 */
import { createRequire } from 'node:module';
import type { Transform, TransformCallback } from 'node:stream';
import type * as ZstdNapi from 'zstd-napi';
import { CorruptObjectError, UsageError } from '../errors.ts';
import type { Codec } from './types.ts';

const require = createRequire(import.meta.url);

/**
 * Level 1: zstd's fastest positive level. On mixed WAL-like data it compresses
 * about as fast as level 2 and clearly faster than the CLI's default 3 for a
 * ratio within a few percent (docs/performance.md), and archive_command
 * latency matters more than the last few percent.
 */
export const ZSTD_DEFAULT_LEVEL = 1;

/** Levels accepted: zstd's fast negative levels down to -7, up to the maximum 22; 0 is zstd's own default (3). */
export const ZSTD_LEVELS = { min: -7, max: 22 } as const;

function zstdNapi(): typeof ZstdNapi {
  return require('zstd-napi') as typeof ZstdNapi;
}

function damaged(err: Error): CorruptObjectError {
  return new CorruptObjectError(`zstd stream is damaged: ${err.message.split('\n')[0]!.toLowerCase()}`, undefined, { cause: err });
}

/**
 * A DecompressStream whose failures are CorruptObjectErrors, and which
 * refuses an empty input: the compressor always writes a frame, even for no
 * data, so zero bytes mean a truncated object.
 */
function checkedDecompressor(zstd: typeof ZstdNapi): Transform {
  class CheckedDecompressStream extends zstd.DecompressStream {
    #seen = false;

    override _transform(chunk: unknown, encoding: string, done: TransformCallback): void {
      if ((chunk as Buffer).length > 0) this.#seen = true;
      super._transform(chunk, encoding, (err?: Error | null) => done(err ? damaged(err) : null));
    }

    override _flush(done: TransformCallback): void {
      if (!this.#seen) {
        done(new CorruptObjectError('zstd stream is empty'));
        return;
      }
      super._flush((err?: Error | null) => done(err ? damaged(err) : null));
    }
  }
  return new CheckedDecompressStream();
}

/**
 * The zstd codec. `compressor(level)` takes an integer level in
 * {@link ZSTD_LEVELS} (default {@link ZSTD_DEFAULT_LEVEL}; UsageError
 * otherwise) and writes one frame with a content checksum, so the frame
 * verifies itself on decompression. `decompressor()` reads one or more
 * concatenated frames and fails with CorruptObjectError on anything else.
 */
export function zstdCodec(): Codec {
  return {
    name: 'zstd',
    extension: '.zst',
    compressor(level: number = ZSTD_DEFAULT_LEVEL): Transform {
      if (!Number.isInteger(level) || level < ZSTD_LEVELS.min || level > ZSTD_LEVELS.max) {
        throw new UsageError(`compression level ${level} is not available for zstd`, `use an integer from ${ZSTD_LEVELS.min} to ${ZSTD_LEVELS.max}`);
      }
      return new (zstdNapi().CompressStream)({ compressionLevel: level, checksumFlag: true });
    },
    decompressor(): Transform {
      return checkedDecompressor(zstdNapi());
    },
  };
}
