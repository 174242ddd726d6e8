/**
 * One Cloud Function process for the cold-start benchmark, run the way the
 * platform runs a deployed bundle: a directory holding the bundle's
 * index.mjs and package.json beside a node_modules (here a symlink to the
 * project's, whose versions are checked against the bundle's package.json),
 * and the real functions-framework CLI from that node_modules serving it on
 * a free port. Timed from spawn to the port accepting connections and to the
 * first event's 2xx answer; then a second event on the warm process; then
 * the process's peak resident memory (VmHWM).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { spawnGroup, type GroupChild } from '../../local/process/child.ts';
import { freePort } from '../../local/process/port.ts';
import { projectRoot } from '../../local/testkit/install.ts';
import type { Cleanups } from './cleanup.ts';

/** A function laid out as Cloud Functions builds it (the source directory, /workspace there). */
export interface FunctionDir {
  /** the directory: index.mjs, package.json, node_modules */
  dir: string;
  /** the name the module registers with cloudEvent() */
  target: string;
}

/** An HTTP request that delivers one event (binary-mode CloudEvent: ce-* headers, JSON body). */
export interface EventRequest {
  headers: Readonly<Record<string, string>>;
  body: string;
}

/** What one cold start measured. */
export interface ColdStart {
  /** spawn → the port accepts a TCP connection (module loaded, server listening) */
  listeningMs: number;
  /** spawn → the 2xx answer to the first event */
  firstHandledMs: number;
  /** POST → 2xx of the second event, on the now warm process */
  warmMs: number;
  /** VmHWM of the function process after both events, KiB */
  peakRssKiB: number;
  /** what the framework and the function wrote (stdout and stderr) */
  logs: string;
}

/** The framework's CLI inside a function directory (its package.json `bin`). */
const FRAMEWORK_CLI = 'node_modules/@google-cloud/functions-framework/build/src/main.js';
const LISTEN_POLL_MS = 2;
const ATTEMPTS = 3;

/**
 * Copy the bundle directory `bundleDir` (dist/functions/<name>: index.mjs
 * and package.json) to `into` and link `into`/node_modules to the project's.
 * Rejects when a dependency the bundle's package.json pins is missing there
 * or installed at another version: the bench would then time other code
 * than a deployment installs.
 */
export async function prepareFunctionDir(bundleDir: string, target: string, into: string): Promise<FunctionDir> {
  for (const file of ['index.mjs', 'package.json']) {
    if (!existsSync(path.join(bundleDir, file))) throw new Error(`${path.join(bundleDir, file)} does not exist: run npm run build`);
  }
  await mkdir(into, { recursive: true });
  await copyFile(path.join(bundleDir, 'index.mjs'), path.join(into, 'index.mjs'));
  await copyFile(path.join(bundleDir, 'package.json'), path.join(into, 'package.json'));
  await linkNodeModules(into);
  const manifest = JSON.parse(await readFile(path.join(into, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const [name, version] of Object.entries(manifest.dependencies ?? {})) {
    const installed = path.join(into, 'node_modules', name, 'package.json');
    const found = existsSync(installed) ? (JSON.parse(await readFile(installed, 'utf8')) as { version?: string }).version : undefined;
    if (found !== version) throw new Error(`${target} pins ${name}@${version} but node_modules holds ${found ?? 'nothing'}: run npm ci, then npm run build`);
  }
  return { dir: into, target };
}

/**
 * A function directory whose module registers `target` as a CloudEvent
 * function that does nothing: the framework's own share of a cold start.
 */
export async function prepareNoopDir(target: string, into: string): Promise<FunctionDir> {
  await mkdir(into, { recursive: true });
  await writeFile(
    path.join(into, 'index.mjs'),
    `import { cloudEvent } from '@google-cloud/functions-framework';\ncloudEvent(${JSON.stringify(target)}, () => {});\n`,
  );
  await writeFile(
    path.join(into, 'package.json'),
    JSON.stringify({ name: `bench-${target}`, private: true, type: 'module', main: 'index.mjs' }, null, 2) + '\n',
  );
  await linkNodeModules(into);
  return { dir: into, target };
}

async function linkNodeModules(dir: string): Promise<void> {
  const link = path.join(dir, 'node_modules');
  if (!existsSync(link)) await symlink(path.join(projectRoot, 'node_modules'), link, 'dir');
}

/**
 * Start `fn` under the functions-framework CLI with exactly `env` (plus
 * FUNCTION_TARGET, FUNCTION_SIGNATURE_TYPE and K_SERVICE, as the platform
 * and local/functions/runner.ts set them), POST `first` as soon as the port
 * accepts connections, then `second`, read VmHWM, and stop the process.
 * Rejects with the function's output when an answer is not 2xx or the
 * process exits early. A port taken between choosing and binding it is
 * retried on another (that attempt is not counted).
 */
export async function measureColdStart(
  fn: FunctionDir,
  env: Readonly<Record<string, string>>,
  first: EventRequest,
  second: EventRequest,
  cleanups: Cleanups,
): Promise<ColdStart> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // The scope stops the process when the measurement ends, and on an interrupt while it runs.
    const result = await cleanups.scope(`function ${fn.target}`, async (scoped): Promise<ColdStart | 'port taken'> => {
      const started = performance.now();
      const child = await spawnGroup({
        what: `function ${fn.target}`,
        command: process.execPath,
        args: [path.join(fn.dir, FRAMEWORK_CLI), `--target=${fn.target}`, '--signature-type=cloudevent', `--source=${fn.dir}`, `--port=${port}`],
        env: { ...env, FUNCTION_TARGET: fn.target, FUNCTION_SIGNATURE_TYPE: 'cloudevent', K_SERVICE: fn.target },
        cwd: fn.dir,
      });
      scoped.add(`function ${fn.target}`, () => child.stop());
      const listening = await waitForListening(port, child, started + 120_000);
      if (listening === 'port taken') return listening;
      await post(port, first, child);
      const firstHandled = performance.now();
      await post(port, second, child);
      const warmMs = performance.now() - firstHandled;
      const peakRssKiB = await vmHwmKiB(child.pid);
      // Stopped here so that logs() holds everything the function wrote.
      await child.stop();
      return { listeningMs: listening - started, firstHandledMs: firstHandled - started, warmMs, peakRssKiB, logs: child.logs() };
    });
    if (result !== 'port taken') return result;
    if (attempt >= ATTEMPTS) throw new Error(`function ${fn.target}: its port was taken ${ATTEMPTS} times in a row`);
  }
}

/** When `port` first accepts a connection (performance.now()), polling every 2 ms; 'port taken' when the child could not bind. */
async function waitForListening(port: number, child: GroupChild, deadline: number): Promise<number | 'port taken'> {
  for (;;) {
    if (await connects(port)) {
      const at = performance.now();
      // Someone else's server on the port would accept too; the child must still be running.
      if (child.exitStatus() === undefined) return at;
    }
    if (child.exitStatus() !== undefined) {
      if (/EADDRINUSE/.test(child.logs())) return 'port taken';
      throw new Error(`function exited before listening (${JSON.stringify(child.exitStatus())}):\n${child.tail(30)}`);
    }
    if (performance.now() > deadline) throw new Error(`function not listening on ${port} after 120 s:\n${child.tail(30)}`);
    await delay(LISTEN_POLL_MS);
  }
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** POST `request` to the function on a fresh connection; resolves on a 2xx answer with its body read. */
function post(port: number, request: EventRequest, child: GroupChild): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = Buffer.from(request.body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        agent: false,
        headers: { ...request.headers, 'Content-Length': String(body.length) },
        timeout: 120_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`the function answered ${status}: ${Buffer.concat(chunks).toString('utf8').trim().slice(0, 500)}\n${child.tail(30)}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the function in 120 s:\n${child.tail(30)}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The process's resident-memory high-water mark, KiB. */
async function vmHwmKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]);
}
