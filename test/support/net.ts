import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago (bound to 0, read, released). Another process
 * could take it before the caller binds it; on a test machine's loopback that is rare, and the
 * callers here (nats-server, npm start) fail loudly if it happens.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
