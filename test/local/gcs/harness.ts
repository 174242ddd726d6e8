/**
 * Shared set-up for the emulator tests: an emulator on free loopback ports in
 * a fresh temp directory, and a request log (the fault plan's `match` hook
 * sees every request's method and target, so it doubles as a spy).
 */
import type { ExecutionContext } from 'ava';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startGcsEmulator, type GcsEmulator, type GcsEmulatorOptions } from '../../../local/gcs/server.ts';

/** An emulator plus its state directory; closed and removed by t.teardown. */
export interface TestEmulator {
  emu: GcsEmulator;
  dir: string;
}

/**
 * Start an emulator for one test; it is closed and its directory removed when
 * the test ends. The per-object rate limit is off unless `options` set
 * `objectRateLimitMs` (undefined for the default): the wire tests rewrite one
 * object in a row on purpose, and rate-limit.test.ts covers the limit.
 */
export async function startTestEmulator(t: ExecutionContext, options: Omit<GcsEmulatorOptions, 'dir'> = {}, dir?: string): Promise<TestEmulator> {
  const stateDir = dir ?? (await mkdtemp(path.join(tmpdir(), 'gcwal-gcs-')));
  const emu = await startGcsEmulator({ objectRateLimitMs: false, ...options, dir: stateDir });
  t.teardown(async () => {
    await emu.close();
    if (!dir) await rm(stateDir, { recursive: true, force: true });
  });
  return { emu, dir: stateDir };
}

/** Record "METHOD target" of every request from now on (replaces any fault plan). */
export function logRequests(emu: GcsEmulator): string[] {
  const log: string[] = [];
  emu.setFaults({ rate: 0, kinds: [], match: (method, target) => (log.push(`${method} ${target}`), false) });
  return log;
}

/** A raw HTTP exchange for wire-level assertions. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): any;
}

/** Send one request with node:http and collect the whole answer. */
export function raw(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: string | Buffer | Buffer[] } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
      });
    });
    req.on('error', reject);
    const body = options.body;
    if (Array.isArray(body)) {
      // Several writes without Content-Length: a chunked body.
      for (const part of body) req.write(part);
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** Deterministic pseudo-random bytes (incompressible, reproducible). */
export function bytes(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
