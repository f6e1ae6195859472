// The neural-net blocks of the CPU reference, one free function per op, output first (llama2.c style).
// Sums run in f64 (JS numbers) and results are stored as f32, so the reference is at least as
// accurate as an f32 GPU kernel; kernels are compared with it by NMSE, not bit for bit.
import { ropeInverseFrequencies } from '../model/rope-scaling.ts';
import type { RopeScaling } from '../model/types.ts';

/** The head layout attention needs. */
export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

/** W (rows, cols) @ x (cols) -> out (rows) */
export function matvec(out: Float32Array, w: Float32Array, x: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const rowStart = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += w[rowStart + c] * x[c];
    out[r] = sum;
  }
}

/** out (n) = weight (n) * x (n) / sqrt(mean(x^2) + eps); out may be x. */
export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, eps: number): void {
  let sumOfSquares = 0;
  for (let i = 0; i < x.length; i++) sumOfSquares += x[i] * x[i];
  const scale = 1 / Math.sqrt(sumOfSquares / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = weight[i] * (x[i] * scale);
}

/**
 * Rotary position embedding, in place, on vec (nHeadsInVec, headDim): each ADJACENT pair
 * (x[2i], x[2i+1]) of a head turns by the angle pos * theta^(-2i / headDim) (llama2.c/GGUF layout),
 * the frequencies rescaled first when the model has Llama 3's `scaling`.
 */
export function rope(vec: Float32Array, nHeadsInVec: number, headDim: number, pos: number, theta: number, scaling?: RopeScaling): void {
  const frequencies = ropeInverseFrequencies(headDim, theta, scaling); // (headDim / 2)
  for (let i = 0; i < headDim; i += 2) {
    const angle = pos * frequencies[i / 2];
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    for (let h = 0; h < nHeadsInVec; h++) {
      const j = h * headDim + i;
      const x0 = vec[j];
      const x1 = vec[j + 1];
      vec[j] = x0 * cos - x1 * sin;
      vec[j + 1] = x0 * sin + x1 * cos;
    }
  }
}

/** Grouped-query attention: consecutive query heads share one KV head. */
export function kvHeadOf(head: number, nHeads: number, nKvHeads: number): number {
  return Math.floor(head / (nHeads / nKvHeads));
}

/**
 * Causal attention of the query at `pos` over cached positions 0..pos, head by head.
 *   out (nHeads * headDim), q (nHeads * headDim)
 *   scores (>= pos + 1) scratch
 *   keys, values: one layer's cache (seq, nKvHeads * headDim), rows 0..pos filled
 */
export function attention(
  out: Float32Array,
  scores: Float32Array,
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  pos: number,
  shape: AttentionShape,
): void {
  const { nHeads, nKvHeads, headDim } = shape;
  const kvDim = nKvHeads * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const positions = scores.subarray(0, pos + 1); // (pos + 1)
  for (let h = 0; h < nHeads; h++) {
    const qOffset = h * headDim;
    const kvOffset = kvHeadOf(h, nHeads, nKvHeads) * headDim;

    // score of every position: q . k / sqrt(headDim)
    for (let t = 0; t <= pos; t++) {
      const kOffset = t * kvDim + kvOffset;
      let dot = 0;
      for (let i = 0; i < headDim; i++) dot += q[qOffset + i] * keys[kOffset + i];
      positions[t] = dot * scale;
    }

    // attention weights
    softmax(positions);

    // weighted sum of the values
    for (let i = 0; i < headDim; i++) {
      let sum = 0;
      for (let t = 0; t <= pos; t++) sum += positions[t] * values[t * kvDim + kvOffset + i];
      out[qOffset + i] = sum;
    }
  }
}

/** out (n) = silu(gate) * up, with silu(g) = g * sigmoid(g); out may alias gate or up. */
export function swiglu(out: Float32Array, gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** out (n) += x (n); also adds a bias vector to a projection's output. */
export function addInPlace(out: Float32Array, x: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] += x[i];
}

/** x (n) = softmax(x), in place; subtracting the max keeps exp from overflowing. */
export function softmax(x: Float32Array): void {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]);
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(x[i] - max);
    sum += x[i];
  }
  for (let i = 0; i < x.length; i++) x[i] /= sum;
}

/** Index of the largest value: ties go to the lowest index, NaN counts as -Infinity, all -Infinity gives 0. */
export function argmax(x: Float32Array): number {
  // As the GPU's argmax: the first non-NaN value that no later one exceeds (-Infinity counts); 0 when all are NaN.
  let best = -1;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isNaN(x[i]) && (best < 0 || x[i] > x[best])) best = i;
  }
  return Math.max(best, 0);
}
