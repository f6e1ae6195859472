// out (dim) = weight * x / rms(x). See shaders/rmsnorm.wgsl.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const rmsnormParams = [
  ['dim', 'u32'],
  ['eps', 'f32'],
] as const satisfies ParamLayout;

export function rmsnormCost(dim: number): Cost {
  return { bytesRead: 8 * dim, bytesWritten: 4 * dim, flops: 4 * dim };
}

export interface RmsnormBuffers {
  x: GPUBuffer;
  weight: GPUBuffer;
  out: GPUBuffer;
}

export function createRmsnorm(kc: KernelContext, label: string, b: RmsnormBuffers, dim: number, eps: number): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'rmsnorm',
    defines: { ROWS: false },
    constants: { WORKGROUP_SIZE: 64 },
    params: { layout: rmsnormParams, values: { dim, eps } },
    buffers: [b.x, b.weight, b.out],
    workgroups: [1, 1, 1],
    cost: rmsnormCost(dim),
  });
}
