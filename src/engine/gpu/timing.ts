// GPU time of a list of dispatches, the way STYLE.md's timing rules ask: timestamp queries when
// the device has 'timestamp-query' (one timestamped pass per repetition, all submitted before the
// single read-back is mapped, so the GPU never idles waiting on the CPU), wall time around
// queue.onSubmittedWorkDone() otherwise; warm-up runs first, negative deltas are dropped, and the
// result is a mean ± sd over the samples. timeEachDispatch times every dispatch of a list on its
// own, for per-kernel profiles.
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
const maxTimedPassesPerQuerySet = 2048;
// A wall-clock sample covers enough back-to-back runs to last this long, so the submit and
// onSubmittedWorkDone round trip (tens of microseconds) does not swamp a short kernel.
const minWallSampleMs = 2;
const maxRunsPerWallSample = 256;

export async function timeDispatches(gpu: GpuContext, dispatches: readonly Dispatch[], options: TimingOptions = {}): Promise<Timing> {
  const { repetitions, warmup, method } = checkOptions(gpu, options, { repetitions: 20, warmup: 3 });
  const samples = method === 'timestamp' ? await timestampSamples(gpu.device, dispatches, repetitions, warmup) : await wallSamples(gpu.device, dispatches, repetitions, warmup);
  if (samples.length === 0) throw new Error(`all ${repetitions} timestamp deltas were negative: no usable timing`);
  const { mean: meanMs, sd: sdMs } = meanSd(samples);
  if (meanMs === 0) throw new Error('the dispatches ran faster than the timestamp resolution: time more work per run');
  return { meanMs, sdMs, samples: samples.length, method };
}

/** The options with their defaults filled in, after checking them against each other and the device. */
function checkOptions(gpu: GpuContext, options: TimingOptions, defaults: { repetitions: number; warmup: number }): Required<TimingOptions> {
  const repetitions = options.repetitions ?? defaults.repetitions;
  const warmup = options.warmup ?? defaults.warmup;
  if (!Number.isInteger(repetitions) || repetitions < 1) throw new RangeError(`repetitions must be a whole number >= 1, got ${repetitions}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`warmup must be a whole number >= 0, got ${warmup}`);
  const hasTimestamps = gpu.adapter.features.timestampQuery;
  const method = options.method ?? (hasTimestamps ? 'timestamp' : 'wall');
  if (method === 'timestamp' && !hasTimestamps) throw new Error("timestamp timing needs the 'timestamp-query' feature, which this device lacks");
  return { repetitions, warmup, method };
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
  if (repetitions > maxTimedPassesPerQuerySet) throw new RangeError(`timestamp timing takes at most ${maxTimedPassesPerQuerySet} repetitions, got ${repetitions}`);
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

/** The time of each dispatch of a list, measured on its own. */
export interface EachDispatchTiming {
  method: TimingMethod;
  /**
   * One per dispatch, in list order. With rounded timestamps a short dispatch often starts and
   * ends within one step, so its mean can be 0 or a fraction of the step: read it against resolutionMs.
   */
  timings: Timing[];
  /**
   * Timestamps: the step the readings are rounded to, found as the gcd of their differences.
   * Dawn (Chrome, and the Node package unless its timestamp_quantization toggle is off) clears
   * the low 16 bits, a step of 65.536 µs; unrounded readings give 1 ns, the unit they come in,
   * though the GPU's own tick may be coarser. Wall: the smallest step performance.now() was seen to take.
   */
  resolutionMs: number;
}

/**
 * Times every dispatch of a list on its own. With timestamps, each repetition runs the whole list
 * in order, one timestamped pass per dispatch, so every kernel reads what the ones before it wrote;
 * with wall time, each dispatch is run back to back by itself, as timeDispatches does. Either way
 * kernels cannot overlap, so the times add up to more than the list takes in one pass.
 */
export async function timeEachDispatch(gpu: GpuContext, dispatches: readonly Dispatch[], options: TimingOptions = {}): Promise<EachDispatchTiming> {
  const { repetitions, warmup, method } = checkOptions(gpu, options, { repetitions: 5, warmup: 2 });
  let samples: number[][];
  let resolutionMs: number;
  if (method === 'timestamp') {
    ({ samples, resolutionMs } = await timestampSamplesEach(gpu.device, dispatches, repetitions, warmup));
  } else {
    samples = [];
    for (const dispatch of dispatches) samples.push(await wallSamples(gpu.device, [dispatch], repetitions, warmup));
    resolutionMs = clockStepMs();
  }
  const timings = samples.map((kept, i): Timing => {
    if (kept.length === 0) throw new Error(`all ${repetitions} timestamp deltas of ${dispatches[i].label} were negative: no usable timing`);
    const { mean: meanMs, sd: sdMs } = meanSd(kept);
    return { meanMs, sdMs, samples: kept.length, method };
  });
  return { method, timings, resolutionMs };
}

/** Encodes `count` passes of the repeated list from pass `first` on, pass i holding dispatch i mod n. */
function encodeSinglePasses(device: GPUDevice, dispatches: readonly Dispatch[], first: number, count: number, timestamps?: GPUQuerySet): GPUCommandEncoder {
  const encoder = device.createCommandEncoder({ label: 'timing each' });
  for (let i = 0; i < count; i++) {
    const dispatch = dispatches[(first + i) % dispatches.length];
    const timestampWrites = timestamps && { querySet: timestamps, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
    const pass = encoder.beginComputePass({ label: dispatch.label, timestampWrites });
    encodeDispatches(pass, [dispatch]);
    pass.end();
  }
  return encoder;
}

async function timestampSamplesEach(device: GPUDevice, dispatches: readonly Dispatch[], repetitions: number, warmup: number): Promise<{ samples: number[][]; resolutionMs: number }> {
  // The timed passes are cut into chunks that fit one query set; the set and the resolve buffer
  // are reused by each chunk in queue order, and every chunk gets its own read-back, so all of
  // them are submitted before the first is mapped.
  const passes = dispatches.length * repetitions;
  const chunkPasses = Math.min(passes, maxTimedPassesPerQuerySet);
  const chunks = Array.from({ length: Math.ceil(passes / chunkPasses) }, (_, c) => ({ first: c * chunkPasses, count: Math.min(chunkPasses, passes - c * chunkPasses) }));
  const querySet = device.createQuerySet({ label: 'timing each', type: 'timestamp', count: 2 * chunkPasses });
  const resolved = device.createBuffer({ label: 'timing each.resolve', size: 16 * chunkPasses, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const readbacks = chunks.map(({ count }, c) =>
    device.createBuffer({ label: `timing each.readback ${c}`, size: 16 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
  );
  try {
    const commands: GPUCommandBuffer[] = [];
    if (warmup > 0) commands.push(encodeSinglePasses(device, dispatches, 0, dispatches.length * warmup).finish());
    chunks.forEach(({ first, count }, c) => {
      const encoder = encodeSinglePasses(device, dispatches, first, count, querySet);
      encoder.resolveQuerySet(querySet, 0, 2 * count, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, readbacks[c], 0, 16 * count);
      commands.push(encoder.finish());
    });
    device.queue.submit(commands);

    const samples: number[][] = dispatches.map(() => []);
    let stepNs = 0n;
    for (const [c, { first, count }] of chunks.entries()) {
      await readbacks[c].mapAsync(GPUMapMode.READ);
      const ticks = new BigInt64Array(readbacks[c].getMappedRange());
      for (let i = 0; i < count; i++) {
        const ns = ticks[2 * i + 1] - ticks[2 * i];
        // Timestamps may go backwards (clock domain changes, reordering): such deltas mean nothing.
        if (ns >= 0n) samples[(first + i) % dispatches.length].push(Number(ns) / 1e6);
      }
      for (const reading of ticks) stepNs = gcd(stepNs, reading - ticks[0]);
      readbacks[c].unmap();
    }
    // Readings that never differed reveal no step: fall back to the 1 ns unit they are given in.
    return { samples, resolutionMs: Number(stepNs === 0n ? 1n : stepNs) / 1e6 };
  } finally {
    querySet.destroy();
    resolved.destroy();
    for (const readback of readbacks) readback.destroy();
  }
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** The smallest step performance.now() takes, from a few consecutive changes of its reading. */
function clockStepMs(): number {
  let smallest = Infinity;
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    let next = performance.now();
    while (next === start) next = performance.now();
    smallest = Math.min(smallest, next - start);
  }
  return smallest;
}

/** Mean and sample standard deviation (0 for a single sample). */
export function meanSd(values: readonly number[]): { mean: number; sd: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, sd: Math.sqrt(variance) };
}
