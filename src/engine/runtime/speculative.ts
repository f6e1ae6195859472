// Speculative decoding over the batched model: a draft proposes k tokens, the target runs the
// sequence's pending token and all k guesses as k + 1 rows of ONE step (its weights are read once
// for all of them, which is why checking k tokens costs about as much as producing one), and the
// speculative sampling rule (reference/speculative.ts) keeps a prefix of the guesses plus one token
// of its own. The K/V of rejected guesses were written into the sequence's pages by that step: the
// sequence is truncated back, which releases pages past the new end, and the next pass overwrites
// the stale slots of the last page.
//
// Invariant between passes: the sequence's KV holds every token but the last (the pending token,
// whose logits the next pass computes as its first row).
//
// Greedy requests never read logits: each row's GPU sampler takes the argmax, and a guess is kept
// while it equals the target's argmax — the rule with point masses, so the output equals plain
// greedy decoding. Sampled requests read back the rows' logits and apply the rule on the CPU.
import type { GenerateRequest, GenerateResult, SpeculativeReport, StopReason, TokenEvent } from '../engine.ts';
import { GpuOperationError, RequestError } from '../errors.ts';
import { SequenceKv } from '../kv/page-pool.ts';
import { uniform } from '../reference/rng.ts';
import { filtersActive, penaltiesActive } from '../reference/sample.ts';
import { samplingDistribution, verifyDraft } from '../reference/speculative.ts';
import { StreamingDecoder } from '../tokenizer/streaming.ts';
import type { BatchModel, StepRow } from './batch-model.ts';
import type { BatchContext } from './batch-generate.ts';
import type { Draft, DraftSampling } from './drafts.ts';
import { GenerationTimeline } from './generation-timeline.ts';
import { encodePrompt, requestFilters, requestPenalties, stopTokens, validateRequest } from './generate.ts';

/** Most tokens a draft may propose per pass (a pass then holds up to 9 rows). */
export const maxDraftTokens = 8;

/** Rows of one prefill step. */
const prefillChunk = 32;

/** Seed of the acceptance draws: a stream apart from the resample draws (which use the request's seed). */
const acceptSeedMix = 0x85ebca6b;

export interface SpeculativeOptions {
  /** Tokens the draft proposes per pass (1 to maxDraftTokens). */
  draftTokens: number;
  /** Called with the sequence's pages and tokens before they are freed (tests compare them). */
  inspectKv?: (kv: SequenceKv, tokens: readonly number[]) => Promise<void>;
}

function checkRequest(request: GenerateRequest, options: SpeculativeOptions): void {
  validateRequest(request);
  const k = options.draftTokens;
  if (!Number.isInteger(k) || k < 1 || k > maxDraftTokens) throw new RequestError(`draftTokens must be a whole number from 1 to ${maxDraftTokens}, got ${k}`);
  if (request.inspect) throw new RequestError('inspect reads one step\'s logits at a time and is not available with speculative decoding: turn speculative decoding off');
  if (request.constraint) throw new RequestError('constrained decoding masks each token after the one before is known, so it cannot check a draft\'s guesses in one pass: turn speculative decoding off');
  if (penaltiesActive(requestPenalties(request))) throw new RequestError('repetition, frequency and presence penalties change with every token a pass accepts: turn speculative decoding off to use them');
}

export async function generateSpeculative(
  model: BatchModel,
  draft: Draft,
  context: BatchContext,
  request: GenerateRequest,
  options: SpeculativeOptions,
  onToken?: (event: TokenEvent) => void,
  signal?: AbortSignal,
): Promise<GenerateResult> {
  checkRequest(request, options);
  const timeline = new GenerationTimeline();
  const prompt = encodePrompt(context.tokenizer, request, context.chatTemplate);
  const contextLength = model.contextLength;
  if (prompt.length >= contextLength) {
    throw new RequestError(`the prompt is ${prompt.length} tokens but the context holds ${contextLength}: shorten it to at most ${contextLength - 1} tokens`);
  }
  const budget = Math.min(request.maxTokens, contextLength - prompt.length);
  const filters = requestFilters(request);
  const sampling: DraftSampling = { temperature: request.temperature, filters, seed: request.seed >>> 0 };
  const greedy = request.temperature <= 0;
  // Cuts only change a sampled distribution; the GPU row sampler takes them when greedy rows don't.
  const rowSample = { seed: sampling.seed, temperature: 0, ...(greedy || !filtersActive(filters) ? {} : { filters }) };
  const stopIds = stopTokens(context.tokenizer);
  const tokens = [...prompt];
  const decoder = new StreamingDecoder(context.tokenizer, prompt);
  let text = '';
  let stopReason: StopReason = budget < request.maxTokens ? 'context' : 'length';
  const report: SpeculativeReport = { draft: draft.name, draftTokens: options.draftTokens, targetPasses: 0, proposed: 0, accepted: 0, acceptanceRate: 0, tokensPerTargetPass: 0, draftMs: 0, verifyMs: 0 };

  const lost = model.gpu.lost.then((error) => Promise.reject<never>(error));
  lost.catch(() => {});
  const onGpu = <T>(work: Promise<T>) => Promise.race([work, lost]);
  const kv = new SequenceKv(model.pool, 'speculative');
  const reserve = (count: number) => {
    if (!kv.append(count)) throw new RequestError(`the KV pool has no room for ${count} more tokens (${model.pool.freePages} pages free): shorten the prompt or the draft`);
    return kv.prepareWrite().copies;
  };
  draft.start(sampling);
  timeline.prefill(prompt.length);
  const started = performance.now();
  let prefillMs = 0;
  let lastTokenAt = started;
  let generated = 0;
  /** Tokens the first pass emitted: they arrive together at the time to first token. */
  let firstPassTokens = 0;
  try {
    // Prefill every prompt token but the last (the first pass runs it with the guesses).
    for (let at = 0; at < prompt.length - 1; at += prefillChunk) {
      const chunk = prompt.slice(at, Math.min(at + prefillChunk, prompt.length - 1));
      const copies = reserve(chunk.length);
      await onGpu(model.step(chunk.map((token, i): StepRow => ({ blockTable: kv.blockTable, token, position: at + i, sample: null })), copies));
    }

    passes: while (generated < budget) {
      if (signal?.aborted) {
        stopReason = 'cancelled';
        break;
      }
      const length = tokens.length; // the pending token sits at position length - 1
      // A pass emits accepted + 1 tokens: never past the budget.
      const want = Math.min(options.draftTokens, budget - generated - 1);
      const draftStarted = performance.now();
      const proposal = want > 0 ? await onGpu(draft.propose(tokens, want)) : { tokens: [], distributions: [] };
      const verifyStarted = performance.now();
      report.draftMs += verifyStarted - draftStarted;

      const guesses = proposal.tokens;
      const copies = reserve(guesses.length + 1);
      const rows: StepRow[] = [tokens[length - 1], ...guesses].map((token, i) => ({ blockTable: kv.blockTable, token, position: length - 1 + i, sample: rowSample }));
      let accepted: number;
      let next: number;
      if (greedy) {
        const argmaxes = await onGpu(model.step(rows, copies));
        accepted = 0;
        while (accepted < guesses.length && guesses[accepted] === argmaxes[accepted]) accepted++;
        next = argmaxes[accepted];
      } else {
        const { logits } = await onGpu(model.stepWithLogits(rows, copies));
        const target = logits.map((l) => samplingDistribution(l, request.temperature, filters));
        // Draws keyed by the position of the token they decide, like the plain sampler's.
        ({ accepted, next } = verifyDraft(guesses, proposal.distributions, target, (i) => uniform((sampling.seed ^ acceptSeedMix) >>> 0, length + i), (i) => uniform(sampling.seed, length + i)));
      }
      report.verifyMs += performance.now() - verifyStarted;
      report.targetPasses++;
      report.proposed += guesses.length;
      report.accepted += accepted;
      // Keep the K/V of the pending token and the accepted guesses; the rest are rolled back.
      kv.truncate(length + accepted);
      draft.rollback(length + accepted);

      const now = performance.now();
      if (generated === 0) {
        prefillMs = now - started;
        firstPassTokens = accepted + 1;
      }
      for (const token of [...guesses.slice(0, accepted), next]) {
        const position = tokens.length;
        tokens.push(token);
        generated++;
        text += timeline.token(token, report.targetPasses - 1, rows.length, () => decoder.push(token), (fragment) => onToken?.({ position, token, text: fragment, stepMs: now - lastTokenAt }));
        lastTokenAt = now;
        if (stopIds.includes(token)) {
          stopReason = 'eos';
          break passes;
        }
      }
    }
    text += decoder.flush();
    if (options.inspectKv) {
      // The KV holds every token but the last; a stop inside a pass leaves later accepted tokens' K/V past it.
      kv.truncate(Math.min(kv.length, tokens.length - 1));
      await options.inspectKv(kv, tokens);
    }
  } catch (error) {
    const lostError = await Promise.race([model.gpu.lost, new Promise<null>((resolve) => setTimeout(() => resolve(null), 100))]);
    throw lostError ?? error;
  } finally {
    kv.free();
  }
  await model.gpu.device.queue.onSubmittedWorkDone();
  const gpuErrors = model.gpu.takeUncapturedErrors();
  if (gpuErrors.length > 0) throw new GpuOperationError(`the GPU reported errors during generation; the output cannot be trusted: ${gpuErrors.join('; ')}`);

  report.acceptanceRate = report.proposed > 0 ? report.accepted / report.proposed : 0;
  report.tokensPerTargetPass = report.targetPasses > 0 ? generated / report.targetPasses : 0;
  const decodeMs = generated > 0 ? lastTokenAt - started - prefillMs : 0;
  return {
    tokens,
    text,
    promptTokens: prompt.length,
    generatedTokens: generated,
    prefillMs,
    decodeMs,
    // Tokens after the first pass's over the time since it (a pass emits several at once).
    decodeTokensPerSecond: decodeMs > 0 ? ((generated - Math.min(firstPassTokens, generated)) * 1000) / decodeMs : 0,
    stopReason,
    speculative: report,
    timeline: timeline.finish(stopReason, { cached: 0, computed: prompt.length }),
  };
}
