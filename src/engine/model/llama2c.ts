// llama2.c legacy checkpoint (.bin): a 7 x int32 header, then every weight as f32 in the order of
// llama2.c run.c memory_map_weights. Matrices are already (out, in) row-major and Q/K rows are in
// the adjacent-pair RoPE order, so nothing is reordered here.

import { ByteReader, decodeTensorData, elementCount } from './bytes.ts';
import { type LayerTensorName, type ModelConfig, type ModelDescription, type Tensor, layerTensor } from './types.ts';

const headerBytes = 7 * 4;

/** The first int32 of llama2.c's newer export formats (version 1 and 2), "ak42" in ASCII. */
const exportMagic = 0x616b3432;

interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Negative when the classifier is stored separately at the end of the file. */
  vocabSize: number;
  seqLen: number;
}

export function parseLlama2c(bytes: Uint8Array, file: string): ModelDescription {
  const reader = new ByteReader(bytes, file);
  if (bytes.length < headerBytes) reader.fail(`file is ${bytes.length} bytes, shorter than the ${headerBytes}-byte llama2.c header`);
  const header = readHeader(reader);
  const config = configFromHeader(header, reader);

  const needed = headerBytes + 4 * floatCount(config);
  if (bytes.length !== needed) {
    reader.fail(`file is ${bytes.length} bytes but the header (${describeHeader(header)}) needs ${needed} bytes`);
  }
  return { config, tensors: readTensors(reader, config), source: `${file} (llama2.c)` };
}

function readHeader(reader: ByteReader): Llama2cHeader {
  const first = reader.i32('dim');
  if (first === exportMagic) {
    reader.fail(
      "starts with the 'ak42' magic of llama2.c's version 1/2 export; only the legacy format (export.py --version 0) is supported",
    );
  }
  return {
    dim: first,
    hiddenDim: reader.i32('hidden_dim'),
    nLayers: reader.i32('n_layers'),
    nHeads: reader.i32('n_heads'),
    nKvHeads: reader.i32('n_kv_heads'),
    vocabSize: reader.i32('vocab_size'),
    seqLen: reader.i32('seq_len'),
  };
}

function describeHeader(h: Llama2cHeader): string {
  return (
    `dim ${h.dim}, hidden_dim ${h.hiddenDim}, ${h.nLayers} layers, ${h.nHeads} heads, ` +
    `${h.nKvHeads} kv heads, vocab_size ${h.vocabSize}, seq_len ${h.seqLen}`
  );
}

function configFromHeader(h: Llama2cHeader, reader: ByteReader): ModelConfig {
  const positive = {
    dim: h.dim,
    hidden_dim: h.hiddenDim,
    n_layers: h.nLayers,
    n_heads: h.nHeads,
    n_kv_heads: h.nKvHeads,
    seq_len: h.seqLen,
  };
  for (const [name, value] of Object.entries(positive)) {
    if (value <= 0) reader.fail(`header ${name} is ${value}, must be positive (${describeHeader(h)})`);
  }
  if (h.vocabSize === 0) reader.fail(`header vocab_size is 0 (${describeHeader(h)})`);
  if (h.dim % h.nHeads !== 0) reader.fail(`header dim ${h.dim} is not a multiple of n_heads ${h.nHeads}`);
  if (h.nHeads % h.nKvHeads !== 0) reader.fail(`header n_heads ${h.nHeads} is not a multiple of n_kv_heads ${h.nKvHeads}`);
  const headDim = h.dim / h.nHeads;
  if (headDim % 2 !== 0) reader.fail(`head size ${headDim} (dim ${h.dim} / n_heads ${h.nHeads}) is odd; RoPE needs pairs`);

  return {
    architecture: 'llama',
    dim: h.dim,
    hiddenDim: h.hiddenDim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    headDim,
    vocabSize: Math.abs(h.vocabSize),
    maxSeqLen: h.seqLen,
    // llama2.c hard-codes these; the header has no room for them.
    ropeTheta: 10000,
    rmsEps: 1e-5,
    tiedEmbeddings: h.vocabSize > 0,
    bosTokenId: 1,
    eosTokenId: 2,
  };
}

/** Per-layer tensors in file order; each is one (layer, rows, cols) block in the file. */
function layerShapes(c: ModelConfig): [LayerTensorName, number[]][] {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  return [
    ['attnNorm', [c.dim]],
    ['wq', [qDim, c.dim]],
    ['wk', [kvDim, c.dim]],
    ['wv', [kvDim, c.dim]],
    ['wo', [c.dim, qDim]],
    ['ffnNorm', [c.dim]],
    ['w1', [c.hiddenDim, c.dim]],
    ['w2', [c.dim, c.hiddenDim]],
    ['w3', [c.hiddenDim, c.dim]],
  ];
}

/** The legacy RoPE tables, freq_cis_real and freq_cis_imag, each (seq_len, head_size / 2). */
function ropeTableFloats(c: ModelConfig): number {
  return 2 * c.maxSeqLen * (c.headDim / 2);
}

function floatCount(c: ModelConfig): number {
  const perLayer = layerShapes(c).reduce((sum, [, shape]) => sum + elementCount(shape), 0);
  const embedding = c.vocabSize * c.dim;
  return embedding + c.nLayers * perLayer + c.dim + ropeTableFloats(c) + (c.tiedEmbeddings ? 0 : embedding);
}

/** Reads every tensor; the caller has checked that the file is exactly the right length. */
function readTensors(reader: ByteReader, c: ModelConfig): Map<string, Tensor> {
  reader.offset = headerBytes;
  const next = (shape: number[]): Tensor => {
    const bytes = reader.take(4 * elementCount(shape), 'tensor data');
    return { shape, sourceDtype: 'f32', data: decodeTensorData(bytes, 'f32') };
  };

  const tensors = new Map<string, Tensor>();
  const embedding = next([c.vocabSize, c.dim]);
  tensors.set('tokenEmbedding', embedding);
  for (const [name, shape] of layerShapes(c)) {
    for (let l = 0; l < c.nLayers; l++) tensors.set(layerTensor(l, name), next(shape));
  }
  tensors.set('finalNorm', next([c.dim]));
  reader.take(4 * ropeTableFloats(c), 'RoPE tables'); // unused: the engine computes RoPE itself
  tensors.set('classifier', c.tiedEmbeddings ? embedding : next([c.vocabSize, c.dim]));
  return tensors;
}
