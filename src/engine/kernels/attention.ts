// Decode attention over a contiguous KV cache with GQA. See shaders/attention.wgsl.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const attentionParams = [
  ['nHeads', 'u32'],
  ['nKvHeads', 'u32'],
  ['headDim', 'u32'],
  ['kvDim', 'u32'],
  ['cacheOffset', 'u32'],
  ['maxSeq', 'u32'],
  ['scale', 'f32'],
] as const satisfies ParamLayout;

export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  maxSeq: number;
  cacheOffset: number;
}

/** For a context of `length` tokens: K and V rows read once per KV head (GQA shares them). */
export function attentionCost({ nHeads, nKvHeads, headDim }: AttentionShape, length: number): Cost {
  const kvBytes = 2 * 4 * length * nKvHeads * headDim;
  return { bytesRead: kvBytes + 4 * nHeads * headDim, bytesWritten: 4 * nHeads * headDim, flops: 4 * nHeads * headDim * length };
}

export interface AttentionBuffers {
  step: GPUBuffer;
  q: GPUBuffer;
  keyCache: GPUBuffer;
  valueCache: GPUBuffer;
  scores: GPUBuffer;
  out: GPUBuffer;
}

export function createAttention(kc: KernelContext, label: string, b: AttentionBuffers, shape: AttentionShape): Promise<Dispatch> {
  const { nHeads, nKvHeads, headDim, maxSeq, cacheOffset } = shape;
  return kc.dispatch({
    label,
    family: 'attention',
    constants: { WORKGROUP_SIZE: 64 },
    params: {
      layout: attentionParams,
      values: { nHeads, nKvHeads, headDim, kvDim: nKvHeads * headDim, cacheOffset, maxSeq, scale: 1 / Math.sqrt(headDim) },
    },
    buffers: [b.step, b.q, b.keyCache, b.valueCache, b.scores, b.out],
    workgroups: [nHeads, 1, 1],
    // The context grows every step: this is the cost at length 1; telemetry recomputes it per step.
    cost: attentionCost(shape, 1),
  });
}
