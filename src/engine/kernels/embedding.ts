// out (dim) = table[token] with the token id read from a GPU buffer. See shaders/embedding.wgsl.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const embeddingParams = [
  ['dim', 'u32'],
  ['vocab', 'u32'],
] as const satisfies ParamLayout;

export function embeddingCost(dim: number): Cost {
  return { bytesRead: 4 * dim + 4, bytesWritten: 4 * dim, flops: 0 };
}

export interface EmbeddingBuffers {
  token: GPUBuffer;
  table: GPUBuffer;
  out: GPUBuffer;
}

export function createEmbedding(kc: KernelContext, label: string, b: EmbeddingBuffers, dim: number, vocab: number): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'embedding',
    defines: { ROWS: false },
    params: { layout: embeddingParams, values: { dim, vocab } },
    buffers: [b.token, b.table, b.out],
    workgroups: [Math.ceil(dim / 64), 1, 1],
    cost: embeddingCost(dim),
  });
}
