// The engine's public entry point: load a model and its tokenizer, put it on the GPU, generate, and
// measure itself for the lab (roofline probe, per-kernel profile, kernel workbench, live switches).
// Framework-free: runs in a browser Web Worker and in Node (WebGPU from the `webgpu` package).
import type { AdapterReport, Engine, GenerateRequest, GenerateResult, ModelInfo, TokenEvent } from './engine.ts';
import { DeviceLostError, RequestError } from './errors.ts';
import { requestGpu, type GpuContext } from './gpu/device.ts';
import { KernelContext } from './gpu/kernel.ts';
import { shaderSources, type ShaderFamily } from './gpu/shaders.ts';
import { measureBandwidth } from './kernels/bandwidth.ts';
import { matvecVariants, missingFormatFeatures, missingRequirements, supportedFormats, supportedVariants, type TuningStore } from './kernels/matvec-variants.ts';
import type { MatvecVariantName } from './kernels/matvec.ts';
import type { FileSource } from './model/files.ts';
import { loadModel } from './model/load.ts';
import type { ModelDescription } from './model/types.ts';
import { weightFormats, type WeightFormat } from './quant/formats.ts';
import { GpuModel } from './runtime/gpu-model.ts';
import { generate } from './runtime/generate.ts';
import { profileStep } from './runtime/profile.ts';
import type { BandwidthReport, EngineSettings, SettingChoices, ShaderEditReport, StepProfile, WorkbenchReport, WorkbenchRequest } from './telemetry.ts';
import { loadTokenizer, type TokenizerFile } from './tokenizer/load.ts';
import type { ChatTemplate } from './tokenizer/chat-template.ts';
import type { Tokenizer } from './tokenizer/types.ts';
import { checkShaderEdit, runWorkbench } from './workbench.ts';

export type { Engine, GenerateRequest, GenerateResult, TokenEvent, AdapterReport, ModelInfo } from './engine.ts';

export interface EngineOptions {
  /** navigator.gpu in a browser; nodeGpu() in Node. */
  gpu: GPU | undefined;
  files: FileSource;
  /** The model: 'dir/model.bin', 'dir/model.gguf', or a Hugging Face folder ('' or 'dir'). */
  entry: string;
  /** A tokenizer file to use instead of the one found next to the model. */
  tokenizer?: TokenizerFile;
  /** Load progress for the UI ("reading stories260K.bin", "compiling kernels", ...). */
  onProgress?: (message: string) => void;
  /** Cap on the KV cache length (default 2048, never above the model's maxSeqLen). */
  maxContext?: number;
  /** Format of the projection and classifier weights (default f32). */
  weightFormat?: WeightFormat;
  /** Force a matvec variant instead of the one the on-device tuning run picks. */
  matvecVariant?: MatvecVariantName;
  /** 'gpu' (default) or 'cpu' sampling. */
  sampler?: 'gpu' | 'cpu';
  /** Where matvec tuning results persist between sessions. */
  tuningStore?: TuningStore;
}

/** What each switch may be set to on this adapter (matvec variants for the given weight format). */
export function settingChoices(adapter: AdapterReport, format: WeightFormat): SettingChoices {
  const formats = supportedFormats(adapter);
  return {
    weightFormat: {
      available: formats,
      unavailable: weightFormats
        .filter((f) => !formats.includes(f))
        .map((f) => ({ value: f, reason: `needs ${missingFormatFeatures(adapter, f).join(', ')}` })),
    },
    matvecVariant: {
      available: ['auto', ...supportedVariants(adapter, format).map((v) => v.name)],
      unavailable: matvecVariants
        .map((v) => ({ value: v.name, missing: missingRequirements(adapter, v, format) }))
        .filter((v) => v.missing.length > 0)
        .map((v) => ({ value: v.value, reason: `needs ${v.missing.join(', ')}` })),
    },
    sampler: { available: ['gpu', 'cpu'], unavailable: [] },
  };
}

function checkSettings(adapter: AdapterReport, settings: EngineSettings): void {
  const choices = settingChoices(adapter, settings.weightFormat as WeightFormat);
  for (const key of ['weightFormat', 'matvecVariant', 'sampler'] as const) {
    const value = settings[key];
    if ((choices[key].available as string[]).includes(value)) continue;
    const unavailable = choices[key].unavailable.find((u) => u.value === value);
    throw new RequestError(unavailable ? `${key} ${value} cannot run on this adapter: it ${unavailable.reason}` : `unknown ${key} '${value}'`);
  }
}

/** The file source, counting the bytes read (the load report's download/read figure). */
function countingSource(files: FileSource): { source: FileSource; bytes: () => number } {
  let bytes = 0;
  const source: FileSource = {
    read: async (path) => {
      const data = await files.read(path);
      bytes += data.byteLength;
      return data;
    },
    exists: (path) => files.exists(path),
    describe: (path) => files.describe(path),
  };
  return { source, bytes: () => bytes };
}

class LocalEngine implements Engine {
  private busy = false;
  private readonly shaderEdits: Partial<Record<ShaderFamily, string>> = {};

  constructor(
    private readonly gpu: GpuContext,
    private gpuModel: GpuModel,
    private settings: EngineSettings,
    private readonly description: ModelDescription,
    private readonly tokenizer: Tokenizer,
    private readonly tokenizerName: string,
    private readonly chatTemplate: ChatTemplate | null,
    private readonly bandwidth: BandwidthReport,
    private readonly files: { bytes: number; readMs: number },
    private readonly options: EngineOptions,
  ) {}

  get adapter(): AdapterReport {
    return this.gpu.adapter;
  }

  get model(): ModelInfo {
    const m = this.gpuModel;
    return {
      source: this.description.source,
      config: this.description.config,
      tokenizer: this.tokenizerName,
      chatTemplate: this.chatTemplate !== null,
      weightBytes: m.weightBytes,
      weightFormat: m.weightFormat,
      matvecVariant: m.matvecVariant,
      settings: { ...this.settings },
      choices: settingChoices(this.adapter, m.weightFormat),
      bandwidth: this.bandwidth,
      memory: m.memory,
      load: { fileBytes: this.files.bytes, readMs: this.files.readMs, ...m.loadTimes },
    };
  }

  /** Runs `task` with the engine to itself: one generation or reconfiguration at a time. */
  private async exclusive<T>(what: string, task: () => Promise<T>): Promise<T> {
    if (this.gpu.isLost()) throw await this.gpu.lost;
    if (this.busy) throw new RequestError(`the engine is busy; cancel the generation or wait for it to finish before ${what}`);
    this.busy = true;
    try {
      return await task();
    } finally {
      this.busy = false;
    }
  }

  generate(request: GenerateRequest, onToken?: (event: TokenEvent) => void, signal?: AbortSignal): Promise<GenerateResult> {
    return this.exclusive('generating again', () => generate(this.gpuModel, this.tokenizer, request, onToken, signal, { sampler: this.settings.sampler, chatTemplate: this.chatTemplate }));
  }

  reconfigure(changes: Partial<EngineSettings>): Promise<ModelInfo> {
    return this.exclusive('changing settings', async () => {
      const next: EngineSettings = { ...this.settings, ...changes };
      // A variant forced for one format may not exist for the next: fall back to tuning.
      if (changes.weightFormat && !changes.matvecVariant && next.matvecVariant !== 'auto') {
        const variants = supportedVariants(this.adapter, next.weightFormat as WeightFormat).map((v) => v.name as string);
        if (!variants.includes(next.matvecVariant)) next.matvecVariant = 'auto';
      }
      checkSettings(this.adapter, next);
      if (next.weightFormat !== this.settings.weightFormat || next.matvecVariant !== this.settings.matvecVariant) {
        // Build the new model before dropping the old one: if it fails (out of memory, a kernel
        // that does not compile), the engine keeps running as it was.
        await this.rebuild(next, this.shaderEdits);
      }
      this.settings = next;
      return this.model;
    });
  }

  private async rebuild(settings: EngineSettings, shaderSources: Partial<Record<ShaderFamily, string>>): Promise<void> {
    const model = await GpuModel.create(this.gpu, this.description, {
      maxContext: this.options.maxContext,
      weightFormat: settings.weightFormat as WeightFormat,
      matvecVariant: settings.matvecVariant === 'auto' ? undefined : (settings.matvecVariant as MatvecVariantName),
      tuningStore: this.options.tuningStore,
      shaderSources,
    });
    if (this.gpu.isLost()) {
      model.destroy();
      throw await this.gpu.lost;
    }
    this.gpuModel.destroy();
    this.gpuModel = model;
  }

  profileStep(options: { position?: number; repetitions?: number } = {}): Promise<StepProfile> {
    return this.exclusive('profiling', () => profileStep(this.gpuModel, options));
  }

  runWorkbench(request: WorkbenchRequest): Promise<WorkbenchReport> {
    return this.exclusive('running the workbench', () => {
      const kc = new KernelContext(this.gpu, { sources: this.shaderEdits });
      return runWorkbench(kc, this.bandwidth.readGBps, request);
    });
  }

  async shaderSource(family: string): Promise<string> {
    if (!(family in shaderSources)) throw new RequestError(`unknown kernel family '${family}' (known: ${Object.keys(shaderSources).join(', ')})`);
    return this.shaderEdits[family as ShaderFamily] ?? shaderSources[family as ShaderFamily];
  }

  editShader(family: string, source: string): Promise<ShaderEditReport> {
    return this.exclusive('editing a kernel', async () => {
      const report = await checkShaderEdit(this.gpu, family, source);
      if (!report.accepted) return report;
      const edits = { ...this.shaderEdits, [family]: source };
      try {
        await this.rebuild(this.settings, edits);
      } catch (error) {
        return { ...report, accepted: false, errors: [`the model could not be rebuilt with the edit, so it keeps the old kernel: ${error instanceof Error ? error.message : String(error)}`] };
      }
      Object.assign(this.shaderEdits, edits);
      return report;
    });
  }

  resetShader(family: string): Promise<void> {
    return this.exclusive('resetting a kernel', async () => {
      if (!(family in this.shaderEdits)) return;
      const edits = { ...this.shaderEdits };
      delete edits[family as ShaderFamily];
      await this.rebuild(this.settings, edits);
      delete this.shaderEdits[family as ShaderFamily];
    });
  }

  dispose(): void {
    this.gpuModel.destroy();
    this.gpu.device.destroy();
  }
}

export async function createEngine(options: EngineOptions): Promise<Engine> {
  const progress = options.onProgress ?? (() => {});
  progress('requesting the GPU');
  const gpu = await requestGpu(options.gpu);
  try {
    const settings: EngineSettings = { weightFormat: options.weightFormat ?? 'f32', matvecVariant: options.matvecVariant ?? 'auto', sampler: options.sampler ?? 'gpu' };
    checkSettings(gpu.adapter, settings);
    progress(`reading ${options.files.describe(options.entry)}`);
    const readStarted = performance.now();
    const counted = countingSource(options.files);
    const { model, vocabulary } = await loadModel(counted.source, options.entry);
    const { tokenizer, name, chatTemplate } = await loadTokenizer(counted.source, options.entry, model, vocabulary, options.tokenizer);
    const files = { bytes: counted.bytes(), readMs: performance.now() - readStarted };
    progress('measuring memory bandwidth (roofline probe)');
    const bandwidth = await measureBandwidth(new KernelContext(gpu));
    progress('uploading weights and compiling kernels');
    const gpuModel = await GpuModel.create(gpu, model, {
      maxContext: options.maxContext,
      weightFormat: settings.weightFormat as WeightFormat,
      matvecVariant: options.matvecVariant,
      tuningStore: options.tuningStore,
    });
    if (gpu.isLost()) throw await gpu.lost;
    return new LocalEngine(gpu, gpuModel, settings, model, tokenizer, name, chatTemplate, bandwidth, files, options);
  } catch (error) {
    const lost = gpu.isLost();
    gpu.device.destroy();
    if (lost && !(error instanceof DeviceLostError)) throw await gpu.lost;
    throw error;
  }
}
