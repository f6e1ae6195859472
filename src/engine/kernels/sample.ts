// Next-token choice on the GPU: argmax (greedy), temperature sampling, and the filtered sampler
// (penalties, top-k, top-p, min-p). See shaders/sample.wgsl.
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

/** `struct Filters` of shaders/sample.wgsl: written once per generation. */
export const filtersLayout = [
  ['topK', 'u32'],
  ['topP', 'f32'],
  ['minP', 'f32'],
  ['repetitionPenalty', 'f32'],
  ['frequencyPenalty', 'f32'],
  ['presencePenalty', 'f32'],
  ['penalize', 'u32'],
  ['masked', 'u32'],
] as const satisfies ParamLayout;

export interface FilteredSampleBuffers extends SampleBuffers {
  /** Uniform of filtersLayout. */
  filters: GPUBuffer;
  /** (vocab) u32 occurrences of each token, counted up by the sampler. */
  counts: GPUBuffer;
  /** (ceil(vocab / 32)) u32 bitset of allowed tokens, read when filters.masked is set. */
  allowed: GPUBuffer;
}

/**
 * Passes over the vocabulary of the filtered sampler with every cut on: max, the top-k search (a
 * count of valid tokens, 32 counting passes, one for the ties), the top-p search (the top-k mass,
 * 30 summing passes), the kept mass, and on average half a pass to draw. Fewer when cuts are off.
 */
export const filteredSamplePasses = 1 + 34 + 31 + 1 + 0.5;

export function createArgmax(kc: KernelContext, label: string, b: SampleBuffers, vocab: number): Promise<Dispatch> {
  return createSample(kc, label, 'argmax', [b.logits, b.token], vocab, sampleCost(vocab, 1));
}

export function createTemperatureSample(kc: KernelContext, label: string, b: SampleBuffers, vocab: number): Promise<Dispatch> {
  // max pass, sum pass, and on average half a pass to find the sampled token
  return createSample(kc, label, 'sampleTemperature', [b.logits, b.token, b.step], vocab, sampleCost(vocab, 2.5));
}

export function createFilteredSample(kc: KernelContext, label: string, b: FilteredSampleBuffers, vocab: number): Promise<Dispatch> {
  return kc.dispatch({
    label,
    family: 'sample',
    entryPoint: 'sampleFiltered',
    defines: { ROWS: false, FILTERED: true },
    params: { layout: sampleParams, values: { vocab } },
    buffers: [b.logits, b.token, b.step, b.filters, b.counts, b.allowed],
    workgroups: [1, 1, 1],
    cost: sampleCost(vocab, filteredSamplePasses),
  });
}

/** Both samplers run as one workgroup; argmax does not read the step uniform, so it is not bound. */
function createSample(kc: KernelContext, label: string, entryPoint: string, buffers: GPUBuffer[], vocab: number, cost: Cost): Promise<Dispatch> {
  return kc.dispatch({ label, family: 'sample', entryPoint, defines: { ROWS: false, FILTERED: false }, params: { layout: sampleParams, values: { vocab } }, buffers, workgroups: [1, 1, 1], cost });
}
