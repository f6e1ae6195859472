// The model a server runs: read once, put on the GPU as a BatchModel (the batched forward over a
// paged KV pool) sized for the server's batch, with its tokenizer and chat template.
import { RequestError } from '../engine/errors.ts';
import { requestGpu, type GpuContext } from '../engine/gpu/device.ts';
import { supportedFormats } from '../engine/kernels/matvec-variants.ts';
import { pageBytes, pageLayout } from '../engine/kv/page-pool.ts';
import type { FileSource } from '../engine/model/files.ts';
import { loadModel } from '../engine/model/load.ts';
import type { WeightFormat } from '../engine/quant/formats.ts';
import { BatchModel } from '../engine/runtime/batch-model.ts';
import { Scheduler } from '../engine/runtime/scheduler.ts';
import { stopTokens } from '../engine/runtime/generate.ts';
import type { ChatTemplate } from '../engine/tokenizer/chat-template.ts';
import { loadTokenizer, type TokenizerFile } from '../engine/tokenizer/load.ts';
import type { Tokenizer } from '../engine/tokenizer/types.ts';

export interface ServingModelOptions {
  /** navigator.gpu's equivalent (nodeGpu() in Node). */
  gpu: GPU;
  files: FileSource;
  /** As createEngine takes it: 'dir/model.bin', 'dir/model.gguf', or a Hugging Face folder. */
  entry: string;
  tokenizer?: TokenizerFile;
  /** The id clients name in `model`. */
  name: string;
  /** Sequences decoding at once: the pool holds this many whole contexts (within its memory budget). */
  maxBatch: number;
  /** Cap on a sequence's length, prompt included (default 2048, never above the model's maxSeqLen). */
  maxContext?: number;
  weightFormat?: WeightFormat;
  /** Tokens per KV page (default 16). */
  pageSize?: number;
}

export interface ServingModel {
  readonly name: string;
  readonly gpu: GpuContext;
  readonly model: BatchModel;
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: ChatTemplate | null;
  /** Tokens that end a sequence (EOS, and BOS for llama2.c models). */
  readonly stopIds: readonly number[];
  /** Unix time (s) the model was loaded: /v1/models reports it as `created`. */
  readonly loadedAt: number;
  dispose(): void;
}

/** Sequences one step may touch (the batched path's limit, as the engine's batches have it). */
export const maxServingBatch = 32;
/** The most memory the KV pool takes. */
const kvPoolBudgetBytes = 256 * 1024 * 1024;
/** Rows one step may hold: every running sequence's decode row plus prompt chunks. */
const stepRows = 64;

export async function loadServingModel(options: ServingModelOptions): Promise<ServingModel> {
  const { maxBatch } = options;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > maxServingBatch) throw new RequestError(`the batch must be a whole number from 1 to ${maxServingBatch}, got ${maxBatch}`);
  const gpu = await requestGpu(options.gpu);
  try {
    const format = options.weightFormat ?? 'f32';
    if (!supportedFormats(gpu.adapter).includes(format)) throw new RequestError(`weight format ${format} cannot run on this adapter (it runs ${supportedFormats(gpu.adapter).join(', ')})`);
    const { model: description, vocabulary } = await loadModel(options.files, options.entry);
    const { tokenizer, chatTemplate } = await loadTokenizer(options.files, options.entry, description, vocabulary, options.tokenizer);
    const contextLength = Math.min(description.config.maxSeqLen, options.maxContext ?? 2048);
    const pageSize = options.pageSize ?? 16;
    const limits = gpu.device.limits;
    const budget = Math.min(kvPoolBudgetBytes, limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    const wanted = maxBatch * Math.ceil(contextLength / pageSize);
    const pageCount = Math.max(1, Math.min(wanted, Math.floor(budget / pageBytes(pageLayout(description.config, pageSize)))));
    const model = await BatchModel.create(gpu, description, { weightFormat: format, blockSize: pageSize, contextLength, pageCount, maxSequences: maxBatch, maxRows: stepRows });
    await warmUp(model);
    if (gpu.isLost()) throw await gpu.lost;
    return {
      name: options.name,
      gpu,
      model,
      tokenizer,
      chatTemplate,
      stopIds: stopTokens(tokenizer),
      loadedAt: Math.floor(Date.now() / 1000),
      dispose() {
        model.destroy();
        gpu.device.destroy();
      },
    };
  } catch (error) {
    gpu.device.destroy();
    throw error;
  }
}

/**
 * Compiles the step's kernels before the first client waits on them (seconds on a software
 * adapter): a short prompt through the tiled matrix product that several rows take, then a
 * one-row decode step.
 */
async function warmUp(model: BatchModel): Promise<void> {
  const scheduler = new Scheduler(model, { maxBatch: 1, prefixCache: false });
  await scheduler.submit({ prompt: [model.config.bosTokenId, 0, 0, 0], maxTokens: 2, temperature: 0, seed: 0, stopIds: [] });
}

/** The default model id for a path: the file name without its extension, or the folder's name. */
export function modelNameOf(path: string): string {
  const trimmed = path.replace(/[\\/]+$/, '');
  const base = trimmed.slice(Math.max(trimmed.lastIndexOf('/'), trimmed.lastIndexOf('\\')) + 1);
  return base.replace(/\.(bin|gguf)$/i, '') || 'model';
}
