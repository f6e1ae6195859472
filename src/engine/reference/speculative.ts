// The speculative sampling rule (Leviathan et al. 2023; Chen et al. 2023): a draft proposed tokens
// d_1..d_m, drawing d_i from its distribution q_i; the target model computed its own distributions
// p_1..p_{m+1} for the same positions in one pass. Token d_i is kept with probability
// min(1, p_i(d_i) / q_i(d_i)); at the first rejection the token is drawn instead from the residual
// max(0, p_i - q_i), renormalized, and the rest of the draft is dropped; when every token is kept, one
// more is drawn from p_{m+1}. Each emitted token is then distributed exactly as the target alone would
// have sampled it, whatever the draft. A draft that proposes deterministically (prompt lookup) has
// q_i = a point mass on d_i, so d_i is kept with probability p_i(d_i).
import { argmax } from './ops.ts';
import { keptSet, type SamplingFilters } from './sample.ts';

/** A next-token distribution over the whole vocabulary (sums to 1). */
export type Distribution = Float64Array;

/**
 * The distribution the sampler draws from: softmax(logits / temperature) after the cuts, i.e. the
 * kept set's weights renormalized; temperature 0 (or no finite logit) is a point mass on the argmax.
 */
export function samplingDistribution(logits: Float32Array, temperature: number, filters: SamplingFilters): Distribution {
  const p = new Float64Array(logits.length);
  const top = argmax(logits);
  if (temperature <= 0 || !Number.isFinite(logits[top])) {
    p[top] = 1;
    return p;
  }
  const kept = keptSet(logits, temperature, filters);
  let total = 0;
  for (const w of kept.weights) total += w;
  kept.tokens.forEach((token, i) => (p[token] = kept.weights[i] / total));
  return p;
}

/** Inverse-CDF draw from `weights` (any nonnegative weights, not necessarily normalized) with u in [0, 1). */
export function drawFrom(weights: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  const target = u * total;
  let cumulative = 0;
  let lastPositive = -1;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i] <= 0) continue;
    cumulative += weights[i];
    lastPositive = i;
    if (cumulative > target) return i;
  }
  if (lastPositive < 0) throw new RangeError('cannot draw from a distribution with no positive weight');
  return lastPositive;
}

export interface Verification {
  /** How many draft tokens were kept (a prefix of the draft). */
  accepted: number;
  /** The token after the kept ones: the residual draw at the rejection, or the bonus draw from p_{m+1}. */
  next: number;
}

/**
 * Applies the rule. `draft` holds d_1..d_m; `draftDistributions[i]` is q_{i+1} (null: a point mass
 * on d_{i+1}); `target` holds p_1..p_{m+1}. `acceptDraw(i)` and `resampleDraw(i)` give independent
 * uniforms in [0, 1) for draft position i (0-based; i = m is the bonus position).
 */
export function verifyDraft(
  draft: readonly number[],
  draftDistributions: ReadonlyArray<Distribution | null>,
  target: readonly Distribution[],
  acceptDraw: (i: number) => number,
  resampleDraw: (i: number) => number,
): Verification {
  if (target.length !== draft.length + 1) throw new RangeError(`the target needs ${draft.length + 1} distributions for ${draft.length} draft tokens, got ${target.length}`);
  for (let i = 0; i < draft.length; i++) {
    const d = draft[i];
    const p = target[i];
    const q = draftDistributions[i];
    const qd = q ? q[d] : 1;
    // u < p/q, written without the division (q(d) > 0 because the draft drew d from q).
    if (acceptDraw(i) * qd < p[d]) continue;
    const residual = new Float64Array(p.length);
    let mass = 0;
    for (let t = 0; t < p.length; t++) {
      residual[t] = Math.max(0, p[t] - (q ? q[t] : t === d ? 1 : 0));
      mass += residual[t];
    }
    // Rounding can leave no residual mass where p and q agree (then the rejection was itself a
    // rounding artefact): draw from p.
    return { accepted: i, next: drawFrom(mass > 0 ? residual : p, resampleDraw(i)) };
  }
  return { accepted: draft.length, next: drawFrom(target[draft.length], resampleDraw(draft.length)) };
}
