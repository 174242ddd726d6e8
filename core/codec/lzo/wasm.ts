/**
 * LZO1X block decoding with `lzo-wasm` (FFmpeg's av_lzo1x_decode compiled to
 * WebAssembly), loaded on demand.
 *
 * What the package's C wrapper (module.c) does and why it shapes this code:
 * `decompress(in, inLen, outLen)` mallocs outLen + 12 bytes in the wasm heap,
 * decodes into it, and returns the pointer; the caller owns and frees both
 * buffers. It tells av_lzo1x_decode the input has 8 more bytes than `inLen`
 * (FFmpeg's input padding), so we allocate and zero those. It throws a JS
 * Error when decoding fails, leaking the output buffer; and it cannot report
 * a block that decodes to fewer bytes than `outLen` (the block checksums
 * catch that). The heap is fixed at 32 MiB (no growth, declared maximum), and
 * a malloc that does not fit aborts the module while it holds the allocator
 * lock, after which the next malloc/free waits forever; so allocations are
 * bounded by {@link LZO_WASM_MAX_BLOCK} and a module that ever threw is
 * discarded, never called again.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { ExitCode, GcwalError } from '../../errors.ts';

const require = createRequire(import.meta.url);

/**
 * Largest uncompressed block handed to the wasm decoder. Input and output of
 * one block (< 2 x 8 MiB) fit the 32 MiB heap with room to spare; lzop itself
 * writes, and only reads, blocks of 256 KiB.
 */
export const LZO_WASM_MAX_BLOCK = 8 * 1024 * 1024;

/** FFmpeg's AV_LZO_INPUT_PADDING, which module.c claims the input has. */
const INPUT_PADDING = 8;

interface LzoWasmModule {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _decompress(input: number, inputLength: number, outputLength: number): number;
}

type CreateModule = (options: { wasmBinary: Uint8Array; print: (text: string) => void; printErr: (text: string) => void }) => Promise<LzoWasmModule>;

/** Decodes LZO1X blocks. Not safe to use after `usable` turns false. */
export interface LzoBlockDecoder {
  /** false once a decode has failed: the module may be inconsistent; get a fresh decoder */
  readonly usable: boolean;
  /**
   * Decode one LZO1X block whose uncompressed length is `outputLength`
   * (at most {@link LZO_WASM_MAX_BLOCK}, and so must `input.length` be).
   * Throws an Error (with the module's reason) when the data does
   * not decode; the decoder is then unusable.
   */
  decode(input: Uint8Array, outputLength: number): Buffer;
}

/**
 * Instantiate a fresh wasm module (a few milliseconds; about 32 MiB of
 * address space, touched only as blocks use it). What the module would print
 * is discarded: gcwal reports errors itself.
 */
export async function loadLzoWasm(): Promise<LzoBlockDecoder> {
  const create = await loadCreateModule();
  const wasmBinary = await readFile(require.resolve('lzo-wasm/lzo-wasm.wasm'));
  const discard = () => {};
  const module = await create({ wasmBinary, print: discard, printErr: discard });
  return new WasmDecoder(module);
}

/**
 * lzo-wasm.js is an ES module in a package that does not say so. Node 20.19+
 * and 22.12+ require() it (detecting the syntax); import() is the fallback for
 * releases that detect ESM syntax only there.
 */
async function loadCreateModule(): Promise<CreateModule> {
  let loaded: unknown;
  try {
    loaded = require('lzo-wasm/lzo-wasm.js');
  } catch (requireError) {
    try {
      loaded = await import(pathToFileURL(require.resolve('lzo-wasm/lzo-wasm.js')).href);
    } catch {
      throw new GcwalError(
        'internal',
        `cannot load the lzo decoder (lzo-wasm) on node ${process.versions.node}`,
        'use node 20.19 or later, or 22.12 or later',
        ExitCode.internal,
        { cause: requireError },
      );
    }
  }
  const create = typeof loaded === 'function' ? loaded : (loaded as { default?: unknown }).default;
  if (typeof create !== 'function') throw new Error('lzo-wasm/lzo-wasm.js does not export createModule');
  return create as CreateModule;
}

class WasmDecoder implements LzoBlockDecoder {
  #module: LzoWasmModule | undefined;

  constructor(module: LzoWasmModule) {
    this.#module = module;
  }

  get usable(): boolean {
    return this.#module !== undefined;
  }

  decode(input: Uint8Array, outputLength: number): Buffer {
    const module = this.#module;
    if (!module) throw new Error('lzo decoder was discarded after a failure');
    if (!Number.isInteger(outputLength) || outputLength <= 0 || outputLength > LZO_WASM_MAX_BLOCK || input.length > LZO_WASM_MAX_BLOCK) {
      throw new RangeError(`lzo block of ${input.length} -> ${outputLength} bytes is outside the decoder's limits`);
    }
    const inputPointer = module._malloc(input.length + INPUT_PADDING);
    if (inputPointer === 0) {
      this.#module = undefined;
      throw new Error('lzo decoder is out of memory');
    }
    // HEAPU8 is re-read after every call into the module: it is a view that
    // would be replaced if the memory ever changed.
    module.HEAPU8.set(input, inputPointer);
    module.HEAPU8.fill(0, inputPointer + input.length, inputPointer + input.length + INPUT_PADDING);
    let outputPointer: number;
    try {
      outputPointer = module._decompress(inputPointer, input.length, outputLength);
    } catch (err) {
      // The module threw out of the middle of a call; do not touch it again.
      this.#module = undefined;
      throw err instanceof Error ? err : new Error(String(err));
    }
    module._free(inputPointer);
    if (outputPointer === 0) {
      this.#module = undefined;
      throw new Error('lzo decoder is out of memory');
    }
    const output = Buffer.from(module.HEAPU8.subarray(outputPointer, outputPointer + outputLength));
    module._free(outputPointer);
    return output;
  }
}
