// RoPE on q (in place) and k (into the key cache), plus the value-cache write, for the step's
// position. See shaders/rope.wgsl.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';
import { ropeInverseFrequencies } from '../model/rope-scaling.ts';
import type { RopeScaling } from '../model/types.ts';

export const ropeParams = [
  ['qPairs', 'u32'],
  ['kvDim', 'u32'],
  ['halfHeadDim', 'u32'],
  ['cacheOffset', 'u32'],
] as const satisfies ParamLayout;

export interface RopeShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** First element of this layer in the caches: layer * maxSeq * kvDim. */
  cacheOffset: number;
}

export function ropeCost({ nHeads, nKvHeads, headDim }: RopeShape): Cost {
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  return { bytesRead: 4 * (qDim + 2 * kvDim) + 4 * (headDim / 2) * 2, bytesWritten: 4 * (qDim + 2 * kvDim), flops: 6 * (qDim + kvDim) / 2 };
}

export interface RopeBuffers {
  step: GPUBuffer;
  ropeTable: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  keyCache: GPUBuffer;
  valueCache: GPUBuffer;
}

export function createRope(kc: KernelContext, label: string, b: RopeBuffers, shape: RopeShape): Promise<Dispatch> {
  const qPairs = (shape.nHeads * shape.headDim) / 2;
  const kvDim = shape.nKvHeads * shape.headDim;
  const threads = qPairs + kvDim / 2 + kvDim;
  return kc.dispatch({
    label,
    family: 'rope',
    defines: { ROWS: false },
    params: { layout: ropeParams, values: { qPairs, kvDim, halfHeadDim: shape.headDim / 2, cacheOffset: shape.cacheOffset } },
    buffers: [b.step, b.ropeTable, b.q, b.k, b.v, b.keyCache, b.valueCache],
    workgroups: [Math.ceil(threads / 64), 1, 1],
    cost: ropeCost(shape),
  });
}

/**
 * (maxSeq, headDim/2) pairs of (cos, sin) of pos · theta^(-2i/headDim), as f32, with the
 * frequencies rescaled by Llama 3's rule when `scaling` is given (model/rope-scaling.ts).
 */
export function ropeTable(maxSeq: number, headDim: number, theta: number, scaling?: RopeScaling): Float32Array {
  const half = headDim / 2;
  const frequencies = ropeInverseFrequencies(headDim, theta, scaling); // (headDim / 2)
  const table = new Float32Array(maxSeq * half * 2);
  for (let pos = 0; pos < maxSeq; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * frequencies[i];
      table[(pos * half + i) * 2] = Math.cos(angle);
      table[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return table;
}
