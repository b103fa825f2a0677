/**
 * Downloading a finished video from the provider's link, the same for every remote provider.
 * The links are pre-signed CDN URLs: they carry no API key and must not be sent one (the CDN is
 * not the API, and a key in a CDN's logs is a leaked key).
 */
import { Readable } from 'node:stream';
import { redact } from '../../../platform/http/provider-http.js';
import { httpFailure, invalidResponse, type CallContext } from './failure.js';
import { fetchWithRetries } from './http.js';
import { VideoProviderError, type DownloadedVideo } from './provider.js';

/**
 * Opens the video at `videoUrl`. The headers must arrive within `timeoutMs` (retried like any
 * call); after that the body may take as long as it needs, as long as it keeps moving: a gap of
 * more than `timeoutMs` between two chunks fails the stream with TIMEOUT, since a whole-body
 * deadline would cut off a large video on a slow but healthy link.
 */
export async function downloadVideo(videoUrl: string, context: Omit<CallContext, 'call'>, signal: AbortSignal): Promise<DownloadedVideo> {
  const call = { ...context, call: 'download' as const, signal };
  let url: URL;
  try {
    url = new URL(videoUrl);
  } catch {
    throw invalidResponse(call, 'a video link that is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalidResponse(call, `a video link that is not HTTP (${url.protocol})`);

  // An error's body is read inside the call, under its deadline: a link that answers 403 and then
  // stalls would otherwise hold the job forever.
  const { response, body: errorText } = await fetchWithRetries(url.href, { method: 'GET', headers: { accept: 'video/*, */*' } }, call, (r) => (r.ok ? Promise.resolve(null) : headOf(r)));
  if (!response.ok) {
    signal.throwIfAborted();
    throw httpFailure(call, response.status, errorText?.trim().slice(0, 200) || null);
  }
  const contentType = response.headers.get('content-type') ?? 'video/mp4';
  // A login page or an error document served with 200 is not a video.
  if (/json|text|html|xml/i.test(contentType) || response.body === null) {
    await response.body?.cancel();
    throw invalidResponse(call, `${contentType.split(';')[0]} instead of a video`);
  }
  const stalled = () => new VideoProviderError('TIMEOUT', redact(`${context.label}'s video stopped arriving for ${context.timeoutMs} ms`, context.apiKey));
  return { body: guardedBody(response.body, context.timeoutMs, stalled, signal), contentType };
}

/** The most an error body is read for its message: a CDN's XML error fits, a large page does not need to. */
const ERROR_BODY_MAX_BYTES = 4096;

/**
 * The first ERROR_BODY_MAX_BYTES of an error's body as text, the rest cancelled; null when it
 * cannot be read (the call's deadline aborts a stalled one): the status says enough.
 */
async function headOf(response: Response): Promise<string | null> {
  if (!response.body) return null;
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (bytes < ERROR_BODY_MAX_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.length;
    }
    return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, ERROR_BODY_MAX_BYTES));
  } catch {
    return null;
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * The body as a Node stream that fails when a chunk it asked for does not come within `idleMs`.
 * The clock runs only while a reader waits on the network, so a slow consumer (an upload to
 * storage applying backpressure) is never mistaken for a stalled provider.
 */
function guardedBody(body: ReadableStream<Uint8Array>, idleMs: number, stalled: () => Error, signal: AbortSignal): Readable {
  const reader = body.getReader();
  return new Readable({
    read() {
      const timer = setTimeout(() => this.destroy(stalled()), idleMs);
      reader.read().then(
        ({ done, value }) => {
          clearTimeout(timer);
          if (!this.destroyed) this.push(done ? null : value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          this.destroy(signal.aborted ? signal.reason : error instanceof Error ? error : new Error(String(error)));
        },
      );
    },
    destroy(error, done) {
      reader.cancel(error ?? undefined).catch(() => {});
      done(error);
    },
  });
}
