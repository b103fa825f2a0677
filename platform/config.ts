import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * The one typed reader of settings (STYLE 8). Every process reads its settings here, fails at
 * start naming the variable that is wrong, and gets no fallback secret: the all-in-one mode
 * generates its internal secret per start, so no literal secret exists anywhere.
 */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const port = z.coerce.number().int().min(0).max(65535);
const isCidr = (cidr: string) => {
  const [address = '', bits, extra] = cidr.split('/');
  return extra === undefined && /^\d+$/.test(bits ?? '') && isIP(address) !== 0 && Number(bits) <= (isIP(address) === 6 ? 128 : 32);
};
const url = z.string().url();
const seconds = z.coerce.number().int().positive();
const list = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean));

const schema = z.object({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(4000),
  DATABASE_URL: url.refine((u) => /^postgres(ql)?:\/\//.test(u), 'must be a postgres:// URL').optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  EMBEDDED_PG_PORT: port.default(54329),
  NATS_URL: z.string().regex(/^(nats|tls|wss?):\/\/.+/, 'must be a nats:// URL').optional(),
  EVENTS_STREAM: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').default('EVENTS'),
  EVENTS_SUBJECT_PREFIX: z.string().regex(/^([A-Za-z0-9_-]+\.)+$/, "dot-separated tokens ending with '.'").default('events.'),
  INTERNAL_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  CORS_ORIGINS: list.default(['*']),
  // Room for a story at its maximum (200,000 characters) in any script, JSON-escaped.
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(4 * 1024 * 1024),
  OUTBOX_SWEEP_MS: z.coerce.number().int().min(50).default(1000),
  ADMIN_EMAILS: list.default([]),
  JWT_ISSUER: z.string().min(1).default('storyloom-identity'),
  JWT_AUDIENCE: z.string().min(1).default('storyloom'),
  ACCESS_TOKEN_TTL_SECONDS: seconds.default(15 * 60),
  // A guest session has no refresh token (no account to refresh against): its access token
  // lasts as long as an invitee may take to write their part.
  GUEST_SESSION_TTL_SECONDS: seconds.default(7 * 24 * 3600),
  REFRESH_TOKEN_TTL_SECONDS: seconds.default(30 * 24 * 3600),
  // How long a step of a user deletion may stay silent before identity asks it again
  // (user.erasure.requested); also how often identity looks. Small values are for tests.
  IDENTITY_DELETION_RETRY_MS: z.coerce.number().int().min(50).default(60_000),
  GOOGLE_CLIENT_ID: z.string().optional(),
  GOOGLE_JWKS_URL: url.default('https://www.googleapis.com/oauth2/v3/certs'),
  GOOGLE_ISSUER: z.string().default('https://accounts.google.com'),
  MICROSOFT_CLIENT_ID: z.string().optional(),
  MICROSOFT_TENANT: z.string().default('common'),
  MICROSOFT_JWKS_URL: url.optional(),
  MICROSOFT_ISSUER: z.string().optional(),
  FACEBOOK_APP_ID: z.string().optional(),
  FACEBOOK_APP_SECRET: z.string().optional(),
  FACEBOOK_GRAPH_URL: url.default('https://graph.facebook.com/v19.0'),
  // Live updates (core NATS) and job queues (a JetStream work-queue stream), beside the events.
  LIVE_SUBJECT_PREFIX: z.string().regex(/^([A-Za-z0-9_-]+\.)+$/, "dot-separated tokens ending with '.'").default('live.'),
  JOBS_STREAM: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').default('JOBS'),
  JOBS_SUBJECT_PREFIX: z.string().regex(/^([A-Za-z0-9_-]+\.)+$/, "dot-separated tokens ending with '.'").default('jobs.'),
  // Distributed mode: the gateway finds each subgraph at SUBGRAPH_<NAME>_URL (gateway/subgraph-health.ts).
  SUBGRAPH_TIMEOUT_MS: z.coerce.number().int().min(50).default(10_000),
  // The circuit to a subgraph opens after this many failures in a row, and half-opens after SUBGRAPH_CIRCUIT_RESET_MS.
  SUBGRAPH_CIRCUIT_FAILURES: z.coerce.number().int().min(1).default(5),
  SUBGRAPH_CIRCUIT_RESET_MS: z.coerce.number().int().min(100).default(10_000),
  // Identical queries to a subgraph in flight at once, for the same caller, share one call.
  SUBGRAPH_DEDUPE: z.enum(['on', 'off']).default('on'),
  // How long the gateway waits at start for every subgraph's /ready before serving without the missing ones.
  SUBGRAPH_STARTUP_WAIT_MS: z.coerce.number().int().min(0).default(30_000),
  // The gateway's /ready and /metrics on a port of their own, kept off the public one (distributed mode).
  ADMIN_PORT: port.optional(),
  // On SIGTERM, how long a process answers /ready with 503 while still serving, before it drains.
  SHUTDOWN_DELAY_MS: z.coerce.number().int().min(0).max(120_000).default(0),
  // OpenTelemetry: spans go over OTLP/HTTP to <endpoint>/v1/traces when set.
  OTEL_EXPORTER_OTLP_ENDPOINT: url.optional(),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).default(50),
  SUBSCRIPTIONS_PER_USER: z.coerce.number().int().min(1).default(200),
  // Gateway protection (gateway/operation-limits.ts): an operation over any limit is refused
  // before it reaches a subgraph, each with its own code. Cost: the objects it could return,
  // list sizes taken from `first`/`last`.
  LIMIT_MAX_DEPTH: z.coerce.number().int().min(1).default(12),
  LIMIT_MAX_ALIASES: z.coerce.number().int().min(0).default(30),
  LIMIT_MAX_ROOT_FIELDS: z.coerce.number().int().min(1).default(20),
  LIMIT_MAX_TOKENS: z.coerce.number().int().min(100).default(2_000),
  LIMIT_MAX_COST: z.coerce.number().int().min(1).default(50_000),
  // Room for a story at its maximum (200,000 characters of 4-byte UTF-8) in the variables.
  MAX_VARIABLES_BYTES: z.coerce.number().int().min(1024).default(2 * 1024 * 1024),
  // How long one operation may run at the gateway; OPERATION_TIMEOUTS_MS overrides it by
  // operation name (`Name=ms,Other=ms`).
  OPERATION_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  OPERATION_TIMEOUTS_MS: z
    .string()
    .regex(/^(\s*\w+=[1-9]\d*\s*)(,\s*\w+=[1-9]\d*\s*)*$/, 'Name=ms pairs (ms > 0) separated by commas')
    .transform((s) => Object.fromEntries(s.split(',').map((pair) => pair.split('=').map((x) => x.trim())).map(([name, ms]) => [name!, Number(ms)])))
    .optional(),
  // Token buckets per user (an access token's subject) and per client address for anonymous
  // callers: a burst of *_BURST requests, refilled at *_PER_SECOND. In memory in the all-in-one
  // mode, shared by the gateway replicas through NATS KV in the distributed mode.
  RATE_LIMITS: z.enum(['on', 'off']).default('on'),
  RATE_LIMIT_USER_BURST: z.coerce.number().int().min(1).default(100),
  RATE_LIMIT_USER_PER_SECOND: z.coerce.number().positive().default(20),
  RATE_LIMIT_IP_BURST: z.coerce.number().int().min(1).default(200),
  RATE_LIMIT_IP_PER_SECOND: z.coerce.number().positive().default(50),
  // The NATS KV bucket the gateway replicas share their token buckets in (distributed mode).
  RATE_LIMIT_KV_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').default('rate_limits'),
  // Proxies in front of the gateway (an ingress, a load balancer) whose X-Forwarded-For is
  // trusted: the client's address is the entry that many from the right, the one the farthest
  // of them saw. 0 trusts no header.
  TRUSTED_PROXIES: z.coerce.number().int().min(0).max(10).default(0),
  // Where those proxies call from: the header is believed only from a peer in these CIDRs
  // (by default the private and loopback ranges a cluster's ingress calls from).
  TRUSTED_PROXY_CIDRS: z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .refine((cidrs) => cidrs.every(isCidr), 'comma-separated CIDRs (10.0.0.0/8, fc00::/7)')
    .default(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '::1/128', 'fc00::/7']),
  // Persisted operations (gateway/persisted-operations.json, made from ../shared/clients by
  // `npm run persisted`): `allow` takes ids and documents (APQ on); `only` takes nothing but the
  // manifest's operations (the mobile apps' production setting), and introspection while
  // PERSISTED_INTROSPECTION is true (the schema explorer).
  PERSISTED_OPERATIONS: z.enum(['allow', 'only']).default('allow'),
  // The schema explorer bundled ahead of time (npm run explorer:build; the Docker image sets it
  // to dist/explorer), relative to the repository's root. Unset: bundled when first opened.
  EXPLORER_ASSETS_DIR: z.string().min(1).optional(),
  PERSISTED_INTROSPECTION: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  // Where clients reach the gateway: the base of upload and download URLs.
  PUBLIC_URL: url.optional(),
  STORAGE_DRIVER: z.enum(['local', 's3']).default('local'),
  STORAGE_DIR: z.string().min(1).optional(),
  S3_BUCKET: z.string().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_ENDPOINT: url.optional(),
  S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  S3_ACCESS_KEY_ID: z.string().optional(),
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  // Narration: speech for stock voices (local | openai), for cloned voices and cloning (local | elevenlabs).
  NARRATION_STOCK_TTS: z.enum(['local', 'openai']).default('local'),
  NARRATION_VOICE_PROVIDER: z.enum(['local', 'elevenlabs']).default('local'),
  NARRATION_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  NARRATION_ACK_WAIT_MS: z.coerce.number().int().min(200).default(30_000),
  VOICE_SAMPLE_MAX_BYTES: z.coerce.number().int().min(1024).default(10 * 1024 * 1024),
  OPENAI_TTS_MODEL: z.string().min(1).default('gpt-4o-mini-tts'),
  // Video: providers tried in this order (runway, pika, luma, local); a job falls back to the next.
  VIDEO_PROVIDERS: list.pipe(z.array(z.enum(['runway', 'pika', 'luma', 'local'])).min(1)).default(['local']),
  VIDEO_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  VIDEO_ACK_WAIT_MS: z.coerce.number().int().min(200).default(30_000),
  VIDEO_DURATION_SECONDS: z.coerce.number().int().min(2).max(20).default(5),
  // Deadline and retries of one HTTP call to a video provider.
  VIDEO_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  VIDEO_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  VIDEO_MAX_BYTES: z.coerce.number().int().min(1024).default(200 * 1024 * 1024),
  // Per provider: the pause between two polls of a task (Runway asks for 5 s at least) and how long a task may take.
  RUNWAY_API_KEY: z.string().optional(),
  RUNWAY_BASE_URL: url.optional(),
  RUNWAY_MODEL: z.string().min(1).default('gen4.5'),
  RUNWAY_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(5_000),
  RUNWAY_TASK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10 * 60_000),
  FAL_KEY: z.string().optional(),
  FAL_QUEUE_URL: url.optional(),
  PIKA_MODEL: z.string().min(1).default('fal-ai/pika/v2.2/text-to-video'),
  PIKA_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(5_000),
  PIKA_TASK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10 * 60_000),
  LUMA_API_KEY: z.string().optional(),
  LUMA_BASE_URL: url.optional(),
  LUMA_MODEL: z.string().min(1).default('ray-2'),
  LUMA_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(5_000),
  LUMA_TASK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10 * 60_000),
  // Collaboration: where invitees open an invitation (the token is appended; default <PUBLIC_URL>/invite/), and how often expired invitations are swept.
  COLLABORATION_INVITE_URL: url.optional(),
  COLLABORATION_SWEEP_MS: z.coerce.number().int().min(100).default(60_000),
  // Notifications: providers per channel, tried in this order (the second is the fallback); `local` writes to a mailbox folder.
  NOTIFICATION_EMAIL_PROVIDERS: list.pipe(z.array(z.enum(['sendgrid', 'mailgun', 'local'])).min(1)).default(['local']),
  NOTIFICATION_SMS_PROVIDERS: list.pipe(z.array(z.enum(['twilio', 'messagebird', 'local'])).min(1)).default(['local']),
  NOTIFICATION_EMAIL_FROM: z.string().min(3).default('Storyloom <no-reply@storyloom.local>'),
  // Where `local` writes messages (default <DATA_DIR>/mailbox), and where FILE templates are read from.
  NOTIFICATION_MAILBOX_DIR: z.string().min(1).optional(),
  NOTIFICATION_TEMPLATE_DIR: z.string().min(1).optional(),
  // Links in messages open the web app here (default PUBLIC_URL, else the gateway's address).
  NOTIFICATION_APP_URL: url.optional(),
  NOTIFICATION_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  NOTIFICATION_POLL_MS: z.coerce.number().int().min(20).default(1_000),
  NOTIFICATION_LEASE_MS: z.coerce.number().int().min(500).default(60_000),
  // One provider call's deadline, and retries with backoff of transient failures before the fallback provider.
  NOTIFICATION_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  NOTIFICATION_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  NOTIFICATION_RETRY_BASE_MS: z.coerce.number().int().min(1).default(500),
  // Rounds of the whole chain a delivery gets (minutes apart) before it is FAILED.
  NOTIFICATION_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(5),
  // Per recipient: at most this many messages per hour (each channel counted apart).
  NOTIFICATION_RATE_LIMIT_PER_HOUR: z.coerce.number().int().min(1).default(30),
  NOTIFICATION_CAMPAIGN_BATCH: z.coerce.number().int().min(1).max(10_000).default(500),
  NOTIFICATION_URL_TEMPLATE_TTL_MS: z.coerce.number().int().min(0).default(5 * 60_000),
  SENDGRID_API_KEY: z.string().optional(),
  SENDGRID_BASE_URL: url.optional(),
  // The public key (base64 DER) SendGrid signs event webhooks with; without it the webhook refuses everything.
  SENDGRID_WEBHOOK_PUBLIC_KEY: z.string().optional(),
  MAILGUN_API_KEY: z.string().optional(),
  MAILGUN_DOMAIN: z.string().optional(),
  MAILGUN_BASE_URL: url.optional(),
  TWILIO_ACCOUNT_SID: z.string().optional(),
  TWILIO_AUTH_TOKEN: z.string().optional(),
  TWILIO_FROM: z.string().optional(),
  TWILIO_MESSAGING_SERVICE_SID: z.string().optional(),
  TWILIO_BASE_URL: url.optional(),
  MESSAGEBIRD_ACCESS_KEY: z.string().optional(),
  MESSAGEBIRD_ORIGINATOR: z.string().optional(),
  MESSAGEBIRD_BASE_URL: url.optional(),
  // The local renderer: ffmpeg from @ffmpeg-installer unless FFMPEG_PATH names another.
  FFMPEG_PATH: z.string().min(1).optional(),
  LOCAL_VIDEO_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(500),
  LOCAL_VIDEO_TASK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10 * 60_000),
  ELEVENLABS_API_KEY: z.string().optional(),
  ELEVENLABS_BASE_URL: url.optional(),
  ELEVENLABS_MODEL_ID: z.string().min(1).default('eleven_multilingual_v2'),
  ELEVENLABS_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  ELEVENLABS_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  // Story analysis: `local` works offline; `openai` needs OPENAI_API_KEY.
  STORY_ANALYSER: z.enum(['local', 'openai']).default('local'),
  STORY_ANALYSIS_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  STORY_ANALYSIS_POLL_MS: z.coerce.number().int().min(50).default(2000),
  STORY_ANALYSIS_LEASE_MS: z.coerce.number().int().min(500).default(60_000),
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_BASE_URL: url.optional(),
  OPENAI_ANALYSIS_MODEL: z.string().min(1).default('gpt-4o-mini'),
  OPENAI_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  OPENAI_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  // About 12k tokens at 4 characters a token: well inside the context of current models.
  OPENAI_MAX_INPUT_CHARS: z.coerce.number().int().min(1000).default(48_000),
  OPENAI_MAX_CHUNKS: z.coerce.number().int().min(1).max(50).default(8),
});

export type Env = z.infer<typeof schema>;

export interface Config extends Env {
  /** Secret the gateway signs forwarded identities with; generated when not set in all-in-one mode. */
  INTERNAL_SECRET: string;
}

/** Settings whose values never appear in an error message. */
const SECRET = /SECRET|PASSWORD|TOKEN|_KEY/;

/** How a bad value is quoted back: secrets not at all, URLs without their password. */
function shown(key: string, value: string | undefined): string {
  if (value === undefined) return 'nothing';
  if (SECRET.test(key)) return `a value of ${value.length} characters`;
  return JSON.stringify(value.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@'));
}

export interface LoadOptions {
  /** All-in-one mode may generate the internal secret; distributed processes must be given one. */
  generateSecrets?: boolean;
  /** Settings this process cannot run without (a distributed subgraph: DATABASE_URL, NATS_URL, PUBLIC_URL). */
  require?: (keyof Env)[];
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Config {
  // An empty variable means "not set" (`PORT=` must not become port 0).
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = schema.safeParse(given);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message} (got ${shown(String(i.path[0]), given[String(i.path[0])])})`);
  if (parsed.success) {
    const c = parsed.data;
    if (!c.INTERNAL_SECRET && !options.generateSecrets) problems.push('INTERNAL_SECRET: required (at least 32 characters)');
    for (const key of options.require ?? []) if (c[key] === undefined) problems.push(`${key}: required in distributed mode`);
    if (Boolean(c.FACEBOOK_APP_ID) !== Boolean(c.FACEBOOK_APP_SECRET))
      problems.push('FACEBOOK_APP_ID / FACEBOOK_APP_SECRET: set both or neither');
    if (c.STORY_ANALYSER === 'openai' && !c.OPENAI_API_KEY) problems.push('OPENAI_API_KEY: required when STORY_ANALYSER is openai');
    if (c.NARRATION_STOCK_TTS === 'openai' && !c.OPENAI_API_KEY) problems.push('OPENAI_API_KEY: required when NARRATION_STOCK_TTS is openai');
    if (c.NARRATION_VOICE_PROVIDER === 'elevenlabs' && !c.ELEVENLABS_API_KEY) problems.push('ELEVENLABS_API_KEY: required when NARRATION_VOICE_PROVIDER is elevenlabs');
    const videoKeys = { runway: 'RUNWAY_API_KEY', pika: 'FAL_KEY', luma: 'LUMA_API_KEY' } as const;
    for (const provider of c.VIDEO_PROVIDERS) {
      if (provider !== 'local' && !c[videoKeys[provider]]) problems.push(`${videoKeys[provider]}: required when VIDEO_PROVIDERS includes ${provider}`);
    }
    if (new Set(c.VIDEO_PROVIDERS).size !== c.VIDEO_PROVIDERS.length) problems.push('VIDEO_PROVIDERS: a provider is listed twice');
    const notificationNeeds = {
      sendgrid: ['SENDGRID_API_KEY'],
      mailgun: ['MAILGUN_API_KEY', 'MAILGUN_DOMAIN'],
      twilio: ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN'],
      messagebird: ['MESSAGEBIRD_ACCESS_KEY', 'MESSAGEBIRD_ORIGINATOR'],
    } as const;
    for (const [setting, providers] of [['NOTIFICATION_EMAIL_PROVIDERS', c.NOTIFICATION_EMAIL_PROVIDERS], ['NOTIFICATION_SMS_PROVIDERS', c.NOTIFICATION_SMS_PROVIDERS]] as const) {
      if (new Set(providers).size !== providers.length) problems.push(`${setting}: a provider is listed twice`);
      for (const provider of providers) {
        if (provider === 'local') continue;
        for (const key of notificationNeeds[provider]) if (!c[key]) problems.push(`${key}: required when ${setting} includes ${provider}`);
      }
    }
    if (c.NOTIFICATION_SMS_PROVIDERS.includes('twilio') && !c.TWILIO_FROM && !c.TWILIO_MESSAGING_SERVICE_SID)
      problems.push('TWILIO_FROM / TWILIO_MESSAGING_SERVICE_SID: one is required when NOTIFICATION_SMS_PROVIDERS includes twilio');
    if (c.STORAGE_DRIVER === 's3' && !c.S3_BUCKET) problems.push('S3_BUCKET: required when STORAGE_DRIVER is s3');
  }
  if (problems.length || !parsed.success) throw new ConfigError(problems);
  return { ...parsed.data, INTERNAL_SECRET: parsed.data.INTERNAL_SECRET ?? randomBytes(32).toString('base64url') };
}

/** For entry points: the configuration, or a message naming every bad setting and exit code 1. */
export function loadConfigOrExit(options: LoadOptions = {}): Config {
  try {
    return loadConfig(process.env, options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}
