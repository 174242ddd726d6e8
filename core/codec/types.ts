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
  compressor(level?: number, options?: CompressorOptions): Transform;
  /** errors on malformed input are emitted as CorruptObjectError */
  decompressor(options?: DecompressorOptions): Transform;
}

/** How a decompressor may work. */
export interface DecompressorOptions {
  /**
   * The caller checks every decoded byte against a size and CRC32C of its
   * own (a backup part's rawCrc32c), so the codec may skip checksums of the
   * decoded data that the format carries besides (lzop's per-block CRC-32 or
   * Adler-32 of uncompressed data: a whole extra pass over every byte).
   * Checks of the compressed input, which protect the decoder, stay.
   */
  decodedVerifiedByCaller?: boolean;
  /**
   * Decode with a native library when one is installed (lzo: the `lzo`
   * addon's safe decoder, about seven times the wasm decoder's speed). Off
   * by default, so validation, which runs where no addon is installed,
   * behaves the same everywhere.
   */
  native?: boolean;
}

/** How a compressor may work. */
export interface CompressorOptions {
  /**
   * The caller records the raw and stored bytes' sizes and CRC32Cs with the
   * object (a backup part's rawCrc32c and storedCrc32c), and every reader
   * checks them: the codec may leave out the block checksums its format
   * would otherwise carry (lzop's: a whole pass over every byte).
   */
  rawChecksumRecorded?: boolean;
  /**
   * Called for each block the stored bytes hold that decodes on its own
   * (lzo: every lzop block; other codecs never call it), before the block
   * is pushed: where it begins in the raw and in the stored bytes; and once
   * more after the last block, with where the blocks end in both. A reader
   * can then decode any raw range from a ranged read of the stored bytes
   * (agent/backup/offsets.ts records them, agent/restore/ranges.ts reads).
   */
  onBlock?: (rawOffset: number, storedOffset: number) => void;
}
