/**
 * LZO1X-1 compression of one block into a buffer the caller owns, from the
 * native `lzo` package (minilzo 2.09).
 *
 * The package's `compress(input)` allocates a zero-filled output buffer of
 * the worst-case size for every call, and the lzop writer then copied the
 * result into its block: per 16 MiB WAL segment, 17 MiB of memset and 7 MiB
 * of copying, about a tenth of a wal-push. Its native binding compresses
 * straight into a buffer we pass, so the writer can place the data right
 * after the block's head. When the binding is not what this module expects
 * (another version of the package), the package's own `compress` is used
 * and its result copied: slower, same bytes.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { LZO_WASM_MAX_BLOCK, type LzoBlockDecoder } from './wasm.ts';

const require = createRequire(import.meta.url);

/**
 * Compress `input` into `out` (at least `lzoCompressBound(input.length)`
 * bytes: LZO1X-1 writes without checking room) and return the compressed
 * length. Throws when the library reports an error.
 */
export type LzoBlockCompressor = (input: Buffer, out: Buffer) => number;

/** Worst-case LZO1X-1 output for `n` input bytes (minilzo's documented bound). */
export function lzoCompressBound(n: number): number {
  return n + Math.floor(n / 16) + 64 + 3;
}

interface Binding {
  compress(input: Buffer, output: Buffer): { err: number; len: number };
  /** lzo1x_decompress_safe into `output`: `len` is the decoded length, `err` a negative LZO_E_* code */
  decompress?(input: Uint8Array, output: Buffer): { err: number; len: number };
}

interface Package {
  compress(input: Buffer): Buffer;
}

/** Load the compressor (the addon is dlopen'ed once per process by require's cache). */
export function loadLzoBlockCompressor(): LzoBlockCompressor {
  const binding = nativeBinding();
  if (binding) {
    return (input, out) => {
      if (out.length < lzoCompressBound(input.length))
        throw new RangeError(`lzo output buffer of ${out.length} bytes is too small for ${input.length} input bytes`);
      const { err, len } = binding.compress(input, out);
      if (err !== 0) throw new Error(`lzo compression failed with code ${err}`);
      return len;
    };
  }
  const lzo = require('lzo') as Package;
  return (input, out) => {
    if (out.length < lzoCompressBound(input.length))
      throw new RangeError(`lzo output buffer of ${out.length} bytes is too small for ${input.length} input bytes`);
    return lzo.compress(input).copy(out);
  };
}

/**
 * An LZO1X block decoder on the native library (minilzo's
 * `lzo1x_decompress_safe`, which checks every read and write against the
 * buffers' bounds), or undefined when the binding is missing or not the
 * expected shape (then lzo-wasm decodes). Several times faster than the
 * wasm decoder (docs/performance.md), and it decodes straight into the
 * returned buffer instead of copying in and out of a wasm heap. A failed
 * decode leaves it usable: the library keeps no state between calls.
 */
export function loadLzoBlockDecoder(): LzoBlockDecoder | undefined {
  const binding = nativeBinding();
  const decompress = binding?.decompress?.bind(binding);
  if (!decompress) return undefined;
  return {
    usable: true,
    decode(input: Uint8Array, outputLength: number): Buffer {
      if (!Number.isInteger(outputLength) || outputLength <= 0 || outputLength > LZO_WASM_MAX_BLOCK || input.length > LZO_WASM_MAX_BLOCK) {
        throw new RangeError(`lzo block of ${input.length} -> ${outputLength} bytes is outside the decoder's limits`);
      }
      const output = Buffer.allocUnsafe(outputLength);
      const { err, len } = decompress(input, output);
      // The same words as the wasm decoder's, whose messages users and tests already know.
      if (err !== 0) throw new Error('failed to decompress');
      // The safe decoder stops at the output's end; a block that decodes to less is as damaged as one that overruns.
      if (len !== outputLength) throw new Error(`failed to decompress: the block decodes to ${len} bytes, not ${outputLength}`);
      return output;
    },
  };
}

/**
 * The package's binding, or undefined if it is not the expected shape
 * (exported for tests). Loaded from where npm builds it (build/Release),
 * else found the way the package finds it, through `bindings`, which tries
 * several paths first (a cost on every wal-push).
 */
export function nativeBinding(): Binding | undefined {
  let packageJson: string;
  try {
    packageJson = require.resolve('lzo/package.json');
  } catch {
    return undefined;
  }
  const loaders = [
    () => require(path.join(path.dirname(packageJson), 'build', 'Release', 'node_lzo.node')) as unknown,
    () =>
      (createRequire(packageJson)('bindings') as (options: { bindings: string; module_root: string }) => unknown)({
        bindings: 'node_lzo',
        module_root: path.dirname(packageJson),
      }),
  ];
  for (const load of loaders) {
    try {
      const binding = load() as Partial<Binding> | undefined;
      if (typeof binding?.compress === 'function' && binding.compress.length !== 1) return binding as Binding;
    } catch {
      // try the next way
    }
  }
  return undefined;
}
