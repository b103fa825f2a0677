/**
 * A fake Luma Dream Machine API on loopback, in the wire format of `lumaai` 1.19.1: base path
 * `/dream-machine/v1`, Bearer key, errors as `{ detail }`. Generations are created at
 * `POST /generations/video` (what this SDK posts to) or `POST /generations` (older SDKs), and
 * read at `GET /generations/{id}`: state queued | dreaming | completed (+assets.video) | failed
 * (+failure_reason). Luma reports no progress. `DELETE /generations/{id}` deletes a generation,
 * running or not (204): Luma has no cancel of its own, and knows the generation no more (404).
 */
import { credential, shownKey, startVideoFake, type FakeTask, type ProviderWire, type TaskPhase, type VideoFake } from './video-fake.js';

const MODELS = ['ray-2', 'ray-flash-2'];
const ASPECT_RATIOS = ['1:1', '16:9', '9:16', '4:3', '3:4', '21:9', '9:21'];
const DURATIONS = ['5s', '9s'];
const RESOLUTIONS = ['540p', '720p', '1080p', '4k'];

const lumaWire: ProviderWire = {
  name: 'Luma',
  basePath: '/dream-machine/v1',
  endpoint(method, path) {
    if (method === 'POST' && (path === '/generations/video' || path === '/generations')) return { kind: 'create' };
    const generation = /^\/generations\/([^/]+)$/.exec(path);
    if (method === 'GET' && generation && generation[1] !== 'video') return { kind: 'status', taskId: decodeURIComponent(generation[1]!) };
    if (method === 'DELETE' && generation && generation[1] !== 'video') return { kind: 'cancel', taskId: decodeURIComponent(generation[1]!) };
    return null;
  },
  error: (_status, message) => ({ detail: message }),
  checkAuth(request, apiKey) {
    const key = credential(request, 'Bearer');
    return key === apiKey ? null : { status: 401, body: { detail: `Invalid API key: ${shownKey(key)}` } };
  },
  validate({ body }) {
    const bad = (detail: string) => ({ status: 400, body: { detail } });
    if (typeof body !== 'object' || body === null) return bad('Expected a JSON object');
    const { model, prompt, aspect_ratio, duration, resolution } = body as Record<string, unknown>;
    if (typeof model !== 'string' || !MODELS.includes(model)) return bad(`Invalid model: ${JSON.stringify(model)}`);
    if (typeof prompt !== 'string' || !prompt.trim()) return bad('prompt is required');
    if (aspect_ratio !== undefined && !ASPECT_RATIOS.includes(aspect_ratio as string)) return bad(`Invalid aspect_ratio: ${JSON.stringify(aspect_ratio)}`);
    if (duration !== undefined && !DURATIONS.includes(duration as string)) return bad(`Invalid duration: ${JSON.stringify(duration)}`);
    if (resolution !== undefined && !RESOLUTIONS.includes(resolution as string)) return bad(`Invalid resolution: ${JSON.stringify(resolution)}`);
    return { prompt };
  },
  refusal: (message) => ({ status: 400, body: { detail: message } }),
  created: (task) => ({ status: 201, body: generation(task, { state: 'queued' }) }),
  status: (task, phase) => ({ status: 200, body: generation(task, phase) }),
  cancel: () => ({ answer: { status: 204, body: undefined }, forget: true }),
};

function generation(task: FakeTask, phase: TaskPhase | { state: 'queued' }): Record<string, unknown> {
  const state = { queued: 'queued', running: 'dreaming', succeeded: 'completed', failed: 'failed' }[phase.state];
  return {
    id: task.id,
    generation_type: 'video',
    state,
    failure_reason: phase.state === 'failed' ? phase.message : null,
    created_at: new Date().toISOString(),
    assets: phase.state === 'succeeded' ? { video: phase.videoUrl } : null,
    model: task.body.model,
    request: { generation_type: 'video', ...task.body },
  };
}

export function startLumaFake(options: { apiKey?: string } = {}): Promise<VideoFake> {
  return startVideoFake(lumaWire, options.apiKey ?? 'test-luma-key');
}
