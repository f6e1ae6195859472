// Next-token choice on the GPU: argmax (greedy) or temperature sampling. See shaders/sample.wgsl.
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';

export const sampleParams = [['vocab', 'u32']] as const satisfies ParamLayout;

export function sampleCost(vocab: number, passes: number): Cost {
  return { bytesRead: 4 * vocab * passes, bytesWritten: 4, flops: 2 * vocab * passes };
}

export interface SampleBuffers {
  logits: GPUBuffer;
  token: GPUBuffer;
  step: GPUBuffer;
}

export function createArgmax(kc: KernelContext, label: string, b: SampleBuffers, vocab: number): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'sample',
    entryPoint: 'argmax',
    params: { layout: sampleParams, values: { vocab } },
    buffers: [b.logits, b.token],
    workgroups: [1, 1, 1],
    cost: sampleCost(vocab, 1),
  });
}

export function createTemperatureSample(kc: KernelContext, label: string, b: SampleBuffers, vocab: number): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'sample',
    entryPoint: 'sampleTemperature',
    params: { layout: sampleParams, values: { vocab } },
    buffers: [b.logits, b.token, b.step],
    workgroups: [1, 1, 1],
    // max pass, sum pass, and on average half a pass to find the sampled token
    cost: sampleCost(vocab, 2.5),
  });
}
