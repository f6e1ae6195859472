// GPU timing on the CI adapter: both methods give positive, finite times that grow with the work,
// the timestamp method is chosen where the feature exists, and the roofline probe reports a
// plausible bandwidth.
import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../src/engine/gpu/device.ts';
import type { Dispatch } from '../src/engine/gpu/kernel.ts';
import { timeDispatches, type Timing } from '../src/engine/gpu/timing.ts';
import { createBandwidth, defaultProbeBytes, measureBandwidth } from '../src/engine/kernels/bandwidth.ts';
import { testKernels } from './helpers/gpu.ts';

const probeBytes = 4 * 1024 * 1024;

async function readKernel(): Promise<{ gpu: GpuContext; read: Dispatch }> {
  const kc = await testKernels();
  const usage = GPUBufferUsage.STORAGE;
  const src = kc.device.createBuffer({ size: probeBytes, usage });
  const dst = kc.device.createBuffer({ size: probeBytes, usage });
  return { gpu: kc.gpu, read: await createBandwidth(kc, 'read', 'read', { src, dst }, probeBytes) };
}

function expectSane(timing: Timing, repetitions: number): void {
  expect(Number.isFinite(timing.meanMs) && timing.meanMs > 0).toBe(true);
  expect(Number.isFinite(timing.sdMs) && timing.sdMs >= 0).toBe(true);
  expect(timing.samples).toBeGreaterThan(0);
  expect(timing.samples).toBeLessThanOrEqual(repetitions);
}

describe('timeDispatches', () => {
  it('uses timestamp queries where the device has them', async () => {
    const { gpu, read } = await readKernel();
    expect(gpu.adapter.features.timestampQuery).toBe(true); // SwiftShader exposes the feature
    const timing = await timeDispatches(gpu, [read], { repetitions: 8 });
    expect(timing.method).toBe('timestamp');
    expectSane(timing, 8);
  });

  it('falls back to wall time without the feature, and refuses timestamps there', async () => {
    const { gpu, read } = await readKernel();
    const withoutTimestamps: GpuContext = { ...gpu, adapter: { ...gpu.adapter, features: { ...gpu.adapter.features, timestampQuery: false } } };
    const timing = await timeDispatches(withoutTimestamps, [read], { repetitions: 5 });
    expect(timing.method).toBe('wall');
    expectSane(timing, 5);
    await expect(timeDispatches(withoutTimestamps, [read], { method: 'timestamp' })).rejects.toThrow(/timestamp-query/);
  });

  it.each(['timestamp', 'wall'] as const)('%s: four times the work takes longer', async (method) => {
    const { gpu, read } = await readKernel();
    const once = await timeDispatches(gpu, [read], { method, repetitions: 6 });
    const four = await timeDispatches(gpu, [read, read, read, read], { method, repetitions: 6 });
    expect(four.meanMs).toBeGreaterThan(1.5 * once.meanMs);
  });

  it('rejects nonsense options', async () => {
    const { gpu, read } = await readKernel();
    await expect(timeDispatches(gpu, [read], { repetitions: 0 })).rejects.toThrow(RangeError);
    await expect(timeDispatches(gpu, [read], { repetitions: 5000 })).rejects.toThrow(/at most 2048/);
  });
});

describe('measureBandwidth', () => {
  it('reports finite read and copy bandwidth with the timestamp method', async () => {
    const kc = await testKernels();
    expect(defaultProbeBytes(kc.gpu.adapter)).toBe(8 * 1024 * 1024); // a software adapter gets a few MiB
    const result = await measureBandwidth(kc, { bytes: probeBytes, repetitions: 4 });
    expect(result).toMatchObject({ bytes: probeBytes, method: 'timestamp' });
    for (const gbps of [result.readGBps, result.copyGBps]) {
      expect(Number.isFinite(gbps)).toBe(true);
      // Anything from a slow CPU to an HBM GPU; outside this range the arithmetic is wrong.
      expect(gbps).toBeGreaterThan(0.001);
      expect(gbps).toBeLessThan(20_000);
    }
  });
});
