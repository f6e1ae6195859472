// Writers for every model format the engine loads: low-level GGUF and safetensors writers (the
// tests also use them for hand-made, possibly broken files) and writers of a whole model. They
// follow the layouts the loaders document, written independently of the loaders.
//
// A file comes out as a sequence of byte chunks, and tensor data is produced only when its chunk is
// reached (headers need only sizes), so a generated model the size of Qwen2.5-0.5B streams to disk
// one tensor at a time instead of being held in memory once as floats and again as file bytes.

import { ggufLayerNames } from './gguf.ts';
import { hfLayerNames } from './huggingface.ts';
import { f32ToF16Bits } from '../quant/f16.ts';
import { dtypeBytes, elementCount } from './bytes.ts';
import { type FloatDtype, type ModelConfig, type ModelDescription, expectedShapes, layerTensor, layerTensorNames, layerTensorNamesOf } from './types.ts';

/** The float types a file can store (the ones the loaders read). */
export type FileDtype = FloatDtype;

/** Tensor values by canonical name, produced on demand (see syntheticWeights in cli/make-model.ts). */
export interface WeightSource {
  config: ModelConfig;
  tensor(name: string): Float32Array;
}

export function weightsOf(model: ModelDescription): WeightSource {
  return {
    config: model.config,
    tensor(name) {
      const t = model.tensors.get(name);
      if (!t) throw new Error(`${model.source} has no tensor ${name}`);
      return t.data;
    },
  };
}

/** Bytes whose length is known before they exist: a file's header is laid out from the lengths. */
export type Bytes = Uint8Array | { byteLength: number; bytes(): Uint8Array };

function materialize(b: Bytes): Uint8Array {
  return b instanceof Uint8Array ? b : b.bytes();
}

export function concatBytes(chunks: Iterable<Uint8Array>): Uint8Array {
  const list = [...chunks];
  const out = new Uint8Array(list.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of list) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Number encoding

/** f32 → IEEE binary16 bits, rounding to nearest even (the packer of the quantized formats uses the same). */
export const f16Bits = f32ToF16Bits;

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 → bfloat16 bits (the top half of the f32), rounding to nearest even. */
export function bf16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if (Number.isNaN(value)) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Little-endian bytes of `values` stored as `dtype` (f32 data is viewed in place, not copied). */
export function encodeFloats(values: ArrayLike<number>, dtype: FileDtype): Uint8Array {
  if (dtype === 'f32') {
    const floats = values instanceof Float32Array ? values : Float32Array.from(values);
    return new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
  }
  const bits = dtype === 'f16' ? f16Bits : bf16Bits;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = bits(values[i]);
  return new Uint8Array(out.buffer);
}

/** `values` of a tensor with `elements` entries, encoded only when its chunk is written. */
function lazyTensor(elements: number, dtype: FileDtype, values: () => ArrayLike<number>): Bytes {
  return { byteLength: elements * dtypeBytes[dtype], bytes: () => encodeFloats(values(), dtype) };
}

// ---------------------------------------------------------------------------------------------
// Byte writer

class ByteWriter {
  readonly chunks: Uint8Array[] = [];
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
    return this.bytes(padding(this.length, alignment));
  }
}

function padding(length: number, alignment: number): Uint8Array {
  return new Uint8Array((alignment - (length % alignment)) % alignment);
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
  data: Bytes;
}

export interface GgufSpec {
  version?: number;
  /** Written as general.alignment when given; 32 (GGUF's default) otherwise. */
  alignment?: number;
  magic?: string;
  metadata: GgufKv[];
  tensors: GgufTensorSpec[];
}

export function* ggufChunks(spec: GgufSpec): Generator<Uint8Array> {
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
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  w.pad(alignment);
  yield* w.chunks;
  for (const t of spec.tensors) {
    yield materialize(t.data);
    yield padding(t.data.byteLength, alignment);
  }
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
  data: Bytes;
}

/** The start of a safetensors file: u64 header length, then the JSON header (any object, even a lying one). */
export function safetensorsHeader(header: object): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  return concatBytes(new ByteWriter().u64(json.length).bytes(json).chunks);
}

/** A well-formed safetensors file: tensors packed in order. */
export function* safetensorsChunks(tensors: SafetensorsSpec[], metadata?: Record<string, string>): Generator<Uint8Array> {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  yield safetensorsHeader(header);
  for (const t of tensors) yield materialize(t.data);
}

// ---------------------------------------------------------------------------------------------
// Whole models

/** llama2.c legacy checkpoint (f32 only; head size must be dim / n_heads). */
export function* llama2cChunks(w: WeightSource): Generator<Uint8Array> {
  const c = w.config;
  refuseLlamaVariants(c, 'a llama2.c checkpoint');
  const header = new ByteWriter();
  for (const v of [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.tiedEmbeddings ? c.vocabSize : -c.vocabSize, c.maxSeqLen]) header.i32(v);
  yield* header.chunks;
  const put = (name: string) => encodeFloats(w.tensor(name), 'f32');
  yield put('tokenEmbedding');
  // llama2.c groups tensors by kind: every layer's attnNorm, then every layer's wq, ...
  for (const name of layerTensorNames) for (let l = 0; l < c.nLayers; l++) yield put(layerTensor(l, name));
  yield put('finalNorm');
  yield new Uint8Array(4 * c.maxSeqLen * c.headDim); // freq_cis_real and freq_cis_imag (ignored)
  if (!c.tiedEmbeddings) yield put('classifier');
}

/** Throws unless `c` is a plain Llama: `format` has no place for q/k/v biases or RoPE scaling. */
function refuseLlamaVariants(c: ModelConfig, format: string): void {
  if (c.attentionBias) throw new Error(`${format} cannot hold q/k/v biases (Qwen2): write a Hugging Face folder`);
  if (c.ropeScaling) throw new Error(`${format} cannot hold Llama 3 RoPE scaling: write a Hugging Face folder`);
}

/** A llama2.c tokenizer file (tokenizer.bin, tok512.bin): max_token_length, then (score, length, bytes) per piece. */
export function llama2cTokenizer(pieces: readonly string[], scores: ArrayLike<number>): Uint8Array {
  const encoded = pieces.map((p) => new TextEncoder().encode(p));
  const w = new ByteWriter().i32(encoded.reduce((max, e) => Math.max(max, e.length), 0));
  encoded.forEach((bytes, i) => w.f32(scores[i]).i32(bytes.length).bytes(bytes));
  return concatBytes(w.chunks);
}

/** A toy SentencePiece-style vocabulary: <unk>, <s>, </s>, then "t3", "t4", ... */
export function toyVocabulary(size: number): string[] {
  return Array.from({ length: size }, (_, i) => ['<unk>', '<s>', '</s>'][i] ?? `t${i}`);
}

/** Llama GGUF with every tensor stored as `dtype` and a toy embedded vocabulary. */
export function ggufModelChunks(w: WeightSource, dtype: FileDtype = 'f32', version = 3): Generator<Uint8Array> {
  const c = w.config;
  refuseLlamaVariants(c, 'this GGUF writer');
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
  // GGUF order: the globals, then each layer's tensors together.
  const names: [file: string, canonical: string][] = [
    ['token_embd.weight', 'tokenEmbedding'],
    ['output_norm.weight', 'finalNorm'],
  ];
  if (!c.tiedEmbeddings) names.push(['output.weight', 'classifier']);
  for (let l = 0; l < c.nLayers; l++) {
    for (const name of layerTensorNames) names.push([`blk.${l}.${ggufLayerNames[name]}`, layerTensor(l, name)]);
  }
  const shapes = expectedShapes(c);
  const tensors = names.map(([name, canonical]) => {
    const shape = shapes.get(canonical)!;
    return { name, shape, type: ggmlTypes[dtype], data: lazyTensor(elementCount(shape), dtype, () => w.tensor(canonical)) };
  });
  return ggufChunks({ version, metadata, tensors });
}

export interface HuggingFaceFolder {
  'config.json': string;
  'model.safetensors': Generator<Uint8Array>;
}

/**
 * A Hugging Face folder (config.json + model.safetensors) with q/k rows (and biases) permuted for
 * rotate-half RoPE: LlamaForCausalLM, or Qwen2ForCausalLM for a config with attentionBias.
 */
export function huggingFaceFolder(w: WeightSource, dtype: FileDtype = 'f32'): HuggingFaceFolder {
  return { 'config.json': hfConfigJson(w.config, dtype), 'model.safetensors': safetensorsChunks(hfTensorSpecs(w, dtype), { format: 'pt' }) };
}

export interface ShardedHuggingFaceFolder {
  'config.json': string;
  'model.safetensors.index.json': string;
  /** model-00001-of-0000N.safetensors ... in order. */
  shards: Map<string, Generator<Uint8Array>>;
}

/**
 * The same folder with the weights in `shardCount` safetensors files of about equal size (whole
 * tensors, in file order) and the index that maps each tensor to its shard, as transformers'
 * save_pretrained writes a checkpoint larger than its max_shard_size.
 */
export function huggingFaceShardedFolder(w: WeightSource, dtype: FileDtype, shardCount: number): ShardedHuggingFaceFolder {
  const specs = hfTensorSpecs(w, dtype);
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > specs.length) {
    throw new RangeError(`a model of ${specs.length} tensors splits into 1 to ${specs.length} shards, not ${shardCount}`);
  }
  const totalBytes = specs.reduce((sum, t) => sum + t.data.byteLength, 0);
  const groups: SafetensorsSpec[][] = Array.from({ length: shardCount }, () => []);
  let written = 0;
  let shard = 0;
  specs.forEach((spec, i) => {
    // Move on (one shard at a time, so none is empty) once this tensor's first byte falls past the
    // current shard's share, or when only as many tensors are left as shards to fill.
    const target = Math.max(Math.floor((written * shardCount) / totalBytes), shardCount - (specs.length - i));
    if (target > shard) shard++;
    groups[shard].push(spec);
    written += spec.data.byteLength;
  });
  const count = String(shardCount).padStart(5, '0');
  const shards = new Map<string, Generator<Uint8Array>>();
  const weightMap: Record<string, string> = {};
  groups.forEach((group, i) => {
    const name = `model-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`;
    for (const t of group) weightMap[t.name] = name;
    shards.set(name, safetensorsChunks(group, { format: 'pt' }));
  });
  const index = { metadata: { total_size: totalBytes }, weight_map: weightMap };
  return { 'config.json': hfConfigJson(w.config, dtype), 'model.safetensors.index.json': JSON.stringify(index, null, 2), shards };
}

function hfConfigJson(c: ModelConfig, dtype: FileDtype): string {
  const family = c.attentionBias
    ? { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false }
    : { architectures: ['LlamaForCausalLM'], model_type: 'llama' };
  const scaling = c.ropeScaling;
  const config = {
    ...family,
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
    rope_scaling: scaling
      ? {
          rope_type: scaling.kind,
          factor: scaling.factor,
          low_freq_factor: scaling.lowFreqFactor,
          high_freq_factor: scaling.highFreqFactor,
          original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
        }
      : null,
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
  };
  return JSON.stringify(config, null, 2);
}

/** Every tensor of the folder in file order, q/k rows and biases permuted for rotate-half RoPE. */
function hfTensorSpecs(w: WeightSource, dtype: FileDtype): SafetensorsSpec[] {
  const c = w.config;
  const hfDtype = { f32: 'F32', f16: 'F16', bf16: 'BF16' }[dtype];
  const shapes = expectedShapes(c);
  const tensor = (name: string, canonical: string, values = () => w.tensor(canonical)): SafetensorsSpec => {
    const shape = shapes.get(canonical)!;
    return { name, dtype: hfDtype, shape, data: lazyTensor(elementCount(shape), dtype, values) };
  };
  const tensors = [tensor('model.embed_tokens.weight', 'tokenEmbedding')];
  for (let l = 0; l < c.nLayers; l++) {
    for (const name of layerTensorNamesOf(c)) {
      const canonical = layerTensor(l, name);
      const heads = name === 'wq' || name === 'bq' ? c.nHeads : name === 'wk' || name === 'bk' ? c.nKvHeads : 0;
      const cols = name === 'bq' || name === 'bk' ? 1 : c.dim;
      const permuted = () => permuteForRotateHalf(w.tensor(canonical), cols, heads, c.headDim);
      tensors.push(tensor(`model.layers.${l}.${hfLayerNames[name]}`, canonical, heads ? permuted : undefined));
    }
  }
  tensors.push(tensor('model.norm.weight', 'finalNorm'));
  if (!c.tiedEmbeddings) tensors.push(tensor('lm_head.weight', 'classifier'));
  return tensors;
}

/** What Hugging Face's convert scripts do to q/k rows (a bias is rows of 1 column): within each head, row 2i + p moves to p * headDim/2 + i. */
function permuteForRotateHalf(data: Float32Array, cols: number, nHeads: number, headDim: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let r = 0; r < headDim; r++) {
      const target = h * headDim + (r % 2) * (headDim / 2) + Math.floor(r / 2);
      out.set(data.subarray((h * headDim + r) * cols, (h * headDim + r + 1) * cols), target * cols);
    }
  }
  return out;
}
