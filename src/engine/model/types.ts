// The one internal model description every file format is normalized into.
//
// Conventions (all loaders must produce exactly this):
// - Matrices are row-major (out_features, in_features), as in llama2.c and PyTorch Linear.
// - RoPE rotates ADJACENT pairs (x[2i], x[2i+1]) like llama2.c and GGUF. Loaders of Hugging Face
//   checkpoints (which rotate halves and permute q/k rows to match) un-permute wq/wk rows on load.
// - Every tensor's `data` is f32; `sourceDtype` records what the file stored (f32, f16, bf16, q8_0,
//   q4_0, q4_K, q6_K). Q8_0 / Q4_0 sources also keep their blocks in `packed`, so the GPU can use
//   them as they are, without re-quantizing (`data` then holds the dequantized values, for the CPU
//   reference); K-quants are only dequantized.

export interface ModelConfig {
  /** The Llama family; Qwen2 is a Llama with q/k/v biases (attentionBias). */
  architecture: 'llama';
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Longest context the model was trained for; the KV cache is sized from it (capped by the engine). */
  maxSeqLen: number;
  ropeTheta: number;
  rmsEps: number;
  /** Classifier shares the token-embedding matrix. */
  tiedEmbeddings: boolean;
  bosTokenId: number;
  eosTokenId: number;
  /**
   * Qwen2: the q, k and v projections add a bias (layer tensors bq, bk, bv). Absent means none, so
   * the configs of plain Llama models (and the records of them) stay as they were.
   */
  attentionBias?: boolean;
  /** Llama 3's rescaled RoPE frequencies (see model/rope-scaling.ts); absent: plain RoPE at ropeTheta. */
  ropeScaling?: RopeScaling;
}

/**
 * Llama 3.1+'s rope_scaling (rope_type "llama3"): wavelengths longer than
 * originalMaxPositionEmbeddings / lowFreqFactor are stretched by `factor`, those shorter than
 * originalMaxPositionEmbeddings / highFreqFactor are kept, and the band between is interpolated.
 */
export interface RopeScaling {
  kind: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

import type { PackedMatrix, QuantFormat } from '../quant/formats.ts';

/** Float encodings a file may store, decoded to f32 on load. */
export type FloatDtype = 'f32' | 'f16' | 'bf16';
/** GGUF K-quants, dequantized to f32 on load (quant/gguf-quant.ts). */
export type KQuantDtype = 'q4_K' | 'q6_K';
export type SourceDtype = FloatDtype | QuantFormat | KQuantDtype;

export interface Tensor {
  /** Row-major shape; matrices are (rows = out_features, cols = in_features). */
  shape: number[];
  sourceDtype: SourceDtype;
  data: Float32Array;
  /** The file's own quantized blocks (GGUF Q8_0/Q4_0), in the GPU layout. */
  packed?: PackedMatrix;
}

/** Canonical tensor names (llama2.c-like). Layer tensors are `layers.{i}.{name}`. */
export const globalTensorNames = ['tokenEmbedding', 'finalNorm', 'classifier'] as const;
export const layerTensorNames = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'] as const;
/** The q, k and v biases of a model with attentionBias (Qwen2), (nHeads * headDim) and (kvDim) each. */
export const attentionBiasNames = ['bq', 'bk', 'bv'] as const;
export type LayerTensorName = (typeof layerTensorNames)[number] | (typeof attentionBiasNames)[number];

/** The tensors every layer of a model with config `c` has, in file order. */
export function layerTensorNamesOf(c: ModelConfig): readonly LayerTensorName[] {
  return c.attentionBias ? [...layerTensorNames, ...attentionBiasNames] : layerTensorNames;
}

export function layerTensor(layer: number, name: LayerTensorName): string {
  return `layers.${layer}.${name}`;
}

/** Expected shape of each canonical tensor for a config (loaders check against it). */
export function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const shapes = new Map<string, number[]>([
    ['tokenEmbedding', [c.vocabSize, c.dim]], // (vocab, dim)
    ['finalNorm', [c.dim]],
    ['classifier', [c.vocabSize, c.dim]], // (vocab, dim); the same Tensor object as tokenEmbedding when tied
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    shapes.set(layerTensor(l, 'attnNorm'), [c.dim]);
    shapes.set(layerTensor(l, 'wq'), [qDim, c.dim]);
    shapes.set(layerTensor(l, 'wk'), [kvDim, c.dim]);
    shapes.set(layerTensor(l, 'wv'), [kvDim, c.dim]);
    shapes.set(layerTensor(l, 'wo'), [c.dim, qDim]);
    shapes.set(layerTensor(l, 'ffnNorm'), [c.dim]);
    shapes.set(layerTensor(l, 'w1'), [c.hiddenDim, c.dim]); // gate
    shapes.set(layerTensor(l, 'w2'), [c.dim, c.hiddenDim]); // down
    shapes.set(layerTensor(l, 'w3'), [c.hiddenDim, c.dim]); // up
    if (c.attentionBias) {
      shapes.set(layerTensor(l, 'bq'), [qDim]);
      shapes.set(layerTensor(l, 'bk'), [kvDim]);
      shapes.set(layerTensor(l, 'bv'), [kvDim]);
    }
  }
  return shapes;
}

export interface ModelDescription {
  config: ModelConfig;
  /** Keyed by canonical name (see expectedShapes). */
  tensors: Map<string, Tensor>;
  /** Human-readable origin, e.g. "stories260K.bin (llama2.c)". */
  source: string;
}

export function getTensor(model: ModelDescription, name: string): Tensor {
  const tensor = model.tensors.get(name);
  if (!tensor) throw new Error(`model ${model.source} has no tensor ${name}`);
  return tensor;
}
