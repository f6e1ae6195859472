// FLOP per byte of the model's matrix products when `batch` sequences decode together, from the
// matmul kernel's cost model (kernels/matmul.ts): the weights are read once for the whole batch,
// so the FLOPs grow with the batch while the bytes barely do. The Batching panel plots these
// against the roofline the bandwidth probe measured.
import { matmulCost } from '../engine/kernels/matmul.ts';
import type { ModelConfig } from '../engine/model/types.ts';
import { weightFormats, type WeightFormat } from '../engine/quant/formats.ts';

/** The matrices of a Llama model: seven per layer, then the classifier once. */
export const matrixKinds = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3', 'classifier'] as const;
export type MatrixKind = (typeof matrixKinds)[number];

export function isWeightFormat(format: string): format is WeightFormat {
  return (weightFormats as readonly string[]).includes(format);
}

/** Rows (outputs) and columns (inputs) of one matrix kind, as model/types.ts's expectedShapes lays them out. */
export function matrixShape(config: ModelConfig, kind: MatrixKind): { rows: number; cols: number } {
  const qDim = config.nHeads * config.headDim;
  const kvDim = config.nKvHeads * config.headDim;
  switch (kind) {
    case 'wq':
      return { rows: qDim, cols: config.dim };
    case 'wk':
    case 'wv':
      return { rows: kvDim, cols: config.dim };
    case 'wo':
      return { rows: config.dim, cols: qDim };
    case 'w1':
    case 'w3':
      return { rows: config.hiddenDim, cols: config.dim };
    case 'w2':
      return { rows: config.dim, cols: config.hiddenDim };
    case 'classifier':
      return { rows: config.vocabSize, cols: config.dim };
  }
}

/** FLOP and bytes (packed weights read once, the batch's inputs read and outputs written) of one product. */
function matrixCost(format: WeightFormat, config: ModelConfig, kind: MatrixKind, batch: number): { flops: number; bytes: number } {
  const { rows, cols } = matrixShape(config, kind);
  const cost = matmulCost(format, rows, cols, batch);
  return { flops: cost.flops, bytes: cost.bytesRead + cost.bytesWritten };
}

/** 2·batch·rows·cols ÷ (weight bytes + activation bytes) of one matrix kind. */
export function matrixIntensity(format: WeightFormat, config: ModelConfig, kind: MatrixKind, batch: number): number {
  const { flops, bytes } = matrixCost(format, config, kind, batch);
  return flops / bytes;
}

/** One decode step of `batch` sequences through every matrix of the model (all layers and the classifier). */
export function decodeStepCost(format: WeightFormat, config: ModelConfig, batch: number): { flops: number; bytes: number } {
  let flops = 0;
  let bytes = 0;
  for (const kind of matrixKinds) {
    const cost = matrixCost(format, config, kind, batch);
    const copies = kind === 'classifier' ? 1 : config.nLayers;
    flops += copies * cost.flops;
    bytes += copies * cost.bytes;
  }
  return { flops, bytes };
}

/**
 * Matrix FLOPs of a batched run: every row (prompt token computed or token generated) goes through
 * each layer's seven matrices, and every generated token through the classifier.
 */
export function batchRunFlops(config: ModelConfig, rows: number, generatedTokens: number): number {
  let perRow = 0;
  for (const kind of matrixKinds) {
    if (kind === 'classifier') continue;
    const { rows: r, cols } = matrixShape(config, kind);
    perRow += 2 * r * cols;
  }
  const classifier = matrixShape(config, 'classifier');
  return rows * config.nLayers * perRow + generatedTokens * 2 * classifier.rows * classifier.cols;
}
