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
  return createSample(kc, label, 'argmax', [b.logits, b.token], vocab, sampleCost(vocab, 1));
}

export function createTemperatureSample(kc: KernelContext, label: string, b: SampleBuffers, vocab: number): Promise<Dispatch> {
  // max pass, sum pass, and on average half a pass to find the sampled token
  return createSample(kc, label, 'sampleTemperature', [b.logits, b.token, b.step], vocab, sampleCost(vocab, 2.5));
}

/** Both samplers run as one workgroup; argmax does not read the step uniform, so it is not bound. */
function createSample(kc: KernelContext, label: string, entryPoint: string, buffers: GPUBuffer[], vocab: number, cost: Cost): Promise<Dispatch> {
  return kc.dispatch({ label, family: 'sample', entryPoint, defines: { ROWS: false }, params: { layout: sampleParams, values: { vocab } }, buffers, workgroups: [1, 1, 1], cost });
}
