/**
 * What narration publishes (catalog: schema/events/catalog.json). The envelope's userId is the
 * voice's or the job's owner.
 */
export const VOICE_CLONED = 'voice.cloned';
export const NARRATION_STARTED = 'narration.generation.started';
export const NARRATION_COMPLETED = 'narration.generation.completed';
export const NARRATION_FAILED = 'narration.generation.failed';

export interface VoiceCloned {
  voiceId: string;
  provider: string;
  samples: number;
}

export interface NarrationStarted {
  jobId: string;
  storyId: string;
  voice: 'CLONED' | 'STOCK';
}

export interface NarrationCompleted {
  jobId: string;
  storyId: string;
  durationMs: number | null;
  contentType: string;
}

export interface NarrationFailed {
  jobId: string;
  storyId: string;
  error: string;
}

/** Consumed. */
export const USER_DELETED = 'user.deleted';
