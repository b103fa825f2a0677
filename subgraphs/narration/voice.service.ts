import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { unauthenticated, userError } from '../../platform/errors.js';
import type { Logger } from '../../platform/log.js';
import { readAll, type BlobStorage } from '../../platform/storage/storage.js';
import { signUploadToken } from '../../platform/storage/upload-token.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { lockLiveUser, lockUser, providerVoice, recordCleanup } from './erasure.store.js';
import { Voice, VoiceSample } from './narration.entities.js';
import * as events from './narration.events.js';
import * as rules from './narration.rules.js';
import { ProviderFailed, type VoiceCloner } from './providers/speech.js';

export interface VoiceServiceOptions {
  storage: BlobStorage;
  cloner: VoiceCloner;
  /** Signs upload tokens. */
  secret: string;
  /** Where clients PUT uploads: `<public URL>/media/narration/uploads/`. */
  uploadBaseUrl: () => string;
  maxSampleBytes: number;
  logger: Logger;
  clock?: () => Date;
}

const UPLOAD_TTL_MS = 15 * 60_000;

/** Voice samples and cloning, as the signed-in user asks for them. */
export class VoiceService {
  private readonly clock: () => Date;

  constructor(private readonly options: VoiceServiceOptions) {
    this.clock = options.clock ?? (() => new Date());
  }

  async createSampleUpload(ctx: SubgraphContext, input: { kind: rules.SampleKind; label: string; contentType: string }) {
    const userId = requireUser(ctx);
    const checked = rules.checkSampleInput(input);
    const now = this.clock();
    const id = randomUUID();
    const sample = await ctx.transaction(async ({ em }) => {
      await lockLiveUser(em, userId);
      const sample = em.create(VoiceSample, {
        id,
        userId,
        ...checked,
        storageKey: `voice-samples/${userId}/${id}`,
        sizeBytes: null,
        uploadedAt: null,
        locked: false,
        createdAt: now,
      });
      return sample;
    });
    const token = signUploadToken(this.options.secret, {
      id,
      key: sample.storageKey,
      contentTypes: [sample.contentType],
      maxBytes: this.options.maxSampleBytes,
      expiresAt: new Date(now.getTime() + UPLOAD_TTL_MS),
    });
    return { sample, uploadUrl: `${this.options.uploadBaseUrl()}${token}` };
  }

  /**
   * Clones the caller's voice from their uploaded samples. The voice is marked CLONING in one
   * transaction (so two clicks clone once), the provider is called outside any transaction, and
   * the result, the samples' lock and voice.cloned commit together. An account erased while the
   * provider cloned finds its voice row gone: the voice made there is recorded for the erasure
   * sweeper to delete, and the caller told the account is deleted.
   */
  async clone(ctx: SubgraphContext): Promise<{ voice: Voice }> {
    const userId = requireUser(ctx);
    const { voice, samples } = await ctx.transaction(async ({ em }) => {
      await lockLiveUser(em, userId);
      const voice = await lockVoice(em, userId, this.clock());
      const samples = await em.find(VoiceSample, { userId, uploadedAt: { $ne: null } }, { orderBy: { createdAt: 'asc' } });
      rules.assertCloneable(voice.status, samples.length, voice.updatedAt, this.clock());
      Object.assign(voice, { status: 'CLONING', error: null, updatedAt: this.clock() });
      return { voice, samples };
    });
    try {
      const audio = await Promise.all(
        samples.map(async (sample) => {
          const stored = await this.options.storage.read(sample.storageKey);
          if (!stored) throw new ProviderFailed('INVALID_RESPONSE', `The audio of sample ${sample.label} is missing`);
          return { filename: `${sample.kind.toLowerCase()}-${sample.label}`.replace(/[^A-Za-z0-9._-]/g, '_'), contentType: sample.contentType, data: await readAll(stored.body) };
        }),
      );
      const cloned = await this.options.cloner.clone({ name: `storyloom-${userId}`, samples: audio });
      const now = this.clock();
      const result = await ctx.transaction(async ({ em, emit }) => {
        // The erasure's lock: it either committed already (the row is gone) or waits for this.
        await lockUser(em, userId);
        const current = await em.findOne(Voice, { id: voice.id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!current) {
          await recordCleanup(em, userId, [providerVoice(this.options.cloner.name, cloned.providerVoiceId)]);
          return null;
        }
        Object.assign(current, { status: 'CLONED', provider: this.options.cloner.name, providerVoiceId: cloned.providerVoiceId, clonedAt: now, updatedAt: now });
        await em.nativeUpdate(VoiceSample, { id: { $in: samples.map((s) => s.id) } }, { locked: true });
        const payload: events.VoiceCloned = { voiceId: current.id, provider: this.options.cloner.name, samples: samples.length };
        emit({ type: events.VOICE_CLONED, payload });
        return { voice: current };
      });
      if (result) return result;
    } catch (error) {
      const message = error instanceof ProviderFailed ? error.message : 'Cloning failed unexpectedly';
      if (!(error instanceof ProviderFailed)) this.options.logger.error({ err: error, userId }, 'voice cloning failed');
      await ctx.transaction(async ({ em }) => {
        await em.nativeUpdate(Voice, { id: voice.id }, { status: 'FAILED', error: message, updatedAt: this.clock() });
      });
      throw userError('CLONE_FAILED', message);
    }
    throw unauthenticated('This account has been deleted');
  }
}

/** The user's voice row, created COLLECTING if need be, locked for the transaction. */
export async function lockVoice(em: EntityManager, userId: string, now: Date): Promise<Voice> {
  await em
    .createQueryBuilder(Voice)
    .insert({ id: randomUUID(), userId, status: 'COLLECTING', provider: null, providerVoiceId: null, clonedAt: null, error: null, updatedAt: now })
    .onConflict('userId')
    .ignore()
    .execute('run');
  return em.findOneOrFail(Voice, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
}
