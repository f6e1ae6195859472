// Shared GPU plumbing for kernel tests: one device per test file, upload/download helpers,
// seeded random data and error measures.
import { requestGpu, type GpuContext } from '../../src/engine/gpu/device.ts';
import { encodeDispatches, KernelContext, type Dispatch } from '../../src/engine/gpu/kernel.ts';
import { nodeGpu } from '../../src/node/gpu.ts';

let context: Promise<GpuContext> | undefined;

/** The test process's GPU (SwiftShader on machines without one). A missing adapter fails the test. */
export function testGpu(): Promise<GpuContext> {
  context ??= requestGpu(nodeGpu());
  return context;
}

export async function testKernels(maxWorkgroupsPerDimension?: number): Promise<KernelContext> {
  return new KernelContext(await testGpu(), { maxWorkgroupsPerDimension });
}

const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export function upload(device: GPUDevice, data: Float32Array | Uint32Array): GPUBuffer {
  const buffer = device.createBuffer({ size: Math.max(16, data.byteLength), usage });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** A uniform buffer holding `data` (e.g. packed Step params). */
export function uploadUniform(device: GPUDevice, data: ArrayBuffer): GPUBuffer {
  const buffer = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

export { readBuffer as download, readBufferF32 as downloadF32 } from '../../src/engine/gpu/readback.ts';

/** Runs dispatches in one pass and waits for the queue. */
export async function run(device: GPUDevice, ...dispatches: Dispatch[]): Promise<void> {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  encodeDispatches(pass, dispatches);
  pass.end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
}

/** Deterministic uniform floats in [-scale, scale) (mulberry32). */
export function seededRandom(seed: number): (n: number, scale?: number) => Float32Array {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n, scale = 1) => Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}

/** Normalized mean squared error: Σ(a-b)² / Σb² (0 for identical arrays). */
export function nmse(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let err = 0;
  let ref = 0;
  for (let i = 0; i < expected.length; i++) {
    err += (actual[i] - expected[i]) ** 2;
    ref += expected[i] ** 2;
  }
  return ref === 0 ? err : err / ref;
}

export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}
