/**
 * A fake fal.ai queue (Pika's models) on loopback, in fal.ai's queue wire format:
 * `POST /{model}` with `Authorization: Key <key>` answers `{ request_id, status_url,
 * response_url, cancel_url }`, whose URLs drop the model's subpath (`/fal-ai/pika/requests/{id}`,
 * as fal.ai's docs say); `GET status_url` answers IN_QUEUE | IN_PROGRESS | COMPLETED; `GET
 * response_url` answers the model's output `{ video: { url, ... } }`, or its error (a model error:
 * `{ detail: [{ loc, msg, type }] }`); `PUT cancel_url` answers 202 `{ status:
 * 'CANCELLATION_REQUESTED' }`, or 400 `{ status: 'ALREADY_COMPLETED' }` once the request is done.
 * Input errors are answered at submission here (422), where fal.ai may only report them at the
 * response URL: the adapter handles both.
 */
import { credential, shownKey, startVideoFake, type Answer, type FakeTask, type ProviderWire, type TaskPhase, type VideoFake } from './video-fake.js';

const ASPECT_RATIOS = ['16:9', '9:16', '1:1', '4:5', '5:4', '3:2', '2:3'];
const DURATIONS = ['5', '10'];
const RESOLUTIONS = ['720p', '1080p'];

/** A FastAPI/fal.ai model error. */
const modelError = (status: number, field: string | null, msg: string, type: string): Answer => ({
  status,
  body: { detail: [{ loc: field ? ['body', field] : ['body'], msg, type, url: `https://docs.fal.ai/errors/#${type}` }] },
  headers: { 'x-fal-retryable': 'false' },
});

/** `fal-ai/pika` of `/fal-ai/pika/v2.2/text-to-video`: status and response URLs live under the app, not the endpoint. */
const appOf = (path: string) => path.split('/').slice(1, 3).join('/');

const falWire = (options: FalFakeOptions): ProviderWire => ({
  name: 'fal.ai',
  basePath: '',
  endpoint(method, path) {
    const request = /^\/([\w.-]+\/[\w.-]+)\/requests\/([^/]+)(\/status|\/cancel)?$/.exec(path);
    if (request && method === 'GET' && request[3] !== '/cancel') return request[3] ? { kind: 'status', taskId: request[2]! } : { kind: 'result', taskId: request[2]! };
    if (request && method === 'PUT' && request[3] === '/cancel') return { kind: 'cancel', taskId: request[2]! };
    if (method === 'POST' && /^\/fal-ai\/pika(\/[\w.-]+)+$/.test(path) && !path.includes('/requests/')) return { kind: 'create' };
    return null;
  },
  error: (status, message) => (status === 500 ? { detail: message, error_type: 'internal_error' } : { detail: message }),
  checkAuth(request, apiKey) {
    const key = credential(request, 'Key');
    return key === apiKey ? null : { status: 401, body: { detail: `Invalid Key: ${shownKey(key)}` } };
  },
  validate({ body }) {
    if (typeof body !== 'object' || body === null) return modelError(422, null, 'Input should be a valid dictionary', 'dict_type');
    const { prompt, aspect_ratio, duration, resolution } = body as Record<string, unknown>;
    if (typeof prompt !== 'string' || !prompt) return modelError(422, 'prompt', 'Field required', 'missing');
    if (aspect_ratio !== undefined && !ASPECT_RATIOS.includes(aspect_ratio as string)) return modelError(422, 'aspect_ratio', `Input should be ${ASPECT_RATIOS.join(', ')}`, 'literal_error');
    if (duration !== undefined && !DURATIONS.includes(duration as string)) return modelError(422, 'duration', "Input should be '5' or '10'", 'literal_error');
    if (resolution !== undefined && !RESOLUTIONS.includes(resolution as string)) return modelError(422, 'resolution', "Input should be '720p' or '1080p'", 'literal_error');
    return { prompt };
  },
  refusal: (message) => modelError(422, 'prompt', message, 'content_policy_violation'),
  created(task, origin) {
    const base = `${origin}/${appOf(task.createdOn)}/requests/${task.id}`;
    const cancel = `${options.cancelOrigin ?? origin}/${appOf(task.createdOn)}/requests/${task.id}/cancel`;
    return { status: 200, body: { request_id: task.id, response_url: base, status_url: `${base}/status`, cancel_url: cancel, queue_position: 0 } };
  },
  status(task, phase, origin) {
    const response_url = `${origin}/${appOf(task.createdOn)}/requests/${task.id}`;
    if (phase.state === 'queued') return { status: 200, body: { status: 'IN_QUEUE', queue_position: 0, response_url } };
    if (phase.state === 'running') return { status: 200, body: { status: 'IN_PROGRESS', logs: null, response_url } };
    return { status: 200, body: { status: 'COMPLETED', logs: null, response_url, metrics: { inference_time: 1.5 } } };
  },
  result: (task, phase) => outcome(task, phase),
  // fal.ai documents no cancelled state: a request is IN_QUEUE, IN_PROGRESS or COMPLETED, a queued
  // one is dropped, and a running one's model "decides how to stop the work". So the fake reports
  // a cancelled request as before (a hung one stays IN_PROGRESS), rather than invent a COMPLETED
  // with an error that fal.ai does not document.
  cancel: (_task, phase) =>
    phase.state === 'succeeded' || phase.state === 'failed'
      ? { answer: { status: 400, body: { status: 'ALREADY_COMPLETED' } } }
      : { answer: { status: 202, body: { status: 'CANCELLATION_REQUESTED' } } },
});

function outcome(task: FakeTask, phase: TaskPhase): Answer {
  if (phase.state === 'queued' || phase.state === 'running') return { status: 400, body: { detail: 'Request is still in progress' } };
  if (phase.state === 'failed') return modelError(422, null, phase.message, phase.code ?? 'content_policy_violation');
  return { status: 200, body: { video: { url: phase.videoUrl, content_type: 'video/mp4', file_name: `${task.id}.mp4`, file_size: null } } };
}

export interface FalFakeOptions {
  apiKey?: string;
  /** Where the answers' cancel_url points (default: this fake), to hand the adapter one on another host. */
  cancelOrigin?: string;
}

export function startFalFake(options: FalFakeOptions = {}): Promise<VideoFake> {
  return startVideoFake(falWire(options), options.apiKey ?? 'test-fal-key');
}
