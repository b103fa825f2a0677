import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../platform/config.js';
import { JetStreamTransport } from '../../platform/events/jetstream.js';
import { InProcessJobQueue } from '../../platform/jobs/in-process.js';
import { InProcessLiveBus } from '../../platform/live/in-process.js';
import { createLogger } from '../../platform/log.js';
import { startAllInOne, type AllInOne } from '../../gateway/all-in-one.js';
import { createTestDatabase } from './database.js';

export interface GraphQLResponse<T = any> {
  status: number;
  headers: Headers;
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: { code?: string; [key: string]: unknown } }[];
}

export interface TestStack {
  app: AllInOne;
  config: Config;
  databaseUrl: string;
  transport: JetStreamTransport;
  /** The stream's subject prefix, unique to this stack. */
  subjectPrefix: string;
  /** What a script run against this stack (npm run replay) needs to find its database and stream. */
  scriptEnv: Record<string, string>;
  gql<T = any>(query: string, variables?: Record<string, unknown>, options?: { token?: string; headers?: Record<string, string> }): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
}

/** Streams are per stack; removing them keeps a reused TEST_NATS_URL server from filling up. */
async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}

/**
 * The whole supergraph as `npm start` runs it, but on a fresh database of its own, a JetStream
 * stream of its own on the run's nats-server, and free ports: test files never share state.
 */
export async function startTestStack(options: { env?: Record<string, string>; relay?: boolean; inProcessLiveAndJobs?: boolean } = {}): Promise<TestStack> {
  const suffix = randomBytes(4).toString('hex');
  const db = await createTestDatabase();
  const subjectPrefix = `t${suffix}.events.`;
  const config = loadConfig({
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    INTERNAL_SECRET: randomBytes(32).toString('base64url'),
    PORT: '0',
    OUTBOX_SWEEP_MS: '200',
    // What scripts run against this stack (npm run replay) need to find its stream.
    NATS_URL: inject('natsUrl'),
    EVENTS_STREAM: `T_${suffix}`,
    EVENTS_SUBJECT_PREFIX: subjectPrefix,
    LIVE_SUBJECT_PREFIX: `t${suffix}.live.`,
    JOBS_STREAM: `J_${suffix}`,
    JOBS_SUBJECT_PREFIX: `t${suffix}.jobs.`,
    ...options.env,
  });
  const logger = createLogger(config.LOG_LEVEL);
  const transport = await JetStreamTransport.connect({ url: inject('natsUrl'), stream: config.EVENTS_STREAM, subjectPrefix: config.EVENTS_SUBJECT_PREFIX, logger });
  let app: AllInOne;
  try {
    // The all-in-one default without NATS_URL: live updates and jobs within the process.
    const inProcess = options.inProcessLiveAndJobs ? { live: new InProcessLiveBus(), jobs: new InProcessJobQueue(logger) } : {};
    app = await startAllInOne({ config, databaseUrl: db.url, transport, logger, relay: options.relay, ...inProcess });
  } catch (error) {
    await transport.close();
    await db.drop();
    throw error;
  }
  return {
    app,
    config,
    databaseUrl: db.url,
    transport,
    subjectPrefix,
    scriptEnv: {
      DATABASE_URL: db.url,
      NATS_URL: config.NATS_URL!,
      EVENTS_STREAM: config.EVENTS_STREAM,
      EVENTS_SUBJECT_PREFIX: config.EVENTS_SUBJECT_PREFIX,
    },
    async gql(query, variables, opts = {}) {
      const response = await fetch(app.gatewayUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...opts.headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as { data?: unknown; errors?: GraphQLResponse['errors'] };
      return { status: response.status, headers: response.headers, data: body.data as any, errors: body.errors };
    },
    async close() {
      await app.close();
      await transport.close();
      await db.drop();
      await deleteStream(inject('natsUrl'), `T_${suffix}`);
      await deleteStream(inject('natsUrl'), `J_${suffix}`);
    },
  };
}
