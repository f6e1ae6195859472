// The engine's public entry point: load a model and its tokenizer, put it on the GPU, generate.
// Framework-free: runs in a browser Web Worker and in Node (WebGPU from the `webgpu` package).
import type { AdapterReport, Engine, GenerateRequest, GenerateResult, ModelInfo, TokenEvent } from './engine.ts';
import { DeviceLostError } from './errors.ts';
import { requestGpu, type GpuContext } from './gpu/device.ts';
import type { FileSource } from './model/files.ts';
import { loadModel } from './model/load.ts';
import { GpuModel, type GpuModelOptions } from './runtime/gpu-model.ts';
import { generate } from './runtime/generate.ts';
import { loadTokenizer, type TokenizerFile } from './tokenizer/load.ts';
import type { Tokenizer } from './tokenizer/types.ts';

export type { Engine, GenerateRequest, GenerateResult, TokenEvent, AdapterReport, ModelInfo } from './engine.ts';

export interface EngineOptions extends GpuModelOptions {
  /** navigator.gpu in a browser; nodeGpu() in Node. */
  gpu: GPU | undefined;
  files: FileSource;
  /** The model: 'dir/model.bin', 'dir/model.gguf', or a Hugging Face folder ('' or 'dir'). */
  entry: string;
  /** A tokenizer file to use instead of the one found next to the model. */
  tokenizer?: TokenizerFile;
  /** Load progress for the UI ("reading stories260K.bin", "compiling kernels", ...). */
  onProgress?: (message: string) => void;
}

class LocalEngine implements Engine {
  private busy = false;

  constructor(
    private readonly gpu: GpuContext,
    private readonly gpuModel: GpuModel,
    private readonly tokenizer: Tokenizer,
    readonly model: ModelInfo,
  ) {}

  get adapter(): AdapterReport {
    return this.gpu.adapter;
  }

  async generate(request: GenerateRequest, onToken?: (event: TokenEvent) => void, signal?: AbortSignal): Promise<GenerateResult> {
    if (this.gpu.isLost()) throw await this.gpu.lost;
    // One sequence at a time owns the KV cache (batching arrives with the paged cache).
    if (this.busy) throw new Error('the engine is already generating; cancel it or wait for it to finish');
    this.busy = true;
    try {
      return await generate(this.gpuModel, this.tokenizer, request, onToken, signal);
    } finally {
      this.busy = false;
    }
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
    progress(`reading ${options.files.describe(options.entry)}`);
    const { model, vocabulary } = await loadModel(options.files, options.entry);
    const { tokenizer, name } = await loadTokenizer(options.files, options.entry, model, vocabulary, options.tokenizer);
    progress('uploading weights and compiling kernels');
    const gpuModel = await GpuModel.create(gpu, model, options);
    if (gpu.isLost()) throw await gpu.lost;
    return new LocalEngine(gpu, gpuModel, tokenizer, {
      source: model.source,
      config: model.config,
      tokenizer: name,
      weightBytes: gpuModel.weightBytes,
      weightFormat: gpuModel.weightFormat,
      matvecVariant: gpuModel.matvecVariant,
    });
  } catch (error) {
    const lost = gpu.isLost();
    gpu.device.destroy();
    if (lost && !(error instanceof DeviceLostError)) throw await gpu.lost;
    throw error;
  }
}
