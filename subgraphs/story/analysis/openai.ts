/**
 * The OpenAI adapter of the story-analysis port: Chat Completions with Structured Outputs
 * (strict JSON schema), through the official SDK, which owns retries and backoff. A story longer
 * than one request's budget is analysed in parts and merged here (chunking.ts).
 */
import OpenAI from 'openai';
import type { z } from 'zod';
import { AnalysisFailed, countWords, type AnalysisResult, type StoryAnalyser, type StoryText } from './analyser.js';
import { mergePartAnalyses, splitForModel, type PartAnalysis } from './chunking.js';
import { fetchWithBodyDeadline, untilAborted } from '../../../platform/http/provider-http.js';
import {
  ANALYSIS_RESPONSE_FORMAT,
  ANALYSIS_SYSTEM_PROMPT,
  AnalysisReply,
  CONDENSE_RESPONSE_FORMAT,
  CONDENSE_SYSTEM_PROMPT,
  CondenseReply,
  analysisUserMessage,
  condenseUserMessage,
  type PartContext,
} from './openai-prompt.js';

export interface OpenAIAnalyserOptions {
  apiKey: string;
  /** Includes `/v1`; the SDK's default (api.openai.com, or OPENAI_BASE_URL) when absent. */
  baseURL?: string;
  /** e.g. "gpt-4o-mini"; the caller chooses the default. */
  model: string;
  /** Per attempt, from sending the request to the last byte of the answer. */
  timeoutMs: number;
  /** Retries after the first attempt, for timeouts, connection errors, 408/409/429/5xx. */
  maxRetries: number;
  /** Title plus story text sent in one request (about 4 characters per token). */
  maxInputChars: number;
  /** Parts of a long story analysed at most; the rest is left out and said so in `notes`. */
  maxChunks: number;
}

type Completion = OpenAI.Chat.Completions.ChatCompletion;
type ResponseFormat = typeof ANALYSIS_RESPONSE_FORMAT | typeof CONDENSE_RESPONSE_FORMAT;

export class OpenAIAnalyser implements StoryAnalyser {
  readonly name = 'openai';
  readonly #client: OpenAI;
  readonly #options: OpenAIAnalyserOptions;

  constructor(options: OpenAIAnalyserOptions) {
    for (const key of ['timeoutMs', 'maxInputChars', 'maxChunks'] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) throw new RangeError(`OpenAIAnalyser: ${key} must be a positive integer`);
    }
    if (!Number.isInteger(options.maxRetries) || options.maxRetries < 0) throw new RangeError('OpenAIAnalyser: maxRetries must be a whole number');
    if (!options.apiKey) throw new RangeError('OpenAIAnalyser: apiKey is required');
    this.#options = { ...options };
    this.#client = new OpenAI({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries,
      fetch: fetchWithBodyDeadline(options.timeoutMs),
    });
  }

  async analyse(story: StoryText, options: { signal?: AbortSignal } = {}): Promise<AnalysisResult> {
    const { signal } = options;
    if (countWords(story.content) === 0) throw new AnalysisFailed('EMPTY_STORY', 'The story has no text to analyse.');
    signal?.throwIfAborted();
    const { maxInputChars, maxChunks } = this.#options;
    const title = story.title.trim();

    if (title.length + story.content.length <= maxInputChars) {
      const part = await this.#analysePart(story, story.content, undefined, signal);
      return this.#result(part.reply.summary, [{ ...part.reply, weight: story.content.length }], part.model, []);
    }

    // The title goes with every part; a title that would crowd out the text is its own problem.
    const budget = Math.max(Math.ceil(maxInputChars / 2), maxInputChars - title.length);
    const all = splitForModel(story.content, budget);
    const taken = all.slice(0, maxChunks);
    const analysedChars = taken.reduce((sum, text) => sum + text.length, 0);
    const truncated = taken.length < all.length;
    // A stretch of blank lines can make a part with no words: nothing to ask about it.
    const texts = taken.filter((text) => countWords(text) > 0);

    const parts: (PartAnalysis & { summary: string })[] = [];
    const knownNames = new Map<string, string>();
    let model = this.#options.model;
    for (const [i, text] of texts.entries()) {
      signal?.throwIfAborted();
      const context: PartContext = { index: i + 1, count: texts.length, knownNames: [...knownNames.values()], truncated };
      const part = await this.#analysePart(story, text, context, signal);
      parts.push({ ...part.reply, weight: text.length });
      model = part.model;
      for (const { name } of part.reply.characters) {
        const clean = name.trim().replace(/\s+/g, ' ');
        if (clean && !knownNames.has(clean.toLocaleLowerCase())) knownNames.set(clean.toLocaleLowerCase(), clean);
      }
    }

    let summary = parts[0]!.summary;
    if (parts.length > 1) {
      signal?.throwIfAborted();
      const condensed = await this.#complete(
        CONDENSE_SYSTEM_PROMPT,
        condenseUserMessage(story, parts.map((p) => p.summary), truncated),
        CONDENSE_RESPONSE_FORMAT,
        CondenseReply,
        signal,
      );
      summary = condensed.reply.summary;
      model = condensed.model;
    }

    const inParts = `in ${parts.length} part${parts.length === 1 ? '' : 's'}`;
    const notes = truncated ? [`analysed the first ${analysedChars} of ${story.content.length} characters ${inParts}`] : [`analysed ${inParts}`];
    return this.#result(summary, parts, model, notes);
  }

  #result(summary: string, parts: PartAnalysis[], model: string, notes: string[]): AnalysisResult {
    return { summary: summary.trim(), ...mergePartAnalyses(parts), provider: 'openai', model, notes };
  }

  #analysePart(story: StoryText, text: string, part: PartContext | undefined, signal: AbortSignal | undefined) {
    return this.#complete(ANALYSIS_SYSTEM_PROMPT, analysisUserMessage(story, text, part), ANALYSIS_RESPONSE_FORMAT, AnalysisReply, signal);
  }

  /** One structured request: the parsed, validated reply and the model that answered. */
  async #complete<T>(
    system: string,
    user: string,
    responseFormat: ResponseFormat,
    schema: z.ZodType<T>,
    signal: AbortSignal | undefined,
  ): Promise<{ reply: T; model: string }> {
    let completion: Completion;
    try {
      const request = this.#client.chat.completions.create(
        {
          model: this.#options.model,
          messages: [
            { role: 'system', content: system },
            { role: 'user', content: user },
          ],
          // The SDK types the schema as a mutable record; ours is a readonly literal.
          response_format: responseFormat as unknown as OpenAI.ResponseFormatJSONSchema,
        },
        { signal },
      );
      completion = signal ? await untilAborted(request, signal) : await request;
    } catch (error) {
      throw this.#failure(error, signal);
    }
    return { reply: this.#parse(completion, schema), model: typeof completion?.model === 'string' && completion.model ? completion.model : this.#options.model };
  }

  #parse<T>(completion: Completion, schema: z.ZodType<T>): T {
    // A proxy can answer 200 with anything; the SDK passes non-JSON bodies through as text.
    const choice = typeof completion === 'object' && Array.isArray(completion?.choices) ? completion.choices[0] : undefined;
    if (!choice?.message) throw new AnalysisFailed('INVALID_RESPONSE', 'OpenAI answered without a completion.');
    const { message, finish_reason: finishReason } = choice;
    if (message.refusal) throw new AnalysisFailed('REFUSED', `The model declined to analyse this story: ${message.refusal}`);
    if (finishReason === 'content_filter') throw new AnalysisFailed('REFUSED', "OpenAI's content filter stopped the analysis of this story.");
    if (finishReason === 'length') throw new AnalysisFailed('INVALID_RESPONSE', "The model's answer was cut off before it was complete.");
    if (typeof message.content !== 'string') throw new AnalysisFailed('INVALID_RESPONSE', 'OpenAI answered without content.');
    let json: unknown;
    try {
      json = JSON.parse(message.content);
    } catch {
      throw new AnalysisFailed('INVALID_RESPONSE', 'The model answered with something other than JSON.');
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
      throw new AnalysisFailed('INVALID_RESPONSE', `The model's answer does not have the expected shape (${where}${issue?.message ?? 'invalid'}).`);
    }
    return parsed.data;
  }

  /** Maps what the SDK threw (after its retries) to what the port promises. */
  #failure(error: unknown, signal: AbortSignal | undefined): unknown {
    // Shutdown is not the story's fault: surface the abort itself, not an AnalysisFailed.
    if (signal?.aborted) return signal.reason ?? error;
    const attempts = this.#options.maxRetries + 1;
    const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
    if (error instanceof OpenAI.APIConnectionTimeoutError) {
      return new AnalysisFailed('TIMEOUT', `OpenAI did not answer within ${this.#options.timeoutMs} ms (${tries}).`);
    }
    if (error instanceof OpenAI.APIConnectionError) {
      return new AnalysisFailed('PROVIDER_ERROR', this.#redact(`Could not reach OpenAI (${tries}): ${error.message}`));
    }
    if (error instanceof OpenAI.AuthenticationError) {
      return new AnalysisFailed('PROVIDER_ERROR', 'OpenAI refused the API key (401): check the OpenAI API key configured for story analysis.');
    }
    if (error instanceof OpenAI.APIError) {
      const detail = apiErrorMessage(error);
      const code = typeof error.code === 'string' && error.code ? ` ${error.code}` : '';
      return new AnalysisFailed('PROVIDER_ERROR', this.#redact(`OpenAI answered ${error.status ?? 'an error'}${code}${detail ? `: ${detail}` : ''}`));
    }
    if (error instanceof SyntaxError) {
      return new AnalysisFailed('INVALID_RESPONSE', 'OpenAI answered with a body that is not valid JSON.');
    }
    return error;
  }

  /** Provider messages are stored and shown; the key must never travel with them. */
  #redact(text: string): string {
    return text.split(this.#options.apiKey).join('[redacted]');
  }
}

function apiErrorMessage(error: InstanceType<typeof OpenAI.APIError>): string {
  const body = error.error as { message?: unknown } | undefined;
  return typeof body?.message === 'string' ? body.message : '';
}

