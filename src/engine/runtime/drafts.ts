// Drafts for speculative decoding: cheap guesses of the next few tokens, which the target model then
// checks in one pass. A model draft (the same model in q4_0, or a smaller model sharing the
// tokenizer) runs its own single-sequence forward passes; prompt lookup copies what followed the
// latest earlier occurrence of the sequence's last few tokens, with no model at all.
import { samplingDistribution, type Distribution } from '../reference/speculative.ts';
import { filtersActive, noPenalties, type SamplingFilters } from '../reference/sample.ts';
import type { GpuModel, Sampler } from './gpu-model.ts';

/** How the target samples; a model draft proposes from the same distribution family. */
export interface DraftSampling {
  temperature: number;
  filters: SamplingFilters;
  seed: number;
}

export interface DraftProposal {
  tokens: number[];
  /** The distribution each token was drawn from; null for a point mass (greedy or prompt lookup). */
  distributions: Array<Distribution | null>;
}

export interface Draft {
  /** 'draft-q4', 'ngram', or the draft model's source. */
  readonly name: string;
  /** Up to `count` tokens that may follow `sequence` (fewer, or none, when the draft has no guess). */
  propose(sequence: readonly number[], count: number, sampling: DraftSampling): Promise<DraftProposal>;
  /** The sequence was cut back to its first `length` tokens (the draft's later guesses were rejected). */
  rollback(length: number): void;
  /** A new sequence starts: forget everything. */
  reset(): void;
}

/** The draft's own random stream, independent of the acceptance draws (which use the request's seed as is). */
const draftSeedMix = 0x9e3779b9;

/**
 * A model on its own contiguous KV cache. It keeps the K/V of the sequence's first `cached` tokens;
 * rejected guesses leave stale entries past that point, which later steps simply overwrite (a
 * contiguous cache is indexed by position).
 */
export class ModelDraft implements Draft {
  #cached = 0;

  constructor(
    readonly name: string,
    private readonly model: GpuModel,
  ) {}

  async propose(sequence: readonly number[], count: number, sampling: DraftSampling): Promise<DraftProposal> {
    const model = this.model;
    // Room in the draft's own context for the steps below (it may be shorter than the target's).
    const steps = Math.min(count, model.contextLength - sequence.length);
    if (steps <= 0) return { tokens: [], distributions: [] };
    for (let pos = this.#cached; pos < sequence.length - 1; pos++) model.submitStep(pos, sequence[pos], null);
    // The draft samples on the GPU, each step feeding the next, and everything is read back once.
    // A sampled draft also needs each step's distribution q: the logits come back with the tokens,
    // and q is what the GPU sampler drew from (temperature and cuts, in the draft's own seed stream).
    const greedy = sampling.temperature <= 0;
    const seed = (sampling.seed ^ draftSeedMix) >>> 0;
    const sampler: Sampler = greedy ? { kind: 'argmax' } : filtersActive(sampling.filters) ? { kind: 'filtered', temperature: sampling.temperature, seed } : { kind: 'temperature', temperature: sampling.temperature, seed };
    if (sampler.kind === 'filtered') model.prepareFiltered(sampling.filters, noPenalties, []);
    model.submitChain(sequence.length - 1, sequence[sequence.length - 1], steps, sampler, !greedy);
    const { tokens, logits } = await model.readChain(steps, !greedy);
    // Every proposed token but the last went through the draft model.
    this.#cached = sequence.length + steps - 1;
    return { tokens, distributions: greedy ? tokens.map(() => null) : logits.map((l) => samplingDistribution(l, sampling.temperature, sampling.filters)) };
  }

  rollback(length: number): void {
    this.#cached = Math.min(this.#cached, length);
  }

  reset(): void {
    this.#cached = 0;
  }
}

/**
 * Prompt lookup: find the latest earlier place where the sequence's last n tokens (n = maxNgram down
 * to 1) occurred, and propose the tokens that followed it. Text that repeats itself (code, quoted
 * context, a story's names) is guessed for free; elsewhere it proposes nothing and the pass decodes
 * one token as usual.
 */
export class NgramDraft implements Draft {
  readonly name = 'ngram';

  constructor(private readonly maxNgram = 3) {}

  async propose(sequence: readonly number[], count: number): Promise<DraftProposal> {
    const tokens = ngramLookup(sequence, count, this.maxNgram);
    return { tokens, distributions: tokens.map(() => null) };
  }

  rollback(): void {}

  reset(): void {}
}

/** The up to `count` tokens that followed the latest earlier occurrence of the longest matching suffix (n <= maxNgram). */
export function ngramLookup(sequence: readonly number[], count: number, maxNgram: number): number[] {
  const length = sequence.length;
  for (let n = Math.min(maxNgram, length - 1); n >= 1; n--) {
    // Start positions of candidate matches, latest first; the suffix itself (start = length - n) is excluded.
    for (let start = length - n - 1; start >= 0; start--) {
      let matches = true;
      for (let j = 0; j < n && matches; j++) matches = sequence[start + j] === sequence[length - n + j];
      if (!matches) continue;
      const follow = sequence.slice(start + n, Math.min(start + n + count, length));
      if (follow.length > 0) return follow;
    }
  }
  return [];
}
