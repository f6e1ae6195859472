// out (rows) = weight (rows, cols) @ x (cols) for every weight format. See shaders/matvec.wgsl.
// This module builds dispatches for a (format, strategy) pair; which strategies an adapter can run,
// and which is fastest, is the registry's business (matvec-variants.ts).
import { grid, type Cost, type Dispatch, type KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';
import type { WgslDefines } from '../gpu/wgsl.ts';
import { isQuantized, packedByteLength, paddedColsOf, quantLayout, type WeightFormat } from '../quant/formats.ts';

export const matvecParams = [
  ['rows', 'u32'],
  ['cols', 'u32'],
  ['units', 'u32'], // units per row (f32 or vec4<f32>, u32 of two halves, 32-weight block)
  ['scalesOffset', 'u32'], // q8_0 / q4_0: u32 index of the first block scale
  ['outOffset', 'u32'], // a part of a row-split matrix: where its row 0 lands in out
] as const satisfies ParamLayout;

export type MatvecVariantName = 'naive' | 'splitK' | 'subgroup' | 'multiRow';

export const matvecWorkgroupSize = 64;
export const matvecRowsPerWorkgroup = 4;

/** Everything a compiled matvec pipeline depends on besides the override constants. */
export interface MatvecKernel {
  format: WeightFormat;
  variant: MatvecVariantName;
  /** f32 rows that are whole vec4s are read as vec4<f32>. */
  vec4: boolean;
}

/** The shape of a packed matrix, as the kernels see it. */
export interface MatvecShape {
  format: WeightFormat;
  rows: number;
  cols: number;
  paddedCols: number;
}

export interface MatvecBuffers {
  weight: GPUBuffer;
  x: GPUBuffer;
  out: GPUBuffer;
}

function matvecKernel(format: WeightFormat, variant: MatvecVariantName, cols: number): MatvecKernel {
  return { format, variant, vec4: format === 'f32' && cols % 4 === 0 };
}

/** The preprocessor flags of a kernel (shaders/matvec.wgsl's header lists them). */
export function matvecDefines(k: MatvecKernel): WgslDefines {
  return { ...weightFormatDefines(k.format, k.vec4), SUBGROUPS: k.variant === 'subgroup' };
}

/** The weight-format flags shaders/matvec.wgsl and shaders/matmul.wgsl share (how a weight unit is read). */
export function weightFormatDefines(format: WeightFormat, vec4: boolean): WgslDefines {
  return {
    F32: format === 'f32',
    F16: format === 'f16',
    F16_NATIVE: format === 'f16-native',
    Q8_0: format === 'q8_0',
    Q4_0: format === 'q4_0',
    QUANT: isQuantized(format),
    VEC4: vec4,
  };
}

/** Weights, scales and x read once, out written once; 2 flops per weight. */
export function formatMatvecCost(format: WeightFormat, rows: number, cols: number): Cost {
  return { bytesRead: packedByteLength(format, rows, cols) + 4 * cols, bytesWritten: 4 * rows, flops: 2 * rows * cols };
}

function params(k: MatvecKernel, m: MatvecShape, outOffset: number) {
  if (isQuantized(k.format)) {
    const layout = quantLayout(k.format, m.rows, m.paddedCols);
    return { rows: m.rows, cols: m.cols, units: layout.blocksPerRow, scalesOffset: layout.scalesOffset, outOffset };
  }
  const units = k.format === 'f32' ? (k.vec4 ? m.cols / 4 : m.cols) : m.paddedCols / 2;
  return { rows: m.rows, cols: m.cols, units, scalesOffset: 0, outOffset };
}

function workgroups(variant: MatvecVariantName, rows: number): number {
  switch (variant) {
    case 'naive':
      return Math.ceil(rows / matvecWorkgroupSize);
    case 'multiRow':
      return Math.ceil(rows / matvecRowsPerWorkgroup);
    case 'splitK':
    case 'subgroup':
      return rows;
  }
}

/**
 * A dispatch of one strategy on a packed matrix, writing out[outOffset .. outOffset + rows] (a part
 * of a matrix split by rows writes its own slice). It does not check that the adapter supports the
 * strategy (createFormatMatvec in matvec-variants.ts does); an unsupported one fails to compile.
 */
export function createMatvecDispatch(kc: KernelContext, label: string, b: MatvecBuffers, m: MatvecShape, variant: MatvecVariantName, outOffset = 0): Promise<Dispatch> {
  if (m.paddedCols !== paddedColsOf(m.format, m.cols)) throw new RangeError(`${label}: a ${m.format} row of ${m.cols} weights is padded to ${paddedColsOf(m.format, m.cols)}, not ${m.paddedCols}`);
  const k = matvecKernel(m.format, variant, m.cols);
  const constants: Record<string, number> = { WORKGROUP_SIZE: matvecWorkgroupSize };
  if (variant === 'multiRow') constants.ROWS_PER_WORKGROUP = matvecRowsPerWorkgroup;
  return kc.dispatch({
    label,
    family: 'matvec',
    entryPoint: variant,
    constants,
    defines: matvecDefines(k),
    params: { layout: matvecParams, values: params(k, m, outOffset) },
    buffers: [b.weight, b.x, b.out],
    workgroups: grid(workgroups(variant, m.rows), kc.maxWorkgroupsPerDimension),
    cost: formatMatvecCost(m.format, m.rows, m.cols),
  });
}
