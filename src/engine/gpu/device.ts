// The only module that talks to the adapter. It requests a device with the features and limits the
// engine can use, builds the frozen capability report, and routes device loss and uncaptured
// errors to one place.
import type { AdapterReport } from '../engine.ts';
import { DeviceLostError, GpuOperationError, GpuUnavailableError } from '../errors.ts';

export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: AdapterReport;
  /** Resolves when the device is lost (for any reason other than our own destroy()). */
  readonly lost: Promise<DeviceLostError>;
  /** True once the device is lost: every later GPU call must fail fast with DeviceLostError. */
  isLost(): boolean;
  /** Errors WebGPU raised outside any error scope, oldest first (drained by takeUncapturedErrors). */
  takeUncapturedErrors(): string[];
}

const optionalFeatures: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

// Limits worth raising to the adapter's maximum: big weight matrices need large bindings.
const raisedLimits = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
] as const;

export async function requestGpu(gpu: GPU | undefined): Promise<GpuContext> {
  if (!gpu) throw new GpuUnavailableError('WebGPU is not available here (navigator.gpu is missing): use a browser with WebGPU enabled');
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuUnavailableError('WebGPU is present but no GPU adapter was found');

  const requiredFeatures = optionalFeatures.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of raisedLimits) requiredLimits[name] = adapter.limits[name];

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ label: 'inference-lab', requiredFeatures, requiredLimits });
  } catch (error) {
    throw new GpuUnavailableError(`the adapter refused a device: ${(error as Error).message}`);
  }

  const report = buildReport(adapter, device);
  let lostFlag = false;
  const lost = device.lost.then((info) => {
    lostFlag = true;
    return new DeviceLostError(`the GPU device was lost (${info.reason}): ${info.message || 'no details'}`);
  });
  const uncaptured: string[] = [];
  device.addEventListener('uncapturederror', (event) => {
    uncaptured.push((event as GPUUncapturedErrorEvent).error.message);
  });

  return Object.freeze({
    device,
    adapter: report,
    lost,
    isLost: () => lostFlag,
    takeUncapturedErrors: () => uncaptured.splice(0),
  });
}

function buildReport(adapter: GPUAdapter, device: GPUDevice): AdapterReport {
  const info = adapter.info;
  const subgroups = device.features.has('subgroups');
  const infoWithSubgroups = info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const limits = device.limits;
  return Object.freeze({
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: Boolean((info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe/i.test(`${info.description} ${info.architecture} ${info.device}`),
    features: {
      shaderF16: device.features.has('shader-f16'),
      subgroups,
      timestampQuery: device.features.has('timestamp-query'),
    },
    subgroupMinSize: subgroups ? (infoWithSubgroups.subgroupMinSize ?? null) : null,
    subgroupMaxSize: subgroups ? (infoWithSubgroups.subgroupMaxSize ?? null) : null,
    limits: {
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  });
}

/**
 * Runs `create` inside validation and out-of-memory error scopes and turns a captured error into a
 * GpuOperationError that says what was being done (e.g. "allocating weights for layers.3.wq").
 */
export async function withErrorScope<T>(device: GPUDevice, what: string, create: () => T): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T | undefined;
  let thrown: unknown;
  try {
    result = create();
  } catch (error) {
    thrown = error;
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (thrown !== undefined) throw thrown;
  if (oom) throw new GpuOperationError(`${what}: out of GPU memory: ${oom.message}`);
  if (validation) throw new GpuOperationError(`${what}: WebGPU validation error: ${validation.message}`);
  return result as T;
}
