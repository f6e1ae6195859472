// Picks the next token from the logits. Sampling is written step by step in f32 (Math.fround after
// every operation) because the GPU sampler must make the same choice from the same uniform draw.
import { argmax } from './ops.ts';

/**
 * temperature <= 0: argmax. Otherwise sample from softmax(logits / temperature) by inverse CDF:
 * p_i = exp((l_i - max) / T) unnormalized (NaN logits count as -Infinity), target = u * sum(p), and the
 * token is the first i whose running sum exceeds target. When rounding leaves the target unreached,
 * the last token with p_i > 0 is taken. A non-finite maximum (every logit -Infinity or NaN, or some
 * +Infinity) leaves no distribution to sample, so argmax decides.
 *   logits (vocab), u in [0, 1)
 */
export function sampleToken(logits: Float32Array, temperature: number, u: number): number {
  if (temperature <= 0) return argmax(logits);
  const max = logits[argmax(logits)];
  if (!Number.isFinite(max)) return argmax(logits);

  const f32 = Math.fround;
  const t = f32(temperature);
  const weight = (logit: number): number => (Number.isNaN(logit) ? 0 : f32(Math.exp(f32(f32(logit - max) / t))));

  let total = 0;
  for (let i = 0; i < logits.length; i++) total = f32(total + weight(logits[i]));
  const target = f32(f32(u) * total);

  let cumulative = 0;
  let lastPositive = 0;
  for (let i = 0; i < logits.length; i++) {
    const p = weight(logits[i]);
    cumulative = f32(cumulative + p);
    if (cumulative > target) return i;
    if (p > 0) lastPositive = i;
  }
  return lastPositive;
}

// ---------------------------------------------------------------------------------------------
// Penalties, top-k, top-p and min-p: the definition shaders/sample.wgsl `sampleFiltered` follows,
// step for step in f32 and in the same summation order (per chunk of ceil(vocab / 256) ids, then
// over the chunks), so the two pick the same token from the same draw.

/** Cuts of the distribution; topK 0, topP 1 and minP 0 turn each off. */
export interface SamplingFilters {
  /** Keep the k most likely tokens (ties broken toward the lower id). */
  topK: number;
  /** Keep the most likely tokens holding at least this share of the (top-k) mass, every token tied at the edge included. */
  topP: number;
  /** Keep tokens at least this likely relative to the most likely one. */
  minP: number;
}

/** Penalties on tokens already in the sequence (prompt included); 1, 0, 0 turn each off. */
export interface SamplingPenalties {
  /** CTRL-style: a seen token's positive logit is divided by it, a negative one multiplied. */
  repetitionPenalty: number;
  /** Subtracted once per occurrence. */
  frequencyPenalty: number;
  /** Subtracted once if the token occurred at all. */
  presencePenalty: number;
}

export const noFilters: SamplingFilters = { topK: 0, topP: 1, minP: 0 };
export const noPenalties: SamplingPenalties = { repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 };

export function filtersActive(f: SamplingFilters): boolean {
  return f.topK > 0 || f.topP < 1 || f.minP > 0;
}

export function penaltiesActive(p: SamplingPenalties): boolean {
  return p.repetitionPenalty !== 1 || p.frequencyPenalty !== 0 || p.presencePenalty !== 0;
}

const samplerLanes = 256;

/** Occurrences of each token id in `tokens`. */
export function tokenCounts(tokens: readonly number[], vocab: number): Uint32Array {
  const counts = new Uint32Array(vocab);
  for (const t of tokens) if (t >= 0 && t < vocab) counts[t]++;
  return counts;
}

/** The logits with the penalties of tokens seen `counts[i]` times applied (in f32). */
export function penalize(logits: Float32Array, counts: Uint32Array, p: SamplingPenalties): Float32Array {
  const f32 = Math.fround;
  const r = f32(p.repetitionPenalty);
  const out = new Float32Array(logits);
  for (let i = 0; i < logits.length; i++) {
    const seen = counts[i];
    if (seen === 0) continue;
    const v = logits[i];
    const scaled = v > 0 ? f32(v / r) : f32(v * r);
    out[i] = f32(f32(scaled - f32(f32(p.frequencyPenalty) * seen)) - f32(p.presencePenalty));
  }
  return out;
}

// One 4-byte word seen as an f32 and as a u32, to read a float's bits.
const keyFloat = new Float32Array(1);
const keyBits = new Uint32Array(keyFloat.buffer);

/** The GPU's order key of a logit: larger logit, larger key; NaN 0. */
function orderKey(v: number): number {
  if (Number.isNaN(v)) return 0;
  keyFloat[0] = v;
  const b = keyBits[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

function f32FromBits(bits: number): number {
  keyBits[0] = bits;
  return keyFloat[0];
}

/** What survives the cuts: token ids in increasing order with their unnormalized weights, and the cutoffs. */
export interface KeptSet {
  tokens: number[];
  weights: number[];
  /** Sum of the weights in the sampler's order. */
  total: number;
  /** The k-th largest logit (top-k on), the smallest kept weight from top-p (on), and the final weight floor. */
  topKLogit: number | null;
  topPWeight: number | null;
  minWeight: number;
}

/**
 * The kept set of softmax(logits / temperature) under `filters` (temperature > 0, finite maximum):
 * top-k first, then top-p on the top-k mass, then min-p, all relative to the largest weight (1).
 */
export function keptSet(logits: Float32Array, temperature: number, filters: SamplingFilters): KeptSet {
  const { weights, total, topKLogit, topPWeight, minWeight } = filteredWeights(logits, temperature, filters);
  const tokens: number[] = [];
  const kept: number[] = [];
  weights.forEach((w, i) => {
    if (w > 0) {
      tokens.push(i);
      kept.push(w);
    }
  });
  return { tokens, weights: kept, total, topKLogit, topPWeight, minWeight };
}

/** Every token's weight after the cuts (0 when cut), the per-chunk and total sums, and the cutoffs. */
function filteredWeights(logits: Float32Array, temperature: number, filters: SamplingFilters) {
  const f32 = Math.fround;
  const vocab = logits.length;
  const chunk = Math.ceil(vocab / samplerLanes);
  const max = logits[argmax(logits)];
  const invT = f32(1 / f32(temperature));
  const keys = Uint32Array.from(logits, orderKey);

  // top-k: threshold key and how many of the tokens equal to it (lowest ids first) stay.
  const valid = keys.filter((k) => k >= 1).length;
  let threshold = 1;
  let needEqual = Infinity;
  let topKLogit: number | null = null;
  if (filters.topK > 0 && filters.topK < valid) {
    const sorted = keys.filter((k) => k >= 1).sort((a, b) => b - a);
    threshold = sorted[filters.topK - 1];
    needEqual = filters.topK - sorted.filter((k) => k > threshold).length;
    topKLogit = logits[keys.indexOf(threshold)];
  }
  // Each token's weight under the top-k cut (0 when cut); the passes below only hold it against a floor.
  let equalSeen = 0;
  const topKWeights = Float32Array.from(logits, (v, i) => {
    const key = keys[i];
    if (key < threshold) return 0;
    if (key === threshold && equalSeen++ >= needEqual) return 0;
    return f32(Math.exp(f32(f32(v - max) * invT)));
  });
  const chunkSums = (minWeight: number): number[] =>
    Array.from({ length: samplerLanes }, (_, lane) => {
      let sum = 0;
      for (let i = lane * chunk; i < Math.min((lane + 1) * chunk, vocab); i++) {
        const w = topKWeights[i];
        if (w >= minWeight) sum = f32(sum + w);
      }
      return sum;
    });
  const sumOf = (sums: number[]) => sums.reduce((total, s) => f32(total + s), 0);

  let minWeight = Math.max(f32(filters.minP), 0);
  let topPWeight: number | null = null;
  if (filters.topP < 1) {
    const goal = f32(f32(filters.topP) * sumOf(chunkSums(0)));
    let lo = 0;
    let hi = 0x3f800000;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2) + ((hi - lo) & 1);
      if (sumOf(chunkSums(f32FromBits(mid))) >= goal) lo = mid;
      else hi = mid - 1;
    }
    topPWeight = f32FromBits(lo);
    minWeight = Math.max(minWeight, topPWeight);
  }
  const weights = Array.from(topKWeights, (w) => (w >= minWeight ? w : 0));
  const sums = chunkSums(minWeight);
  return { weights, chunk, sums, total: sumOf(sums), topKLogit, topPWeight, minWeight };
}

/**
 * temperature <= 0: argmax. Otherwise the kept set (see keptSet) sampled by inverse CDF in id
 * order at target u * total; when rounding leaves the target unreached, the last kept token. A
 * non-finite maximum leaves no distribution, so argmax decides (as sampleToken).
 */
export function sampleFiltered(logits: Float32Array, temperature: number, filters: SamplingFilters, u: number): number {
  if (temperature <= 0) return argmax(logits);
  const max = logits[argmax(logits)];
  if (!Number.isFinite(max)) return argmax(logits);
  const f32 = Math.fround;
  const { weights, chunk, sums, total } = filteredWeights(logits, temperature, filters);
  const goal = f32(f32(u) * total);
  // Whole chunks first, then the tokens of the chunk holding the target, as the GPU walks.
  let cumulative = 0;
  let lastKept = argmax(logits);
  for (let lane = 0; lane < sums.length; lane++) {
    if (sums[lane] === 0) continue;
    if (f32(cumulative + sums[lane]) <= goal) {
      cumulative = f32(cumulative + sums[lane]);
      continue;
    }
    for (let i = lane * chunk; i < Math.min((lane + 1) * chunk, weights.length); i++) {
      if (weights[i] === 0) continue;
      cumulative = f32(cumulative + weights[i]);
      lastKept = i;
      if (cumulative > goal) return i;
    }
  }
  return lastKept;
}
