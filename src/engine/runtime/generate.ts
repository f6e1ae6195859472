// The decode loop: prefill the prompt token by token, then sample and stream tokens.
// With the GPU sampler, decode is pipelined: step n+1 is queued (it reads the token step n's sampler
// left on the GPU) before step n's token is mapped back, so the GPU never idles waiting for the
// CPU's read-back. Sampling on the CPU, or inspecting each step's distribution, needs the logits
// on the CPU before the next step can start, so those steps run one at a time.
import { compileConstraint, type Constraint } from '../constrain/constraint.ts';
import { buildConstraintVocabulary, type ConstraintVocabulary } from '../constrain/vocabulary.ts';
import { isAllowed } from '../constrain/token-mask.ts';
import type { GenerateRequest, GenerateResult, StopReason, TokenEvent } from '../engine.ts';
import { GpuOperationError, RequestError } from '../errors.ts';
import { uniform } from '../reference/rng.ts';
import { filtersActive, keptSet, noFilters, noPenalties, penaltiesActive, penalize, sampleFiltered, sampleToken, tokenCounts, type SamplingFilters, type SamplingPenalties } from '../reference/sample.ts';
import type { KeptCandidates, SamplerKind, StepDistribution } from '../telemetry.ts';
import type { ChatTemplate } from '../tokenizer/chat-template.ts';
import { StreamingDecoder } from '../tokenizer/streaming.ts';
import { GenerationTimeline } from './generation-timeline.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { GpuModel, Sampler } from './gpu-model.ts';

export function validateRequest(request: GenerateRequest): void {
  if (!Number.isInteger(request.maxTokens) || request.maxTokens < 0) throw new RequestError(`maxTokens must be a whole number >= 0, got ${request.maxTokens}`);
  if (!Number.isFinite(request.temperature) || request.temperature < 0) throw new RequestError(`temperature must be >= 0, got ${request.temperature}`);
  if (!Number.isInteger(request.seed)) throw new RequestError(`seed must be an integer, got ${request.seed}`);
  if (request.inspect !== undefined && (!Number.isInteger(request.inspect) || request.inspect < 0 || request.inspect > 1000)) {
    throw new RequestError(`inspect must be a whole number from 0 to 1000, got ${request.inspect}`);
  }
  const check = (name: keyof GenerateRequest, ok: (v: number) => boolean, rule: string) => {
    const value = request[name];
    if (value !== undefined && (typeof value !== 'number' || !ok(value))) throw new RequestError(`${name} must be ${rule}, got ${String(value)}`);
  };
  check('topK', (v) => Number.isInteger(v) && v >= 0, 'a whole number >= 0 (0: off)');
  check('topP', (v) => v > 0 && v <= 1, 'in (0, 1] (1: off)');
  check('minP', (v) => v >= 0 && v <= 1, 'in [0, 1] (0: off)');
  check('repetitionPenalty', (v) => Number.isFinite(v) && v > 0, 'a number > 0 (1: off)');
  check('frequencyPenalty', Number.isFinite, 'a finite number (0: off)');
  check('presencePenalty', Number.isFinite, 'a finite number (0: off)');
}

// A tokenizer's vocabulary as constraints see it: built on the first constrained request (it
// decodes every token once, about a second for a 49k vocabulary), then kept with the tokenizer.
const constraintVocabularies = new WeakMap<Tokenizer, ConstraintVocabulary>();

function constraintFor(tokenizer: Tokenizer, spec: string): Constraint {
  let vocabulary = constraintVocabularies.get(tokenizer);
  if (!vocabulary) {
    vocabulary = buildConstraintVocabulary(tokenizer);
    constraintVocabularies.set(tokenizer, vocabulary);
  }
  return compileConstraint(spec, vocabulary);
}

/** The request's top-k / top-p / min-p, with the defaults (off) filled in. */
export function requestFilters(request: GenerateRequest): SamplingFilters {
  return { topK: request.topK ?? noFilters.topK, topP: request.topP ?? noFilters.topP, minP: request.minP ?? noFilters.minP };
}

export function requestPenalties(request: GenerateRequest): SamplingPenalties {
  return {
    repetitionPenalty: request.repetitionPenalty ?? noPenalties.repetitionPenalty,
    frequencyPenalty: request.frequencyPenalty ?? noPenalties.frequencyPenalty,
    presencePenalty: request.presencePenalty ?? noPenalties.presencePenalty,
  };
}

export interface GenerateOptions {
  /** 'gpu' (default): the sampler kernel picks each token; 'gpu-sort': by sorting on the GPU; 'cpu': logits are read back and sampled here. */
  sampler?: SamplerKind;
  /** The model's chat template, for requests with `chat` set. */
  chatTemplate?: ChatTemplate | null;
}

/** The prompt's tokens: BOS + the text, or the chat template's rendering (which places BOS itself when the model wants one). */
export function encodePrompt(tokenizer: Tokenizer, request: GenerateRequest, template: ChatTemplate | null | undefined): number[] {
  if (!request.chat) return tokenizer.encode(request.prompt, { bos: true });
  if (!template) throw new RequestError('this model has no chat template (its tokenizer_config.json has no chat_template): generate without chat');
  return tokenizer.encode(template.render([{ role: 'user', content: request.prompt }], { addGenerationPrompt: true }), { bos: false });
}

/** The `count` highest logits with their pieces, and the log-sum-exp over the whole vocabulary. */
export function topCandidates(logits: Float32Array, count: number, tokenizer: Tokenizer): Pick<StepDistribution, 'candidates' | 'logSumExp'> {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  let sum = 0;
  for (const l of logits) if (!Number.isNaN(l)) sum += Math.exp(l - max);
  // The best `count` by one pass with a small sorted list (highest first, ties to the lower id):
  // this runs every inspected step, and sorting a 150k vocabulary there would cost more than the step.
  const best: number[] = [];
  for (let i = 0; i < logits.length && count > 0; i++) {
    const l = logits[i];
    if (Number.isNaN(l) || (best.length === count && l <= logits[best[count - 1]])) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]] < l) at--;
    best.splice(at, 0, i);
    if (best.length > count) best.pop();
  }
  const candidates = best.map((token) => ({ token, piece: tokenizer.decode([token]), logit: logits[token] }));
  return { candidates, logSumExp: max + Math.log(sum) };
}

/** Kept tokens listed in a step's distribution: a top-p cut on a large vocabulary can keep thousands. */
export const keptListLimit = 200;

/**
 * What the sampler's cuts keep of softmax(logits / temperature) (the cuts on, temperature > 0):
 * the reference's kept set, most likely first (ties: lower id first), renormalized over the whole
 * kept set; the lists stop after keptListLimit tokens (`count` says how many were kept).
 * Null when the largest logit is not finite: there is no distribution, the argmax is taken.
 */
export function keptCandidates(logits: Float32Array, temperature: number, filters: SamplingFilters): KeptCandidates | null {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  if (!Number.isFinite(max)) return null;
  const kept = keptSet(logits, temperature, filters);
  const order = kept.tokens.map((_, j) => j).sort((a, b) => kept.weights[b] - kept.weights[a] || kept.tokens[a] - kept.tokens[b]);
  const listed = order.slice(0, keptListLimit);
  const probabilities = listed.map((j) => kept.weights[j] / kept.total);
  let running = 0;
  const cumulative = probabilities.map((p) => (running += p));
  return {
    count: kept.tokens.length,
    tokens: listed.map((j) => kept.tokens[j]),
    probabilities,
    cumulative,
    keptMass: kept.total / softmaxTotal(logits, max, temperature),
    topKLogit: kept.topKLogit,
    topPWeight: kept.topPWeight,
    minWeight: kept.minWeight,
  };
}

/** The sum of exp((logit - max) / temperature) over the vocabulary (NaN logits count as -Infinity): the kept weights' denominator. */
function softmaxTotal(logits: Float32Array, max: number, temperature: number): number {
  let total = 0;
  for (const l of logits) if (!Number.isNaN(l)) total += Math.exp((l - max) / temperature);
  return total;
}

/**
 * Generation ends at EOS, and also at BOS: llama2.c models delimit stories with BOS and never emit
 * EOS (llama2.c's run.c stops on BOS the same way), and a chat model's BOS opens a new turn.
 */
export function stopTokens(tokenizer: Tokenizer): number[] {
  return [tokenizer.eosId, tokenizer.bosId];
}

export async function generate(
  model: GpuModel,
  tokenizer: Tokenizer,
  request: GenerateRequest,
  onToken?: (event: TokenEvent) => void,
  signal?: AbortSignal,
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  validateRequest(request);
  const timeline = new GenerationTimeline();
  const prompt = encodePrompt(tokenizer, request, options.chatTemplate);
  const context = model.contextLength;
  if (prompt.length >= context) {
    throw new RequestError(`the prompt is ${prompt.length} tokens but the context holds ${context}: shorten it to at most ${context - 1} tokens`);
  }
  const budget = Math.min(request.maxTokens, context - prompt.length);
  const filters = requestFilters(request);
  const penalties = requestPenalties(request);
  const constraint = request.constraint ? constraintFor(tokenizer, request.constraint) : null;
  // The plain kernels when no cut, penalty or mask applies; cuts do nothing to a greedy pick.
  const filtered = constraint !== null || penaltiesActive(penalties) || (request.temperature > 0 && filtersActive(filters));
  // 'gpu-sort' sorts every sampled step, greedy ones too (the first sorted entry is the argmax),
  // so the switch always measures the sort.
  const sorted = options.sampler === 'gpu-sort';
  const sampler: Sampler = sorted
    ? { kind: 'sorted', temperature: request.temperature, seed: request.seed }
    : filtered
      ? { kind: 'filtered', temperature: request.temperature, seed: request.seed }
      : request.temperature > 0
        ? { kind: 'temperature', temperature: request.temperature, seed: request.seed }
        : { kind: 'argmax' };
  if (sorted) await model.prepareSorted();
  if (filtered || sorted) model.prepareFiltered(filters, penalties, prompt, constraint !== null);
  // The CPU sampler's own occurrence counts (the GPU sampler keeps its counts on the GPU).
  const counts = penaltiesActive(penalties) ? tokenCounts(prompt, model.config.vocabSize) : null;
  const stopIds = stopTokens(tokenizer);
  const tokens = [...prompt];
  const decoder = new StreamingDecoder(tokenizer, prompt);
  let text = '';
  let stopReason: StopReason = budget < request.maxTokens ? 'context' : 'length';

  timeline.prefill(prompt.length);
  const started = performance.now();
  let prefillMs = 0;
  let lastTokenAt = started;

  // Fails fast if the device is lost while we wait on a read-back.
  const lost = model.gpu.lost.then((error) => Promise.reject<never>(error));
  lost.catch(() => {});
  const readToken = (slot: number) => Promise.race([model.readToken(slot), lost]);
  const readLogits = () => Promise.race([model.readStepLogits(), lost]);
  const cpuSampler = options.sampler === 'cpu';
  const inspect = request.inspect ?? 0;
  const readsLogits = cpuSampler || inspect > 0;
  // A constraint's next mask depends on this token: no step can be queued before it is known.
  const stepByStep = readsLogits || constraint !== null;
  /** Puts the constraint's mask for the next sampled step on the GPU, unless it is already there. */
  let maskOnGpu: Uint32Array | null = null;
  const writeMask = () => {
    if (!constraint || cpuSampler) return;
    // A state's mask is one cached array, so an unchanged array is an unchanged mask.
    const mask = constraint.mask();
    if (mask !== maskOnGpu) model.writeAllowed(mask);
    maskOnGpu = mask;
  };
  // The GPU sampler runs only where it picks the token; the head (logits) runs in every sampled step.
  const gpuSampler = cpuSampler ? null : sampler;
  /** The token at `pos`: sampled here from read-back logits (CPU sampler), else read from the GPU. */
  const nextToken = async (pos: number): Promise<{ token: number; distribution?: StepDistribution }> => {
    const raw = readsLogits ? await readLogits() : null;
    const penalized = raw && counts ? penalize(raw, counts, penalties) : raw;
    const mask = penalized && constraint ? constraint.mask() : null;
    const logits = penalized && mask ? penalized.map((v, i) => (isAllowed(mask, i) ? v : -Infinity)) : penalized;
    const u = uniform(request.seed >>> 0, pos);
    const token = !cpuSampler ? await readToken(0) : filtered ? sampleFiltered(logits!, request.temperature, filters, u) : sampleToken(logits!, request.temperature, u);
    if (counts) counts[token]++;
    constraint?.advance(token);
    if (!logits || inspect === 0) return { token };
    const kept = request.temperature > 0 && filtersActive(filters) ? keptCandidates(logits, request.temperature, filters) : null;
    return { token, distribution: { position: pos, sampled: token, temperature: request.temperature, ...topCandidates(logits, inspect, tokenizer), ...(kept && { kept }) } };
  };

  try {
    if (budget > 0) {
      for (let pos = 0; pos < prompt.length - 1; pos++) model.submitStep(pos, prompt[pos], null);
      writeMask();
      model.submitStep(prompt.length - 1, prompt[prompt.length - 1], gpuSampler, 0, readsLogits);
    }
    for (let n = 0; n < budget; n++) {
      const pos = prompt.length + n; // position of the token being produced
      if (signal?.aborted) {
        stopReason = 'cancelled';
        break;
      }
      let token: number;
      let distribution: StepDistribution | undefined;
      if (stepByStep) {
        ({ token, distribution } = await nextToken(pos));
        if (n + 1 < budget && !stopIds.includes(token)) {
          writeMask();
          model.submitStep(pos, token, gpuSampler, 0, readsLogits);
        }
      } else {
        // Queue the next step before waiting on this one's token (it reads the token on the GPU).
        if (n + 1 < budget) model.submitStep(pos, null, sampler, (n + 1) % 2);
        token = await readToken(n % 2);
      }
      const now = performance.now();
      if (n === 0) prefillMs = now - started;
      tokens.push(token);
      text += timeline.token(token, n, 1, () => decoder.push(token), (fragment) => onToken?.({ position: pos, token, text: fragment, stepMs: now - lastTokenAt, ...(distribution && { distribution }) }));
      lastTokenAt = now;
      if (stopIds.includes(token)) {
        stopReason = 'eos';
        break;
      }
    }
    text += decoder.flush();
  } catch (error) {
    // A read-back can fail before the device's lost promise settles: give it a moment to say so.
    const lostError = await Promise.race([model.gpu.lost, new Promise<null>((resolve) => setTimeout(() => resolve(null), 100))]);
    throw lostError ?? error;
  }
  // Let a queued step that turned out to be unnecessary (EOS, cancel) finish before returning.
  await model.gpu.device.queue.onSubmittedWorkDone();
  const gpuErrors = model.gpu.takeUncapturedErrors();
  if (gpuErrors.length > 0) throw new GpuOperationError(`the GPU reported errors during generation; the output cannot be trusted: ${gpuErrors.join('; ')}`);

  const generatedTokens = tokens.length - prompt.length;
  const decodeMs = generatedTokens > 0 ? lastTokenAt - started - prefillMs : 0;
  return {
    tokens,
    text,
    promptTokens: prompt.length,
    generatedTokens,
    prefillMs,
    decodeMs,
    // Like llama2.c, the rate counts the tokens after the first (whose time is the prefill's).
    decodeTokensPerSecond: generatedTokens > 1 ? ((generatedTokens - 1) * 1000) / decodeMs : 0,
    stopReason,
    ...(constraint && { constraint: { spec: constraint.spec, ...pick(constraint.stats), complete: constraint.finished || constraint.complete } }),
    timeline: timeline.finish(stopReason, { cached: 0, computed: prompt.length }),
  };
}

function pick(stats: Constraint['stats']) {
  return { maskCalls: stats.maskCalls, cacheHits: stats.cacheHits, maskMs: stats.maskMs, maxMaskMs: stats.maxMaskMs };
}
