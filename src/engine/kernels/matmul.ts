// out (m, rows) = x (m, cols) @ weight (rows, cols)ᵀ for every weight format: prefill and batched
// decode, where m tokens share one pass over a packed matrix (the buffer the matvec reads). See
// shaders/matmul.wgsl. This module holds the variants' requirements, the dispatch builder, the cost
// model and the CPU reference.
import type { AdapterReport } from '../engine.ts';
import { RequestError } from '../errors.ts';
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';
import type { WgslDefines } from '../gpu/wgsl.ts';
import { isQuantized, packedByteLength, paddedColsOf, quantLayout, unpackMatrix, type PackedMatrix, type WeightFormat } from '../quant/formats.ts';
import { matvec } from '../reference/ops.ts';
import { weightFormatDefines, type MatvecBuffers, type MatvecShape } from './matvec.ts';
import { missingKernelRequirements, type KernelRequirements } from './matvec-variants.ts';

export const matmulParams = [
  ['m', 'u32'], // tokens: rows of x and of out
  ['rows', 'u32'],
  ['cols', 'u32'],
  ['units', 'u32'], // units per weight row (f32 or vec4<f32>, u32 of two halves, 32-weight block)
  ['scalesOffset', 'u32'], // q8_0 / q4_0: u32 index of the first block scale
  ['outStride', 'u32'], // elements per token of out
  ['outOffset', 'u32'], // where row 0 lands in a token's row of out
] as const satisfies ParamLayout;

export type MatmulVariantName = 'naive' | 'tiled';

/** Threads per workgroup of the naive variant. */
export const matmulWorkgroupSize = 64;

/**
 * The tiled variant's block of out (m tokens x n rows) and the columns staged per step (k). Each
 * thread computes 4 x 4 outputs, so a workgroup is (m / 4) * (n / 4) = 64 threads; k is a whole
 * number of 32-weight blocks. 32 x 32 outputs per workgroup let it read the weights once per 32
 * tokens at a cost of 8 KiB of workgroup memory, half the 16 KiB every adapter must offer.
 */
export const matmulTile = { m: 32, n: 32, k: 32 } as const;

export interface MatmulVariant {
  name: MatmulVariantName;
  requires: KernelRequirements;
  description: string;
}

export const matmulVariants: readonly MatmulVariant[] = [
  {
    name: 'naive',
    requires: { features: [], invocations: matmulWorkgroupSize, workgroupStorageBytes: 0 },
    description: 'one thread per output, no workgroup memory: every token reads the whole weight matrix',
  },
  {
    name: 'tiled',
    requires: {
      features: [],
      invocations: (matmulTile.m / 4) * (matmulTile.n / 4),
      workgroupStorageBytes: 4 * (matmulTile.m + matmulTile.n) * matmulTile.k, // the x and weight slices, as f32
    },
    description: `${matmulTile.m} x ${matmulTile.n} outputs per workgroup from x and dequantized weights staged in workgroup memory`,
  },
];

export function missingMatmulRequirements(adapter: AdapterReport, variant: MatmulVariant, format: WeightFormat): string[] {
  return missingKernelRequirements(adapter, variant.requires, format);
}

export function supportedMatmulVariants(adapter: AdapterReport, format: WeightFormat): MatmulVariant[] {
  return matmulVariants.filter((v) => missingMatmulRequirements(adapter, v, format).length === 0);
}

/** Everything a compiled matmul pipeline depends on besides the override constants. */
export interface MatmulKernel {
  format: WeightFormat;
  /** f32 rows that are whole vec4s are read as vec4<f32>. */
  vec4: boolean;
}

/** The preprocessor flags of a kernel (shaders/matmul.wgsl's header lists them). */
export function matmulDefines(k: MatmulKernel): WgslDefines {
  return weightFormatDefines(k.format, k.vec4);
}

/**
 * The minimum traffic of the product: the packed weights (scales included) and x read once, out
 * written once; 2 flops per weight per token. Neither kernel reaches it from memory: the tiled one
 * fetches the weights once per block of matmulTile.m tokens (ceil(m / 32) times) and x once per
 * block of matmulTile.n rows, the naive one the weights m times and x `rows` times, less what the
 * caches catch. GB/s derived from this cost is therefore the effective rate against the minimum,
 * as for the matvec, and the gap between the two variants is the reuse the tiles buy.
 */
export function matmulCost(format: WeightFormat, rows: number, cols: number, m: number): Cost {
  return { bytesRead: packedByteLength(format, rows, cols) + 4 * m * cols, bytesWritten: 4 * m * rows, flops: 2 * m * rows * cols };
}

/** Where a dispatch writes in out (m, stride): columns offset .. offset + rows of each token's row. */
export interface MatmulOutSlice {
  stride: number;
  offset: number;
}

function params(k: MatmulKernel, s: MatvecShape, m: number, slice: MatmulOutSlice) {
  const where = { outStride: slice.stride, outOffset: slice.offset };
  if (isQuantized(k.format)) {
    const layout = quantLayout(k.format, s.rows, s.paddedCols);
    return { m, rows: s.rows, cols: s.cols, units: layout.blocksPerRow, scalesOffset: layout.scalesOffset, ...where };
  }
  const units = k.format === 'f32' ? (k.vec4 ? s.cols / 4 : s.cols) : s.paddedCols / 2;
  return { m, rows: s.rows, cols: s.cols, units, scalesOffset: 0, ...where };
}

function workgroups(variant: MatmulVariantName, rows: number, m: number): [number, number, number] {
  return variant === 'naive' ? [Math.ceil(rows / matmulWorkgroupSize), m, 1] : [Math.ceil(rows / matmulTile.n), Math.ceil(m / matmulTile.m), 1];
}

/**
 * A matmul of `m` tokens (rows of x and out) with the named variant. The pipeline depends on the
 * format only, so one pipeline serves every m; the grid is this m's. `outSlice` places a part of a
 * matrix split by rows in the whole product's out (default: out is (m, rows), all of it). Throws a
 * RequestError naming what the adapter lacks for the variant, a RangeError for a shape the kernel
 * cannot take.
 */
export async function createMatmulDispatch(
  kc: KernelContext,
  label: string,
  b: MatvecBuffers,
  s: MatvecShape,
  m: number,
  variant: string,
  outSlice: MatmulOutSlice = { stride: s.rows, offset: 0 },
): Promise<Dispatch> {
  const v = matmulVariants.find((candidate) => candidate.name === variant);
  if (!v) throw new RequestError(`unknown matmul variant "${variant}" (known: ${matmulVariants.map((c) => c.name).join(', ')})`);
  const missing = missingMatmulRequirements(kc.gpu.adapter, v, s.format);
  if (missing.length > 0) {
    const adapter = kc.gpu.adapter.description || kc.gpu.adapter.vendor || 'this adapter';
    throw new RequestError(`matmul variant "${v.name}" on ${s.format} weights needs ${missing.join(' and ')}, which ${adapter} lacks`);
  }
  if (s.paddedCols !== paddedColsOf(s.format, s.cols)) throw new RangeError(`${label}: a ${s.format} row of ${s.cols} weights is padded to ${paddedColsOf(s.format, s.cols)}, not ${s.paddedCols}`);
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`${label}: ${m} tokens is not a positive whole number`);
  if (outSlice.offset + s.rows > outSlice.stride) throw new RangeError(`${label}: rows ${outSlice.offset} .. ${outSlice.offset + s.rows} run past the ${outSlice.stride} columns of out`);
  const groups = workgroups(v.name, s.rows, m);
  if (Math.max(...groups) > kc.maxWorkgroupsPerDimension) throw new RangeError(`${label}: a grid of ${groups.join(' x ')} workgroups exceeds ${kc.maxWorkgroupsPerDimension} per dimension`);

  const k: MatmulKernel = { format: s.format, vec4: s.format === 'f32' && s.cols % 4 === 0 };
  const constants: Record<string, number> = v.name === 'naive' ? { WORKGROUP_SIZE: matmulWorkgroupSize } : { TILE_M: matmulTile.m, TILE_N: matmulTile.n, TILE_K: matmulTile.k };
  return kc.dispatch({
    label,
    family: 'matmul',
    entryPoint: v.name,
    constants,
    defines: matmulDefines(k),
    params: { layout: matmulParams, values: params(k, s, m, outSlice) },
    buffers: [b.weight, b.x, b.out],
    workgroups: groups,
    cost: matmulCost(s.format, s.rows, s.cols, m),
  });
}

/** out (m, rows) = x (m, cols) @ dequant(w)ᵀ, accumulated in f64: the kernels' CPU reference. */
export function referenceMatmul(w: PackedMatrix, x: Float32Array, m: number): Float32Array {
  const { rows, cols } = w;
  if (x.length < m * cols) throw new RangeError(`x holds ${x.length} values, not ${m} tokens of ${cols}`);
  const weights = unpackMatrix(w);
  const out = new Float32Array(m * rows);
  for (let t = 0; t < m; t++) matvec(out.subarray(t * rows, (t + 1) * rows), weights, x.subarray(t * cols, (t + 1) * cols), rows, cols);
  return out;
}
