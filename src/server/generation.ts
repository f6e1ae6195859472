// One generation for the server, from prompt text to released text: tokenizing (with the chat
// template), the context checks, the bounded queue, the shared scheduler, streaming detokenization
// and stop strings, each stage timed into the request's timeline.
import { GpuOperationError, RequestError } from '../engine/errors.ts';
import { Scheduler } from '../engine/runtime/scheduler.ts';
import { StreamingDecoder } from '../engine/tokenizer/streaming.ts';
import { AdmissionQueue } from './admission.ts';
import { ApiError, invalidRequest } from './api-error.ts';
import type { SchedulerGauges, ServerMetrics } from './metrics.ts';
import { defaultMaxTokens, type CompletionParams, type PromptInput } from './openai-request.ts';
import type { ServingModel } from './serving-model.ts';
import { StopText } from './stop-text.ts';
import type { TimelineRecorder } from '../engine/timeline.ts';

export interface GenerationOptions {
  maxBatch: number;
  maxQueue: number;
  /** Reuse the K/V of earlier prompts' full pages (default true). */
  prefixCache?: boolean;
  metrics: ServerMetrics;
}

export interface GenerationJob {
  prompt: readonly number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: readonly string[];
}

export interface GenerationOutcome {
  /** All text released to the client. */
  text: string;
  /** 'cancelled': the client went away before the end. */
  finishReason: 'stop' | 'length' | 'cancelled';
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** Sends released text to the client and returns how long the write took (ms; 0 when nothing is streamed). */
export type TextSink = (text: string) => number;

export class GenerationService {
  readonly scheduler: Scheduler;
  readonly #serving: ServingModel;
  readonly #admission: AdmissionQueue;
  readonly #metrics: ServerMetrics;
  /** The scheduler's row count after the previous step: it counts a step's rows before handing out its tokens. */
  #rowsBeforeStep = 0;

  constructor(serving: ServingModel, options: GenerationOptions) {
    this.#serving = serving;
    this.#metrics = options.metrics;
    this.scheduler = new Scheduler(serving.model, {
      maxBatch: options.maxBatch,
      prefixCache: options.prefixCache ?? true,
      onStep: () => {
        this.#rowsBeforeStep = this.scheduler.stats.rows;
        this.#admission.drain();
      },
    });
    this.#admission = new AdmissionQueue(this.scheduler, options.maxBatch, options.maxQueue);
  }

  gauges(): SchedulerGauges {
    const pool = this.#serving.model.pool;
    const cached = this.scheduler.cachedPages;
    return {
      queueDepth: this.#admission.depth,
      runningSequences: this.scheduler.runningCount,
      kvPagesUsed: pool.usedPages - cached,
      kvPagesCached: cached,
      kvPagesFree: pool.freePages,
      kvPagesTotal: pool.pageCount,
    };
  }

  /** The prompt's tokens: BOS + the text, the token ids as given, or the chat template's rendering. */
  encode(input: PromptInput): number[] {
    const { tokenizer, chatTemplate, model, name } = this.#serving;
    switch (input.kind) {
      case 'text':
        return tokenizer.encode(input.text, { bos: true });
      case 'tokens': {
        const bad = input.tokens.find((t) => t >= model.config.vocabSize);
        if (bad !== undefined) throw invalidRequest(`token id ${bad} is outside the vocabulary of ${model.config.vocabSize}`, 'prompt');
        return input.tokens;
      }
      case 'chat':
        if (!chatTemplate) throw invalidRequest(`model '${name}' has no chat template (its tokenizer_config.json has none): use /v1/completions with a plain prompt`, 'messages', 'no_chat_template');
        try {
          return tokenizer.encode(chatTemplate.render(input.messages, { addGenerationPrompt: true }), { bos: false });
        } catch (error) {
          if (error instanceof RequestError) throw invalidRequest(error.message, 'messages');
          throw error;
        }
    }
  }

  /** Tokens to generate: max_tokens when the context has room for it, the endpoint's default otherwise. */
  budget(params: CompletionParams, promptTokens: number): number {
    const context = this.#serving.model.contextLength;
    const exceeded = (message: string) => new ApiError(400, message, 'invalid_request_error', 'context_length_exceeded', params.input.kind === 'chat' ? 'messages' : 'prompt');
    if (promptTokens >= context) throw exceeded(`the prompt is ${promptTokens} tokens but this server's context holds ${context}: shorten it to at most ${context - 1} tokens`);
    const left = context - promptTokens;
    if (params.maxTokens === null) return defaultMaxTokens(params.endpoint, left);
    if (params.maxTokens > left) {
      throw exceeded(`the context holds ${context} tokens; the prompt takes ${promptTokens} and max_tokens asks for ${params.maxTokens}: ask for at most ${left}`);
    }
    return params.maxTokens;
  }

  /**
   * Queues the job and resolves when it ends, or returns null at once when the queue is full.
   * Released text goes to `sink` token by token; aborting `signal` (the client left) ends the
   * sequence and frees its pages.
   */
  start(job: GenerationJob, recorder: TimelineRecorder, sink: TextSink, signal: AbortSignal): Promise<GenerationOutcome> | null {
    const { tokenizer, stopIds } = this.#serving;
    const decoder = new StreamingDecoder(tokenizer, job.prompt);
    const stopText = new StopText(job.stop);
    const stopped = new AbortController();
    let text = '';
    let generated = 0;
    let lastAtMs = 0;
    const release = (fragment: string): number => {
      text += fragment;
      return fragment ? sink(fragment) : 0;
    };
    const sequence = this.#admission.submit(
      { prompt: job.prompt, maxTokens: job.maxTokens, temperature: job.temperature, seed: job.seed, filters: { topK: 0, topP: job.topP, minP: 0 }, stopIds },
      {
        onStart: () => {
          recorder.enter('prefill');
          lastAtMs = recorder.now();
        },
        onToken: (token) => {
          const atMs = recorder.now();
          if (generated++ === 0) recorder.enter('decode', atMs);
          this.#metrics.token();
          const started = performance.now();
          const fragment = stopText.push(decoder.push(token));
          // A stop string ends the sequence: the scheduler drops it before its next step.
          if (stopText.stopped) stopped.abort();
          const detokenizeMs = performance.now() - started;
          const writeMs = release(fragment);
          const { steps, rows } = this.scheduler.stats;
          recorder.token({ token, atMs, stepMs: atMs - lastAtMs, step: steps, batchRows: rows - this.#rowsBeforeStep, detokenizeMs, writeMs, text: fragment });
          lastAtMs = atMs;
        },
      },
      AbortSignal.any([signal, stopped.signal]),
    );
    if (!sequence) return null;
    return sequence.then((result) => {
      const gpuErrors = this.#serving.gpu.takeUncapturedErrors();
      if (gpuErrors.length > 0) throw new GpuOperationError(`the GPU reported errors while this request ran; its output cannot be trusted: ${gpuErrors.join('; ')}`);
      const cancelled = result.stopReason === 'cancelled' && !stopText.stopped;
      if (!stopText.stopped && !cancelled) {
        const rest = stopText.push(decoder.flush());
        release(stopText.stopped ? rest : rest + stopText.flush());
      }
      const ttftMs = recorder.timeline.tokens[0]?.atMs ?? null;
      this.#metrics.completion(result.promptTokens, result.cachedTokens, ttftMs, result.tpotMs);
      return {
        text,
        finishReason: cancelled ? 'cancelled' : stopText.stopped || result.stopReason === 'eos' ? 'stop' : 'length',
        promptTokens: result.promptTokens,
        completionTokens: result.generatedTokens,
        cachedTokens: result.cachedTokens,
      };
    });
  }
}
