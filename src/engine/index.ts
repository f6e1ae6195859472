// The engine's public entry point: load a model and its tokenizer, put it on the GPU, generate, and
// measure itself for the lab (roofline probe, per-kernel profile, kernel workbench, live switches).
// Framework-free: runs in a browser Web Worker and in Node (WebGPU from the `webgpu` package).
import type { AdapterReport, BatchGenerateRequest, BatchGenerateResult, Engine, GenerateRequest, GenerateResult, ModelInfo, TokenEvent } from './engine.ts';
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
import { blockSizes, pageBytes, pageLayout } from './kv/page-pool.ts';
import { BatchModel } from './runtime/batch-model.ts';
import { generateBatch, generatePaged, type BatchEvents } from './runtime/batch-generate.ts';
import { GpuModel } from './runtime/gpu-model.ts';
import { generate } from './runtime/generate.ts';
import { ModelDraft, NgramDraft, type Draft } from './runtime/drafts.ts';
import { generateSpeculative } from './runtime/speculative.ts';
import { profileStep } from './runtime/profile.ts';
import type { BandwidthReport, EngineSettings, SamplerKind, SettingChoices, SpeculativeKind, ShaderEditReport, StepProfile, WorkbenchReport, WorkbenchRequest } from './telemetry.ts';
import { loadTokenizer, type TokenizerFile } from './tokenizer/load.ts';
import type { ChatTemplate } from './tokenizer/chat-template.ts';
import type { Tokenizer } from './tokenizer/types.ts';
import { checkShaderEdit, runWorkbench } from './workbench.ts';

export type { Engine, GenerateRequest, GenerateResult, TokenEvent, AdapterReport, ModelInfo, BatchGenerateRequest, BatchGenerateResult } from './engine.ts';

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
  /** 'gpu' (default), 'gpu-sort' or 'cpu' sampling. */
  sampler?: SamplerKind;
  /** The paged-KV switches (defaults: contiguous, 16-token pages, prefix cache on, fused attention). */
  kvCache?: EngineSettings['kvCache'];
  pageSize?: number;
  prefixCache?: boolean;
  attention?: EngineSettings['attention'];
  /** Speculative decoding (default off) and the tokens a draft proposes per pass (default 4). */
  speculative?: SpeculativeKind;
  draftTokens?: number;
  /** A smaller model sharing the tokenizer, loaded as the 'draft-model' speculative draft. */
  draftModel?: { files: FileSource; entry: string };
  /** Where matvec tuning results persist between sessions. */
  tuningStore?: TuningStore;
}

/** What each switch may be set to on this adapter (matvec variants for the given weight format). */
export function settingChoices(adapter: AdapterReport, format: WeightFormat, hasDraftModel = false): SettingChoices {
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
    sampler: { available: ['gpu', 'gpu-sort', 'cpu'], unavailable: [] },
    kvCache: { available: ['contiguous', 'paged'], unavailable: [] },
    pageSize: { available: [...blockSizes], unavailable: [] },
    prefixCache: { available: [true, false], unavailable: [] },
    attention: { available: ['fused', 'splitK', 'unfused'], unavailable: [] },
    speculative: {
      available: ['off', 'draft-q4', 'ngram', ...(hasDraftModel ? (['draft-model'] as const) : [])],
      unavailable: hasDraftModel ? [] : [{ value: 'draft-model', reason: 'needs a draft model given at load' }],
    },
    draftTokens: { available: draftTokenChoices, unavailable: [] },
  };
}

function checkSettings(adapter: AdapterReport, settings: EngineSettings, hasDraftModel: boolean): void {
  const choices = settingChoices(adapter, settings.weightFormat as WeightFormat, hasDraftModel);
  for (const key of ['weightFormat', 'matvecVariant', 'sampler', 'kvCache', 'pageSize', 'prefixCache', 'attention', 'speculative', 'draftTokens'] as const) {
    const value = settings[key];
    if ((choices[key].available as unknown[]).includes(value)) continue;
    const unavailable = choices[key].unavailable.find((u) => u.value === String(value));
    throw new RequestError(unavailable ? `${key} ${value} cannot run on this adapter: it ${unavailable.reason}` : `unknown ${key} '${String(value)}'`);
  }
  if (settings.speculative !== 'off' && settings.kvCache !== 'paged') {
    throw new RequestError('speculative decoding checks the draft on the batched model, over the paged KV cache: switch the KV cache to paged first');
  }
  if (settings.kvCache === 'paged' && settings.sampler !== 'gpu') {
    throw new RequestError(`the paged KV cache samples with the batched model's own GPU sampler (one token per sequence per step), not sampler ${settings.sampler}: switch the sampler to gpu first, or the KV cache back to contiguous`);
  }
}

const draftTokenChoices = [1, 2, 3, 4, 5, 6, 7, 8];

/** Default switches, with the caller's choices over them. */
function initialSettings(options: EngineOptions): EngineSettings {
  return {
    weightFormat: options.weightFormat ?? 'f32',
    matvecVariant: options.matvecVariant ?? 'auto',
    sampler: options.sampler ?? 'gpu',
    // Speculative decoding runs on the paged cache.
    kvCache: options.kvCache ?? (options.speculative && options.speculative !== 'off' ? 'paged' : 'contiguous'),
    pageSize: options.pageSize ?? 16,
    prefixCache: options.prefixCache ?? true,
    attention: options.attention ?? 'fused',
    speculative: options.speculative ?? 'off',
    draftTokens: options.draftTokens ?? 4,
  };
}

/** The most memory the batched model's KV pool takes (it holds 32 whole contexts when they fit). */
const kvPoolBudgetBytes = 256 * 1024 * 1024;

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
  /** The batched model over the single-sequence model's weights, built on first use for a page size. */
  private batchModel: BatchModel | null = null;
  /** Speculative decoding's draft models ('draft-q4', 'draft-model'), built on first use. */
  private readonly draftModels = new Map<string, { name: string; model: GpuModel }>();
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
      choices: settingChoices(this.adapter, m.weightFormat, this.options.draftModel !== undefined),
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
    return this.exclusive('generating again', async () => {
      if (this.settings.speculative !== 'off') {
        const model = await this.batched(this.settings.pageSize, this.settings.attention);
        const draft = await this.draft(this.settings.speculative);
        return generateSpeculative(model, draft, this.batchContext(), request, { draftTokens: this.settings.draftTokens }, onToken, signal);
      }
      if (this.settings.kvCache === 'contiguous') {
        return generate(this.gpuModel, this.tokenizer, request, onToken, signal, { sampler: this.settings.sampler, chatTemplate: this.chatTemplate });
      }
      const model = await this.batched(this.settings.pageSize, this.settings.attention);
      return generatePaged(model, this.batchContext(), request, { prefixCache: this.settings.prefixCache }, onToken, signal);
    });
  }

  generateBatch(request: BatchGenerateRequest, onEvent?: BatchEvents, signal?: AbortSignal): Promise<BatchGenerateResult> {
    return this.exclusive('running a batch', async () => {
      const attention = request.attention ?? this.settings.attention;
      if (!['fused', 'splitK', 'unfused'].includes(attention)) throw new RequestError(`attention must be fused, splitK or unfused, got '${String(attention)}'`);
      const model = await this.batched(request.pageSize ?? this.settings.pageSize, attention);
      return generateBatch(model, this.batchContext(), { ...request, prefixCache: request.prefixCache ?? this.settings.prefixCache }, onEvent, signal);
    });
  }

  /** The draft of a speculative kind; draft models are built on first use and kept until disposal. */
  private async draft(kind: Exclude<SpeculativeKind, 'off'>): Promise<Draft> {
    if (kind === 'ngram') return new NgramDraft();
    let built = this.draftModels.get(kind);
    if (!built) {
      const description = kind === 'draft-q4' ? this.description : await this.loadDraftDescription();
      const model = await GpuModel.create(this.gpu, description, { maxContext: this.gpuModel.contextLength, weightFormat: kind === 'draft-q4' ? 'q4_0' : 'f32', tuningStore: this.options.tuningStore });
      built = { name: kind === 'draft-q4' ? 'draft-q4' : description.source, model };
      this.draftModels.set(kind, built);
    }
    return new ModelDraft(built.name, built.model);
  }

  /** The draft model given at creation: it must speak the target's vocabulary. */
  private async loadDraftDescription(): Promise<ModelDescription> {
    const given = this.options.draftModel;
    if (!given) throw new RequestError('speculative draft-model needs a draft model given when the engine was created (generate --speculative PATH)');
    const { model } = await loadModel(given.files, given.entry);
    const target = this.description.config;
    if (model.config.vocabSize !== target.vocabSize || model.config.bosTokenId !== target.bosTokenId || model.config.eosTokenId !== target.eosTokenId) {
      throw new RequestError(`the draft model ${model.source} does not share the target's tokenizer (vocabulary ${model.config.vocabSize} vs ${target.vocabSize}, BOS/EOS ${model.config.bosTokenId}/${model.config.eosTokenId} vs ${target.bosTokenId}/${target.eosTokenId})`);
    }
    return model;
  }

  private batchContext() {
    return { tokenizer: this.tokenizer, chatTemplate: this.chatTemplate };
  }

  /** The batched model for `pageSize` with `attention` selected, built over the current weights when needed. */
  private async batched(pageSize: number, attention: EngineSettings['attention']): Promise<BatchModel> {
    if (!(blockSizes as readonly number[]).includes(pageSize)) throw new RequestError(`pageSize must be one of ${blockSizes.join(', ')}, got ${pageSize}`);
    if (this.batchModel?.layout.blockSize !== pageSize) {
      this.dropBatchModel();
      const c = this.description.config;
      const contextLength = this.gpuModel.contextLength;
      const maxSequences = 32;
      const limits = this.gpu.device.limits;
      const budget = Math.min(kvPoolBudgetBytes, limits.maxStorageBufferBindingSize, limits.maxBufferSize);
      const wanted = maxSequences * Math.ceil(contextLength / pageSize);
      const pageCount = Math.max(1, Math.min(wanted, Math.floor(budget / pageBytes(pageLayout(c, pageSize)))));
      this.batchModel = await BatchModel.create(this.gpu, this.description, {
        weightFormat: this.gpuModel.weightFormat,
        weights: this.gpuModel.weights,
        blockSize: pageSize,
        contextLength,
        pageCount,
        maxSequences,
      });
    }
    this.batchModel.attention = attention;
    return this.batchModel;
  }

  private dropBatchModel(): void {
    this.batchModel?.destroy();
    this.batchModel = null;
  }

  reconfigure(changes: Partial<EngineSettings>): Promise<ModelInfo> {
    return this.exclusive('changing settings', async () => {
      const next: EngineSettings = { ...this.settings, ...changes };
      // Speculative decoding verifies on the batched model: turning it on takes the paged cache with
      // it, and going back to the contiguous cache turns it off.
      if (changes.speculative && changes.speculative !== 'off' && !changes.kvCache) next.kvCache = 'paged';
      if (changes.kvCache === 'contiguous' && !changes.speculative) next.speculative = 'off';
      // The CPU and sort samplers run on the single-sequence model: going paged takes the batched GPU sampler with it.
      if (next.kvCache === 'paged' && this.settings.kvCache !== 'paged' && !changes.sampler && next.sampler !== 'gpu') next.sampler = 'gpu';
      // A variant forced for one format may not exist for the next: fall back to tuning.
      if (changes.weightFormat && !changes.matvecVariant && next.matvecVariant !== 'auto') {
        const variants = supportedVariants(this.adapter, next.weightFormat as WeightFormat).map((v) => v.name as string);
        if (!variants.includes(next.matvecVariant)) next.matvecVariant = 'auto';
      }
      checkSettings(this.adapter, next, this.options.draftModel !== undefined);
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
    // The batched model borrows the weights being dropped.
    this.dropBatchModel();
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
    this.dropBatchModel();
    for (const { model } of this.draftModels.values()) model.destroy();
    this.draftModels.clear();
    this.gpuModel.destroy();
    this.gpu.device.destroy();
  }
}

export async function createEngine(options: EngineOptions): Promise<Engine> {
  const progress = options.onProgress ?? (() => {});
  progress('requesting the GPU');
  const gpu = await requestGpu(options.gpu);
  try {
    const settings = initialSettings(options);
    checkSettings(gpu.adapter, settings, options.draftModel !== undefined);
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
