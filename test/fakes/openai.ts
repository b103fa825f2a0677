import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { id3v2Tag, mp3Bytes, samplesPerFrame } from './elevenlabs.js';

/** A chat-completions request as the fake received it. */
export interface FakeOpenAIRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: ChatRequest;
}

/** The parts of a chat-completions body the fake reads; the rest is kept as sent. */
export interface ChatRequest {
  model?: unknown;
  messages?: { role: string; content: unknown }[];
  response_format?: { type?: unknown; json_schema?: { name?: unknown; strict?: unknown; schema?: JsonSchema } };
  [key: string]: unknown;
}

type JsonSchema = { type?: unknown; properties?: Record<string, JsonSchema>; required?: unknown; additionalProperties?: unknown; items?: JsonSchema; [key: string]: unknown };

/** An OpenAI error body: `{ error: { message, type, param, code } }`. */
export interface OpenAIErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

type Behaviour =
  | { kind: 'answer'; content: (request: FakeOpenAIRequest) => unknown }
  | { kind: 'refuse'; text: string }
  | { kind: 'finish'; reason: 'length' | 'content_filter' }
  | { kind: 'hang' }
  | { kind: 'stall' }
  | { kind: 'fail'; status: number; error: OpenAIErrorBody; headers: Record<string, string> | undefined }
  | { kind: 'malformed'; shape: 'schema' | 'json' };

/** A speech request (`POST /v1/audio/speech`) as the fake received it. */
export interface FakeSpeechRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: { model?: unknown; input?: unknown; voice?: unknown; response_format?: unknown; instructions?: unknown; [key: string]: unknown };
}

type SpeechBehaviour =
  | { kind: 'hang' }
  | { kind: 'stall' }
  | { kind: 'empty' }
  | { kind: 'fail'; status: number; error: OpenAIErrorBody; headers: Record<string, string> | undefined };

/** OpenAI's built-in voices (the SDK's `SpeechCreateParams.voice`). */
export const FAKE_SPEECH_VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'onyx', 'nova', 'sage', 'shimmer', 'verse', 'marin', 'cedar'];
export interface SpeechGate {
  /** Speech requests waiting at the gate now. */
  waiting(): number;
  release(count?: number): void;
  open(): void;
}

/** The speech endpoint's sample rate, for MP3 and WAV alike. */
export const FAKE_SPEECH_SAMPLE_RATE = 24_000;

/**
 * The audio the fake speaks for a request: about 15 characters a second. MP3 is MPEG-2 Layer III
 * behind an ID3v2 tag of the kind ffmpeg writes; WAV is 16-bit mono PCM whose RIFF and data sizes
 * are 0xFFFFFFFF, as OpenAI streams it (it cannot know the length when the header leaves).
 */
export function fakeSpeechAudio(input: string, voice: string, format: 'mp3' | 'wav'): Buffer {
  const seconds = input.length / 15;
  if (format === 'mp3') {
    const frames = Math.max(1, Math.ceil((seconds * FAKE_SPEECH_SAMPLE_RATE) / samplesPerFrame(FAKE_SPEECH_SAMPLE_RATE)));
    return mp3Bytes({ frames, sampleRate: FAKE_SPEECH_SAMPLE_RATE, bitrateKbps: 64, id3v2: id3v2Tag(), fill: Buffer.from(`${voice}:${input}`) });
  }
  const samples = Math.max(1, Math.round(seconds * FAKE_SPEECH_SAMPLE_RATE));
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0, 'latin1');
  wav.writeUInt32LE(0xffffffff, 4);
  wav.write('WAVEfmt ', 8, 'latin1');
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(FAKE_SPEECH_SAMPLE_RATE, 24);
  wav.writeUInt32LE(FAKE_SPEECH_SAMPLE_RATE * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36, 'latin1');
  wav.writeUInt32LE(0xffffffff, 40);
  const marks = Buffer.from(`${voice}:${input}`);
  for (let i = 0; i < samples; i++) wav.writeInt16LE((marks[i % marks.length]! - 64) * 16, 44 + i * 2);
  return wav;
}

export interface FakeOpenAI {
  /** Base URL for the SDK, with `/v1` like https://api.openai.com/v1. */
  url: string;
  /** The key the fake accepts as `Authorization: Bearer <key>`. */
  apiKey: string;
  /** Every request received, in order, including rejected ones. */
  requests: FakeOpenAIRequest[];
  /**
   * The next request is answered with `content(request)` as the JSON message content. Each of
   * these queues one behaviour (or `times`); with the queue empty the fake answers by default:
   * see `defaultContent`.
   */
  answer(content: (request: FakeOpenAIRequest) => unknown, times?: number): void;
  /** The model declines: `message.refusal` set, `content` null. */
  refuse(text: string, times?: number): void;
  /** A completion cut off (`length`) or stopped by the content filter. */
  finish(reason: 'length' | 'content_filter', times?: number): void;
  /** Accepts the request and never answers (until `close`). */
  hang(times?: number): void;
  /** Sends the status and headers and part of the body, then never the rest (until `close`). */
  stall(times?: number): void;
  /**
   * An error status with OpenAI's error body. 429 and 5xx carry `retry-after-ms: 0` unless
   * `headers` say otherwise, so the SDK's retries are immediate: tests exercise the retry, not
   * the backoff.
   */
  fail(status: number, times?: number, error?: Partial<OpenAIErrorBody>, headers?: Record<string, string>): void;
  /** A 200 whose content breaks the requested schema, or is not JSON at all. */
  malformed(shape?: 'schema' | 'json', times?: number): void;
  /** Replaces the answer used when nothing is queued. */
  setDefault(content: (request: FakeOpenAIRequest) => unknown): void;
  /** Resolves once `count` requests have arrived (to act while one hangs, without sleeping). */
  waitForRequests(count: number): Promise<void>;
  /** Stops listening and destroys every open socket, hung ones included. */
  close(): Promise<void>;
  /** Speech requests (`POST /v1/audio/speech`), in order; each is also in `requests`. */
  speechRequests: FakeSpeechRequest[];
  /**
   * Queued for speech requests only (chat completions have their own queue above): an error
   * status with OpenAI's error body, `retry-after-ms: 0` on 429 and 5xx unless `headers` say
   * otherwise.
   */
  speechFail(status: number, times?: number, error?: Partial<OpenAIErrorBody>, headers?: Record<string, string>): void;
  /** A speech request accepted and never answered (until `close`). */
  speechHang(times?: number): void;
  /** Speech headers and half the audio, then never the rest (until `close`). */
  speechStall(times?: number): void;
  /** A 200 speech answer with no audio in it. */
  speechEmpty(times?: number): void;
  /**
   * Closes a gate in front of every speech answer: requests wait (as a slow model would) until
   * `release(n)` lets n through, in arrival order, or `open()` lets everything through. Tests
   * use it to see a job between its steps without sleeping.
   */
  speechGate(): SpeechGate;
}

const STOP_WORDS = new Set(['I', 'The', 'A', 'An', 'And', 'But', 'Then', 'When', 'She', 'He', 'They', 'It', 'We', 'You', 'Title', 'Part', 'Characters']);

/** The text of the last user message, inside `<story>` tags when it has them. */
export function storyTextOf(request: FakeOpenAIRequest): string {
  const user = [...(request.body.messages ?? [])].reverse().find((m) => m.role === 'user');
  const text = typeof user?.content === 'string' ? user.content : '';
  return /<story>([\s\S]*)<\/story>/.exec(text)?.[1] ?? text;
}

/** Capitalised words not at the start of a sentence: a deterministic stand-in for names. */
export function namesIn(text: string): string[] {
  const names: string[] = [];
  for (const match of text.matchAll(/(?<![.!?:"“\n]\s*|^\s*|\p{L})\p{Lu}\p{Ll}+(?!\p{L})/gu)) {
    if (!STOP_WORDS.has(match[0]) && !names.includes(match[0])) names.push(match[0]);
  }
  return names;
}

/**
 * The default answer, derived from the request so it is deterministic and valid for the schema
 * asked: a `{ summary }` schema gets a summary that counts the parts it was given; an analysis
 * schema gets the names found in the story as characters, genre 'adventure', joy 0.6 and fear 0.3.
 */
export function defaultContent(request: FakeOpenAIRequest): unknown {
  const properties = request.body.response_format?.json_schema?.schema?.properties ?? {};
  if (!('genre' in properties)) {
    const user = [...(request.body.messages ?? [])].reverse().find((m) => m.role === 'user');
    const parts = typeof user?.content === 'string' ? (user.content.match(/^Part \d+:/gm)?.length ?? 0) : 0;
    return { summary: `The whole story, condensed from ${parts} parts.` };
  }
  const story = storyTextOf(request);
  const names = namesIn(story);
  return {
    summary: `A story of ${story.trim().split(/\s+/).length} words${names.length ? ` about ${names.join(', ')}` : ''}.`,
    genre: 'adventure',
    characters: names.map((name) => ({ name, description: `${name} appears in the story.`, traits: ['curious'] })),
    emotions: [
      { label: 'joy', intensity: 0.6 },
      { label: 'fear', intensity: 0.3 },
    ],
  };
}

const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': `req_${randomBytes(12).toString('hex')}`, ...headers });
  res.end(JSON.stringify(body));
};
const error = (message: string, type: string, param: string | null = null, code: string | null = null): { error: OpenAIErrorBody } => ({
  error: { message, type, param, code },
});

const DEFAULT_ERRORS: Record<number, OpenAIErrorBody> = {
  400: { message: 'Invalid request.', type: 'invalid_request_error', param: null, code: null },
  401: { message: 'Incorrect API key provided: sk-fak*********7890. You can find your API key at https://platform.openai.com/account/api-keys.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
  403: { message: 'You are not allowed to sample from this model', type: 'invalid_request_error', param: null, code: null },
  404: { message: 'The model does not exist or you do not have access to it.', type: 'invalid_request_error', param: null, code: 'model_not_found' },
  408: { message: 'Request timed out.', type: 'timeout', param: null, code: null },
  429: { message: 'Rate limit reached for requests. Please try again in 1ms.', type: 'requests', param: null, code: 'rate_limit_exceeded' },
  500: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null },
  503: { message: 'The engine is currently overloaded, please try again later.', type: 'server_error', param: null, code: null },
};

/**
 * What the real API says of a strict schema it cannot enforce: every object must list all its
 * properties as required and forbid others. Returns the first problem, or null.
 */
function strictSchemaProblem(schema: JsonSchema | undefined, name: string, path: string[] = []): string | null {
  if (!schema || typeof schema !== 'object') return `Invalid schema for response_format '${name}': schema must be a JSON Schema of 'type: "object"'.`;
  const context = `In context=(${path.map((p) => `'${p}'`).join(', ')})`;
  if (schema.type === 'object') {
    if (schema.additionalProperties !== false) {
      return `Invalid schema for response_format '${name}': ${context}, 'additionalProperties' is required to be supplied and to be false.`;
    }
    const keys = Object.keys(schema.properties ?? {});
    const required = Array.isArray(schema.required) ? schema.required : [];
    const missing = keys.find((k) => !required.includes(k));
    if (missing !== undefined) {
      return `Invalid schema for response_format '${name}': ${context}, 'required' is required to be supplied and to be an array including every key in properties. Missing '${missing}'.`;
    }
    for (const key of keys) {
      const problem = strictSchemaProblem(schema.properties![key], name, [...path, 'properties', key]);
      if (problem) return problem;
    }
  }
  if (schema.type === 'array' && schema.items) return strictSchemaProblem(schema.items, name, [...path, 'items']);
  return null;
}

/**
 * A fake OpenAI API (`POST /v1/chat/completions` with Structured Outputs, `POST /v1/audio/speech`)
 * on loopback, speaking the real wire format, with behaviour queued per test.
 */
export async function startFakeOpenAI(options: { apiKey?: string; modelSnapshot?: string } = {}): Promise<FakeOpenAI> {
  const apiKey = options.apiKey ?? `sk-fake-${randomBytes(12).toString('hex')}`;
  const requests: FakeOpenAIRequest[] = [];
  const queue: Behaviour[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let fallback: (request: FakeOpenAIRequest) => unknown = defaultContent;

  const enqueue = (behaviour: Behaviour, times = 1) => {
    for (let i = 0; i < times; i++) queue.push(behaviour);
  };
  const record = (request: FakeOpenAIRequest) => {
    requests.push(request);
    for (const waiter of waiters.filter((w) => requests.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };

  const completion = (request: FakeOpenAIRequest, message: { content: string | null; refusal: string | null }, finishReason: string) => {
    const model = options.modelSnapshot ?? String(request.body.model);
    const promptChars = JSON.stringify(request.body.messages ?? []).length;
    const completionTokens = Math.ceil((message.content ?? message.refusal ?? '').length / 4);
    return {
      id: `chatcmpl-${randomBytes(15).toString('base64url')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message: { role: 'assistant', ...message, annotations: [] }, logprobs: null, finish_reason: finishReason }],
      usage: {
        prompt_tokens: Math.ceil(promptChars / 4),
        completion_tokens: completionTokens,
        total_tokens: Math.ceil(promptChars / 4) + completionTokens,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      },
      service_tier: 'default',
      system_fingerprint: 'fp_fake0000',
    };
  };

  const speechRequests: FakeSpeechRequest[] = [];
  const speechQueue: SpeechBehaviour[] = [];
  const enqueueSpeech = (behaviour: SpeechBehaviour, times = 1) => {
    for (let i = 0; i < times; i++) speechQueue.push(behaviour);
  };

  let gate: { held: (() => void)[]; open: boolean } | null = null;

  /** `POST /v1/audio/speech`: validated like the real endpoint, answered with raw audio bytes. */
  const speech = (request: FakeSpeechRequest, res: ServerResponse) => {
    speechRequests.push(request);
    if (gate && !gate.open) {
      gate.held.push(() => answerSpeech(request, res));
      return;
    }
    answerSpeech(request, res);
  };

  const answerSpeech = (request: FakeSpeechRequest, res: ServerResponse) => {
    const { model, input, voice } = request.body;
    const format = request.body.response_format ?? 'mp3';
    if (typeof model !== 'string' || !model) return send(res, 400, error('you must provide a model parameter', 'invalid_request_error'));
    if (typeof input !== 'string') return send(res, 400, error("Invalid type for 'input': expected a string.", 'invalid_request_error', 'input', 'invalid_type'));
    if (input.length === 0) {
      return send(res, 400, error("Invalid 'input': empty string. Expected a string with minimum length 1, but got an empty string instead.", 'invalid_request_error', 'input', 'empty_string'));
    }
    if (input.length > 4096) {
      return send(res, 400, error(`Invalid 'input': string too long. Expected a string with maximum length 4096, but got a string with length ${input.length} instead.`, 'invalid_request_error', 'input', 'string_above_max_length'));
    }
    if (typeof voice !== 'string' || !FAKE_SPEECH_VOICES.includes(voice)) {
      return send(res, 400, error(`Invalid value for 'voice': '${String(voice)}'. Supported values are: ${FAKE_SPEECH_VOICES.map((v) => `'${v}'`).join(', ')}.`, 'invalid_request_error', 'voice', 'invalid_value'));
    }
    if (!['mp3', 'opus', 'aac', 'flac', 'wav', 'pcm'].includes(String(format))) {
      return send(res, 400, error(`Invalid value for 'response_format': '${String(format)}'.`, 'invalid_request_error', 'response_format', 'invalid_value'));
    }
    if (format !== 'mp3' && format !== 'wav') {
      // The real API serves these; the fake exists for mp3 and wav narration only.
      return send(res, 400, error('This fake serves mp3 and wav only.', 'invalid_request_error', 'response_format'));
    }
    const contentType = format === 'mp3' ? 'audio/mpeg' : 'audio/wav';
    const audio = fakeSpeechAudio(input, voice, format);
    const behaviour = speechQueue.shift();
    switch (behaviour?.kind) {
      case 'hang':
        return; // close() destroys the socket
      case 'stall':
        res.writeHead(200, { 'content-type': contentType, 'content-length': String(audio.length) });
        res.write(audio.subarray(0, Math.floor(audio.length / 2)));
        return;
      case 'empty':
        res.writeHead(200, { 'content-type': contentType, 'content-length': '0' });
        return res.end();
      case 'fail': {
        const retryable = behaviour.status === 429 || behaviour.status >= 500;
        return send(res, behaviour.status, { error: behaviour.error }, behaviour.headers ?? (retryable ? { 'retry-after-ms': '0' } : {}));
      }
      case undefined:
        // Streamed like the real endpoint: chunked, no content-length.
        res.writeHead(200, { 'content-type': contentType, 'x-request-id': `req_${randomBytes(12).toString('hex')}` });
        res.write(audio.subarray(0, 1024));
        return res.end(audio.subarray(1024));
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://fake').pathname;
      let body: ChatRequest;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ChatRequest;
      } catch {
        body = {};
      }
      const request: FakeOpenAIRequest = { method: req.method ?? '', path, headers: req.headers, body };
      record(request);

      if (req.headers.authorization !== `Bearer ${apiKey}`) {
        // Checked before anything else, like the real API.
        const e = DEFAULT_ERRORS[401]!;
        return send(res, 401, error(e.message, e.type, e.param, e.code));
      }
      if (req.method === 'POST' && path === '/v1/audio/speech') return speech(request as FakeSpeechRequest, res);
      if (req.method !== 'POST' || path !== '/v1/chat/completions') {
        return send(res, 404, error(`Invalid URL (${req.method} ${path})`, 'invalid_request_error'));
      }
      if (typeof body.model !== 'string' || !body.model) {
        return send(res, 400, error('you must provide a model parameter', 'invalid_request_error'));
      }
      if (!Array.isArray(body.messages) || body.messages.length === 0) {
        return send(res, 400, error("Invalid 'messages': empty array. Expected an array with minimum length 1.", 'invalid_request_error', 'messages', 'empty_array'));
      }
      const format = body.response_format;
      const jsonSchema = format?.json_schema;
      if (format?.type !== 'json_schema' || !jsonSchema || jsonSchema.strict !== true || !jsonSchema.schema) {
        // The real API accepts other formats; this fake exists for strict structured outputs only.
        return send(res, 400, error("This fake requires response_format { type: 'json_schema', json_schema: { name, schema, strict: true } }.", 'invalid_request_error', 'response_format'));
      }
      if (typeof jsonSchema.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(jsonSchema.name)) {
        return send(res, 400, error("Invalid 'response_format.json_schema.name': string does not match pattern.", 'invalid_request_error', 'response_format.json_schema.name', 'invalid_value'));
      }
      const problem = strictSchemaProblem(jsonSchema.schema, jsonSchema.name);
      if (problem) return send(res, 400, error(problem, 'invalid_request_error', 'response_format', null));

      const behaviour: Behaviour = queue.shift() ?? { kind: 'answer', content: fallback };
      switch (behaviour.kind) {
        case 'answer':
          return send(res, 200, completion(request, { content: JSON.stringify(behaviour.content(request)), refusal: null }, 'stop'));
        case 'refuse':
          return send(res, 200, completion(request, { content: null, refusal: behaviour.text }, 'stop'));
        case 'finish': {
          // A cut-off answer is partial JSON; a filtered one is empty.
          const content = behaviour.reason === 'length' ? JSON.stringify(fallback(request)).slice(0, 20) : '';
          return send(res, 200, completion(request, { content, refusal: null }, behaviour.reason));
        }
        case 'malformed': {
          const content = behaviour.shape === 'json' ? 'Sure! Here is the analysis: {summary: ' : JSON.stringify({ summary: 42, genre: 'poetry', characters: 'many' });
          return send(res, 200, completion(request, { content, refusal: null }, 'stop'));
        }
        case 'fail': {
          const retryable = behaviour.status === 429 || behaviour.status >= 500;
          return send(res, behaviour.status, { error: behaviour.error }, behaviour.headers ?? (retryable ? { 'retry-after-ms': '0' } : {}));
        }
        case 'hang':
          return; // close() destroys the socket
        case 'stall': {
          const text = JSON.stringify(completion(request, { content: JSON.stringify(fallback(request)), refusal: null }, 'stop'));
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
          res.write(text.slice(0, Math.floor(text.length / 2)));
          return;
        }
      }
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    apiKey,
    requests,
    answer: (content, times) => enqueue({ kind: 'answer', content }, times),
    refuse: (text, times) => enqueue({ kind: 'refuse', text }, times),
    finish: (reason, times) => enqueue({ kind: 'finish', reason }, times),
    hang: (times) => enqueue({ kind: 'hang' }, times),
    stall: (times) => enqueue({ kind: 'stall' }, times),
    fail(status, times, override, headers) {
      const base = DEFAULT_ERRORS[status] ?? { message: `Error ${status}`, type: status >= 500 ? 'server_error' : 'invalid_request_error', param: null, code: null };
      enqueue({ kind: 'fail', status, error: { ...base, ...override }, headers }, times);
    },
    malformed: (shape = 'schema', times) => enqueue({ kind: 'malformed', shape }, times),
    setDefault(content) {
      fallback = content;
    },
    waitForRequests: (count) =>
      requests.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ count, resolve })),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // Hung and stalled requests never finish on their own, and fetch keeps idle sockets alive.
        server.closeAllConnections();
      }),
    speechRequests,
    speechFail(status, times, override, headers) {
      const base = DEFAULT_ERRORS[status] ?? { message: `Error ${status}`, type: status >= 500 ? 'server_error' : 'invalid_request_error', param: null, code: null };
      enqueueSpeech({ kind: 'fail', status, error: { ...base, ...override }, headers }, times);
    },
    speechHang: (times) => enqueueSpeech({ kind: 'hang' }, times),
    speechStall: (times) => enqueueSpeech({ kind: 'stall' }, times),
    speechEmpty: (times) => enqueueSpeech({ kind: 'empty' }, times),
    speechGate: () => {
      const current = { held: [] as (() => void)[], open: false };
      gate = current;
      return {
        waiting: () => current.held.length,
        release: (count = 1) => {
          for (const answer of current.held.splice(0, count)) answer();
        },
        open: () => {
          current.open = true;
          for (const answer of current.held.splice(0)) answer();
        },
      };
    },
  };
}
