/**
 * What the subscriptions bench runs against: the whole supergraph as `npm start` with NATS_URL
 * runs it (JetStream events and job queues, core NATS live bus), on a fresh database and a
 * nats-server of its own, with users, stories and RUNNING narration jobs to follow.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { startAllInOne, type AllInOne } from '../gateway/all-in-one.js';
import { loadConfig } from '../platform/config.js';
import { JetStreamTransport } from '../platform/events/jetstream.js';
import { createLogger } from '../platform/log.js';
import { createTestDatabase } from '../test/support/database.js';
import { startNatsServer } from '../test/support/nats-server.js';
import { clientOperation } from '../test/support/clients.js';

export interface BenchJob {
  id: string;
  /** The owner's access token: only the owner may follow a job. */
  token: string;
}

export interface BenchStack {
  app: AllInOne;
  jobs: BenchJob[];
  /** Sets the progress of jobs in one statement, as their workers would have committed it. */
  setProgress(progress: number, ids: string[]): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  users: number;
  jobs: number;
  /** The gateway's subscription limits, raised so the bench's subscribers all fit. */
  perUser: number;
  perConnection: number;
  progress: (line: string) => void;
}

export async function startBenchStack(options: StackOptions): Promise<BenchStack> {
  const token = randomBytes(4).toString('hex');
  // Undone in reverse order by close(), each step even if an earlier one failed. A second
  // close() (Ctrl-C during the run's own) waits for the first rather than returning at once.
  const undo: { name: string; run: () => Promise<unknown> }[] = [];
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      for (const step of undo.reverse()) await step.run().catch((error: unknown) => console.error(`bench:subscriptions: cleanup '${step.name}' failed: ${String(error)}`));
    })());
  try {
    const db = await createTestDatabase(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    undo.push({ name: 'drop database', run: () => db.drop() });
    let natsUrl = process.env.NATS_URL;
    if (!natsUrl) {
      const nats = await startNatsServer();
      undo.push({ name: 'stop nats-server', run: () => nats.stop() });
      natsUrl = nats.url;
    }
    const config = loadConfig({
      // The platform logs warnings and errors only (on stdout, beside the table), unless asked.
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      INTERNAL_SECRET: randomBytes(32).toString('base64url'),
      PORT: '0',
      NATS_URL: natsUrl,
      EVENTS_STREAM: `BENCH_SUBS_EVENTS_${token}`,
      EVENTS_SUBJECT_PREFIX: `bench${token}.events.`,
      LIVE_SUBJECT_PREFIX: `bench${token}.live.`,
      JOBS_STREAM: `BENCH_SUBS_JOBS_${token}`,
      JOBS_SUBJECT_PREFIX: `bench${token}.jobs.`,
      SUBSCRIPTIONS_PER_USER: String(options.perUser),
      SUBSCRIPTIONS_PER_CONNECTION: String(options.perConnection),
    });
    undo.push({ name: 'delete streams', run: () => deleteStreams(natsUrl, [config.EVENTS_STREAM, config.JOBS_STREAM]) });
    const logger = createLogger(config.LOG_LEVEL);
    const transport = await JetStreamTransport.connect({ url: natsUrl, stream: config.EVENTS_STREAM, subjectPrefix: config.EVENTS_SUBJECT_PREFIX, logger });
    undo.push({ name: 'close event transport', run: () => transport.close() });
    options.progress('starting the supergraph');
    const app = await startAllInOne({ config, databaseUrl: db.url, transport, logger });
    undo.push({ name: 'close the supergraph', run: () => app.close() });

    options.progress(`registering ${options.users} users, a story each`);
    const gql = graphql(app.gatewayUrl);
    const owners: { id: string; token: string; storyId: string }[] = [];
    for (let n = 0; n < options.users; n++) {
      const registered = await gql(clientOperation('Register'), { input: { email: `bench-${token}-${n}@example.com`, password: 'correct horse battery', displayName: `Bench ${n}` } });
      const { user, session } = registered.register as { user: { id: string }; session: { accessToken: string } };
      const created = await gql(clientOperation('CreateStory'), { input: { title: `Bench story ${n}`, content: 'A story read aloud, slowly.' } }, session.accessToken);
      owners.push({ id: user.id, token: session.accessToken, storyId: (created.createStory as { story: { id: string } }).story.id });
    }

    // The jobs are rows written directly, RUNNING, and no worker was ever asked to run them (a
    // worker queues open jobs again only when it starts, which was before these rows existed):
    // the bench measures the subscription path, not narration, and plays the worker itself.
    const sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    undo.push({ name: 'close the SQL connection', run: () => sql.end() });
    const jobs: BenchJob[] = [];
    for (let n = 0; n < options.jobs; n++) {
      const owner = owners[n % owners.length]!;
      const id = randomUUID();
      await sql.query(
        `insert into narration.narration_job (id, user_id, story_id, voice_kind, stock_voice, status, progress, parts_done, attempts, created_at, started_at)
         values ($1, $2, $3, 'STOCK', 'alloy', 'RUNNING', 0, 0, 1, now(), now())`,
        [id, owner.id, owner.storyId],
      );
      jobs.push({ id, token: owner.token });
    }
    return {
      app,
      jobs,
      setProgress: async (progress, ids) => {
        await sql.query('update narration.narration_job set progress = $1 where id = any($2::uuid[])', [progress, ids]);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

function graphql(url: string) {
  return async (query: string, variables: Record<string, unknown>, token?: string): Promise<Record<string, unknown>> => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: Record<string, unknown>; errors?: { message: string }[] };
    const userErrors = Object.values(body.data ?? {}).flatMap((field) => (field as { userErrors?: { message: string }[] } | null)?.userErrors ?? []);
    if (body.errors?.length || userErrors.length || !body.data) throw new Error(`setup request failed: ${JSON.stringify(body.errors ?? userErrors)}`);
    return body.data;
  };
}

async function deleteStreams(url: string, streams: string[]): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const manager = await jetstreamManager(nc);
    for (const stream of streams) await manager.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}
