// Builders for model files in every format the engine loads: low-level GGUF / safetensors writers
// (for hand-made, possibly broken files) and writers of a whole ModelDescription (for generated
// models). They follow the same layouts the loaders document, written independently of them.

import {
  type LayerTensorName,
  type ModelConfig,
  type ModelDescription,
  type Tensor,
  expectedShapes,
  layerTensor,
  layerTensorNames,
} from '../../src/engine/model/types.ts';

export type FileDtype = 'f32' | 'f16' | 'bf16';

// ---------------------------------------------------------------------------------------------
// Number encoding

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 → IEEE binary16 bits, rounding to nearest even (overflow → infinity). */
export function f16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16: value = m * 2^-24.
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    return sign | roundShift(full, shift);
  }
  // The rounding carry may ripple into the exponent, which is the correct result.
  return sign | (((e << 10) | (mantissa >> 13)) + roundBit(mantissa, 13, mantissa >> 13));
}

function roundShift(value: number, shift: number): number {
  return (value >>> shift) + roundBit(value, shift, value >>> shift);
}

/** 1 when the `shift` dropped bits round `kept` up (to nearest, ties to even). */
function roundBit(value: number, shift: number, kept: number): number {
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? 1 : 0;
}

/** f32 → bfloat16 bits (the top half of the f32), rounding to nearest even. */
export function bf16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if (Number.isNaN(value)) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Little-endian bytes of `values` stored as `dtype`. */
export function encodeFloats(values: ArrayLike<number>, dtype: FileDtype): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(Float32Array.from(values).buffer);
  const bits = dtype === 'f16' ? f16Bits : bf16Bits;
  return new Uint8Array(Uint16Array.from(Array.from(values, bits)).buffer);
}

// ---------------------------------------------------------------------------------------------
// Byte writer

class ByteWriter {
  private chunks: Uint8Array[] = [];
  length = 0;

  bytes(bytes: Uint8Array): this {
    this.chunks.push(bytes);
    this.length += bytes.length;
    return this;
  }

  private scalar(size: number, set: (view: DataView) => void): this {
    const bytes = new Uint8Array(size);
    set(new DataView(bytes.buffer));
    return this.bytes(bytes);
  }

  u8 = (v: number) => this.scalar(1, (d) => d.setUint8(0, v));
  i8 = (v: number) => this.scalar(1, (d) => d.setInt8(0, v));
  u16 = (v: number) => this.scalar(2, (d) => d.setUint16(0, v, true));
  i16 = (v: number) => this.scalar(2, (d) => d.setInt16(0, v, true));
  u32 = (v: number) => this.scalar(4, (d) => d.setUint32(0, v, true));
  i32 = (v: number) => this.scalar(4, (d) => d.setInt32(0, v, true));
  f32 = (v: number) => this.scalar(4, (d) => d.setFloat32(0, v, true));
  f64 = (v: number) => this.scalar(8, (d) => d.setFloat64(0, v, true));
  u64 = (v: number | bigint) => this.scalar(8, (d) => d.setBigUint64(0, BigInt(v), true));
  i64 = (v: number | bigint) => this.scalar(8, (d) => d.setBigInt64(0, BigInt(v), true));

  /** Zero bytes up to the next multiple of `alignment`. */
  pad(alignment: number): this {
    return this.bytes(new Uint8Array((alignment - (this.length % alignment)) % alignment));
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// GGUF

export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
type Scalar = number | bigint | boolean | string;
export type GgufKv =
  | { key: string; type: GgufScalarType; value: Scalar }
  | { key: string; type: 'array'; elementType: GgufScalarType; value: Scalar[] };

const ggufTypeIds: Record<GgufScalarType | 'array', number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};

/** ggml_type ids of the float types the writers use. */
export const ggmlTypes: Record<FileDtype, number> = { f32: 0, f16: 1, bf16: 30 };

export interface GgufTensorSpec {
  name: string;
  /** Row-major shape; written innermost-first as GGUF wants. */
  shape: number[];
  /** ggml_type id. */
  type: number;
  data: Uint8Array;
}

export interface GgufSpec {
  version?: number;
  /** Written as general.alignment when given; 32 (GGUF's default) otherwise. */
  alignment?: number;
  magic?: string;
  metadata: GgufKv[];
  tensors: GgufTensorSpec[];
}

export function buildGguf(spec: GgufSpec): Uint8Array {
  const alignment = spec.alignment ?? 32;
  const metadata: GgufKv[] = spec.alignment ? [...spec.metadata, { key: 'general.alignment', type: 'u32', value: alignment }] : spec.metadata;
  const w = new ByteWriter().bytes(new TextEncoder().encode(spec.magic ?? 'GGUF'));
  w.u32(spec.version ?? 3).u64(spec.tensors.length).u64(metadata.length);
  for (const kv of metadata) {
    writeGgufString(w, kv.key);
    w.u32(ggufTypeIds[kv.type]);
    if (kv.type === 'array') {
      w.u32(ggufTypeIds[kv.elementType]).u64(kv.value.length);
      for (const v of kv.value) writeGgufScalar(w, kv.elementType, v);
    } else {
      writeGgufScalar(w, kv.type, kv.value);
    }
  }
  let offset = 0;
  for (const t of spec.tensors) {
    writeGgufString(w, t.name);
    w.u32(t.shape.length);
    for (const dim of [...t.shape].reverse()) w.u64(dim);
    w.u32(t.type).u64(offset);
    offset += Math.ceil(t.data.length / alignment) * alignment;
  }
  w.pad(alignment);
  for (const t of spec.tensors) w.bytes(t.data).pad(alignment);
  return w.finish();
}

function writeGgufString(w: ByteWriter, text: string): void {
  const bytes = new TextEncoder().encode(text);
  w.u64(bytes.length).bytes(bytes);
}

function writeGgufScalar(w: ByteWriter, type: GgufScalarType, value: Scalar): void {
  if (type === 'string') writeGgufString(w, value as string);
  else if (type === 'bool') w.u8(value ? 1 : 0);
  else if (type === 'u64' || type === 'i64') w[type](value as number | bigint);
  else w[type](value as number);
}

// ---------------------------------------------------------------------------------------------
// safetensors

export interface SafetensorsSpec {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** A safetensors file from any header object and data section (for files that lie). */
export function buildSafetensors(header: object, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  return new ByteWriter().u64(json.length).bytes(json).bytes(data).finish();
}

/** A well-formed safetensors file: tensors packed in order. */
export function safetensorsFromTensors(tensors: SafetensorsSpec[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const data = new ByteWriter();
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [data.length, data.length + t.data.length] };
    data.bytes(t.data);
  }
  return buildSafetensors(header, data.finish());
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

function tensor(model: ModelDescription, name: string): Tensor {
  const t = model.tensors.get(name);
  if (!t) throw new Error(`${model.source} has no tensor ${name}`);
  return t;
}

/** llama2.c legacy checkpoint (f32 only; head size must be dim / n_heads). */
export function writeLlama2c(model: ModelDescription): Uint8Array {
  const c = model.config;
  const w = new ByteWriter();
  for (const v of [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.tiedEmbeddings ? c.vocabSize : -c.vocabSize, c.maxSeqLen]) w.i32(v);
  const put = (name: string) => w.bytes(encodeFloats(tensor(model, name).data, 'f32'));
  put('tokenEmbedding');
  for (const name of layerTensorNames) for (let l = 0; l < c.nLayers; l++) put(layerTensor(l, name));
  put('finalNorm');
  w.bytes(new Uint8Array(4 * c.maxSeqLen * c.headDim)); // freq_cis_real and freq_cis_imag (ignored)
  if (!c.tiedEmbeddings) put('classifier');
  return w.finish();
}

const ggufLayerNames: Record<LayerTensorName, string> = {
  attnNorm: 'attn_norm', wq: 'attn_q', wk: 'attn_k', wv: 'attn_v', wo: 'attn_output',
  ffnNorm: 'ffn_norm', w1: 'ffn_gate', w2: 'ffn_down', w3: 'ffn_up',
};

/** A toy SentencePiece-style vocabulary: <unk>, <s>, </s>, then "t3", "t4", ... */
export function toyVocabulary(size: number): string[] {
  return Array.from({ length: size }, (_, i) => ['<unk>', '<s>', '</s>'][i] ?? `t${i}`);
}

/** Llama GGUF with every tensor stored as `dtype` and a toy embedded vocabulary. */
export function writeGguf(model: ModelDescription, dtype: FileDtype = 'f32', version = 3): Uint8Array {
  const c = model.config;
  const metadata: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'llama.embedding_length', type: 'u32', value: c.dim },
    { key: 'llama.feed_forward_length', type: 'u32', value: c.hiddenDim },
    { key: 'llama.block_count', type: 'u32', value: c.nLayers },
    { key: 'llama.attention.head_count', type: 'u32', value: c.nHeads },
    { key: 'llama.attention.head_count_kv', type: 'u32', value: c.nKvHeads },
    { key: 'llama.attention.key_length', type: 'u32', value: c.headDim },
    { key: 'llama.rope.dimension_count', type: 'u32', value: c.headDim },
    { key: 'llama.context_length', type: 'u32', value: c.maxSeqLen },
    { key: 'llama.rope.freq_base', type: 'f32', value: c.ropeTheta },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: c.rmsEps },
    { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: 'array', elementType: 'string', value: toyVocabulary(c.vocabSize) },
    { key: 'tokenizer.ggml.scores', type: 'array', elementType: 'f32', value: Array.from({ length: c.vocabSize }, (_, i) => i - c.vocabSize) },
    { key: 'tokenizer.ggml.token_type', type: 'array', elementType: 'i32', value: Array.from({ length: c.vocabSize }, (_, i) => (i < 3 ? 3 : 1)) },
    { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: c.bosTokenId },
    { key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: c.eosTokenId },
  ];
  const names: [string, string][] = [
    ['token_embd.weight', 'tokenEmbedding'],
    ['output_norm.weight', 'finalNorm'],
  ];
  if (!c.tiedEmbeddings) names.push(['output.weight', 'classifier']);
  for (let l = 0; l < c.nLayers; l++) {
    for (const name of layerTensorNames) names.push([`blk.${l}.${ggufLayerNames[name]}.weight`, layerTensor(l, name)]);
  }
  const tensors = names.map(([name, canonical]) => {
    const t = tensor(model, canonical);
    return { name, shape: t.shape, type: ggmlTypes[dtype], data: encodeFloats(t.data, dtype) };
  });
  return buildGguf({ version, metadata, tensors });
}

const hfLayerNames: Record<LayerTensorName, string> = {
  attnNorm: 'input_layernorm', wq: 'self_attn.q_proj', wk: 'self_attn.k_proj', wv: 'self_attn.v_proj',
  wo: 'self_attn.o_proj', ffnNorm: 'post_attention_layernorm', w1: 'mlp.gate_proj', w2: 'mlp.down_proj', w3: 'mlp.up_proj',
};

/** A Hugging Face folder (config.json + model.safetensors) with q/k rows permuted for rotate-half RoPE. */
export function writeHuggingFace(model: ModelDescription, dtype: FileDtype = 'f32'): { 'config.json': string; 'model.safetensors': Uint8Array } {
  const c = model.config;
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.rmsEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
  };
  const entries: [string, Float32Array, number[]][] = [['model.embed_tokens.weight', tensor(model, 'tokenEmbedding').data, [c.vocabSize, c.dim]]];
  for (let l = 0; l < c.nLayers; l++) {
    for (const name of layerTensorNames) {
      const t = tensor(model, layerTensor(l, name));
      const heads = name === 'wq' ? c.nHeads : name === 'wk' ? c.nKvHeads : 0;
      entries.push([`model.layers.${l}.${hfLayerNames[name]}.weight`, heads ? permuteForRotateHalf(t, heads, c.headDim) : t.data, t.shape]);
    }
  }
  entries.push(['model.norm.weight', tensor(model, 'finalNorm').data, [c.dim]]);
  if (!c.tiedEmbeddings) entries.push(['lm_head.weight', tensor(model, 'classifier').data, [c.vocabSize, c.dim]]);

  const hfDtype = { f32: 'F32', f16: 'F16', bf16: 'BF16' }[dtype];
  const tensors = entries.map(([name, data, shape]) => ({ name, dtype: hfDtype, shape, data: encodeFloats(data, dtype) }));
  return { 'config.json': JSON.stringify(config, null, 2), 'model.safetensors': safetensorsFromTensors(tensors, { format: 'pt' }) };
}

/** What Hugging Face's convert scripts do to q/k rows: within each head, row 2i + p moves to p * headDim/2 + i. */
function permuteForRotateHalf(t: Tensor, nHeads: number, headDim: number): Float32Array {
  const cols = t.shape[1];
  const out = new Float32Array(t.data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let r = 0; r < headDim; r++) {
      const target = h * headDim + (r % 2) * (headDim / 2) + Math.floor(r / 2);
      out.set(t.data.subarray((h * headDim + r) * cols, (h * headDim + r + 1) * cols), target * cols);
    }
  }
  return out;
}
