import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { sendError } from './graphql-http.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/**
 * Routes by exact path, or by prefix for a route ending in '/' (the longest wins: `/media/`
 * serves `/media/files/a.wav`); anything unknown is a 404. A handler that throws is a logged
 * 500, never a crash.
 */
export function createHttpServer(routes: Record<string, Handler>, logger: Logger): Server {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const prefix = Object.keys(routes)
      .filter((route) => route.endsWith('/') && path.startsWith(route))
      .sort((a, b) => b.length - a.length)[0];
    const handler = routes[path] ?? (prefix ? routes[prefix] : undefined);
    if (!handler) return sendError(res, 404, 'NOT_FOUND', `No route for ${path}`);
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((error: unknown) => {
        logger.error({ err: error, path }, 'request failed');
        if (!res.headersSent) sendError(res, 500, 'INTERNAL_SERVER_ERROR', 'Internal server error');
        else res.destroy();
      });
  });
  // Keep-alive sockets would hold close() open until their timeout; the gateway reuses them.
  server.keepAliveTimeout = 5_000;
  return server;
}

export async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

export async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
