// x += y (residual add), gate = silu(gate) * up (SwiGLU) and x += bias on every row. See shaders/elementwise.wgsl.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const elementwiseParams = [
  ['n', 'u32'],
  ['width', 'u32'],
] as const satisfies ParamLayout;

export function elementwiseCost(n: number, flopsPerElement: number): Cost {
  return { bytesRead: 8 * n, bytesWritten: 4 * n, flops: flopsPerElement * n };
}

function createElementwise(kc: KernelContext, label: string, entryPoint: 'add' | 'swiglu' | 'bias', x: GPUBuffer, y: GPUBuffer, n: number, width: number, cost: Cost): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'elementwise',
    entryPoint,
    params: { layout: elementwiseParams, values: { n, width } },
    buffers: [x, y],
    workgroups: [Math.ceil(n / 64), 1, 1],
    cost,
  });
}

/** x (n) += y (n) */
export function createAdd(kc: KernelContext, label: string, x: GPUBuffer, y: GPUBuffer, n: number): Promise<Dispatch> {
  return createElementwise(kc, label, 'add', x, y, n, n, elementwiseCost(n, 1));
}

/** gate (n) = silu(gate) * up (n) */
export function createSwiglu(kc: KernelContext, label: string, gate: GPUBuffer, up: GPUBuffer, n: number): Promise<Dispatch> {
  return createElementwise(kc, label, 'swiglu', gate, up, n, n, elementwiseCost(n, 5));
}

/** x (rows, width) += bias (width) on every row: the bias is read once, x read and written. */
export function createBiasAdd(kc: KernelContext, label: string, x: GPUBuffer, bias: GPUBuffer, width: number, rows = 1): Promise<Dispatch> {
  const n = rows * width;
  return createElementwise(kc, label, 'bias', x, bias, n, width, { bytesRead: 4 * (n + width), bytesWritten: 4 * n, flops: n });
}
