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
  /** A new sequence starts, sampled as `sampling` throughout: forget everything before it. */
  start(sampling: DraftSampling): void;
  /** Up to `count` tokens that may follow `sequence` (fewer, or none, when the draft has no guess). */
  propose(sequence: readonly number[], count: number): Promise<DraftProposal>;
  /** The sequence was cut back to its first `length` tokens (the draft's later guesses were rejected). */
  rollback(length: number): void;
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
  #sampling: DraftSampling | null = null;
  #sampler: Sampler = { kind: 'argmax' };

  constructor(
    readonly name: string,
    private readonly model: GpuModel,
  ) {}

  /**
   * The draft samples on the GPU as the target does (temperature and cuts), in its own seed stream;
   * the cuts go to the GPU once per sequence.
   */
  start(sampling: DraftSampling): void {
    this.#cached = 0;
    this.#sampling = sampling;
    const seed = (sampling.seed ^ draftSeedMix) >>> 0;
    const { temperature, filters } = sampling;
    this.#sampler = temperature <= 0 ? { kind: 'argmax' } : filtersActive(filters) ? { kind: 'filtered', temperature, seed } : { kind: 'temperature', temperature, seed };
    if (this.#sampler.kind === 'filtered') this.model.prepareFiltered(filters, noPenalties, []);
  }

  async propose(sequence: readonly number[], count: number): Promise<DraftProposal> {
    const model = this.model;
    const sampling = this.#sampling;
    if (!sampling) throw new Error('ModelDraft.propose before start()');
    // Room in the draft's own context for the steps below (it may be shorter than the target's).
    const steps = Math.min(count, model.contextLength - sequence.length);
    if (steps <= 0) return { tokens: [], distributions: [] };
    for (let pos = this.#cached; pos < sequence.length - 1; pos++) model.submitStep(pos, sequence[pos], null);
    // Each step feeds its token to the next on the GPU, and everything is read back once. A sampled
    // draft also needs each step's distribution q: the logits come back with the tokens, and q is
    // what the GPU sampler drew from.
    const greedy = this.#sampler.kind === 'argmax';
    model.submitChain(sequence.length - 1, sequence[sequence.length - 1], steps, this.#sampler, !greedy);
    const { tokens, logits } = await model.readChain(steps, !greedy);
    // Every proposed token but the last went through the draft model.
    this.#cached = sequence.length + steps - 1;
    return { tokens, distributions: greedy ? tokens.map(() => null) : logits.map((l) => samplingDistribution(l, sampling.temperature, sampling.filters)) };
  }

  rollback(length: number): void {
    this.#cached = Math.min(this.#cached, length);
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

  start(): void {}

  rollback(): void {}
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
