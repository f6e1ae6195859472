// Where the time of one decode step goes: every dispatch of a greedy step (body, head, argmax)
// timed on its own, next to the bytes and flops its cost model says it must move, so a panel can
// show each kernel's share of the step and how close it comes to the roofline.
import { GpuOperationError } from '../errors.ts';
import type { Cost, Dispatch } from '../gpu/kernel.ts';
import { timeEachDispatch, type TimingMethod } from '../gpu/timing.ts';
import { attentionCost } from '../kernels/attention.ts';
import type { KernelTiming, StepProfile } from '../telemetry.ts';
import type { GpuModel } from './gpu-model.ts';

export interface ProfileOptions {
  /** Position of the profiled step (default: a quarter of the context). */
  position?: number;
  /** Timed runs of the step (default 5). */
  repetitions?: number;
  /** Untimed runs first (default 2). */
  warmup?: number;
  /** Defaults to 'timestamp' where the device has the feature; 'timestamp' without it throws. */
  method?: TimingMethod;
}

const notes: Record<TimingMethod, string> = {
  timestamp:
    'Each kernel ran in its own timestamped compute pass, so no two kernels overlapped and every pass paid its own start-up: the sum is more than the step takes as one pass.',
  wall: 'Each kernel was submitted alone, back to back, and timed on the CPU clock until the queue drained: submission overhead is included, so the sum is more than the step takes as one pass.',
};

/**
 * Profiles one greedy decode step at `position`. Running it writes that position's keys and values
 * into the cache and the argmax token into the token buffer. The engine never profiles during a
 * generation, and a generation writes every position from 0 before attention reads it, so no
 * later output changes; the step attends over whatever the cache holds at 0..position, which
 * costs the same as real keys.
 */
export async function profileStep(model: GpuModel, options: ProfileOptions = {}): Promise<StepProfile> {
  const position = options.position ?? Math.floor(model.contextLength / 4);
  const repetitions = options.repetitions ?? 5;
  model.writeStepInputs(position, model.config.bosTokenId, null);
  const dispatches = [...model.bodyDispatches, ...model.headDispatches, model.samplerDispatch({ kind: 'argmax' })];
  const { method, timings, resolutionMs } = await timeEachDispatch(model.gpu, dispatches, { repetitions, warmup: options.warmup ?? 2, method: options.method });
  const gpuErrors = model.gpu.takeUncapturedErrors();
  if (gpuErrors.length > 0) throw new GpuOperationError(`the GPU reported errors while profiling; the times cannot be trusted: ${gpuErrors.join('; ')}`);

  // Attention's dispatch carries its cost at a context of 1: this step attends over position + 1.
  const c = model.config;
  const attention = attentionCost({ nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, maxSeq: model.contextLength, cacheOffset: 0 }, position + 1);
  const kernels = dispatches.map((dispatch, i): KernelTiming => {
    const cost: Cost = dispatch.family === 'attention' ? attention : dispatch.cost;
    return { label: dispatch.label, op: opOf(dispatch), layer: layerOf(dispatch.label), ms: timings[i].meanMs, bytesRead: cost.bytesRead, bytesWritten: cost.bytesWritten, flops: cost.flops };
  });
  const totalMs = kernels.reduce((sum, k) => sum + k.ms, 0);
  return { method, resolutionMs, repetitions, position, kernels, totalMs, note: notes[method] };
}

/** The family names the op, except elementwise, whose entry point does ('add' or 'swiglu'). */
export function opOf(dispatch: Pick<Dispatch, 'family' | 'entryPoint'>): string {
  return dispatch.family === 'elementwise' ? dispatch.entryPoint : dispatch.family;
}

/** The layer of a "layers.N.*" label; null for the embedding and the head. */
export function layerOf(label: string): number | null {
  const match = /^layers\.(\d+)\./.exec(label);
  return match ? Number(match[1]) : null;
}
