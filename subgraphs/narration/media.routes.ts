import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MikroORM } from '@mikro-orm/postgresql';
import { sendJson } from '../../platform/http/graphql-http.js';
import type { Handler } from '../../platform/http/server.js';
import type { Logger } from '../../platform/log.js';
import { ObjectTooLarge, type BlobStorage } from '../../platform/storage/storage.js';
import { UploadTokenInvalid, verifyUploadToken } from '../../platform/storage/upload-token.js';
import { VoiceSample } from './narration.entities.js';

/** Under the subgraph's HTTP server; the gateway forwards `/media/narration/…` here. */
export const UPLOADS_PATH = '/media/uploads/';

const fail = (res: ServerResponse, status: number, code: string, message: string) => sendJson(res, status, { error: { code, message } });

/**
 * PUT <uploadUrl>: stores a voice sample's audio once. The token says which sample, which
 * content type and how many bytes; the sample row says whether it was used already. Too large
 * or the wrong type is refused and nothing is stored.
 */
export function uploadRoute(options: { orm: MikroORM; storage: BlobStorage; secret: string; logger: Logger }): Handler {
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'PUT') return fail(res, 405, 'METHOD_NOT_ALLOWED', 'PUT the audio bytes');
    let claims;
    try {
      const token = (req.url ?? '').split('?')[0]!.slice(UPLOADS_PATH.length);
      claims = verifyUploadToken(options.secret, token, new Date());
    } catch (error) {
      if (!(error instanceof UploadTokenInvalid)) throw error;
      return fail(res, 403, 'FORBIDDEN', error.reason === 'expired' ? 'This upload link has expired' : 'This is not an upload link');
    }
    const em = options.orm.em.fork();
    const sample = await em.findOne(VoiceSample, { id: claims.id });
    if (!sample || !sample.storageKey.startsWith(claims.key)) return fail(res, 404, 'NOT_FOUND', 'No such upload');
    if (sample.uploadedAt) return fail(res, 409, 'ALREADY_UPLOADED', 'This upload link has been used');
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!claims.contentTypes.includes(contentType)) {
      return fail(res, 415, 'UNSUPPORTED_MEDIA_TYPE', `Send Content-Type ${claims.contentTypes.join(' or ')}`);
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > claims.maxBytes) return fail(res, 413, 'PAYLOAD_TOO_LARGE', `A sample has at most ${claims.maxBytes} bytes`);
    // Each PUT writes an object of its own; the one that claims the sample below names it, so two
    // PUTs racing with one link cannot mix their bytes, and the loser's object is removed.
    const key = `${claims.key}/${randomUUID()}`;
    let stored;
    try {
      stored = await options.storage.put(key, req, { contentType, maxBytes: claims.maxBytes });
    } catch (error) {
      if (!(error instanceof ObjectTooLarge)) throw error;
      res.setHeader('connection', 'close');
      return fail(res, 413, 'PAYLOAD_TOO_LARGE', `A sample has at most ${claims.maxBytes} bytes`);
    }
    if (stored.size === 0) {
      await options.storage.delete(key);
      return fail(res, 400, 'EMPTY_UPLOAD', 'The upload had no audio');
    }
    // Claimed once: of two PUTs racing with the same link, the first to get here wins.
    const claimed = await em.nativeUpdate(VoiceSample, { id: sample.id, uploadedAt: null }, { uploadedAt: new Date(), sizeBytes: stored.size, storageKey: key });
    if (!claimed) {
      await options.storage.delete(key);
      return fail(res, 409, 'ALREADY_UPLOADED', 'This upload link has been used');
    }
    options.logger.info({ sampleId: sample.id, bytes: stored.size }, 'voice sample uploaded');
    sendJson(res, 201, { id: sample.id, sizeBytes: stored.size });
  };
}
