import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['platform/**/*.test.ts', 'subgraphs/**/*.test.ts', 'gateway/**/*.test.ts', 'scripts/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Test files share one PostgreSQL server and one nats-server; each file isolates itself
    // (its own database, its own JetStream stream and subject prefix), so files run in parallel.
    pool: 'forks',
    server: {
      deps: {
        // Resolved like the project's own code, so graphql-ws checks errors against the same
        // graphql module instance (node would load graphql's CommonJS build for it, vite the ESM one).
        inline: ['graphql-ws'],
      },
    },
  },
});
