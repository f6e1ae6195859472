// Batched ("rows") variants of the embedding, RMSNorm, RoPE + KV write and sampler kernels, for
// continuous batching over the paged KV cache. A step processes `rows` tokens, each of some
// sequence (a decode token, or one prompt token during prefill); activations are (rows, dim), and
// what differs per row (token, position, KV page and slot, sampler settings) comes from a rowInfo
// buffer. Each kernel is its family's WGSL compiled with the ROWS flag (see the shader headers).
// `rows` is baked into a dispatch's params and grid, so the caller builds one dispatch per count.
import { grid, type Cost, type Dispatch, type KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';
import type { WgslDefines } from '../gpu/wgsl.ts';
import { embeddingCost, type TablePart } from './embedding.ts';
import { rmsnormCost } from './rmsnorm.ts';
import { sampleCost } from './sample.ts';
import { noFilters, type SamplingFilters } from '../reference/sample.ts';

// ---------------------------------------------------------------------------------------------
// rowInfo: (rows, rowInfoWords) u32

/** u32 words per row in the rowInfo buffer (ROW_INFO_WORDS in the shaders). */
export const rowInfoWords = 9;

/** What the kernels need to know about one row (one token of one sequence). */
export interface RowInfo {
  token: number;
  /** 0-based index of this token in its sequence. */
  position: number;
  /** Physical KV page holding this position. */
  page: number;
  /** position % blockSize: the token's slot in that page. */
  slot: number;
  /** Sampler seed of the row's sequence. */
  seed: number;
  /** Sampling temperature; 0 picks the argmax. */
  temperature: number;
  /** The row's cuts (reference/sample.ts SamplingFilters); absent: none. */
  filters?: SamplingFilters;
}

/**
 * Packs rows as (rows, 9) u32: token, position, page, slot, seed, temperature (f32 bits), top-k,
 * top-p (f32 bits), min-p (f32 bits). Writes into the start of `into` when given (a hot path reuses one array) and
 * returns the words written.
 */
export function packRowInfo(rows: readonly RowInfo[], into?: Uint32Array): Uint32Array {
  const words = rows.length * rowInfoWords;
  if (into && into.length < words) throw new RangeError(`rowInfo of ${rows.length} rows needs ${words} words, the array has ${into.length}`);
  const packed = (into ?? new Uint32Array(words)).subarray(0, words);
  const asFloat = new Float32Array(packed.buffer, packed.byteOffset, words);
  rows.forEach((row, r) => {
    const at = r * rowInfoWords;
    for (const [offset, name] of [[0, 'token'], [1, 'position'], [2, 'page'], [3, 'slot'], [4, 'seed']] as const) {
      const value = row[name];
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`row ${r}: ${name} = ${value} is not a u32`);
      packed[at + offset] = value;
    }
    if (!Number.isFinite(row.temperature) || row.temperature < 0) throw new RangeError(`row ${r}: temperature ${row.temperature} is not a finite number >= 0`);
    asFloat[at + 5] = row.temperature;
    const filters = row.filters ?? noFilters;
    packed[at + 6] = filters.topK;
    asFloat[at + 7] = filters.topP;
    asFloat[at + 8] = filters.minP;
  });
  return packed;
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing

const rowsDefines: WgslDefines = { ROWS: true };

/** The override every rowInfo reader declares, so the row stride has one source: rowInfoWords. */
const rowInfoConstants = { ROW_INFO_WORDS: rowInfoWords };

function checkRows(rows: number): void {
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`a rows dispatch needs a whole number of rows >= 1, got ${rows}`);
}

/** `rows` launches of a single-vector kernel, plus the rowInfo bytes each row reads. */
function perRow(cost: Cost, rows: number, rowInfoBytes: number): Cost {
  return { bytesRead: rows * (cost.bytesRead + rowInfoBytes), bytesWritten: rows * cost.bytesWritten, flops: rows * cost.flops };
}

/** One workgroup per row; rows past the per-dimension limit spill into y. */
function rowGrid(kc: KernelContext, rows: number): readonly [number, number, number] {
  return grid(rows, kc.maxWorkgroupsPerDimension);
}

/** `tiles` workgroups along x for each row, rows along y and spilling into z. */
function tiledRowGrid(kc: KernelContext, tiles: number, rows: number): readonly [number, number, number] {
  const [y, z] = grid(rows, kc.maxWorkgroupsPerDimension);
  return [tiles, y, z];
}

// ---------------------------------------------------------------------------------------------
// Embedding: out (rows, dim) = table[token of each row]

export const rowsEmbeddingParams = [
  ['dim', 'u32'],
  ['vocab', 'u32'],
  ['firstRow', 'u32'],
  ['partRows', 'u32'],
  ['rows', 'u32'],
] as const satisfies ParamLayout;

/**
 * Each row gathers one table row; its token id is the one rowInfo word it reads (embeddingCost
 * counts it). A dispatch over `share` of a split table is charged that share of the rows it copies.
 */
export function rowsEmbeddingCost(dim: number, rows: number, share = 1): Cost {
  return perRow(embeddingCost(dim, share), rows, 0);
}

/** The gather of every row from `b.table`, which holds `part` of the (vocab, dim) table (default: all of it). */
export function createRowsEmbedding(
  kc: KernelContext,
  label: string,
  b: { rowInfo: GPUBuffer; table: GPUBuffer; out: GPUBuffer },
  s: { dim: number; vocab: number; rows: number },
  part: TablePart = { firstRow: 0, rows: s.vocab },
): Promise<Dispatch> {
  checkRows(s.rows);
  return kc.dispatch({
    label,
    family: 'embedding',
    defines: rowsDefines,
    constants: rowInfoConstants,
    params: { layout: rowsEmbeddingParams, values: { dim: s.dim, vocab: s.vocab, firstRow: part.firstRow, partRows: part.rows, rows: s.rows } },
    buffers: [b.rowInfo, b.table, b.out],
    workgroups: tiledRowGrid(kc, Math.ceil(s.dim / 64), s.rows),
    cost: rowsEmbeddingCost(s.dim, s.rows, part.rows / s.vocab),
  });
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: each row of x (rows, dim) normalized on its own into out (rows, dim)

export const rowsRmsnormParams = [
  ['dim', 'u32'],
  ['eps', 'f32'],
  ['rows', 'u32'],
] as const satisfies ParamLayout;

/** Every row's workgroup reads the weights itself (repeats may hit in cache). */
export function rowsRmsnormCost(dim: number, rows: number): Cost {
  return perRow(rmsnormCost(dim), rows, 0);
}

export function createRowsRmsnorm(
  kc: KernelContext,
  label: string,
  b: { x: GPUBuffer; weight: GPUBuffer; out: GPUBuffer },
  s: { dim: number; eps: number; rows: number },
): Promise<Dispatch> {
  checkRows(s.rows);
  return kc.dispatch({
    label,
    family: 'rmsnorm',
    defines: rowsDefines,
    constants: { WORKGROUP_SIZE: 64 },
    params: { layout: rowsRmsnormParams, values: { dim: s.dim, eps: s.eps, rows: s.rows } },
    buffers: [b.x, b.weight, b.out],
    workgroups: rowGrid(kc, s.rows),
    cost: rowsRmsnormCost(s.dim, s.rows),
  });
}

// ---------------------------------------------------------------------------------------------
// RoPE + paged KV write: q (rows, nHeads * headDim) rotated in place; k (rows, kvDim) rotated and
// v (rows, kvDim) copied into the page pool at each row's (page, layer, slot)

export const rowsRopeParams = [
  ['qPairs', 'u32'],
  ['kvDim', 'u32'],
  ['halfHeadDim', 'u32'],
  ['nLayers', 'u32'],
  ['layer', 'u32'],
  ['blockSize', 'u32'],
  ['rows', 'u32'],
] as const satisfies ParamLayout;

export interface RowsRopeShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  nLayers: number;
  /** The layer whose K/V the dispatch writes. */
  layer: number;
  /** Token slots per page. */
  blockSize: number;
  rows: number;
}

/** Per row: q, k and v read, one rope-table row (headDim/2 cos-sin pairs), and position, page and slot from rowInfo. */
export function rowsRopeCost({ nHeads, nKvHeads, headDim, rows }: RowsRopeShape): Cost {
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const token = { bytesRead: 4 * (qDim + 2 * kvDim) + 4 * headDim, bytesWritten: 4 * (qDim + 2 * kvDim), flops: (6 * (qDim + kvDim)) / 2 };
  return perRow(token, rows, 12);
}

export function createRowsRope(
  kc: KernelContext,
  label: string,
  b: { rowInfo: GPUBuffer; ropeTable: GPUBuffer; q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; kvPool: GPUBuffer },
  s: RowsRopeShape,
): Promise<Dispatch> {
  checkRows(s.rows);
  if (s.layer >= s.nLayers) throw new RangeError(`layer ${s.layer} of a ${s.nLayers}-layer model`);
  const qPairs = (s.nHeads * s.headDim) / 2;
  const kvDim = s.nKvHeads * s.headDim;
  const threadsPerRow = qPairs + kvDim / 2 + kvDim;
  return kc.dispatch({
    label,
    family: 'rope',
    defines: rowsDefines,
    constants: rowInfoConstants,
    params: {
      layout: rowsRopeParams,
      values: { qPairs, kvDim, halfHeadDim: s.headDim / 2, nLayers: s.nLayers, layer: s.layer, blockSize: s.blockSize, rows: s.rows },
    },
    buffers: [b.rowInfo, b.ropeTable, b.q, b.k, b.v, b.kvPool],
    workgroups: tiledRowGrid(kc, Math.ceil(threadsPerRow / 64), s.rows),
    cost: rowsRopeCost(s),
  });
}

// ---------------------------------------------------------------------------------------------
// Sampler: tokens (rows) from logits (rows, vocab), argmax or temperature sampling per row

export const rowsSampleParams = [
  ['vocab', 'u32'],
  ['rows', 'u32'],
] as const satisfies ParamLayout;

/**
 * The pass over the logits every row makes (the argmax) and the temperature it reads. A row that
 * samples reads its logits about 1.5 times more and its seed and position; which rows do changes
 * every step, while a dispatch's cost is fixed when it is built, so this counts the minimum.
 */
export function rowsSampleCost(vocab: number, rows: number): Cost {
  return perRow(sampleCost(vocab, 1), rows, 4);
}

export function createRowsSampler(
  kc: KernelContext,
  label: string,
  b: { rowInfo: GPUBuffer; logits: GPUBuffer; tokens: GPUBuffer },
  s: { vocab: number; rows: number },
): Promise<Dispatch> {
  checkRows(s.rows);
  return kc.dispatch({
    label,
    family: 'sample',
    // Per-row cuts come from rowInfo; penalties (FILTERED's counts) are single-sequence only.
    defines: { ...rowsDefines, FILTERED: false },
    constants: rowInfoConstants,
    params: { layout: rowsSampleParams, values: { vocab: s.vocab, rows: s.rows } },
    buffers: [b.logits, b.tokens, b.rowInfo],
    workgroups: rowGrid(kc, s.rows),
    cost: rowsSampleCost(s.vocab, s.rows),
  });
}
