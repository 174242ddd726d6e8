/**
 * Test helpers for the codec suites: deterministic data, running a transform
 * over chunks split in chosen places, and running the real CLI tools.
 */
import { execFileSync, spawn } from 'node:child_process';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExecutionContext } from 'ava';
import { CorruptObjectError } from '../../../core/errors.ts';

/** A xorshift32 generator: the same seed always gives the same sequence. */
export function prng(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

/** `size` bytes that do not compress. */
export function randomData(size: number, seed = 7): Buffer {
  const next = prng(seed);
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) {
    const value = next();
    for (let j = 0; j < 4 && i + j < size; j++) out[i + j] = (value >>> (8 * j)) & 0xff;
  }
  return out;
}

/**
 * `size` bytes mixing runs of random bytes, zeros, SQL-like text and
 * page-like records, each run 1-64 KiB: some blocks compress well, some not at all.
 */
export function mixedData(size: number, seed = 1): Buffer {
  const next = prng(seed);
  const out = Buffer.alloc(size);
  let pos = 0;
  while (pos < size) {
    const kind = next() % 4;
    const end = Math.min(size, pos + 1024 + (next() % (63 * 1024)));
    if (kind === 0) {
      randomData(end - pos, next()).copy(out, pos);
    } else if (kind === 2) {
      for (let row = next() % 100000; pos < end; row++) {
        pos += out.write(`INSERT INTO accounts VALUES (${row}, 'user${row % 997}', ${(row * 31) % 100000});\n`, pos, end - pos, 'latin1');
      }
    } else if (kind === 3) {
      for (let p = pos; p + 4 <= end; p += 64) out.writeUInt32LE((next() % 16) + p, p);
    }
    pos = end;
  }
  return out;
}

/** `data` cut at the given offsets (ascending, inside the buffer). */
export function splitAt(data: Buffer, offsets: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  let start = 0;
  for (const offset of offsets) {
    pieces.push(data.subarray(start, offset));
    start = offset;
  }
  pieces.push(data.subarray(start));
  return pieces;
}

/** `data` in pieces of `size` bytes. */
export function chunksOf(data: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) pieces.push(data.subarray(i, i + size));
  return pieces;
}

/** `data` in pieces of 1 to `max` bytes chosen by a seeded generator. */
export function randomChunks(data: Buffer, max: number, seed = 3): Buffer[] {
  const next = prng(seed);
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const size = 1 + (next() % max);
    pieces.push(data.subarray(i, i + size));
    i += size;
  }
  return pieces;
}

/** Write `chunks` into `transform` one write each, and return everything it emits. */
export async function runThrough(transform: Transform, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), transform, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

/** Assert `promise` rejects with a CorruptObjectError whose message matches `message`. */
export async function assertCorrupt(t: ExecutionContext, promise: Promise<unknown>, message?: RegExp, label = ''): Promise<void> {
  const err = await t.throwsAsync(promise, undefined, label);
  if (!err) return;
  t.true(err instanceof CorruptObjectError, `${label} ${err.name}: ${err.message}`);
  t.is((err as CorruptObjectError).code, 'corrupt', label);
  if (message) t.regex(err.message, message, label);
}

/**
 * Fail loudly when a CLI the interop tests need is missing: these tests must
 * never pass silently without it.
 */
export function requireTool(name: string, debianPackage = name): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`the ${name} command is not installed; install it (apt-get install -y ${debianPackage}) to run the interoperability tests`);
  }
}

export interface ToolResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Run `command args` with `input` on stdin; never throws for a non-zero exit. */
export function runTool(command: string, args: string[], input?: Buffer): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // a tool that rejects its input may exit before reading all of it
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8') }));
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}
