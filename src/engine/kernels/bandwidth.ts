// The roofline probe: the read and copy bandwidth this adapter sustains, the ceiling a
// memory-bound kernel is measured against. See shaders/bandwidth.wgsl.
import type { AdapterReport } from '../engine.ts';
import { withErrorScope } from '../gpu/device.ts';
import type { Cost, Dispatch, KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';
import { timeDispatches, type TimingMethod } from '../gpu/timing.ts';

export const bandwidthParams = [['words', 'u32']] as const satisfies ParamLayout;

export type BandwidthKernel = 'read' | 'copy';

const workgroupSize = 256;
const wordBytes = 16; // one vec4<u32>
// Each thread loops over at least this many words, so per-workgroup overhead stays small; the cap
// keeps enough threads in flight to saturate a large GPU without a grid beyond one dimension.
const minWordsPerThread = 16;
const maxWorkgroups = 4096;
const MiB = 1024 * 1024;

function workgroupsFor(bytes: number): number {
  const words = bytes / wordBytes;
  return Math.min(maxWorkgroups, Math.max(1, Math.ceil(words / (workgroupSize * minWordsPerThread))));
}

/** read: every byte once; copy: every byte read and written. */
export function bandwidthCost(kernel: BandwidthKernel, bytes: number): Cost {
  return { bytesRead: bytes, bytesWritten: kernel === 'copy' ? bytes : 0, flops: 0 };
}

export interface BandwidthBuffers {
  src: GPUBuffer;
  /** read: a 16-byte sink; copy: as large as src. */
  dst: GPUBuffer;
}

/** `bytes` must be a multiple of 16. */
export function createBandwidth(kc: KernelContext, label: string, kernel: BandwidthKernel, b: BandwidthBuffers, bytes: number): Promise<Dispatch> {
  if (bytes <= 0 || bytes % wordBytes !== 0) throw new RangeError(`bandwidth probe size must be a positive multiple of ${wordBytes} bytes, got ${bytes}`);
  return kc.dispatch({
    label,
    family: 'bandwidth',
    entryPoint: `${kernel}Probe`,
    constants: { WORKGROUP_SIZE: workgroupSize },
    params: { layout: bandwidthParams, values: { words: bytes / wordBytes } },
    buffers: [b.src, b.dst],
    workgroups: [workgroupsFor(bytes), 1, 1],
    cost: bandwidthCost(kernel, bytes),
  });
}

/**
 * Probe size: 256 MiB (far beyond any GPU cache) capped by the binding limits; 8 MiB on software
 * adapters, where the CPU would take seconds per pass and "bandwidth" means the host's anyway.
 */
export function defaultProbeBytes(adapter: AdapterReport): number {
  const wanted = adapter.isFallbackAdapter ? 8 * MiB : 256 * MiB;
  const limit = Math.min(adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxBufferSize);
  return Math.floor(Math.min(wanted, limit) / wordBytes) * wordBytes;
}

export interface BandwidthResult {
  /** Bytes read per second / 1e9. */
  readGBps: number;
  /** Bytes read plus bytes written per second / 1e9 (STREAM counts a copy the same way). */
  copyGBps: number;
  /** Size of the probed buffer. */
  bytes: number;
  method: TimingMethod;
}

export async function measureBandwidth(kc: KernelContext, options: { bytes?: number; repetitions?: number } = {}): Promise<BandwidthResult> {
  const bytes = options.bytes ?? defaultProbeBytes(kc.gpu.adapter);
  const device = kc.device;
  const storage = GPUBufferUsage.STORAGE;
  const [src, copyDst, readDst] = await withErrorScope(device, `allocating the ${bytes}-byte bandwidth probe`, () => [
    // A non-zero pattern: some GPUs compress or short-circuit all-zero memory.
    filledBuffer(device, bytes),
    device.createBuffer({ label: 'bandwidth.copyDst', size: bytes, usage: storage }),
    device.createBuffer({ label: 'bandwidth.readSink', size: wordBytes, usage: storage }),
  ]);
  try {
    const read = await createBandwidth(kc, 'bandwidth.read', 'read', { src, dst: readDst }, bytes);
    const copy = await createBandwidth(kc, 'bandwidth.copy', 'copy', { src, dst: copyDst }, bytes);
    const timing = { repetitions: options.repetitions ?? 10, warmup: 2 };
    const readTime = await timeDispatches(kc.gpu, [read], timing);
    const copyTime = await timeDispatches(kc.gpu, [copy], timing);
    const gbps = ({ bytesRead, bytesWritten }: Cost, ms: number) => (bytesRead + bytesWritten) / (ms * 1e6);
    return {
      readGBps: gbps(read.cost, readTime.meanMs),
      copyGBps: gbps(copy.cost, copyTime.meanMs),
      bytes,
      method: readTime.method,
    };
  } finally {
    for (const buffer of [src, copyDst, readDst]) buffer.destroy();
  }
}

function filledBuffer(device: GPUDevice, bytes: number): GPUBuffer {
  const buffer = device.createBuffer({ label: 'bandwidth.src', size: bytes, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
  const words = new Uint32Array(buffer.getMappedRange());
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 0x9e3779b1) >>> 0;
  buffer.unmap();
  return buffer;
}
