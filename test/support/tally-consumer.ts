/**
 * A consumer process to kill: runs the tally consumer over JetStream until SIGKILLed.
 * Env: DATABASE_URL, NATS_URL, STREAM, SUBJECT_PREFIX, DURABLE.
 */
import { EventConsumer } from '../../platform/events/consumer.js';
import { JetStreamTransport } from '../../platform/events/jetstream.js';
import { createLogger } from '../../platform/log.js';
import { openTallyDatabase, tallyDefinition } from './tally.js';

const env = (name: string) => process.env[name] ?? (() => { throw new Error(`${name} is required`); })();
const logger = createLogger('silent');
const orm = await openTallyDatabase(env('DATABASE_URL'), logger);
const transport = await JetStreamTransport.connect({ url: env('NATS_URL'), stream: env('STREAM'), subjectPrefix: env('SUBJECT_PREFIX'), ackWaitMs: 1000 });
// Slow, large batches: a kill almost always lands while one is open.
const consumer = new EventConsumer({ definition: tallyDefinition(env('DURABLE'), { pauseMs: 2 }), orm, transport, logger, serviceName: 'tally', maxBatch: 50 });
await consumer.start();
process.stdout.write('ready\n');
