import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/** graphql-ws clients of a test file: made lazily against the gateway, disposed together at the end. */
export function wsClients(gatewayUrl: () => string) {
  const made: Client[] = [];
  return {
    /** A client signed in with `token` (none: anonymous). */
    client(token: string | null): Client {
      const client = createClient({
        url: gatewayUrl().replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: token ? { authorization: `Bearer ${token}` } : {},
        retryAttempts: 0,
        lazy: true,
      });
      made.push(client);
      return client;
    },
    async disposeAll(): Promise<void> {
      for (const client of made) await client.dispose();
    },
  };
}

/** Collects a subscription's deliveries until it completes or fails. */
export function follow(client: Client, query: string, variables: Record<string, unknown>) {
  const received: any[] = [];
  let error: unknown = null;
  const done = new Promise<void>((resolve) => {
    client.subscribe(
      { query, variables },
      {
        next: (value) => received.push(value),
        error: (e) => {
          error = e;
          resolve();
        },
        complete: () => resolve(),
      },
    );
  });
  return { received, done, error: () => error };
}
