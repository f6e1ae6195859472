// Text in, text out over the batched model: the engine's generateBatch (many requests through the
// scheduler) and the single generation of the paged KV setting (one request through the same path,
// so its prompt is prefilled in chunks through the matrix-matrix kernel).
import type { BatchGenerateRequest, BatchGenerateResult, BatchKvState, BatchSequenceResult, BatchStepEvent, BatchTokenEvent, GenerateRequest, GenerateResult, TokenEvent } from '../engine.ts';
import { CancelledError, GpuOperationError, RequestError } from '../errors.ts';
import { pageBytes } from '../kv/page-pool.ts';
import type { ChatTemplate } from '../tokenizer/chat-template.ts';
import { StreamingDecoder } from '../tokenizer/streaming.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { BatchModel } from './batch-model.ts';
import { penaltiesActive } from '../reference/sample.ts';
import { encodePrompt, requestFilters, requestPenalties, stopTokens, validateRequest } from './generate.ts';
import { GenerationTimeline } from './generation-timeline.ts';
import { Scheduler, type SequenceResult } from './scheduler.ts';

/** How often step events carry the page grid (it is one entry per page). */
const pagesEveryMs = 100;

export interface BatchEvents {
  token?: (event: BatchTokenEvent) => void;
  step?: (event: BatchStepEvent) => void;
}

export interface BatchContext {
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate | null;
}

function kvState(scheduler: Scheduler, model: BatchModel, mode: 'paged' | 'contiguous'): BatchKvState {
  const usage = scheduler.kvUsage();
  return {
    mode,
    pageSize: model.layout.blockSize,
    pageCount: model.pool.pageCount,
    pageBytes: pageBytes(model.layout),
    reservedBytes: usage.reservedBytes,
    liveBytes: usage.liveBytes,
    cachedPages: scheduler.cachedPages,
    paged: usage.paged,
    contiguous: usage.contiguous,
  };
}

function checkBatchRequest(request: BatchGenerateRequest, model: BatchModel): number {
  if (!Array.isArray(request.requests) || request.requests.length === 0) throw new RequestError('a batch needs at least one request');
  request.requests.forEach((r, i) => {
    validateRequest(r);
    if (r.maxTokens < 1) throw new RequestError(`request ${i}: maxTokens must be at least 1 in a batch, got ${r.maxTokens}`);
    if (r.inspect) throw new RequestError(`request ${i}: inspect reads one sequence's logits every step and is not available in a batch`);
    if (r.constraint) throw new RequestError(`request ${i}: constrained decoding runs on the contiguous KV cache, one sequence at a time (its mask follows each sampled token)`);
    if (penaltiesActive(requestPenalties(r))) {
      throw new RequestError(`request ${i}: repetition, frequency and presence penalties need per-sequence token counts, which the batched sampler does not keep: use the contiguous KV cache`);
    }
  });
  const limit = Math.min(model.maxSequences, 32);
  const maxBatch = request.maxBatch ?? Math.min(request.requests.length, limit);
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > limit) throw new RequestError(`maxBatch must be a whole number from 1 to ${limit}, got ${maxBatch}`);
  const kv = request.kv ?? 'paged';
  if (kv !== 'paged' && kv !== 'contiguous') throw new RequestError(`kv must be paged or contiguous, got ${String(kv)}`);
  return maxBatch;
}

/**
 * Runs every request through one scheduler on `model` (whose page size and attention kernel the
 * caller has set) and reports each sequence, the aggregate rate and the KV memory at its peak.
 */
export async function generateBatch(model: BatchModel, context: BatchContext, request: BatchGenerateRequest, events: BatchEvents = {}, signal?: AbortSignal): Promise<BatchGenerateResult> {
  const maxBatch = checkBatchRequest(request, model);
  const mode = request.kv ?? 'paged';
  const prompts = request.requests.map((r) => encodePrompt(context.tokenizer, r, context.chatTemplate));
  const stopIds = stopTokens(context.tokenizer);
  const decoders = prompts.map((p) => new StreamingDecoder(context.tokenizer, p));
  const texts = prompts.map(() => '');

  let kvPeak: BatchKvState | null = null;
  let lastPagesAt = -Infinity;
  const scheduler: Scheduler = new Scheduler(model, {
    maxBatch,
    prefillChunk: request.prefillChunk,
    prefixCache: request.prefixCache ?? true,
    kv: mode,
    onStep: (rows) => {
      const kv = kvState(scheduler, model, mode);
      if (!kvPeak || kv.reservedBytes > kvPeak.reservedBytes) kvPeak = kv;
      if (!events.step) return;
      const now = performance.now();
      const last = scheduler.runningCount === 0 && scheduler.waitingCount === 0;
      const withPages = last || now - lastPagesAt >= pagesEveryMs;
      if (withPages) lastPagesAt = now;
      events.step({ step: scheduler.stats.steps, rows, running: scheduler.runningCount, waiting: scheduler.waitingCount, kv, ...(withPages && { pages: scheduler.pages() }) });
    },
  });

  const lost = model.gpu.lost.then((error) => Promise.reject<never>(error));
  lost.catch(() => {});
  const started = performance.now();
  const runs = request.requests.map(async (r, i): Promise<SequenceResult | null> => {
    const onToken = (token: number) => {
      const text = decoders[i].push(token);
      texts[i] += text;
      events.token?.({ sequence: i, token, text });
    };
    try {
      return await scheduler.submit({ prompt: prompts[i], maxTokens: r.maxTokens, temperature: r.temperature, seed: r.seed, filters: requestFilters(r), stopIds }, onToken, signal);
    } catch (error) {
      if (error instanceof CancelledError) return null; // cancelled while it waited
      throw error;
    }
  });
  let results: Array<SequenceResult | null>;
  try {
    results = await Promise.race([Promise.all(runs), lost]);
  } catch (error) {
    const lostError = await Promise.race([model.gpu.lost, new Promise<null>((resolve) => setTimeout(() => resolve(null), 100))]);
    throw lostError ?? error;
  }
  const wallMs = performance.now() - started;
  await model.gpu.device.queue.onSubmittedWorkDone();
  const gpuErrors = model.gpu.takeUncapturedErrors();
  if (gpuErrors.length > 0) throw new GpuOperationError(`the GPU reported errors during the batch; the output cannot be trusted: ${gpuErrors.join('; ')}`);

  const sequences = results.map((result, i): BatchSequenceResult => {
    const prompt = request.requests[i].prompt;
    if (!result) {
      return { prompt, tokens: prompts[i], text: '', promptTokens: prompts[i].length, generatedTokens: 0, cachedTokens: 0, ttftMs: null, tpotMs: null, stopReason: 'cancelled' };
    }
    return { prompt, tokens: result.tokens, text: texts[i] + decoders[i].flush(), promptTokens: result.promptTokens, generatedTokens: result.generatedTokens, cachedTokens: result.cachedTokens, ttftMs: result.ttftMs, tpotMs: result.tpotMs, stopReason: result.stopReason };
  });
  const generated = sequences.reduce((sum, s) => sum + s.generatedTokens, 0);
  const userRates = sequences.filter((s) => s.tpotMs !== null && s.tpotMs > 0).map((s) => 1000 / s.tpotMs!);
  return {
    sequences,
    wallMs,
    aggregateTokensPerSecond: wallMs > 0 ? (generated * 1000) / wallMs : 0,
    perUserTokensPerSecond: userRates.length > 0 ? userRates.reduce((a, b) => a + b, 0) / userRates.length : 0,
    steps: scheduler.stats.steps,
    rows: scheduler.stats.rows,
    maxBatch,
    kvPeak: kvPeak ?? kvState(scheduler, model, mode),
    prefix: { hitTokens: scheduler.stats.prefixHitTokens, computedTokens: scheduler.stats.computedPromptTokens },
    attention: model.attention,
  };
}

/** One generation through the batched model (the paged KV setting), streamed like generate(). */
export async function generatePaged(
  model: BatchModel,
  context: BatchContext,
  request: GenerateRequest,
  options: { prefixCache: boolean },
  onToken?: (event: TokenEvent) => void,
  signal?: AbortSignal,
): Promise<GenerateResult> {
  validateRequest(request);
  if (request.inspect) throw new RequestError('inspect needs the contiguous KV cache (it reads the logits every step): switch the KV cache to contiguous');
  const timeline = new GenerationTimeline();
  const prompt = encodePrompt(context.tokenizer, request, context.chatTemplate);
  if (prompt.length >= model.contextLength) {
    throw new RequestError(`the prompt is ${prompt.length} tokens but the context holds ${model.contextLength}: shorten it to at most ${model.contextLength - 1} tokens`);
  }
  timeline.prefill(prompt.length);
  const started = performance.now();
  if (request.maxTokens === 0) {
    return { tokens: prompt, text: '', promptTokens: prompt.length, generatedTokens: 0, prefillMs: 0, decodeMs: 0, decodeTokensPerSecond: 0, stopReason: 'length', timeline: timeline.finish('length', { cached: 0, computed: 0 }) };
  }
  let position = prompt.length;
  let lastAt = started;
  let step = 0;
  const result = await generateBatch(model, context, { requests: [request], maxBatch: 1, kv: 'paged', prefixCache: options.prefixCache }, {
    // The batch loop has already turned the token into text (its time is inside the step's).
    token: ({ token, text }) => {
      const now = performance.now();
      timeline.token(token, step++, 1, () => text, (fragment) => onToken?.({ position: position++, token, text: fragment, stepMs: now - lastAt }));
      lastAt = now;
    },
  }, signal);
  const sequence = result.sequences[0];
  const prefillMs = sequence.ttftMs ?? 0;
  const decodeMs = sequence.generatedTokens > 1 ? (sequence.tpotMs ?? 0) * (sequence.generatedTokens - 1) : 0;
  return {
    tokens: sequence.tokens,
    text: sequence.text,
    promptTokens: sequence.promptTokens,
    generatedTokens: sequence.generatedTokens,
    prefillMs,
    decodeMs,
    decodeTokensPerSecond: decodeMs > 0 ? ((sequence.generatedTokens - 1) * 1000) / decodeMs : 0,
    stopReason: sequence.stopReason,
    timeline: timeline.finish(sequence.stopReason, { cached: sequence.cachedTokens, computed: sequence.promptTokens - sequence.cachedTokens }),
  };
}
