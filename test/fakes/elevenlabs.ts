import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Tiny valid MP3s, built byte by byte (ISO/IEC 11172-3 §2.4.1.3, 13818-3 for the half rates):
// Layer III frames whose side information is zero (no main data: a decoder plays silence) and
// whose remaining bytes are ancillary data, which decoders skip. Shared with the OpenAI fake and
// the audio unit tests, and written here from the standard rather than from the code under test.
// ---------------------------------------------------------------------------------------------

const LAYER3_KBPS = {
  mpeg1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  mpeg2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
const RATES = { mpeg1: [44100, 48000, 32000], mpeg2: [22050, 24000, 16000] };

export interface Mp3FrameOptions {
  /** 44100, 48000, 32000 (MPEG-1) or 22050, 24000, 16000 (MPEG-2). 44100 when absent. */
  sampleRate?: number;
  /** A Layer III bitrate of that version; 128 (MPEG-1) or 64 (MPEG-2) when absent. */
  bitrateKbps?: number;
  /** One channel (the default) or joint stereo. */
  mono?: boolean;
  /** Bytes repeated over the ancillary data (after the side information); zeros when absent. */
  fill?: Buffer;
  /** An Info tag where a LAME encoder puts it (the frame then describes the file, not audio). */
  info?: { frames: number };
}

/** Samples one frame holds: 1152 for MPEG-1, 576 for MPEG-2. */
export function samplesPerFrame(sampleRate = 44100): number {
  return RATES.mpeg1.includes(sampleRate) ? 1152 : 576;
}

/** One Layer III frame, without padding and without CRC. */
export function mp3Frame(options: Mp3FrameOptions = {}): Buffer {
  const sampleRate = options.sampleRate ?? 44100;
  const version = RATES.mpeg1.includes(sampleRate) ? 'mpeg1' : RATES.mpeg2.includes(sampleRate) ? 'mpeg2' : undefined;
  if (!version) throw new RangeError(`mp3Frame: unsupported sample rate ${sampleRate}`);
  const kbps = options.bitrateKbps ?? (version === 'mpeg1' ? 128 : 64);
  const bitrateIndex = LAYER3_KBPS[version].indexOf(kbps);
  if (bitrateIndex < 1) throw new RangeError(`mp3Frame: ${kbps} kbps is not a Layer III bitrate of ${version}`);
  const mono = options.mono ?? true;
  const length = Math.floor(((version === 'mpeg1' ? 144 : 72) * kbps * 1000) / sampleRate);
  const frame = Buffer.alloc(length);
  frame[0] = 0xff;
  // sync (11 bits), version (11 = MPEG-1, 10 = MPEG-2), layer (01 = III), protection bit 1 = no CRC
  frame[1] = version === 'mpeg1' ? 0xfb : 0xf3;
  frame[2] = (bitrateIndex << 4) | (RATES[version].indexOf(sampleRate) << 2);
  frame[3] = mono ? 0xc0 : 0x40; // channel mode 11 = mono, 01 = joint stereo
  const sideInfo = version === 'mpeg1' ? (mono ? 17 : 32) : mono ? 9 : 17;
  const start = 4 + sideInfo;
  if (options.info) {
    frame.write('Info', start, 'latin1');
    frame.writeUInt32BE(0x1, start + 4); // flags: the frame count follows
    frame.writeUInt32BE(options.info.frames, start + 8);
  } else if (options.fill?.length) {
    for (let i = start; i < length; i++) frame[i] = options.fill[(i - start) % options.fill.length]!;
  }
  return frame;
}

/** An ID3v2.4 tag with one text frame (TSSE by default, as ffmpeg writes "Lavf..."). */
export function id3v2Tag(text = 'Lavf61.7.100', frameId = 'TSSE', padding = 0): Buffer {
  const value = Buffer.concat([Buffer.from([0x03]), Buffer.from(text, 'utf8'), Buffer.alloc(1)]); // 0x03 = UTF-8
  const frameHeader = Buffer.alloc(10);
  frameHeader.write(frameId, 0, 'latin1');
  frameHeader.set(syncsafe(value.length), 4);
  const body = Buffer.concat([frameHeader, value, Buffer.alloc(padding)]);
  const header = Buffer.from([0x49, 0x44, 0x33, 0x04, 0x00, 0x00, ...syncsafe(body.length)]);
  return Buffer.concat([header, body]);
}

function syncsafe(n: number): number[] {
  return [(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f];
}

/** An ID3v1 trailer: "TAG" and 125 bytes of fixed fields. */
export function id3v1Tag(title = 'Storyloom'): Buffer {
  const tag = Buffer.alloc(128);
  tag.write('TAG', 0, 'latin1');
  tag.write(title.slice(0, 30), 3, 'latin1');
  tag[127] = 12; // genre: Other
  return tag;
}

export interface Mp3Options extends Omit<Mp3FrameOptions, 'info'> {
  frames: number;
  /** An ID3v2 tag in front: `true` for the default one, or the tag's bytes. */
  id3v2?: boolean | Buffer;
  /** An ID3v1 trailer at the end. */
  id3v1?: boolean;
  /** An Info frame first, counting the audio frames, as LAME and ffmpeg write. */
  xing?: boolean;
}

/** A whole MP3 file of `frames` audio frames. */
export function mp3Bytes(options: Mp3Options): Buffer {
  const { frames, id3v2, id3v1, xing, ...frame } = options;
  const parts: Buffer[] = [];
  if (id3v2) parts.push(id3v2 === true ? id3v2Tag() : id3v2);
  if (xing) parts.push(mp3Frame({ ...frame, fill: undefined, info: { frames } }));
  const one = mp3Frame(frame);
  for (let i = 0; i < frames; i++) parts.push(one);
  if (id3v1) parts.push(id3v1Tag());
  return Buffer.concat(parts);
}

/** Milliseconds of audio in `frames` frames. */
export function mp3FramesMs(frames: number, sampleRate = 44100): number {
  return Math.round(((frames * samplesPerFrame(sampleRate)) / sampleRate) * 1000);
}

// ---------------------------------------------------------------------------------------------
// The fake ElevenLabs API
// ---------------------------------------------------------------------------------------------

/** A part of a multipart request that carried a file. */
export interface FakeElevenLabsFile {
  field: string;
  filename: string;
  contentType: string;
  size: number;
  sha256: string;
}

/** A request as the fake received it. */
export interface FakeElevenLabsRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (text-to-speech), undefined when it was not JSON. */
  json?: Record<string, unknown>;
  /** The parsed multipart body (voices/add): text fields (a name may repeat) and files. */
  form?: { fields: Record<string, string[]>; files: FakeElevenLabsFile[] };
}

/** ElevenLabs' error detail: `{ detail: { status, message } }`. */
export interface ElevenLabsErrorDetail {
  status: string;
  message: string;
}

type Behaviour =
  | { kind: 'hang' }
  | { kind: 'stall' }
  | { kind: 'malformed' }
  | { kind: 'fail'; status: number; body: unknown; headers: Record<string, string> | undefined };

/** Premade voices every account has (Rachel, Adam): the fake knows them from the start. */
export const FAKE_PREMADE_VOICES = ['21m00Tcm4TlvDq8ikWAM', 'pNInz6obpgDQGcFmaJgB'] as const;

/** The output formats the real endpoint takes; the fake serves the MP3 ones. */
const OUTPUT_FORMATS = /^(?:mp3_(?:22050_32|24000_48|44100_(?:32|64|96|128|192))|pcm_\d+|wav_\d+|ulaw_8000|alaw_8000|opus_48000_\d+)$/;

export interface FakeElevenLabs {
  /** Base URL for the SDK, without `/v1`, like https://api.elevenlabs.io. */
  url: string;
  /** The key the fake accepts as `xi-api-key`. */
  apiKey: string;
  /** Every request received, in order, including rejected ones. */
  requests: FakeElevenLabsRequest[];
  /** Voice ids that text-to-speech accepts: the premade ones, those added, those cloned (until deleted). */
  voices: Set<string>;
  /** Voice ids deleted (`DELETE /v1/voices/{voice_id}` answered 200), in order. */
  deletedVoices: string[];
  /**
   * The next request (to any route) gets this error status with ElevenLabs' error body
   * (`{ detail: { status, message } }`; for a 422, FastAPI's `{ detail: [{ loc, msg, type }] }`). 429 and
   * 5xx carry `retry-after: 0` unless `headers` say otherwise, so retries are immediate: tests
   * exercise the retry, not the backoff.
   */
  fail(status: number, times?: number, detail?: Partial<ElevenLabsErrorDetail>, headers?: Record<string, string>): void;
  /** Accepts the request and never answers (until `close`). */
  hang(times?: number): void;
  /** Sends the status, headers and half the body, then never the rest (until `close`). */
  stall(times?: number): void;
  /** A 200 that is not what the route promises: bytes that are not MP3, or a voice without `voice_id`. */
  malformed(times?: number): void;
  /** Resolves once `count` requests have arrived (to act while one hangs, without sleeping). */
  waitForRequests(count: number): Promise<void>;
  /** Stops listening and destroys every open socket, hung ones included. */
  close(): Promise<void>;
}

/** The audio the fake speaks for a text: a frame per 26 ms at about 15 characters a second, marked with the text's digest. */
export function fakeSpeech(text: string, voiceId: string, outputFormat = 'mp3_44100_128'): Buffer {
  const [, rate, kbps] = /^mp3_(\d+)_(\d+)$/.exec(outputFormat) ?? [];
  const sampleRate = Number(rate);
  const frameMs = (samplesPerFrame(sampleRate) / sampleRate) * 1000;
  const frames = Math.max(1, Math.ceil(((text.length / 15) * 1000) / frameMs));
  const fill = createHash('sha256').update(`${voiceId}\n${text}`).digest();
  return mp3Bytes({ frames, sampleRate, bitrateKbps: Number(kbps), fill });
}

const DEFAULT_ERRORS: Record<number, ElevenLabsErrorDetail> = {
  400: { status: 'invalid_request', message: 'The request is invalid.' },
  401: { status: 'invalid_api_key', message: 'Invalid API key' },
  403: { status: 'missing_permissions', message: 'The API key you used is missing the permission to execute this operation.' },
  404: { status: 'not_found', message: 'Not found.' },
  429: { status: 'too_many_concurrent_requests', message: 'Too many concurrent requests. Your plan allows 2 concurrent requests.' },
  500: { status: 'something_went_wrong', message: 'We are sorry, something went wrong. You are not charged for this request.' },
  503: { status: 'system_busy', message: 'The system is experiencing heavy traffic, please try again.' },
};

const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': randomBytes(10).toString('hex'), ...headers });
  res.end(JSON.stringify(body));
};
/** FastAPI's validation error, which ElevenLabs answers with a 422. */
const invalid = (loc: string[], msg: string, type: string, input: unknown) => ({ detail: [{ type, loc, msg, input }] });

/**
 * A fake ElevenLabs API on loopback, speaking the real wire format: `POST
 * /v1/text-to-speech/{voice_id}?output_format=...` (JSON `{ text, model_id }` -> MP3 bytes,
 * `audio/mpeg`), `POST /v1/voices/add` (multipart -> `{ voice_id, requires_verification }`) and
 * `DELETE /v1/voices/{voice_id}` (-> `{ status: "ok" }`; an unknown voice is ElevenLabs' 400
 * `voice_does_not_exist`), all behind `xi-api-key`, with behaviour queued per test.
 */
export async function startFakeElevenLabs(options: { apiKey?: string } = {}): Promise<FakeElevenLabs> {
  const apiKey = options.apiKey ?? `sk_${randomBytes(24).toString('hex')}`;
  const requests: FakeElevenLabsRequest[] = [];
  const queue: Behaviour[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const voices = new Set<string>(FAKE_PREMADE_VOICES);
  const deletedVoices: string[] = [];
  let cloned = 0;

  const enqueue = (behaviour: Behaviour, times = 1) => {
    for (let i = 0; i < times; i++) queue.push(behaviour);
  };
  const record = (request: FakeElevenLabsRequest) => {
    requests.push(request);
    for (const waiter of waiters.filter((w) => requests.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  /** The queued behaviour, if it is not a plain answer; true when it has answered. */
  const misbehave = (res: ServerResponse, behaviour: Behaviour | undefined, body: Buffer, contentType: string): boolean => {
    switch (behaviour?.kind) {
      case undefined:
      case 'malformed':
        return false;
      case 'hang':
        return true; // close() destroys the socket
      case 'stall':
        res.writeHead(200, { 'content-type': contentType, 'content-length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        return true;
      case 'fail': {
        const retryable = behaviour.status === 429 || behaviour.status >= 500;
        send(res, behaviour.status, behaviour.body, behaviour.headers ?? (retryable ? { 'retry-after': '0' } : {}));
        return true;
      }
    }
  };

  const textToSpeech = (request: FakeElevenLabsRequest, res: ServerResponse, voiceId: string) => {
    const outputFormat = request.query.output_format ?? 'mp3_44100_128';
    if (!OUTPUT_FORMATS.test(outputFormat)) {
      return send(res, 422, invalid(['query', 'output_format'], `Input should be a valid output format`, 'enum', outputFormat));
    }
    if (!outputFormat.startsWith('mp3_')) {
      // The real API serves these; the fake exists for MP3 narration only.
      return send(res, 400, { detail: { status: 'invalid_output_format', message: 'This fake serves MP3 output formats only.' } });
    }
    const body = request.json;
    if (!body) return send(res, 422, invalid(['body'], 'JSON decode error', 'json_invalid', null));
    if (!('text' in body)) return send(res, 422, invalid(['body', 'text'], 'Field required', 'missing', body));
    if (typeof body.text !== 'string') return send(res, 422, invalid(['body', 'text'], 'Input should be a valid string', 'string_type', body.text));
    if (!voices.has(voiceId)) {
      return send(res, 404, { detail: { status: 'voice_not_found', message: `A voice with the voice_id ${voiceId} was not found.` } });
    }
    const behaviour = queue.shift();
    const audio = behaviour?.kind === 'malformed' ? Buffer.from('<html>not audio</html>') : fakeSpeech(body.text, voiceId, outputFormat);
    if (misbehave(res, behaviour, audio, 'audio/mpeg')) return;
    // The real endpoint streams: chunked, no content-length.
    res.writeHead(200, { 'content-type': 'audio/mpeg', 'request-id': randomBytes(10).toString('hex') });
    res.write(audio.subarray(0, 1000));
    res.end(audio.subarray(1000));
  };

  const addVoice = (request: FakeElevenLabsRequest, res: ServerResponse) => {
    const form = request.form;
    if (!form) return send(res, 422, invalid(['body'], 'Expected multipart/form-data', 'value_error', null));
    const name = form.fields.name?.[0];
    if (name === undefined) return send(res, 422, invalid(['body', 'name'], 'Field required', 'missing', null));
    const files = form.files.filter((f) => f.field === 'files');
    if (files.length === 0) return send(res, 422, invalid(['body', 'files'], 'Field required', 'missing', null));
    const labels = form.fields.labels?.[0];
    if (labels !== undefined) {
      try {
        JSON.parse(labels);
      } catch {
        return send(res, 400, { detail: { status: 'invalid_labels', message: 'Labels must be a JSON object.' } });
      }
    }
    const behaviour = queue.shift();
    const voiceId = createHash('sha256').update(`${++cloned}:${name}`).digest('base64url').replace(/[-_]/g, '').slice(0, 20);
    const answer = behaviour?.kind === 'malformed' ? { requires_verification: false } : { voice_id: voiceId, requires_verification: false };
    if (misbehave(res, behaviour, Buffer.from(JSON.stringify(answer)), 'application/json')) return;
    if (behaviour?.kind !== 'malformed') voices.add(voiceId);
    send(res, 200, answer);
  };

  const deleteVoice = (res: ServerResponse, voiceId: string) => {
    const behaviour = queue.shift();
    const answer = behaviour?.kind === 'malformed' ? { deleted: true } : { status: 'ok' };
    if (misbehave(res, behaviour, Buffer.from(JSON.stringify(answer)), 'application/json')) return;
    if (!voices.has(voiceId)) {
      return send(res, 400, { detail: { status: 'voice_does_not_exist', message: `A voice with voice_id ${voiceId} does not exist.` } });
    }
    if (behaviour?.kind !== 'malformed') {
      voices.delete(voiceId);
      deletedVoices.push(voiceId);
    }
    send(res, 200, answer);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://fake');
        const raw = Buffer.concat(chunks);
        const request: FakeElevenLabsRequest = { method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers };
        const contentType = req.headers['content-type'] ?? '';
        if (contentType.startsWith('application/json')) {
          try {
            const parsed: unknown = JSON.parse(raw.toString('utf8'));
            if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) request.json = parsed as Record<string, unknown>;
          } catch {
            // left undefined: the route answers 422
          }
        } else if (contentType.startsWith('multipart/form-data')) {
          request.form = await parseMultipart(raw, contentType);
        }
        record(request);

        const key = req.headers['xi-api-key'];
        if (key === undefined) {
          return send(res, 401, { detail: { status: 'needs_authorization', message: 'Neither authorization header nor xi-api-key received, please provide one.' } });
        }
        if (key !== apiKey) return send(res, 401, { detail: DEFAULT_ERRORS[401] });
        const tts = /^\/v1\/text-to-speech\/([^/]+)$/.exec(url.pathname);
        if (req.method === 'POST' && tts) return textToSpeech(request, res, decodeURIComponent(tts[1]!));
        if (req.method === 'POST' && url.pathname === '/v1/voices/add') return addVoice(request, res);
        const voice = /^\/v1\/voices\/([^/]+)$/.exec(url.pathname);
        if (req.method === 'DELETE' && voice) return deleteVoice(res, decodeURIComponent(voice[1]!));
        send(res, 404, { detail: 'Not Found' });
      })().catch((error: unknown) => send(res, 500, { detail: { status: 'fake_error', message: String(error) } }));
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    voices,
    deletedVoices,
    fail(status, times, detail, headers) {
      const base = DEFAULT_ERRORS[status] ?? { status: 'error', message: `Error ${status}` };
      // A 422 is FastAPI's validation list unless the test says what to send.
      const body = status === 422 && !detail ? invalid(['body', 'text'], 'String should have at least 1 character', 'string_too_short', '') : { detail: { ...base, ...detail } };
      enqueue({ kind: 'fail', status, body, headers }, times);
    },
    hang: (times) => enqueue({ kind: 'hang' }, times),
    stall: (times) => enqueue({ kind: 'stall' }, times),
    malformed: (times) => enqueue({ kind: 'malformed' }, times),
    waitForRequests: (count) =>
      requests.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ count, resolve })),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // Hung and stalled requests never finish on their own, and fetch keeps idle sockets alive.
        server.closeAllConnections();
      }),
  };
}

/** Multipart parsed the way a server framework would (undici's parser, RFC 7578). */
async function parseMultipart(raw: Buffer, contentType: string): Promise<FakeElevenLabsRequest['form']> {
  const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
  const fields: Record<string, string[]> = {};
  const files: FakeElevenLabsFile[] = [];
  for (const [field, value] of form.entries()) {
    if (typeof value === 'string') (fields[field] ??= []).push(value);
    else {
      const bytes = Buffer.from(await value.arrayBuffer());
      files.push({ field, filename: value.name, contentType: value.type, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    }
  }
  return { fields, files };
}
