// The registry of matvec variants: what each needs from the adapter, which ones this adapter can
// run, how to force one, and which is fastest here. The requirements below are the only list of
// what a variant or format needs; everything else asks `missingRequirements`.
import type { AdapterReport } from '../engine.ts';
import { RequestError } from '../errors.ts';
import type { Dispatch, KernelContext } from '../gpu/kernel.ts';
import { timeDispatches } from '../gpu/timing.ts';
import { packedByteLength, paddedColsOf, weightFormats, type PackedMatrix, type WeightFormat } from '../quant/formats.ts';
import { createMatvecDispatch, matvecWorkgroupSize, type MatvecBuffers, type MatvecShape, type MatvecVariantName } from './matvec.ts';

export { formatMatvecCost } from './matvec.ts';

export type GpuFeature = 'subgroups' | 'shader-f16';

export interface MatvecVariant {
  name: MatvecVariantName;
  formats: readonly WeightFormat[];
  requires: KernelRequirements;
  description: string;
}

const partialSumBytes = 4 * matvecWorkgroupSize;

export const matvecVariants: readonly MatvecVariant[] = [
  {
    name: 'naive',
    formats: weightFormats,
    requires: { features: [], invocations: matvecWorkgroupSize, workgroupStorageBytes: 0 },
    description: 'one thread per row, no barriers (best on CPU-emulated adapters)',
  },
  {
    name: 'splitK',
    formats: weightFormats,
    requires: { features: [], invocations: matvecWorkgroupSize, workgroupStorageBytes: partialSumBytes },
    description: 'one workgroup per row, threads split the row, tree reduction in workgroup memory',
  },
  {
    name: 'subgroup',
    formats: weightFormats,
    requires: { features: ['subgroups'], invocations: matvecWorkgroupSize, workgroupStorageBytes: partialSumBytes },
    description: 'one workgroup per row, subgroupAdd then one barrier to join the subgroups',
  },
  {
    name: 'multiRow',
    formats: weightFormats,
    requires: { features: [], invocations: matvecWorkgroupSize, workgroupStorageBytes: partialSumBytes },
    description: 'several rows per workgroup, threads split each row (vec4 f32 loads, whole u32 / vec4<u32> words for packed formats)',
  },
];

/** Features a weight format needs whatever the variant. */
export const formatFeatures: Readonly<Record<WeightFormat, readonly GpuFeature[]>> = {
  f32: [],
  f16: [],
  'f16-native': ['shader-f16'],
  q8_0: [],
  q4_0: [],
};

const hasFeature: Record<GpuFeature, (a: AdapterReport) => boolean> = {
  subgroups: (a) => a.features.subgroups,
  'shader-f16': (a) => a.features.shaderF16,
};

/** What the adapter lacks to run `variant` on `format`, in words; empty when it can. */
export function missingRequirements(adapter: AdapterReport, variant: MatvecVariant, format: WeightFormat): string[] {
  const missing = variant.formats.includes(format) ? [] : [`support for the ${format} format`];
  return [...missing, ...missingKernelRequirements(adapter, variant.requires, format)];
}

/** The features of a weight format that the adapter lacks, in words: why no kernel can run it. */
export function missingFormatFeatures(adapter: AdapterReport, format: WeightFormat): string[] {
  return missingFeatures(adapter, formatFeatures[format]);
}

function missingFeatures(adapter: AdapterReport, features: readonly GpuFeature[]): string[] {
  return features.filter((feature) => !hasFeature[feature](adapter)).map((feature) => `the '${feature}' feature`);
}

/** What a kernel needs from the adapter, whatever its family: features (its own and its weight format's) and limits. */
export interface KernelRequirements {
  features: readonly GpuFeature[];
  /** Threads per workgroup (maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupSizeX). */
  invocations: number;
  /** Bytes of workgroup memory (maxComputeWorkgroupStorageSize). */
  workgroupStorageBytes: number;
}

/** The requirements the adapter does not meet, in words ("the 'shader-f16' feature"). */
export function missingKernelRequirements(adapter: AdapterReport, requires: KernelRequirements, format: WeightFormat): string[] {
  const missing = missingFeatures(adapter, [...formatFeatures[format], ...requires.features]);
  const { limits } = adapter;
  const threads = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  if (requires.invocations > threads) missing.push(`${requires.invocations} threads per workgroup (limit ${threads})`);
  if (requires.workgroupStorageBytes > limits.maxComputeWorkgroupStorageSize) {
    missing.push(`${requires.workgroupStorageBytes} bytes of workgroup storage (limit ${limits.maxComputeWorkgroupStorageSize})`);
  }
  return missing;
}

export function supportedVariants(adapter: AdapterReport, format: WeightFormat): MatvecVariant[] {
  return matvecVariants.filter((v) => missingRequirements(adapter, v, format).length === 0);
}

export function supportedFormats(adapter: AdapterReport): WeightFormat[] {
  return weightFormats.filter((f) => supportedVariants(adapter, f).length > 0);
}

/** The matrix in a storage buffer of its own (padded to a whole number of 16-byte words). */
export function uploadMatrix(device: GPUDevice, m: PackedMatrix, label: string): GPUBuffer {
  const buffer = device.createBuffer({ label, size: Math.max(16, m.data.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, mappedAtCreation: true });
  new Uint32Array(buffer.getMappedRange()).set(m.data);
  buffer.unmap();
  return buffer;
}

/**
 * A matvec dispatch with the named variant, writing out[outOffset ..] (see createMatvecDispatch);
 * throws a RequestError naming what the adapter lacks.
 */
export async function createFormatMatvec(kc: KernelContext, label: string, b: MatvecBuffers, m: MatvecShape, variant: string, outOffset = 0): Promise<Dispatch> {
  const v = matvecVariants.find((candidate) => candidate.name === variant);
  if (!v) throw new RequestError(`unknown matvec variant "${variant}" (known: ${matvecVariants.map((c) => c.name).join(', ')})`);
  const missing = missingRequirements(kc.gpu.adapter, v, m.format);
  if (missing.length > 0) {
    const adapter = kc.gpu.adapter.description || kc.gpu.adapter.vendor || 'this adapter';
    throw new RequestError(`matvec variant "${v.name}" on ${m.format} weights needs ${missing.join(' and ')}, which ${adapter} lacks`);
  }
  return createMatvecDispatch(kc, label, b, m, v.name, outOffset);
}

/** Where tuning results persist between sessions (e.g. localStorage's getItem / setItem). */
export interface TuningStore {
  get(key: string): string | null | undefined;
  set(key: string, value: string): void;
}

export interface MatvecTuning {
  variant: string;
  /** Mean milliseconds per dispatch of each variant timed. */
  timings: Record<string, number>;
}

// Software adapters emulate every thread on a few CPU cores: a big shape would take seconds.
const fallbackTuningLimit = 256;
const tuningRepetitions = 5;
const tuned = new Map<string, Promise<MatvecTuning>>();

/**
 * Times each supported variant on this adapter at `shape` (clamped to 256 x 256 on software
 * adapters) and returns the fastest. Results are cached per adapter, format and shape in memory
 * and, given a store, across sessions; a stored variant the adapter no longer supports is re-timed.
 */
export function tuneMatvec(kc: KernelContext, format: WeightFormat, shape: { rows: number; cols: number }, store?: TuningStore): Promise<MatvecTuning> {
  const a = kc.gpu.adapter;
  const key = `matvec-tuning:v1:${[a.vendor, a.architecture, a.device, a.description].join('/')}:${format}:${shape.rows}x${shape.cols}`;
  let result = tuned.get(key);
  if (!result) {
    result = loadOrMeasure(kc, format, shape, key, store);
    tuned.set(key, result);
    result.catch(() => tuned.delete(key)); // a failed run (e.g. a lost device) may be retried
  }
  return result;
}

async function loadOrMeasure(kc: KernelContext, format: WeightFormat, shape: { rows: number; cols: number }, key: string, store?: TuningStore): Promise<MatvecTuning> {
  const candidates = supportedVariants(kc.gpu.adapter, format);
  if (candidates.length === 0) throw new RequestError(`this adapter runs no matvec variant for ${format} weights`);
  const stored = parseTuning(store?.get(key));
  if (stored && candidates.some((v) => v.name === stored.variant)) return stored;

  const limit = kc.gpu.adapter.isFallbackAdapter ? fallbackTuningLimit : Infinity;
  const rows = Math.min(shape.rows, limit);
  const cols = Math.min(shape.cols, limit);
  const timings = await timeVariants(kc, format, rows, cols, candidates);
  const variant = Object.entries(timings).reduce((best, entry) => (entry[1] < best[1] ? entry : best))[0];
  const tuning = { variant, timings };
  store?.set(key, JSON.stringify(tuning));
  return tuning;
}

function parseTuning(text: string | null | undefined): MatvecTuning | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as MatvecTuning;
    return typeof value.variant === 'string' && typeof value.timings === 'object' ? value : undefined;
  } catch {
    return undefined; // a corrupt entry is re-measured
  }
}

/** Times each variant on zero weights: GPU time does not depend on the values. */
async function timeVariants(kc: KernelContext, format: WeightFormat, rows: number, cols: number, variants: readonly MatvecVariant[]): Promise<Record<string, number>> {
  const { device } = kc;
  const storage = (label: string, bytes: number) => device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: GPUBufferUsage.STORAGE });
  const b = { weight: storage('tuning.weight', packedByteLength(format, rows, cols)), x: storage('tuning.x', 4 * cols), out: storage('tuning.out', 4 * rows) };
  const m: MatvecShape = { format, rows, cols, paddedCols: paddedColsOf(format, cols) };
  try {
    const timings: Record<string, number> = {};
    for (const v of variants) {
      const dispatch = await createMatvecDispatch(kc, `tuning.${v.name}`, b, m, v.name);
      timings[v.name] = (await timeDispatches(kc.gpu, [dispatch], { repetitions: tuningRepetitions, warmup: 1 })).meanMs;
    }
    return timings;
  } finally {
    for (const buffer of Object.values(b)) buffer.destroy();
  }
}
