// out (rows) = weight (rows, cols) @ x (cols), f32 weights. See shaders/matvec.wgsl.
import { grid, type Cost, type Dispatch, type KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const matvecParams = [
  ['rows', 'u32'],
  ['cols', 'u32'],
] as const satisfies ParamLayout;

export const matvecWorkgroupSize = 64;

export type MatvecStrategy = 'splitK' | 'rowPerThread';
export const matvecStrategies: readonly MatvecStrategy[] = ['splitK', 'rowPerThread'];

/** Barriers dominate on CPU-emulated adapters; real GPUs want coalesced split-K reads. */
export function defaultMatvecStrategy(isFallbackAdapter: boolean): MatvecStrategy {
  return isFallbackAdapter ? 'rowPerThread' : 'splitK';
}

/** Every weight once, x once per workgroup (cached, so counted once), out once. */
export function matvecCost(rows: number, cols: number): Cost {
  return { bytesRead: 4 * rows * cols + 4 * cols, bytesWritten: 4 * rows, flops: 2 * rows * cols };
}

export interface MatvecBuffers {
  weight: GPUBuffer;
  x: GPUBuffer;
  out: GPUBuffer;
}

export function createMatvec(
  kc: KernelContext,
  label: string,
  b: MatvecBuffers,
  rows: number,
  cols: number,
  strategy: MatvecStrategy = defaultMatvecStrategy(kc.gpu.adapter.isFallbackAdapter),
): Promise<Dispatch> {
  const groups = strategy === 'splitK' ? rows : Math.ceil(rows / matvecWorkgroupSize);
  return kc.dispatch({
    label,
    family: 'matvec',
    entryPoint: strategy,
    constants: { WORKGROUP_SIZE: matvecWorkgroupSize },
    params: { layout: matvecParams, values: { rows, cols } },
    buffers: [b.weight, b.x, b.out],
    workgroups: grid(groups, kc.maxWorkgroupsPerDimension),
    cost: matvecCost(rows, cols),
  });
}
