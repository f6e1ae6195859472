// Builders for model files in every format the engine loads, for tests: the writers live in
// src/engine/model/writers.ts (make-model uses them too); this file adds whole-buffer wrappers,
// small configs and exactly representable random models.

import {
  type FileDtype,
  type GgufSpec,
  type SafetensorsSpec,
  concatBytes,
  ggufChunks,
  ggufModelChunks,
  huggingFaceFolder,
  llama2cChunks,
  safetensorsChunks,
  safetensorsHeader,
  weightsOf,
} from '../../src/engine/model/writers.ts';
import { type ModelConfig, type ModelDescription, type Tensor, expectedShapes } from '../../src/engine/model/types.ts';

export {
  type FileDtype,
  type GgufKv,
  type GgufScalarType,
  type GgufSpec,
  type GgufTensorSpec,
  type SafetensorsSpec,
  bf16Bits,
  encodeFloats,
  f16Bits,
  ggmlTypes,
  toyVocabulary,
} from '../../src/engine/model/writers.ts';

export function buildGguf(spec: GgufSpec): Uint8Array {
  return concatBytes(ggufChunks(spec));
}

/** A safetensors file from any header object and data section (for files that lie). */
export function buildSafetensors(header: object, data: Uint8Array): Uint8Array {
  return concatBytes([safetensorsHeader(header), data]);
}

/** A well-formed safetensors file: tensors packed in order. */
export function safetensorsFromTensors(tensors: SafetensorsSpec[], metadata?: Record<string, string>): Uint8Array {
  return concatBytes(safetensorsChunks(tensors, metadata));
}

// ---------------------------------------------------------------------------------------------
// Generated models

/** A small GQA config with an untied classifier; override what a test needs. */
export function tinyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: 'llama',
    dim: 16,
    hiddenDim: 24,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    vocabSize: 32,
    maxSeqLen: 64,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    tiedEmbeddings: false,
    bosTokenId: 1,
    eosTokenId: 2,
    ...overrides,
  };
}

/** mulberry32: a tiny seeded PRNG, so generated models are the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random weights for `config`. Every value is exact in f16 and bf16 (at most 8 significant bits),
 * so a model written in any dtype loads back bit-identical: matrices are multiples of 1/512 in
 * [-0.5, 0.5), norm weights multiples of 1/128 in [0.75, 1.25).
 */
export function randomModel(config: ModelConfig, seed = 1): ModelDescription {
  const random = seededRandom(seed);
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of expectedShapes(config)) {
    if (name === 'classifier' && config.tiedEmbeddings) continue;
    const isNorm = shape.length === 1;
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      data[i] = isNorm ? 1 + Math.floor(random() * 64 - 32) / 128 : Math.floor(random() * 512 - 256) / 512;
    }
    tensors.set(name, { shape, sourceDtype: 'f32', data });
  }
  if (config.tiedEmbeddings) tensors.set('classifier', tensors.get('tokenEmbedding')!);
  return { config, tensors, source: `random model (seed ${seed})` };
}

/** llama2.c legacy checkpoint (f32 only; head size must be dim / n_heads). */
export function writeLlama2c(model: ModelDescription): Uint8Array {
  return concatBytes(llama2cChunks(weightsOf(model)));
}

/** Llama GGUF with every tensor stored as `dtype` and a toy embedded vocabulary. */
export function writeGguf(model: ModelDescription, dtype: FileDtype = 'f32', version = 3): Uint8Array {
  return concatBytes(ggufModelChunks(weightsOf(model), dtype, version));
}

/** A Hugging Face folder (config.json + model.safetensors) with q/k rows permuted for rotate-half RoPE. */
export function writeHuggingFace(model: ModelDescription, dtype: FileDtype = 'f32'): { 'config.json': string; 'model.safetensors': Uint8Array } {
  const folder = huggingFaceFolder(weightsOf(model), dtype);
  return { 'config.json': folder['config.json'], 'model.safetensors': concatBytes(folder['model.safetensors']) };
}
