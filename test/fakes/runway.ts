/**
 * A fake Runway API (`POST /v1/text_to_video`, `GET /v1/tasks/{id}`, `DELETE /v1/tasks/{id}`) on
 * loopback, in the wire format of `@runwayml/sdk` 4.20.1: Bearer key, a required
 * `X-Runway-Version: 2024-11-06`, errors as `{ error }`, task states PENDING | RUNNING (+progress)
 * | SUCCEEDED (+output) | FAILED (+failure, failureCode) | CANCELLED.
 */
import { credential, shownKey, startVideoFake, type Answer, type FakeTask, type ProviderWire, type TaskPhase, type VideoFake } from './video-fake.js';

export const RUNWAY_VERSION = '2024-11-06';

/** The text-to-video models the fake takes, with the ratios and lengths the SDK documents for them. */
const MODELS: Record<string, { ratios: string[]; durations: number[]; durationRequired: boolean }> = {
  'gen4.5': { ratios: ['1280:720', '720:1280'], durations: [2, 3, 4, 5, 6, 7, 8, 9, 10], durationRequired: true },
  'veo3.1': { ratios: ['1280:720', '720:1280', '1080:1920', '1920:1080'], durations: [4, 6, 8], durationRequired: false },
  'veo3.1_fast': { ratios: ['1280:720', '720:1280', '1080:1920', '1920:1080'], durations: [4, 6, 8], durationRequired: false },
};

const invalid = (path: string, message: string): Answer => ({ status: 400, body: { error: 'Validation of body failed', issues: [{ path: [path], message }] } });

const runwayWire: ProviderWire = {
  name: 'Runway',
  basePath: '',
  endpoint(method, path) {
    if (method === 'POST' && path === '/v1/text_to_video') return { kind: 'create' };
    const task = /^\/v1\/tasks\/([^/]+)$/.exec(path);
    if (method === 'GET' && task) return { kind: 'status', taskId: decodeURIComponent(task[1]!) };
    if (method === 'DELETE' && task) return { kind: 'cancel', taskId: decodeURIComponent(task[1]!) };
    return null;
  },
  error: (_status, message) => ({ error: message }),
  checkAuth(request, apiKey) {
    const key = credential(request, 'Bearer');
    if (key !== apiKey) return { status: 401, body: { error: `Invalid API key: ${shownKey(key)}` } };
    if (request.headers['x-runway-version'] !== RUNWAY_VERSION) return { status: 400, body: { error: `The X-Runway-Version header must be ${RUNWAY_VERSION}` } };
    return null;
  },
  validate({ body }) {
    if (typeof body !== 'object' || body === null) return invalid('', 'Expected a JSON object');
    const { model, promptText, ratio, duration } = body as Record<string, unknown>;
    const spec = typeof model === 'string' ? MODELS[model] : undefined;
    if (!spec) return invalid('model', `Unsupported model ${JSON.stringify(model)}`);
    if (typeof promptText !== 'string' || promptText.length === 0 || promptText.length > 1000) return invalid('promptText', 'Must be a non-empty string up to 1000 characters');
    if (typeof ratio !== 'string' || !spec.ratios.includes(ratio)) return invalid('ratio', `Must be one of ${spec.ratios.join(', ')}`);
    if (duration === undefined ? spec.durationRequired : !spec.durations.includes(duration as number)) return invalid('duration', `Must be one of ${spec.durations.join(', ')}`);
    return { prompt: promptText };
  },
  refusal: (message) => ({ status: 400, body: { error: message } }),
  created: (task) => ({ status: 200, body: { id: task.id, estimatedCost: { credits: 10 * Number(task.body.duration ?? 8) } } }),
  status: (task, phase) => ({ status: 200, body: taskBody(task, phase) }),
  // The SDK's `tasks.delete`: a pending or running task is cancelled, a finished one deleted; both
  // then read as CANCELLED (its type: "a cancelled or deleted task"). No content either way.
  cancel: () => ({ answer: { status: 204, body: undefined } }),
};

function taskBody(task: FakeTask, phase: TaskPhase): Record<string, unknown> {
  const common = { id: task.id, createdAt: new Date().toISOString() };
  const credits = 10 * Number(task.body.duration ?? 8);
  if (task.cancelled) return { ...common, status: 'CANCELLED', cost: { credits: 0 } };
  switch (phase.state) {
    case 'queued':
      return { ...common, status: 'PENDING', estimatedCost: { credits } };
    case 'running':
      return { ...common, status: 'RUNNING', progress: phase.progress, estimatedCost: { credits } };
    case 'succeeded':
      return { ...common, status: 'SUCCEEDED', output: [phase.videoUrl], cost: { credits } };
    case 'failed':
      return { ...common, status: 'FAILED', failure: phase.message, failureCode: phase.code ?? 'INTERNAL.BAD_OUTPUT.CODE01', cost: { credits: 0 } };
  }
}

export function startRunwayFake(options: { apiKey?: string } = {}): Promise<VideoFake> {
  return startVideoFake(runwayWire, options.apiKey ?? 'test-runway-key');
}
