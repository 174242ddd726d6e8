/**
 * Per-block CRC32Cs of a file (the manifest's `blockSize` and `blocks`), so a
 * delta restore can compare a local file with the backup block by block and
 * rewrite only the blocks that differ. The whole file's CRC32C is derived
 * from the block CRCs (crc32cCombine), so recording them costs no second
 * pass over the bytes.
 */
import { crc32c } from './crc32c.ts';

/** The smallest block: a PostgreSQL page, the unit a change touches. */
export const MIN_BLOCK_SIZE = 8192;
/**
 * Most blocks of one file: 4 bytes each, base64 in one manifest line, under
 * its 1 MiB limit (core/backup/manifest.ts MAX_MANIFEST_LINE). A 1 GiB
 * relation segment has exactly this many 8 KiB pages; a larger file gets
 * larger blocks.
 */
export const MAX_BLOCKS = 131072;
/** Files smaller than this have no block list: rewriting one whole costs little. */
export const BLOCKS_MIN_FILE = 64 * 1024;

/** Reflected CRC32C polynomial. */
const POLY = 0x82f63b78;

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i];
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]);
}

/**
 * The CRC32C of A followed by B from crc(A), crc(B) and B's length (zlib's
 * crc32_combine, for the Castagnoli polynomial).
 */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = POLY;
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row;
  gf2Square(even, odd);
  gf2Square(odd, even);
  let crc = crcA >>> 0;
  let len = lengthB;
  for (;;) {
    gf2Square(even, odd);
    if (len % 2 === 1) crc = gf2Times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2 === 1) crc = gf2Times(odd, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return (crc ^ crcB) >>> 0;
}

/** The operator that appends `length` bytes' worth of shift to a CRC: crc32cCombine(a, b, length) = shift(a) ^ b. */
function shiftOperator(length: number): Uint32Array {
  const op = new Uint32Array(32);
  for (let i = 0; i < 32; i++) op[i] = crc32cCombine((1 << i) >>> 0, 0, length);
  return op;
}

const operators = new Map<number, Uint32Array>();

/** The block size of a file of `size` bytes: 8 KiB, doubled until it has at most MAX_BLOCKS blocks. */
export function blockSizeFor(size: number): number {
  let blockSize = MIN_BLOCK_SIZE;
  while (Math.ceil(size / blockSize) > MAX_BLOCKS) blockSize *= 2;
  return blockSize;
}

/** Blocks of a file of `size` bytes in blocks of `blockSize`. */
export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

/**
 * Accumulates the block CRC32Cs of bytes fed in any chunking, and the whole
 * CRC32C of them. `crcs` holds one value per block begun.
 */
export class BlockChecksums {
  readonly crcs: Uint32Array;
  private block = 0;
  private inBlock = 0;
  private current = 0;
  private whole = 0;
  private readonly shift: Uint32Array;

  constructor(
    readonly size: number,
    readonly blockSize: number = blockSizeFor(size),
  ) {
    this.crcs = new Uint32Array(blockCount(size, blockSize));
    let op = operators.get(blockSize);
    if (!op) operators.set(blockSize, (op = shiftOperator(blockSize)));
    this.shift = op;
  }

  /** Feed the next bytes of the file (at most `size` in all). */
  update(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(chunk.length - at, this.blockSize - this.inBlock);
      this.current = crc32c(take === chunk.length ? chunk : chunk.subarray(at, at + take), this.current);
      this.inBlock += take;
      at += take;
      if (this.inBlock === this.blockSize) this.endBlock();
    }
  }

  private endBlock(): void {
    if (this.block >= this.crcs.length) throw new RangeError(`more than ${this.size} bytes fed to BlockChecksums`);
    this.crcs[this.block++] = this.current;
    this.whole =
      this.inBlock === this.blockSize ? (gf2Times(this.shift, this.whole) ^ this.current) >>> 0 : crc32cCombine(this.whole, this.current, this.inBlock);
    this.current = 0;
    this.inBlock = 0;
  }

  /** Close the last, partial block; returns the CRC32C of everything fed. */
  finish(): number {
    if (this.inBlock > 0) this.endBlock();
    return this.whole;
  }

  /** The block CRCs as the manifest stores them: 4 bytes each, big-endian, base64. */
  toBase64(): string {
    return encodeBlockCrcs(this.crcs);
  }
}

/** Block CRCs as the manifest stores them: 4 bytes each, big-endian, base64. */
export function encodeBlockCrcs(crcs: Uint32Array): string {
  const bytes = Buffer.allocUnsafe(crcs.length * 4);
  for (let i = 0; i < crcs.length; i++) bytes.writeUInt32BE(crcs[i], i * 4);
  return bytes.toString('base64');
}

/** The manifest's `blocks` back as CRC values; undefined when it is not base64 of exactly `count` values. */
export function decodeBlockCrcs(text: string, count: number): Uint32Array | undefined {
  if (text.length !== Math.ceil((count * 4) / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== count * 4) return undefined;
  const crcs = new Uint32Array(count);
  for (let i = 0; i < count; i++) crcs[i] = bytes.readUInt32BE(i * 4);
  return crcs;
}
