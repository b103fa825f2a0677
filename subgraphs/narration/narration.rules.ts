import { userError } from '../../platform/errors.js';

/** Narration's rules as plain functions (STYLE 2). */
export type SampleKind = 'EMOTION' | 'SOUND' | 'MODULATION';
export type VoiceStatus = 'COLLECTING' | 'CLONING' | 'CLONED' | 'FAILED';
export type NarrationStatus = 'QUEUED' | 'RUNNING' | 'COMPLETED' | 'FAILED';

/** Samples a clone needs (the original system's rule). */
export const REQUIRED_SAMPLES = 5;

/** Recorded audio browsers and phones produce. */
export const SAMPLE_CONTENT_TYPES = ['audio/wav', 'audio/x-wav', 'audio/mpeg', 'audio/webm', 'audio/ogg', 'audio/mp4'] as const;

export function checkSampleInput(input: { kind: SampleKind; label: string; contentType: string }): { kind: SampleKind; label: string; contentType: string } {
  const label = input.label.trim();
  if (!label || label.length > 60) throw userError('INVALID_INPUT', 'A label has 1 to 60 characters', 'label');
  const contentType = input.contentType.trim().toLowerCase();
  if (!(SAMPLE_CONTENT_TYPES as readonly string[]).includes(contentType)) {
    throw userError('INVALID_INPUT', `Upload one of ${SAMPLE_CONTENT_TYPES.join(', ')}`, 'contentType');
  }
  return { kind: input.kind, label, contentType };
}

/** The voice's status as users see it: COLLECTING becomes READY_TO_CLONE with enough samples. */
export function voiceStatus(stored: VoiceStatus | null, uploaded: number): VoiceStatus | 'READY_TO_CLONE' {
  if (stored === 'CLONING' || stored === 'CLONED') return stored;
  if (stored === 'FAILED' && uploaded < REQUIRED_SAMPLES) return 'COLLECTING';
  if (stored === 'FAILED') return 'FAILED';
  return uploaded >= REQUIRED_SAMPLES ? 'READY_TO_CLONE' : 'COLLECTING';
}

/** A cloning that has not finished in this long was interrupted (its process died): it may start again. */
export const CLONING_TIMEOUT_MS = 10 * 60_000;

export function assertCloneable(stored: VoiceStatus | null, uploaded: number, since: Date | null = null, now = new Date()): void {
  if (stored === 'CLONED') throw userError('ALREADY_CLONED', 'Your voice is already cloned');
  if (stored === 'CLONING' && (!since || now.getTime() - since.getTime() < CLONING_TIMEOUT_MS)) throw userError('CLONING', 'Your voice is being cloned');
  if (uploaded < REQUIRED_SAMPLES) {
    throw userError('NOT_ENOUGH_SAMPLES', `Cloning needs ${REQUIRED_SAMPLES} uploaded samples; you have ${uploaded}`);
  }
}

export const isTerminal = (status: NarrationStatus) => status === 'COMPLETED' || status === 'FAILED';

/** The media type of a narration's audio. */
export const audioContentType = (format: 'wav' | 'mp3') => (format === 'wav' ? 'audio/wav' : 'audio/mpeg');

/** Where a job's part `index` is stored until the parts are joined. */
export const partKey = (jobId: string, index: number) => `narrations/${jobId}/part-${String(index).padStart(5, '0')}`;

/** Where run `attempt` of a job stores the joined audio. */
export const narrationAudioKey = (jobId: string, attempt: number, format: 'wav' | 'mp3') => `narrations/${jobId}/narration-${attempt}.${format}`;

/**
 * Every key a job's runs may have stored, whatever became of them: its parts (a run that
 * completes deletes them, one that died or was stopped does not) and the joined audio of each
 * run in either format. Erasing the job deletes them all; keys never written cost a delete of
 * nothing.
 */
export function storedKeysOf(job: { id: string; partsTotal: number | null; attempts: number; audioKey: string | null }): string[] {
  const keys = new Set<string>();
  if (job.audioKey) keys.add(job.audioKey);
  for (let index = 0; index < (job.partsTotal ?? 0); index++) keys.add(partKey(job.id, index));
  for (let attempt = 1; attempt <= job.attempts; attempt++) for (const format of ['wav', 'mp3'] as const) keys.add(narrationAudioKey(job.id, attempt, format));
  return [...keys];
}
