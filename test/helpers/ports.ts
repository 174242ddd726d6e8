import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for a
 * bind to port 0, and the socket is closed again. Another process may take it
 * before the caller binds, so callers that start servers retry on "address in
 * use" (startCluster does).
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
