/**
 * Free loopback ports for servers that cannot be told to pick their own and
 * report it (gcloud's Pub/Sub emulator, the functions-framework CLI): ask the
 * kernel for one, then retry on another if something took it in between.
 */
import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for
 * a bind to port 0 and the socket is closed again. Another process may take it
 * before the caller binds; {@link onFreePort} retries on that.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('cannot determine the port of a loopback socket'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** Thrown by a start attempt whose server found its port taken; {@link onFreePort} then tries another. */
export class PortTakenError extends Error {
  constructor(
    readonly port: number,
    detail: string,
  ) {
    super(`port ${port} was taken before the server could bind it: ${detail}`);
    this.name = 'PortTakenError';
  }
}

const ATTEMPTS = 3;

/**
 * Run `start` on `fixed` if given (a PortTakenError then propagates: the
 * caller asked for that port), else on a fresh free port, up to three times
 * while attempts fail with PortTakenError. Other errors propagate at once.
 */
export async function onFreePort<T>(fixed: number | undefined, start: (port: number) => Promise<T>): Promise<T> {
  if (fixed !== undefined) return start(fixed);
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt >= ATTEMPTS) throw err;
    }
  }
}
