/**
 * Reading an object the way validation does: the stored bytes checked
 * against the object's size and CRC32C, decoded by the codec its metadata
 * names, and passed through the caller's stages. Decoding loads no native
 * addon except for zstd (lzo decodes with lzo-wasm; CRC32C falls back to
 * JavaScript when its addon is absent), so it runs on a plain Node runtime.
 */
import { pipeline, Writable, type Readable, type Transform } from 'node:stream';
import { verifyingStream } from '../checksum/verify.ts';
import { codecFromName } from '../codec/index.ts';
import { CorruptObjectError, ExitCode, GcwalError, InvalidInputError } from '../errors.ts';
import { Meta } from '../layout.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import type { ValidationResult } from './types.ts';

/**
 * The codec's decoder cannot be created in this process (zstd-napi, a native
 * addon, did not load). Says nothing about the object, so validation reports
 * it apart from corruption.
 */
export class DecoderUnavailableError extends GcwalError {
  readonly codec: string;
  constructor(codec: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
    super(
      'decoder_unavailable',
      `the ${codec} decoder does not load on node ${process.versions.node} here: ${reason}`,
      `install ${codec === 'zstd' ? 'zstd-napi (a native addon)' : `the ${codec} library`} where validation runs, or write objects with the lzo, gzip or none codec`,
      ExitCode.internal,
      { cause },
    );
    this.codec = codec;
  }
}

/**
 * A fresh decoder for the codec `info`'s metadata names. Throws
 * CorruptObjectError when the metadata names none or an unknown one, and
 * DecoderUnavailableError when the codec's library does not load.
 */
export function decoderFor(info: ObjectInfo): Transform {
  const codec = codecFromName(info.metadata[Meta.codec], info.key);
  try {
    return codec.decompressor();
  } catch (err) {
    if (err instanceof GcwalError) throw err;
    throw new DecoderUnavailableError(codec.name, err);
  }
}

/**
 * Open object `info` and return its decoded content. The decoder is created
 * first: when it cannot load (DecoderUnavailableError), or the metadata names
 * no known codec (CorruptObjectError), nothing is opened. The stream fails
 * with CorruptObjectError when the stored bytes differ from `info`'s size and
 * CRC32C or do not decode, and with the driver's errors as they are; its
 * content is unverified until it ends without error. Destroying it stops the
 * read.
 */
export async function openDecodedObject(storage: Storage, info: ObjectInfo, signal?: AbortSignal): Promise<Readable> {
  const decoder = decoderFor(info);
  let stored: Readable;
  try {
    stored = await storage.read(info.key, { signal });
  } catch (err) {
    decoder.destroy();
    throw err;
  }
  // The callback form returns the decoder and destroys every stage with the
  // first error, so whoever reads the decoder sees any stage's failure.
  return pipeline(stored, verifyingStream({ size: info.size, crc32c: info.crc32c }, `stored bytes of ${info.key}`), decoder, () => {});
}

/**
 * A sink that keeps the first `limit` bytes written to it and counts the
 * rest without keeping them: a segment's page header without holding the
 * segment.
 */
export class HeadSink extends Writable {
  readonly #limit: number;
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #bytes = 0;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#bytes += chunk.length;
    if (this.#kept < this.#limit) {
      // copy: the decoder may reuse its output buffers
      const part = Buffer.from(chunk.subarray(0, this.#limit - this.#kept));
      this.#chunks.push(part);
      this.#kept += part.length;
    }
    callback();
  }

  /** the first bytes written, at most `limit` */
  get head(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** every byte written */
  get bytes(): number {
    return this.#bytes;
  }
}

/** A failed validation, its problem cut to one line. */
export function failed(problem: string, details?: Record<string, unknown>): ValidationResult {
  return details ? { ok: false, problem: oneLine(problem), details } : { ok: false, problem: oneLine(problem) };
}

function oneLine(text: string): string {
  return text.split('\n')[0].trim();
}

/**
 * The result for an error met while validating `key`: corrupt or malformed
 * content and an unloadable decoder become a failed result (naming `key` when
 * the message names neither it nor `alias`, e.g. the WAL file name); anything
 * else (storage, permissions, an abort, a bug) is thrown again.
 */
export function resultOfError(err: unknown, key: string, alias?: string): ValidationResult {
  if (err instanceof DecoderUnavailableError) {
    return failed(`cannot check ${key}: ${err.message}`, { decoderUnavailable: true, codec: err.codec });
  }
  if (err instanceof CorruptObjectError || err instanceof InvalidInputError) {
    const named = err.message.includes(key) || (alias !== undefined && err.message.includes(alias));
    return failed(named ? err.message : `${key}: ${err.message}`);
  }
  throw err;
}
