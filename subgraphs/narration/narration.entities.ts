import { EntitySchema } from '@mikro-orm/postgresql';
import { erasureCleanupEntity, type ErasureCleanup as ErasureCleanupRow } from '../../platform/erasure/cleanup.entity.js';
import type { NarrationStatus, SampleKind, VoiceStatus } from './narration.rules.js';

/** A user's voice: at most one, cloned from their samples. */
export interface Voice {
  id: string;
  userId: string;
  status: VoiceStatus;
  provider: string | null;
  /** The provider's id of the cloned voice (ElevenLabs voice_id, or the local one). */
  providerVoiceId: string | null;
  clonedAt: Date | null;
  error: string | null;
  updatedAt: Date;
}

export const Voice = new EntitySchema<Voice>({
  name: 'Voice',
  tableName: 'voice',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id', unique: true },
    status: { type: 'string' },
    provider: { type: 'string', nullable: true },
    providerVoiceId: { type: 'string', nullable: true, fieldName: 'provider_voice_id' },
    clonedAt: { type: 'Date', nullable: true, fieldName: 'cloned_at' },
    error: { type: 'text', nullable: true },
    updatedAt: { type: 'Date', fieldName: 'updated_at' },
  },
});

/** One recording; its audio lives in blob storage under `storageKey` once uploaded. */
export interface VoiceSample {
  id: string;
  userId: string;
  kind: SampleKind;
  label: string;
  contentType: string;
  storageKey: string;
  sizeBytes: number | null;
  uploadedAt: Date | null;
  locked: boolean;
  createdAt: Date;
}

export const VoiceSample = new EntitySchema<VoiceSample>({
  name: 'VoiceSample',
  tableName: 'voice_sample',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    kind: { type: 'string' },
    label: { type: 'string' },
    contentType: { type: 'string', fieldName: 'content_type' },
    storageKey: { type: 'string', fieldName: 'storage_key' },
    sizeBytes: { type: 'integer', nullable: true, fieldName: 'size_bytes' },
    uploadedAt: { type: 'Date', nullable: true, fieldName: 'uploaded_at' },
    locked: { type: 'boolean' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
  },
});

/**
 * A narration and its job. The row is the job's memory: a worker that takes it again after a
 * crash continues from `partsDone` (each part's audio is in storage), and completes it once.
 */
export interface NarrationJob {
  id: string;
  userId: string;
  storyId: string;
  voiceKind: 'CLONED' | 'STOCK';
  stockVoice: string | null;
  providerVoiceId: string | null;
  status: NarrationStatus;
  progress: number;
  partsTotal: number | null;
  partsDone: number;
  error: string | null;
  audioKey: string | null;
  audioContentType: string | null;
  durationMs: number | null;
  attempts: number;
  correlationId: string | null;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
}

export const NarrationJob = new EntitySchema<NarrationJob>({
  name: 'NarrationJob',
  tableName: 'narration_job',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    storyId: { type: 'uuid', fieldName: 'story_id' },
    voiceKind: { type: 'string', fieldName: 'voice_kind' },
    stockVoice: { type: 'string', nullable: true, fieldName: 'stock_voice' },
    providerVoiceId: { type: 'string', nullable: true, fieldName: 'provider_voice_id' },
    status: { type: 'string' },
    progress: { type: 'double' },
    partsTotal: { type: 'integer', nullable: true, fieldName: 'parts_total' },
    partsDone: { type: 'integer', fieldName: 'parts_done' },
    error: { type: 'text', nullable: true },
    audioKey: { type: 'string', nullable: true, fieldName: 'audio_key' },
    audioContentType: { type: 'string', nullable: true, fieldName: 'audio_content_type' },
    durationMs: { type: 'integer', nullable: true, fieldName: 'duration_ms' },
    attempts: { type: 'integer' },
    correlationId: { type: 'string', nullable: true, fieldName: 'correlation_id' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    startedAt: { type: 'Date', nullable: true, fieldName: 'started_at' },
    completedAt: { type: 'Date', nullable: true, fieldName: 'completed_at' },
  },
});

/**
 * What an erasure could not do inside its transaction (platform/erasure): a stored file to
 * delete, or a cloned voice to delete at its provider (target: the provider's voice id; provider:
 * the cloner that made it, "local" or "elevenlabs").
 */
export type ErasureCleanup = ErasureCleanupRow<'PROVIDER_VOICE'>;
export const ErasureCleanup = erasureCleanupEntity<ErasureCleanup>({});

export const narrationEntities = [Voice, VoiceSample, NarrationJob, ErasureCleanup];
