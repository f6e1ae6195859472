// A dispatch is everything needed to run one kernel launch: pipeline, bind group, grid and its
// cost model. Dispatches are built once when a model is loaded; a decode step only re-encodes them.
import type { GpuContext } from './device.ts';
import { withErrorScope } from './device.ts';
import { createParamsBuffer, type ParamLayout, type ParamValues } from './params.ts';
import { compileShader, shaderSources, type ShaderFamily } from './shaders.ts';
import { preprocessWgsl, type WgslDefines } from './wgsl.ts';

/** The cost model of one launch: what it must move and compute at minimum. */
export interface Cost {
  bytesRead: number;
  bytesWritten: number;
  flops: number;
}

export interface Dispatch {
  label: string;
  family: ShaderFamily;
  entryPoint: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: readonly [number, number, number];
  cost: Cost;
}

export interface DispatchSpec<L extends ParamLayout> {
  label: string;
  family: ShaderFamily;
  entryPoint?: string;
  /** Values for the WGSL `override` constants. */
  constants?: Record<string, number>;
  /** Preprocessor flags for families with `#if` blocks (see wgsl.ts). */
  defines?: WgslDefines;
  params: { layout: L; values: ParamValues<L> };
  /** Buffers for bindings 1, 2, ... (binding 0 is always the params uniform). */
  buffers: GPUBuffer[];
  workgroups: readonly [number, number, number];
  cost: Cost;
}

export interface KernelContextOptions {
  /** The grid's per-dimension limit; tests lower it to exercise the y-overflow path on small shapes. */
  maxWorkgroupsPerDimension?: number;
  /** WGSL to compile instead of shaders/<family>.wgsl (the lab's kernel editor, after its checks pass). */
  sources?: Partial<Record<ShaderFamily, string>>;
}

/** Compiles each (family, defines, entry point, constants) once and builds dispatches from specs. */
export class KernelContext {
  private readonly modules = new Map<string, Promise<GPUShaderModule>>();
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();

  readonly maxWorkgroupsPerDimension: number;
  /** The source compiled for each family: an override from the options, else the shipped file. */
  readonly sources: Readonly<Record<ShaderFamily, string>>;

  constructor(
    readonly gpu: GpuContext,
    options: KernelContextOptions = {},
  ) {
    this.maxWorkgroupsPerDimension = options.maxWorkgroupsPerDimension ?? gpu.device.limits.maxComputeWorkgroupsPerDimension;
    this.sources = { ...shaderSources, ...options.sources };
  }

  get device(): GPUDevice {
    return this.gpu.device;
  }

  pipeline(family: ShaderFamily, entryPoint = 'main', constants: Record<string, number> = {}, defines: WgslDefines = {}): Promise<GPUComputePipeline> {
    const key = `${family}:${entryPoint}:${JSON.stringify(constants)}:${JSON.stringify(defines)}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      pipeline = this.module(family, defines).then((module) =>
        this.device.createComputePipelineAsync({ label: key, layout: 'auto', compute: { module, entryPoint, constants } }),
      );
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  private module(family: ShaderFamily, defines: WgslDefines): Promise<GPUShaderModule> {
    const key = `${family}:${JSON.stringify(defines)}`;
    let module = this.modules.get(key);
    if (!module) {
      module = (async () => compileShader(this.device, family, preprocessWgsl(this.sources[family], defines, family)))();
      this.modules.set(key, module);
    }
    return module;
  }

  async dispatch<L extends ParamLayout>(spec: DispatchSpec<L>): Promise<Dispatch> {
    const entryPoint = spec.entryPoint ?? 'main';
    const pipeline = await this.pipeline(spec.family, entryPoint, spec.constants, spec.defines);
    const bindGroup = await withErrorScope(this.device, `binding ${spec.label}`, () => {
      const params = createParamsBuffer(this.device, `${spec.label}.params`, spec.params.layout, spec.params.values);
      return this.device.createBindGroup({
        label: spec.label,
        layout: pipeline.getBindGroupLayout(0),
        entries: [params, ...spec.buffers].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
    });
    return { label: spec.label, family: spec.family, entryPoint, pipeline, bindGroup, workgroups: spec.workgroups, cost: spec.cost };
  }
}

/** A grid of `groups` workgroups that respects the per-dimension limit (overflow goes to y). */
export function grid(groups: number, maxPerDimension = 65535): readonly [number, number, number] {
  if (groups <= maxPerDimension) return [Math.max(1, groups), 1, 1];
  return [maxPerDimension, Math.ceil(groups / maxPerDimension), 1];
}

export function encodeDispatches(pass: GPUComputePassEncoder, dispatches: readonly Dispatch[]): void {
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
  }
}
