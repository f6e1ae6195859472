// Decode attention over a paged KV cache for a batch of sequences, in three variants the lab can
// compare: `whole` (online softmax, one workgroup per head walks the context), `splitK`
// (flash-decoding: chunks of the context across workgroups, then a merge pass) and `unfused` (the
// baseline: scores, softmax and the weighted sum as three kernels, the scores round-tripping
// through memory). See shaders/paged-attention.wgsl for the page layout and the math.
import type { AdapterReport } from '../engine.ts';
import { RequestError } from '../errors.ts';
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';
import type { WgslDefines } from '../gpu/wgsl.ts';
import type { GpuFeature } from './matvec-variants.ts';

export const pagedAttentionParams = [
  ['nHeads', 'u32'],
  ['nKvHeads', 'u32'],
  ['kvDim', 'u32'],
  ['nLayers', 'u32'],
  ['layer', 'u32'],
  ['blockSize', 'u32'],
  ['chunkSize', 'u32'],
  ['maxChunks', 'u32'],
  ['maxLength', 'u32'],
  ['scale', 'f32'],
] as const satisfies ParamLayout;

export type PagedAttentionVariantName = 'whole' | 'splitK' | 'unfused';

export interface PagedAttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  nLayers: number;
  /** The layer whose K/V the dispatch reads. */
  layer: number;
  /** Token slots per page. */
  blockSize: number;
  /** Sequences (queries) per dispatch. */
  batch: number;
  /** The longest context any sequence may reach: sizes the split-K and scores grids and their scratch buffers. */
  maxLength: number;
  /** Threads per workgroup, and tokens per online-softmax tile. */
  workgroupSize: number;
  /** Tokens per split-K workgroup (a multiple of workgroupSize keeps every tile full). */
  chunkSize: number;
}

/** Tiles of 64 tokens; chunks of 256 tokens give a 4k context 16 workgroups per head to spread over. */
export const defaultPagedAttentionTiling = { workgroupSize: 64, chunkSize: 256 } as const;

/** The kernels of the family: the whole-context pass, split-K's two passes and the unfused three. */
export type PagedAttentionPass = 'whole' | 'chunks' | 'reduce' | 'scores' | 'softmax' | 'weightedSum';

/** The preprocessor flags of a pass (shaders/paged-attention.wgsl's header lists them). */
export function pagedAttentionDefines(pass: PagedAttentionPass): WgslDefines {
  return {
    CHUNK_PARTIALS: pass === 'chunks',
    REDUCE_PARTIALS: pass === 'reduce',
    SCORES: pass === 'scores',
    SOFTMAX: pass === 'softmax',
    WEIGHTED_SUM: pass === 'weightedSum',
  };
}

/** Split-K chunk slots per (sequence, head): enough for maxLength tokens. */
export function pagedAttentionChunks(shape: PagedAttentionShape): number {
  return Math.max(1, Math.ceil(shape.maxLength / shape.chunkSize));
}

/** f32 elements of split-K's partials buffer: (batch, nHeads, chunks, m + l + headDim). */
export function pagedAttentionPartialsLength(shape: PagedAttentionShape): number {
  return shape.batch * shape.nHeads * pagedAttentionChunks(shape) * (shape.headDim + 2);
}

/** f32 elements of the unfused variant's scores buffer: (batch, nHeads, maxLength). */
export function pagedAttentionScoresLength(shape: PagedAttentionShape): number {
  return shape.batch * shape.nHeads * shape.maxLength;
}

/** Unfused scores-pass tiles per (sequence, head): WORKGROUP_SIZE tokens each, enough for maxLength. */
function scoreTiles(shape: PagedAttentionShape): number {
  return Math.max(1, Math.ceil(shape.maxLength / shape.workgroupSize));
}

/** One sequence's slice of the block table and its length (tokens 0..length-1 are attended). */
export interface SequenceSlot {
  blockTableOffset: number;
  length: number;
}

/** The `seqInfo` buffer's contents: (batch) of (blockTableOffset, length) u32 pairs. */
export function packSeqInfo(slots: readonly SequenceSlot[]): Uint32Array {
  return Uint32Array.from(slots.flatMap((s) => [s.blockTableOffset, s.length]));
}

// --- cost models ----------------------------------------------------------------------------
// Bytes are what the kernel's loads ask for, not a cache-aware minimum: each query head's
// workgroup reads its KV head's K and V rows itself, so with GQA a KV row is requested
// nHeads / nKvHeads times (the repeats may hit in cache). Per attended token a workgroup also
// reads one block-table entry; per workgroup, q once and the sequence's 8-byte seqInfo.

const f32 = 4;
const seqInfoBytes = 8;

function chunksOf(length: number, chunkSize: number): number {
  return Math.ceil(length / chunkSize);
}

/** Reads of the tokens themselves (K and V rows, block-table entries) and 4·L·headDim flops, per head. */
function attendedCost({ nHeads, headDim }: PagedAttentionShape, lengths: readonly number[]): { bytes: number; flops: number } {
  const tokens = lengths.reduce((sum, l) => sum + l, 0);
  return { bytes: nHeads * tokens * (2 * headDim * f32 + 4), flops: 4 * nHeads * headDim * tokens };
}

/** `whole`: one workgroup per (head, sequence) over each sequence's `lengths[s]` tokens. */
export function pagedAttentionWholeCost(shape: PagedAttentionShape, lengths: readonly number[]): Cost {
  const { nHeads, headDim } = shape;
  const workgroups = nHeads * lengths.length;
  const attended = attendedCost(shape, lengths);
  return {
    bytesRead: attended.bytes + workgroups * (headDim * f32 + seqInfoBytes),
    bytesWritten: workgroups * headDim * f32,
    flops: attended.flops,
  };
}

/** split-K pass 1: every workgroup of the grid reads seqInfo; those whose chunk holds tokens attend it. */
export function pagedAttentionChunksCost(shape: PagedAttentionShape, lengths: readonly number[]): Cost {
  const { nHeads, headDim, chunkSize } = shape;
  const grid = nHeads * pagedAttentionChunks(shape) * lengths.length;
  const busy = nHeads * lengths.reduce((sum, l) => sum + chunksOf(l, chunkSize), 0);
  const attended = attendedCost(shape, lengths);
  return {
    bytesRead: attended.bytes + grid * seqInfoBytes + busy * headDim * f32,
    bytesWritten: busy * (headDim + 2) * f32,
    flops: attended.flops,
  };
}

/** split-K pass 2: each live chunk's (m, l, acc) read once, merged with 2 flops per element. */
export function pagedAttentionReduceCost(shape: PagedAttentionShape, lengths: readonly number[]): Cost {
  const { nHeads, headDim, chunkSize } = shape;
  const chunks = nHeads * lengths.reduce((sum, l) => sum + chunksOf(l, chunkSize), 0);
  const outputs = nHeads * lengths.length * headDim;
  return {
    bytesRead: chunks * (headDim + 2) * f32 + nHeads * lengths.length * seqInfoBytes,
    bytesWritten: outputs * f32,
    flops: chunks * 2 * (headDim + 1) + outputs,
  };
}

// The unfused passes: the scores are written once, swept three times and rewritten twice by the
// softmax, and read once per workgroup by the weighted sum. These round trips are what the fused
// variants save.

/** unfused pass 1: every tile of the grid reads seqInfo; those that hold tokens read q once and each token's K row. */
export function pagedAttentionScoresCost(shape: PagedAttentionShape, lengths: readonly number[]): Cost {
  const { nHeads, headDim, workgroupSize } = shape;
  const tokens = nHeads * lengths.reduce((sum, l) => sum + l, 0);
  const grid = nHeads * scoreTiles(shape) * lengths.length;
  const busy = nHeads * lengths.reduce((sum, l) => sum + chunksOf(l, workgroupSize), 0);
  return {
    bytesRead: tokens * (headDim * f32 + 4) + grid * seqInfoBytes + busy * headDim * f32,
    bytesWritten: tokens * f32,
    flops: tokens * (2 * headDim + 1),
  };
}

/** unfused pass 2: three sweeps over each row (max; exp and sum; divide), two of them writing; 5 flops per score. */
export function pagedAttentionSoftmaxCost({ nHeads }: PagedAttentionShape, lengths: readonly number[]): Cost {
  const scores = nHeads * lengths.reduce((sum, l) => sum + l, 0);
  return {
    bytesRead: 3 * scores * f32 + nHeads * lengths.length * seqInfoBytes,
    bytesWritten: 2 * scores * f32,
    flops: 5 * scores,
  };
}

/** unfused pass 3: per (head, sequence), each probability, block-table entry and V row once; 2 flops per product. */
export function pagedAttentionWeightedSumCost({ nHeads, headDim }: PagedAttentionShape, lengths: readonly number[]): Cost {
  const tokens = nHeads * lengths.reduce((sum, l) => sum + l, 0);
  const outputs = nHeads * lengths.length * headDim;
  return {
    bytesRead: tokens * (f32 + 4 + headDim * f32) + nHeads * lengths.length * seqInfoBytes,
    bytesWritten: outputs * f32,
    flops: 2 * headDim * tokens,
  };
}

// --- variants -------------------------------------------------------------------------------

export interface PagedAttentionRequirements {
  features: readonly GpuFeature[];
  /** Threads per workgroup (maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupSizeX). */
  invocations: number;
  /** Bytes of workgroup memory (maxComputeWorkgroupStorageSize). */
  workgroupStorageBytes: number;
}

export interface PagedAttentionVariant {
  name: PagedAttentionVariantName;
  description: string;
  /** The passes it records, in order. */
  passes: readonly PagedAttentionPass[];
  requires(shape: PagedAttentionShape): PagedAttentionRequirements;
  /** The cost of each pass, for per-sequence context lengths. */
  cost(shape: PagedAttentionShape, lengths: readonly number[]): Cost[];
}

/** q and acc (headDim each), the tile's scores and weights (f32) and V-row offsets (u32). */
function attendRequirements({ headDim, workgroupSize }: PagedAttentionShape): PagedAttentionRequirements {
  return { features: [], invocations: workgroupSize, workgroupStorageBytes: 4 * (2 * headDim + 3 * workgroupSize) };
}

/** The largest pass: q (headDim f32) in the scores pass, or one partial per thread in the softmax. */
function unfusedRequirements({ headDim, workgroupSize }: PagedAttentionShape): PagedAttentionRequirements {
  return { features: [], invocations: workgroupSize, workgroupStorageBytes: 4 * Math.max(headDim, workgroupSize) };
}

export const pagedAttentionVariants: readonly PagedAttentionVariant[] = [
  {
    name: 'whole',
    description: 'one workgroup per (head, sequence) walks the whole context with online softmax',
    passes: ['whole'],
    requires: attendRequirements,
    cost: (shape, lengths) => [pagedAttentionWholeCost(shape, lengths)],
  },
  {
    name: 'splitK',
    description: 'flash-decoding: workgroups per chunk of the context write (max, sum, weighted V), a second pass merges them',
    passes: ['chunks', 'reduce'],
    requires: attendRequirements,
    cost: (shape, lengths) => [pagedAttentionChunksCost(shape, lengths), pagedAttentionReduceCost(shape, lengths)],
  },
  {
    name: 'unfused',
    description: 'three kernels: every score to memory, softmax over each row in place, then the probability-weighted sum of V',
    passes: ['scores', 'softmax', 'weightedSum'],
    requires: unfusedRequirements,
    cost: (shape, lengths) => [pagedAttentionScoresCost(shape, lengths), pagedAttentionSoftmaxCost(shape, lengths), pagedAttentionWeightedSumCost(shape, lengths)],
  },
];

/** What the adapter lacks to run `variant` at `shape`, in words; empty when it can. */
export function missingPagedAttentionRequirements({ limits }: Pick<AdapterReport, 'limits'>, variant: PagedAttentionVariant, shape: PagedAttentionShape): string[] {
  const { invocations, workgroupStorageBytes } = variant.requires(shape);
  const threads = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  const missing: string[] = [];
  if (invocations > threads) missing.push(`${invocations} threads per workgroup (limit ${threads})`);
  if (workgroupStorageBytes > limits.maxComputeWorkgroupStorageSize) {
    missing.push(`${workgroupStorageBytes} bytes of workgroup storage (limit ${limits.maxComputeWorkgroupStorageSize})`);
  }
  return missing;
}

// --- dispatch builders ----------------------------------------------------------------------

export interface PagedAttentionBuffers {
  q: GPUBuffer; // (batch, nHeads, headDim)
  kvPool: GPUBuffer; // (page, layer, kv, slot, kvDim)
  blockTable: GPUBuffer; // u32 pages of every sequence
  seqInfo: GPUBuffer; // (batch) of (blockTableOffset, length), see packSeqInfo
  out: GPUBuffer; // (batch, nHeads, headDim)
  /** split-K only: pagedAttentionPartialsLength(shape) f32. */
  partials?: GPUBuffer;
  /** unfused only: pagedAttentionScoresLength(shape) f32. */
  scores?: GPUBuffer;
}

/**
 * The dispatches of `variant`, in the order they must run. Their costs are at length 1 for every
 * sequence: contexts grow each step, so telemetry recomputes them with `variant.cost`.
 */
export async function createPagedAttention(
  kc: KernelContext,
  label: string,
  b: PagedAttentionBuffers,
  shape: PagedAttentionShape,
  variantName: PagedAttentionVariantName,
): Promise<Dispatch[]> {
  const variant = pagedAttentionVariants.find((v) => v.name === variantName);
  if (!variant) throw new RequestError(`unknown paged-attention variant "${variantName}" (known: ${pagedAttentionVariants.map((v) => v.name).join(', ')})`);
  const missing = missingPagedAttentionRequirements(kc.gpu.adapter, variant, shape);
  if (missing.length > 0) throw new RequestError(`paged-attention variant "${variant.name}" needs ${missing.join(' and ')}, which this adapter lacks`);
  if (shape.nHeads % shape.nKvHeads !== 0) throw new RequestError(`nHeads ${shape.nHeads} is not a multiple of nKvHeads ${shape.nKvHeads}`);

  const { nHeads, nKvHeads, headDim, nLayers, layer, blockSize, batch, chunkSize, workgroupSize } = shape;
  const maxChunks = pagedAttentionChunks(shape);
  const params = {
    layout: pagedAttentionParams,
    values: { nHeads, nKvHeads, kvDim: nKvHeads * headDim, nLayers, layer, blockSize, chunkSize, maxChunks, maxLength: shape.maxLength, scale: 1 / Math.sqrt(headDim) },
  };
  const constants = { WORKGROUP_SIZE: workgroupSize, HEAD_DIM: headDim };
  const costs = variant.cost(shape, new Array<number>(batch).fill(1));
  /** One kernel of the family; a variant's later passes are labelled by their pass. */
  const dispatch = (pass: PagedAttentionPass, buffers: GPUBuffer[], workgroups: [number, number, number], cost: Cost) =>
    kc.dispatch({ label: pass === 'whole' ? label : `${label}.${pass}`, family: 'paged-attention', constants, defines: pagedAttentionDefines(pass), params, buffers, workgroups, cost });

  if (variant.name === 'whole') return [await dispatch('whole', [b.q, b.kvPool, b.blockTable, b.seqInfo, b.out], [nHeads, 1, batch], costs[0])];
  if (variant.name === 'unfused') {
    if (!b.scores) throw new RequestError('paged-attention variant "unfused" needs a scores buffer (pagedAttentionScoresLength(shape) f32)');
    return Promise.all([
      dispatch('scores', [b.q, b.kvPool, b.blockTable, b.seqInfo, b.scores], [nHeads, scoreTiles(shape), batch], costs[0]),
      dispatch('softmax', [b.seqInfo, b.scores], [nHeads, 1, batch], costs[1]),
      dispatch('weightedSum', [b.kvPool, b.blockTable, b.seqInfo, b.scores, b.out], [nHeads, 1, batch], costs[2]),
    ]);
  }
  if (!b.partials) throw new RequestError('paged-attention variant "splitK" needs a partials buffer (pagedAttentionPartialsLength(shape) f32)');
  return Promise.all([
    dispatch('chunks', [b.q, b.kvPool, b.blockTable, b.seqInfo, b.partials], [nHeads, maxChunks, batch], costs[0]),
    dispatch('reduce', [b.seqInfo, b.partials, b.out], [nHeads, 1, batch], costs[1]),
  ]);
}
