// GPU time of a list of dispatches, the way STYLE.md's timing rules ask: timestamp queries when
// the device has 'timestamp-query' (one timestamped pass per repetition, all submitted before the
// single read-back is mapped, so the GPU never idles waiting on the CPU), wall time around
// queue.onSubmittedWorkDone() otherwise; warm-up runs first, negative deltas are dropped, and the
// result is a mean ± sd over the samples.
import type { GpuContext } from './device.ts';
import { encodeDispatches, type Dispatch } from './kernel.ts';

export type TimingMethod = 'timestamp' | 'wall';

export interface TimingOptions {
  /** Timed samples (default 20). */
  repetitions?: number;
  /** Untimed runs first, to compile, page in and warm caches (default 3). */
  warmup?: number;
  /** Defaults to 'timestamp' where the device has the feature; 'timestamp' without it throws. */
  method?: TimingMethod;
}

export interface Timing {
  /** Mean time of one run of the whole dispatch list. */
  meanMs: number;
  sdMs: number;
  /** Samples kept (negative timestamp deltas are dropped). */
  samples: number;
  method: TimingMethod;
}

// A timestamp query set holds at most 4096 queries: two per timed pass.
const maxTimestampRepetitions = 2048;
// A wall-clock sample covers enough back-to-back runs to last this long, so the submit and
// onSubmittedWorkDone round trip (tens of microseconds) does not swamp a short kernel.
const minWallSampleMs = 2;
const maxRunsPerWallSample = 256;

export async function timeDispatches(gpu: GpuContext, dispatches: readonly Dispatch[], options: TimingOptions = {}): Promise<Timing> {
  const repetitions = options.repetitions ?? 20;
  const warmup = options.warmup ?? 3;
  if (!Number.isInteger(repetitions) || repetitions < 1) throw new RangeError(`repetitions must be a whole number >= 1, got ${repetitions}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`warmup must be a whole number >= 0, got ${warmup}`);
  const hasTimestamps = gpu.adapter.features.timestampQuery;
  const method = options.method ?? (hasTimestamps ? 'timestamp' : 'wall');
  if (method === 'timestamp' && !hasTimestamps) throw new Error("timestamp timing needs the 'timestamp-query' feature, which this device lacks");

  const samples = method === 'timestamp' ? await timestampSamples(gpu.device, dispatches, repetitions, warmup) : await wallSamples(gpu.device, dispatches, repetitions, warmup);
  if (samples.length === 0) throw new Error(`all ${repetitions} timestamp deltas were negative: no usable timing`);
  const { mean: meanMs, sd: sdMs } = meanSd(samples);
  if (meanMs === 0) throw new Error('the dispatches ran faster than the timestamp resolution: time more work per run');
  return { meanMs, sdMs, samples: samples.length, method };
}

/** Encodes `runs` passes of the dispatch list; `timestamps` brackets pass i with queries 2i, 2i + 1. */
function encodeRuns(device: GPUDevice, dispatches: readonly Dispatch[], runs: number, timestamps?: GPUQuerySet): GPUCommandEncoder {
  const encoder = device.createCommandEncoder({ label: 'timing' });
  for (let i = 0; i < runs; i++) {
    const timestampWrites = timestamps && { querySet: timestamps, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
    const pass = encoder.beginComputePass({ label: `timing run ${i}`, timestampWrites });
    encodeDispatches(pass, dispatches);
    pass.end();
  }
  return encoder;
}

async function timestampSamples(device: GPUDevice, dispatches: readonly Dispatch[], repetitions: number, warmup: number): Promise<number[]> {
  if (repetitions > maxTimestampRepetitions) throw new RangeError(`timestamp timing takes at most ${maxTimestampRepetitions} repetitions, got ${repetitions}`);
  const querySet = device.createQuerySet({ label: 'timing', type: 'timestamp', count: 2 * repetitions });
  const size = 8 * 2 * repetitions;
  const resolved = device.createBuffer({ label: 'timing.resolve', size, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const readback = device.createBuffer({ label: 'timing.readback', size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const commands: GPUCommandBuffer[] = [];
    if (warmup > 0) commands.push(encodeRuns(device, dispatches, warmup).finish());
    const timed = encodeRuns(device, dispatches, repetitions, querySet);
    timed.resolveQuerySet(querySet, 0, 2 * repetitions, resolved, 0);
    timed.copyBufferToBuffer(resolved, 0, readback, 0, size);
    commands.push(timed.finish());
    device.queue.submit(commands);

    await readback.mapAsync(GPUMapMode.READ);
    const ticks = new BigInt64Array(readback.getMappedRange());
    const samples: number[] = [];
    for (let i = 0; i < repetitions; i++) {
      const ns = Number(ticks[2 * i + 1] - ticks[2 * i]);
      // Timestamps may go backwards (clock domain changes, reordering): such deltas mean nothing.
      if (ns >= 0) samples.push(ns / 1e6);
    }
    readback.unmap();
    return samples;
  } finally {
    querySet.destroy();
    resolved.destroy();
    readback.destroy();
  }
}

async function wallSamples(device: GPUDevice, dispatches: readonly Dispatch[], repetitions: number, warmup: number): Promise<number[]> {
  const runAndWait = async (runs: number): Promise<number> => {
    const started = performance.now();
    device.queue.submit([encodeRuns(device, dispatches, runs).finish()]);
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - started) / runs;
  };
  // The warm-up doubles as the estimate that sizes a sample (so at least one run happens).
  const estimateMs = await runAndWait(Math.max(1, warmup));
  const runsPerSample = Math.min(maxRunsPerWallSample, Math.max(1, Math.ceil(minWallSampleMs / Math.max(estimateMs, 1e-3))));
  const samples: number[] = [];
  for (let i = 0; i < repetitions; i++) samples.push(await runAndWait(runsPerSample));
  return samples;
}

/** Mean and sample standard deviation (0 for a single sample). */
export function meanSd(values: readonly number[]): { mean: number; sd: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, sd: Math.sqrt(variance) };
}
