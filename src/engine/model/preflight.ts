// Will a model fit, before anything is downloaded? From a config (a catalog entry's config.json
// through parseHfConfig) and the adapter's limits, the GPU memory the single-sequence model
// (runtime/gpu-model.ts) would allocate in each weight format, and whether each buffer it needs
// can exist here. Weight tensors larger than one buffer are split by rows (runtime/weights.ts),
// so for them only a single row must fit; the KV cache and the activations are single buffers.
//
// The free-memory figure is the caller's estimate (WebGPU does not report free memory: see the
// project's rule against presenting maxBufferSize as free memory), so every verdict is an estimate.
import { packedByteLength, type WeightFormat } from '../quant/formats.ts';
import type { ModelConfig } from './types.ts';

/** The adapter limits that decide whether a buffer can exist (AdapterReport['limits'] has them). */
export interface BufferLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/** GPU bytes a model needs in one weight format at one context length (the single-sequence model's buffers). */
export interface MemoryEstimate {
  format: WeightFormat;
  contextLength: number;
  /** Projections and the classifier in `format` (a tied classifier reads the f32 embedding when the format is f32). */
  matrixBytes: number;
  /** The token embedding, always f32. */
  embeddingBytes: number;
  /** Norm weights and attention biases. */
  vectorBytes: number;
  weightBytes: number;
  /** Keys and values of every layer for contextLength tokens. */
  kvCacheBytes: number;
  /** Scratch of one step, the RoPE table and the logits read-back. */
  activationBytes: number;
  totalBytes: number;
  /** The largest weight tensor as stored on the GPU, before splitting. */
  largestTensor: { name: string; bytes: number };
  /** The widest matrix row in `format` (or the embedding's f32 row): the smallest part a split can make. */
  largestRowBytes: number;
  /** The largest buffer that cannot be split: the key (or value) cache, or an activation. */
  largestUnsplitBuffer: { name: string; bytes: number };
}

/** The formats a catalog shows (f16-native takes the same memory as f16). */
export const preflightFormats: readonly WeightFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

export function modelMemoryEstimate(c: ModelConfig, format: WeightFormat, contextLength: number): MemoryEstimate {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  // (name, rows, cols) of each matrix kind, with how many of it the model has.
  const matrices: [name: string, rows: number, cols: number, count: number][] = [
    ['wq', qDim, c.dim, c.nLayers],
    ['wk', kvDim, c.dim, c.nLayers],
    ['wv', kvDim, c.dim, c.nLayers],
    ['wo', c.dim, qDim, c.nLayers],
    ['w1', c.hiddenDim, c.dim, c.nLayers],
    ['w2', c.dim, c.hiddenDim, c.nLayers],
    ['w3', c.hiddenDim, c.dim, c.nLayers],
  ];
  if (!(c.tiedEmbeddings && format === 'f32')) matrices.push(['classifier', c.vocabSize, c.dim, 1]);

  const embeddingBytes = 4 * c.vocabSize * c.dim;
  let matrixBytes = 0;
  let largestTensor = { name: 'tokenEmbedding', bytes: embeddingBytes };
  let largestRowBytes = 4 * c.dim;
  for (const [name, rows, cols, count] of matrices) {
    const bytes = packedByteLength(format, rows, cols);
    matrixBytes += count * bytes;
    if (bytes > largestTensor.bytes) largestTensor = { name, bytes };
    largestRowBytes = Math.max(largestRowBytes, packedByteLength(format, 1, cols));
  }
  const biasesPerLayer = c.attentionBias ? qDim + 2 * kvDim : 0;
  const vectorBytes = 4 * (c.nLayers * (2 * c.dim + biasesPerLayer) + c.dim);
  const weightBytes = matrixBytes + embeddingBytes + vectorBytes;

  const cacheBytes = 4 * c.nLayers * contextLength * kvDim; // one of keyCache, valueCache
  const activations: [name: string, bytes: number][] = [
    ['residual scratch', 4 * 3 * c.dim],
    ['q, k, v and attention output', 4 * (2 * qDim + 2 * kvDim)],
    ['attention score buffer', 4 * c.nHeads * contextLength],
    ['feed-forward scratch', 4 * 2 * c.hiddenDim],
    ['logits buffer', 4 * c.vocabSize],
    ['logits read-back', 4 * c.vocabSize],
    ['sampler token counts', 4 * c.vocabSize],
    ['RoPE table', 4 * contextLength * c.headDim],
  ];
  const activationBytes = activations.reduce((sum, [, bytes]) => sum + bytes, 0);
  const largestActivation = activations.reduce((a, b) => (b[1] > a[1] ? b : a));
  const largestUnsplitBuffer = cacheBytes >= largestActivation[1] ? { name: 'key cache', bytes: cacheBytes } : { name: largestActivation[0], bytes: largestActivation[1] };
  const kvCacheBytes = 2 * cacheBytes;
  return {
    format,
    contextLength,
    matrixBytes,
    embeddingBytes,
    vectorBytes,
    weightBytes,
    kvCacheBytes,
    activationBytes,
    totalBytes: weightBytes + kvCacheBytes + activationBytes,
    largestTensor,
    largestRowBytes,
    largestUnsplitBuffer,
  };
}

export interface PreflightVerdict {
  format: WeightFormat;
  fits: boolean;
  estimate: MemoryEstimate;
  /** Why it does not fit, one sentence each (empty when it fits). */
  problems: string[];
  /** One line for the catalog: the sizes, and the verdict with its reasons. */
  message: string;
}

/**
 * For each format: does the model fit in `freeMemoryBytes` (the caller's estimate) with a KV cache of
 * `contextLength` tokens, and can every buffer it needs exist under `limits`?
 */
export function preflight(c: ModelConfig, limits: BufferLimits, freeMemoryBytes: number, contextLength: number, formats: readonly WeightFormat[] = preflightFormats): PreflightVerdict[] {
  const bufferLimit = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  return formats.map((format) => {
    const estimate = modelMemoryEstimate(c, format, contextLength);
    const problems: string[] = [];
    if (estimate.totalBytes > freeMemoryBytes) {
      problems.push(`it needs about ${formatBytes(estimate.totalBytes)} but about ${formatBytes(freeMemoryBytes)} of GPU memory is free`);
    }
    if (estimate.largestRowBytes > bufferLimit) {
      problems.push(`one matrix row takes ${formatBytes(estimate.largestRowBytes)}, more than the ${formatBytes(bufferLimit)} one buffer may hold, so its matrix cannot be split to fit`);
    }
    const unsplit = estimate.largestUnsplitBuffer;
    if (unsplit.bytes > bufferLimit) {
      const perToken = 4 * c.nLayers * c.nKvHeads * c.headDim;
      const shorter = unsplit.name === 'key cache' ? `; a context of at most ${Math.floor(bufferLimit / perToken)} tokens would fit` : '';
      problems.push(`the ${unsplit.name} is one buffer of ${formatBytes(unsplit.bytes)}, more than the ${formatBytes(bufferLimit)} one buffer may hold${shorter}`);
    }
    const sizes =
      `${formatBytes(estimate.weightBytes)} of weights + ${formatBytes(estimate.kvCacheBytes)} of KV cache (${contextLength} tokens) + ` +
      `${formatBytes(estimate.activationBytes)} of activations = ${formatBytes(estimate.totalBytes)}`;
    const fits = problems.length === 0;
    const message = fits ? `${format}: fits, ${sizes} of about ${formatBytes(freeMemoryBytes)} free` : `${format}: does not fit: ${problems.join('; and ')} (${sizes})`;
    return { format, fits, estimate, problems, message };
  });
}

/** Bytes in binary units, three significant digits (whole numbers from 100): "512 B", "1.50 KiB", "135 MiB", "1023 MiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value >= 100 ? value.toFixed(0) : value.toPrecision(3)} ${units[unit]}`;
}
