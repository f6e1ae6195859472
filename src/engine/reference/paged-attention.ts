// CPU reference for decode attention over a paged KV cache (shaders/paged-attention.wgsl).
// `pagedAttention` gathers each sequence's K/V through its block table into contiguous rows and
// runs plain causal attention for its one query, scores and softmax in f64 (`attentionProbabilities`
// is one head's softmax row, as the unfused kernel stores it). `chunkPartial` and
// `mergePartials` spell out the online-softmax (flash-decoding) math the kernel uses, one token
// at a time, so a test can check that the two agree and compare the kernel's partials with them.
import type { SequenceSlot } from '../kernels/paged-attention.ts';
import { pageElementOffset, type PageLayout } from '../kv/page-pool.ts';
import { kvHeadOf, type AttentionShape } from './ops.ts';

/** Element offset of the K (kv = 0) or V (kv = 1) row of `slot` of `page` in `layer`. */
export function pagedRowOffset(layout: PageLayout, page: number, layer: number, kv: 0 | 1, slot: number): number {
  return pageElementOffset(layout, page, layer, kv, slot, 0);
}

/**
 * Copies tokens 0..length-1 of one sequence of `layer` out of the pool:
 *   keys, values (>= length, kvDim); blockTable[blockTableOffset + b] is the page of logical block b.
 */
export function gatherSequence(
  keys: Float32Array,
  values: Float32Array,
  pool: Float32Array,
  layout: PageLayout,
  layer: number,
  blockTable: Uint32Array,
  { blockTableOffset, length }: SequenceSlot,
): void {
  const { blockSize, kvDim } = layout;
  for (let t = 0; t < length; t++) {
    const page = blockTable[blockTableOffset + Math.floor(t / blockSize)];
    const slot = t % blockSize;
    const keyRow = pagedRowOffset(layout, page, layer, 0, slot);
    const valueRow = pagedRowOffset(layout, page, layer, 1, slot);
    keys.set(pool.subarray(keyRow, keyRow + kvDim), t * kvDim);
    values.set(pool.subarray(valueRow, valueRow + kvDim), t * kvDim);
  }
}

/**
 * Head `head`'s softmax over the scores q·k / sqrt(headDim) of `length` contiguous keys
 * (length, kvDim), in f64; q (nHeads * headDim). The unfused kernel stores this row.
 */
export function attentionProbabilities(q: Float32Array, keys: Float32Array, length: number, head: number, shape: AttentionShape): Float64Array {
  const { nHeads, nKvHeads, headDim } = shape;
  const kvDim = nKvHeads * headDim;
  const qOffset = head * headDim;
  const kvOffset = kvHeadOf(head, nHeads, nKvHeads) * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const weights = new Float64Array(length); // (length)
  let max = -Infinity;
  for (let t = 0; t < length; t++) {
    let dot = 0;
    for (let i = 0; i < headDim; i++) dot += q[qOffset + i] * keys[t * kvDim + kvOffset + i];
    weights[t] = dot * scale;
    max = Math.max(max, weights[t]);
  }
  let sum = 0;
  for (let t = 0; t < length; t++) {
    weights[t] = Math.exp(weights[t] - max);
    sum += weights[t];
  }
  for (let t = 0; t < length; t++) weights[t] /= sum;
  return weights;
}

/**
 * One query (nHeads * headDim) attending to `length` contiguous K/V rows (length, kvDim), softmax
 * in f64; out (nHeads * headDim). No tokens (length 0) gives 0.
 */
export function attendSequence(out: Float32Array, q: Float32Array, keys: Float32Array, values: Float32Array, length: number, shape: AttentionShape): void {
  const { nHeads, nKvHeads, headDim } = shape;
  const kvDim = nKvHeads * headDim;
  for (let h = 0; h < nHeads; h++) {
    const kvOffset = kvHeadOf(h, nHeads, nKvHeads) * headDim;
    const weights = attentionProbabilities(q, keys, length, h, shape);
    // weighted sum of the values
    for (let i = 0; i < headDim; i++) {
      let acc = 0;
      for (let t = 0; t < length; t++) acc += weights[t] * values[t * kvDim + kvOffset + i];
      out[h * headDim + i] = acc;
    }
  }
}

/** Which layer of which pool layout a dispatch reads. */
export interface PagedLayer {
  nLayers: number;
  blockSize: number;
  layer: number;
}

/**
 * Decode attention for a batch of sequences over the paged pool:
 *   out, q (batch, nHeads, headDim); sequences[s] names sequence s's block-table slice and length.
 */
export function pagedAttention(
  out: Float32Array,
  q: Float32Array,
  pool: Float32Array,
  blockTable: Uint32Array,
  sequences: readonly SequenceSlot[],
  shape: AttentionShape,
  { nLayers, blockSize, layer }: PagedLayer,
): void {
  const { nHeads, nKvHeads, headDim } = shape;
  const kvDim = nKvHeads * headDim;
  const qDim = nHeads * headDim;
  sequences.forEach((sequence, s) => {
    const keys = new Float32Array(sequence.length * kvDim); // (length, kvDim)
    const values = new Float32Array(sequence.length * kvDim); // (length, kvDim)
    gatherSequence(keys, values, pool, { nLayers, blockSize, kvDim }, layer, blockTable, sequence);
    attendSequence(out.subarray(s * qDim, (s + 1) * qDim), q.subarray(s * qDim, (s + 1) * qDim), keys, values, sequence.length, shape);
  });
}

// --- online softmax, chunk by chunk ---------------------------------------------------------
// For scores s_t of a chunk of tokens, keep m = max s_t, l = Σ exp(s_t - m) and
// acc = Σ exp(s_t - m) v_t. A new token with score s moves the max to m' = max(m, s); what was
// summed under m is rescaled by exp(m - m'): l' = l·exp(m - m') + exp(s - m'), likewise acc.
// Chunks merge the same way: with M = max_i m_i, softmax·V = Σ_i exp(m_i - M) acc_i / Σ_i exp(m_i - M) l_i.
// No step exponentiates a positive number, and the result equals softmax(s)·V exactly in real
// arithmetic, whatever the chunking.

/** The online-softmax state of one head over one chunk. */
export interface ChunkPartial {
  m: number; // max score
  l: number; // Σ exp(s_t - m)
  acc: Float64Array; // (headDim) Σ exp(s_t - m) v_t
}

/** Head `head`'s state over tokens [start, end) of contiguous keys, values (length, kvDim); q (nHeads * headDim). */
export function chunkPartial(q: Float32Array, keys: Float32Array, values: Float32Array, head: number, start: number, end: number, shape: AttentionShape): ChunkPartial {
  const { nHeads, nKvHeads, headDim } = shape;
  const kvDim = nKvHeads * headDim;
  const kvOffset = kvHeadOf(head, nHeads, nKvHeads) * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const partial: ChunkPartial = { m: -Infinity, l: 0, acc: new Float64Array(headDim) };
  for (let t = start; t < end; t++) {
    let dot = 0;
    for (let i = 0; i < headDim; i++) dot += q[head * headDim + i] * keys[t * kvDim + kvOffset + i];
    const score = dot * scale;
    const m = Math.max(partial.m, score);
    const rescale = Math.exp(partial.m - m); // exp(-Infinity) = 0 for the first token
    const weight = Math.exp(score - m);
    partial.l = partial.l * rescale + weight;
    for (let i = 0; i < headDim; i++) partial.acc[i] = partial.acc[i] * rescale + weight * values[t * kvDim + kvOffset + i];
    partial.m = m;
  }
  return partial;
}

/** out (headDim) = the softmax-weighted V of the chunks together; no chunks gives 0. */
export function mergePartials(out: Float32Array, partials: readonly ChunkPartial[]): void {
  const max = Math.max(...partials.map((p) => p.m));
  let l = 0;
  for (const p of partials) l += p.l * Math.exp(p.m - max);
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (const p of partials) acc += p.acc[i] * Math.exp(p.m - max);
    out[i] = partials.length === 0 ? 0 : acc / l;
  }
}

/** attendSequence computed as flash-decoding does: chunks of chunkSize tokens, then a merge. */
export function chunkedAttention(
  out: Float32Array,
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  length: number,
  chunkSize: number,
  shape: AttentionShape,
): void {
  const { nHeads, headDim } = shape;
  for (let h = 0; h < nHeads; h++) {
    const partials: ChunkPartial[] = [];
    for (let start = 0; start < length; start += chunkSize) partials.push(chunkPartial(q, keys, values, h, start, Math.min(start + chunkSize, length), shape));
    mergePartials(out.subarray(h * headDim, (h + 1) * headDim), partials);
  }
}
