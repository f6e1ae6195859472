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
