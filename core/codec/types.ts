import type { Transform } from 'node:stream';

/** Names of the codecs gcwal writes and reads; stored in each object's metadata. */
export type CodecName = 'lzo' | 'zstd' | 'gzip' | 'none';

export const CODEC_NAMES: readonly CodecName[] = ['lzo', 'zstd', 'gzip', 'none'];

/**
 * A compression format as a pair of streaming transforms.
 * Memory is bounded by the codec's block/window size, never by input size.
 */
export interface Codec {
  readonly name: CodecName;
  /** file extension a human would expect, e.g. `.lzo` (empty for none) */
  readonly extension: string;
  /** level is codec-specific; undefined means the codec's fast default */
  compressor(level?: number): Transform;
  /** errors on malformed input are emitted as CorruptObjectError */
  decompressor(): Transform;
}
