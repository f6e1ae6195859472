// out (dim) = table[token] with the token id read from a GPU buffer. See shaders/embedding.wgsl.
// A table split by rows across buffers (runtime/weights.ts) takes one dispatch per part.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const embeddingParams = [
  ['dim', 'u32'],
  ['vocab', 'u32'],
  ['firstRow', 'u32'],
  ['partRows', 'u32'],
] as const satisfies ParamLayout;

/** Rows firstRow .. firstRow + rows of the table, held by one buffer. */
export interface TablePart {
  firstRow: number;
  rows: number;
}

/**
 * One token's row read and written, and its id read. A dispatch over part of a split table is
 * charged its share of the row (rows / vocab: the chance a token falls in it), so the parts of a
 * table add up to one gather plus their extra id reads.
 */
export function embeddingCost(dim: number, share = 1): Cost {
  return { bytesRead: 4 * dim * share + 4, bytesWritten: 4 * dim * share, flops: 0 };
}

export interface EmbeddingBuffers {
  token: GPUBuffer;
  table: GPUBuffer;
  out: GPUBuffer;
}

/** The gather from `b.table`, which holds `part` of the (vocab, dim) table (default: all of it). */
export function createEmbedding(kc: KernelContext, label: string, b: EmbeddingBuffers, dim: number, vocab: number, part: TablePart = { firstRow: 0, rows: vocab }): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'embedding',
    defines: { ROWS: false },
    params: { layout: embeddingParams, values: { dim, vocab, firstRow: part.firstRow, partRows: part.rows } },
    buffers: [b.token, b.table, b.out],
    workgroups: [Math.ceil(dim / 64), 1, 1],
    cost: embeddingCost(dim, part.rows / vocab),
  });
}
