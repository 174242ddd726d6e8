/**
 * Run a Cloud Function locally under the real functions-framework CLI (the
 * same server Cloud Run functions wrap around the code), one child process
 * per function on a free port of 127.0.0.1 (never another interface). The
 * child sees only the environment it is given, as a deployed function sees
 * only its configured variables.
 *
 * Storage triggers: the GCS emulator's `cloudevent` target POSTs binary-mode
 * CloudEvents straight to `url`. Pub/Sub triggers: a push subscription POSTs
 * a raw `{subscription, message}` body, which the framework turns into a
 * `google.cloud.pubsub.topic.v1.messagePublished` CloudEvent only when the
 * request path names the topic; {@link pubsubPushEndpoint} builds that URL.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawnGroup, waitUntilReady } from '../process/child.ts';
import { onFreePort, PortTakenError } from '../process/port.ts';

/** How to run one function. */
export interface FunctionOptions {
  /** the module that exports the function (a file, e.g. dist/functions/index.mjs) */
  source: string;
  /** the exported name to serve */
  target: string;
  signatureType: 'cloudevent' | 'http';
  /**
   * the function's environment, complete: nothing is inherited from this
   * process. The runner adds FUNCTION_TARGET, FUNCTION_SIGNATURE_TYPE and
   * K_SERVICE (the target), as the platform does.
   */
  env?: Readonly<Record<string, string>>;
  /** default a free port (retried if taken meanwhile), on 127.0.0.1 only */
  port?: number;
  /** how long to wait for the server to answer; default 60 s */
  readyTimeoutMs?: number;
}

/** A function being served. */
export interface RunningFunction {
  /** `http://127.0.0.1:PORT` (no trailing slash) */
  readonly url: string;
  readonly target: string;
  /** what the framework and the function wrote to stdout and stderr so far (the last 1 MiB) */
  logs(): string;
  /** stop the process (SIGTERM, then SIGKILL) and everything it started; idempotent */
  close(): Promise<void>;
}

/**
 * Start the functions-framework CLI for `options.target`; resolves once it
 * answers HTTP on its port. Rejects with the framework's output if the module
 * or the target cannot be loaded (it exits then) or on timeout; nothing is
 * left running then.
 */
export async function startFunction(options: FunctionOptions): Promise<RunningFunction> {
  const source = path.resolve(options.source);
  if (!existsSync(source)) throw new Error(`function source ${source} does not exist (run npm run build to bundle the functions)`);
  const cli = frameworkCli();
  const what = `function ${options.target}`;
  const env: Record<string, string> = {
    ...options.env,
    FUNCTION_TARGET: options.target,
    FUNCTION_SIGNATURE_TYPE: options.signatureType,
    K_SERVICE: options.target,
  };
  return onFreePort(options.port, async (port) => {
    const child = await spawnGroup({
      what,
      command: process.execPath,
      args: [
        `--import=${LOOPBACK_ONLY}`,
        cli,
        `--target=${options.target}`,
        `--signature-type=${options.signatureType}`,
        `--source=${source}`,
        `--port=${port}`,
      ],
      env,
      cwd: path.dirname(source),
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntilReady(what, {
        child,
        timeoutMs: options.readyTimeoutMs ?? 60_000,
        fatal: () => {
          const bind = /^.*EADDRINUSE.*$/m.exec(child.logs());
          return bind ? new PortTakenError(port, bind[0].trim()) : undefined;
        },
        // An accepted connection means the server listens: the framework only
        // binds after the module and the target have loaded. A TCP probe, not
        // a GET: the framework's event middleware logs a TypeError for a
        // request without a body.
        probe: () => canConnect(port),
      });
    } catch (err) {
      await child.stop();
      throw err;
    }
    return {
      url,
      target: options.target,
      logs: () => child.logs(),
      close: () => child.stop(),
    };
  });
}

/**
 * A module the function's Node loads before the framework: it makes a
 * listen() that names no host bind 127.0.0.1. The framework has no host
 * option and calls `server.listen(port)`, which binds every interface, so
 * on a developer's machine the function (and what it may do with its
 * service account's tokens) would answer the network. A data: URL, so there
 * is no file to find from a bundled runner.
 */
const LOOPBACK_ONLY = `data:text/javascript,${encodeURIComponent(`
import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (typeof first === 'number' || (typeof first === 'string' && /^\\d+$/.test(first))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  } else if (first && typeof first === 'object' && first.host === undefined && first.path === undefined && first.fd === undefined && first._handle === undefined) {
    args[0] = { ...first, host: '127.0.0.1' };
  }
  return listen.apply(this, args);
};
`)}`;

/**
 * The push endpoint for a Pub/Sub-triggered function: `functionUrl` with a
 * path naming the topic, from which the framework builds the CloudEvent's
 * source `//pubsub.googleapis.com/projects/P/topics/T`.
 */
export function pubsubPushEndpoint(functionUrl: string, projectId: string, topic: string): string {
  return `${functionUrl.replace(/\/+$/, '')}/projects/${encodeURIComponent(projectId)}/topics/${encodeURIComponent(topic)}`;
}

/**
 * The framework's CLI script, as its package.json `bin` names it. The
 * package's `exports` hide package.json, so it is found from the resolved
 * entry point upwards.
 */
function frameworkCli(): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve('@google-cloud/functions-framework'));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; bin?: Record<string, string> };
      if (pkg.name === '@google-cloud/functions-framework' && pkg.bin?.['functions-framework']) return path.join(dir, pkg.bin['functions-framework']);
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the functions-framework CLI (is @google-cloud/functions-framework installed?)');
    dir = parent;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port (rejects when nothing does). */
function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(5000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no answer on port ${port}`));
    });
    socket.once('error', reject);
  });
}
