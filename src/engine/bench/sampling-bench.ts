// The sampling benchmark: time of one sampling step at LLM vocabulary sizes, for each way of picking
// the token — the GPU's plain temperature sampler, its filtered sampler with top-k and top-p found
// by threshold search (no sort), the same cuts read off a bitonic sort of the vocabulary on the GPU,
// and reading the logits back to sample on the CPU. The GPU variants read back 4 bytes; the CPU one
// 4 bytes per vocabulary entry, which is the point.
import type { GpuContext } from '../gpu/device.ts';
import { createParamsBuffer, stepLayout } from '../gpu/params.ts';
import { KernelContext } from '../gpu/kernel.ts';
import { meanSd, timeDispatches, type TimingMethod } from '../gpu/timing.ts';
import { createFilteredSample, createTemperatureSample, filtersLayout } from '../kernels/sample.ts';
import { createSortedSample, sortedLength } from '../kernels/sample-sort.ts';
import { seededValues, uniform } from '../reference/rng.ts';
import { noPenalties, sampleFiltered, type SamplingFilters } from '../reference/sample.ts';

export interface SamplingBenchOptions {
  vocabs: readonly number[];
  filters: SamplingFilters;
  temperature: number;
  repetitions: number;
  warmup: number;
  onResult?: (result: SamplingResult) => void;
}

export type SamplingVariant = 'gpu-temperature' | 'gpu' | 'gpu-sort' | 'cpu';

export interface SamplingResult {
  vocab: number;
  variant: SamplingVariant;
  /** Mean time of one sampling step (GPU time for GPU variants; read-back plus CPU time for cpu). */
  ms: number;
  sdMs: number;
  method: TimingMethod;
  /** Bytes read back to the CPU per step. */
  readBackBytes: number;
}

export async function benchSampling(gpu: GpuContext, options: SamplingBenchOptions): Promise<SamplingResult[]> {
  const { device } = gpu;
  const kc = new KernelContext(gpu);
  const results: SamplingResult[] = [];
  const record = (result: SamplingResult) => {
    results.push(result);
    options.onResult?.(result);
  };
  for (const vocab of options.vocabs) {
    // Spread like real logits (a few units wide), so top-p keeps a realistic share of the vocabulary.
    const logits = seededValues(vocab, 0x5a3e + vocab).map((v) => 6 * v);
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const logitsBuffer = device.createBuffer({ label: 'bench.logits', size: 4 * vocab, usage: storage });
    device.queue.writeBuffer(logitsBuffer, 0, logits);
    const token = device.createBuffer({ label: 'bench.token', size: 16, usage: storage });
    const counts = device.createBuffer({ label: 'bench.counts', size: 4 * vocab, usage: storage });
    const step = createParamsBuffer(device, 'bench.step', stepLayout, { pos: 7, seed: 1, temperature: options.temperature });
    const filters = createParamsBuffer(device, 'bench.filters', filtersLayout, { ...options.filters, ...noPenalties, penalize: 0, masked: 0 });
    const allowed = device.createBuffer({ label: 'bench.allowed', size: 4 * Math.ceil(vocab / 32), usage: storage });
    const keys = device.createBuffer({ label: 'bench.sortedKeys', size: 4 * sortedLength(vocab), usage: GPUBufferUsage.STORAGE });
    const ids = device.createBuffer({ label: 'bench.sortedIds', size: 4 * sortedLength(vocab), usage: GPUBufferUsage.STORAGE });
    const staging = device.createBuffer({ label: 'bench.logits.readback', size: 4 * vocab, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      const buffers = { logits: logitsBuffer, token, step };
      const timingOptions = { repetitions: options.repetitions, warmup: options.warmup };
      const plain = await timeDispatches(gpu, [await createTemperatureSample(kc, 'bench.sampleTemperature', buffers, vocab)], timingOptions);
      record({ vocab, variant: 'gpu-temperature', ms: plain.meanMs, sdMs: plain.sdMs, method: plain.method, readBackBytes: 4 });
      const filtered = await timeDispatches(gpu, [await createFilteredSample(kc, 'bench.sampleFiltered', { ...buffers, filters, counts, allowed }, vocab)], timingOptions);
      record({ vocab, variant: 'gpu', ms: filtered.meanMs, sdMs: filtered.sdMs, method: filtered.method, readBackBytes: 4 });
      // Every pass of the sort and the pick, timed together as one sampling step.
      const sorted = await timeDispatches(gpu, await createSortedSample(kc, 'bench.sampleSorted', { ...buffers, filters, counts, allowed, keys, ids }, vocab), timingOptions);
      record({ vocab, variant: 'gpu-sort', ms: sorted.meanMs, sdMs: sorted.sdMs, method: sorted.method, readBackBytes: 4 });

      // CPU: copy the logits out, map them, sample (wall time of the whole round trip).
      const samples: number[] = [];
      for (let r = 0; r < options.warmup + options.repetitions; r++) {
        const started = performance.now();
        const encoder = device.createCommandEncoder();
        encoder.copyBufferToBuffer(logitsBuffer, 0, staging, 0, 4 * vocab);
        device.queue.submit([encoder.finish()]);
        await staging.mapAsync(GPUMapMode.READ);
        const read = new Float32Array(staging.getMappedRange().slice(0));
        staging.unmap();
        sampleFiltered(read, options.temperature, options.filters, uniform(1, r));
        if (r >= options.warmup) samples.push(performance.now() - started);
      }
      const cpu = meanSd(samples);
      record({ vocab, variant: 'cpu', ms: cpu.mean, sdMs: cpu.sd, method: 'wall', readBackBytes: 4 * vocab });
    } finally {
      for (const buffer of [logitsBuffer, token, counts, allowed, step, filters, keys, ids, staging]) buffer.destroy();
    }
  }
  return results;
}
