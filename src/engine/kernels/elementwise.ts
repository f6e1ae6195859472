// x += y (residual add) and gate = silu(gate) * up (SwiGLU). See shaders/elementwise.wgsl.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const elementwiseParams = [['n', 'u32']] as const satisfies ParamLayout;

export function elementwiseCost(n: number, flopsPerElement: number): Cost {
  return { bytesRead: 8 * n, bytesWritten: 4 * n, flops: flopsPerElement * n };
}

function createElementwise(kc: KernelContext, label: string, entryPoint: 'add' | 'swiglu', x: GPUBuffer, y: GPUBuffer, n: number, flops: number): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'elementwise',
    entryPoint,
    params: { layout: elementwiseParams, values: { n } },
    buffers: [x, y],
    workgroups: [Math.ceil(n / 64), 1, 1],
    cost: elementwiseCost(n, flops),
  });
}

/** x (n) += y (n) */
export function createAdd(kc: KernelContext, label: string, x: GPUBuffer, y: GPUBuffer, n: number): Promise<Dispatch> {
  return createElementwise(kc, label, 'add', x, y, n, 1);
}

/** gate (n) = silu(gate) * up (n) */
export function createSwiglu(kc: KernelContext, label: string, gate: GPUBuffer, up: GPUBuffer, n: number): Promise<Dispatch> {
  return createElementwise(kc, label, 'swiglu', gate, up, n, 5);
}
