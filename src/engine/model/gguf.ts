// GGUF (v2, v3): a header, typed metadata key/values, tensor infos, then an aligned data section.
// Layout (all little-endian):
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count
//   kv_count x { string key, u32 value_type, value }       string = u64 length + UTF-8 bytes
//   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to general.alignment (default 32), then the data section; offsets are relative to it.
// ne[0] is the innermost (fastest-varying) dimension, so a row-major (rows, cols) matrix has
// ne = [cols, rows]. llama.cpp's Llama tensors keep Q/K rows in the adjacent-pair RoPE order.

import { quantBlock, unpackMatrix, type QuantFormat } from '../quant/formats.ts';
import { dequantizeKQuant, kQuantBlock, kQuantTypes, packedFromGguf } from '../quant/gguf-quant.ts';
import { ModelFormatError } from '../errors.ts';
import { ByteReader, decodeTensorData, dtypeBytes, elementCount } from './bytes.ts';
import {
  type LayerTensorName,
  type ModelConfig,
  type ModelDescription,
  type FloatDtype,
  type Tensor,
  layerTensor,
  layerTensorNames,
} from './types.ts';

// ---------------------------------------------------------------------------------------------
// Container

export type GgufNumericArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array;
export type GgufArray = GgufNumericArray | string[] | boolean[] | GgufArray[];
/** 64-bit integers are bigints; every other number is a number. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

export interface GgufTensorInfo {
  name: string;
  /** ne: innermost dimension first (ne[0] = columns of a matrix). */
  dims: number[];
  /** ggml_type number (0 = F32, 1 = F16, ...). */
  type: number;
  /** Byte offset inside the data section. */
  offset: number;
}

export interface GgufFile {
  /** The file's name for error messages. */
  file: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  /** The data section: from the first aligned byte after the tensor infos to the end of the file. */
  data: Uint8Array;
}

const magic = 0x46554747; // "GGUF" read as a little-endian u32
const defaultAlignment = 32;
/** GGML_MAX_DIMS */
const maxDims = 4;

export function parseGguf(bytes: Uint8Array, file: string): GgufFile {
  const reader = new ByteReader(bytes, file);
  const found = reader.u32('the GGUF magic');
  if (found !== magic) {
    const text = String.fromCharCode(...bytes.subarray(0, 4)).replace(/[^\x20-\x7e]/g, '?');
    reader.fail(`bad magic "${text}" (0x${found.toString(16).padStart(8, '0')}), expected "GGUF": not a GGUF file`);
  }
  const version = reader.u32('the GGUF version');
  if (version !== 2 && version !== 3) reader.fail(`GGUF version ${version} is not supported (only 2 and 3)`);
  const tensorCount = reader.u64('the tensor count');
  const kvCount = reader.u64('the metadata count');

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = readString(reader, `metadata key ${i}`);
    metadata.set(key, readValue(reader, reader.u32(`the type of metadata ${key}`), `metadata ${key}`));
  }

  const tensors = new Map<string, GgufTensorInfo>();
  for (let i = 0; i < tensorCount; i++) {
    const info = readTensorInfo(reader, i);
    if (tensors.has(info.name)) reader.fail(`tensor ${info.name} is listed twice`);
    tensors.set(info.name, info);
  }

  const alignment = readAlignment(metadata, reader);
  const dataStart = Math.ceil(reader.offset / alignment) * alignment;
  if (dataStart > bytes.length) reader.fail(`file is ${bytes.length} bytes but its data section starts at byte ${dataStart}`);
  for (const info of tensors.values()) {
    if (info.offset % alignment !== 0) {
      reader.fail(`tensor ${info.name} offset ${info.offset} is not a multiple of the alignment ${alignment}`);
    }
  }
  return { file, version, metadata, tensors, data: bytes.subarray(dataStart) };
}

const utf8 = new TextDecoder();

function readString(reader: ByteReader, what: string): string {
  const length = reader.u64(`the length of ${what}`);
  return utf8.decode(reader.take(length, what));
}

// GGUF metadata value types with a fixed size, by type id: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
// 6 f32, 7 bool, 10 u64, 11 i64, 12 f64 (8 = string and 9 = array are handled apart).
interface FixedType {
  size: number;
  scalar(view: DataView, offset: number): number | bigint | boolean;
  /** Wraps `bytes`, a fresh copy of the array (Uint8Array.prototype.slice even for a Node Buffer), booleans becoming a boolean[]. */
  array(bytes: Uint8Array): GgufNumericArray | boolean[];
}

const fixedTypes = new Map<number, FixedType>([
  [0, { size: 1, scalar: (v, o) => v.getUint8(o), array: (b) => new Uint8Array(b.buffer) }],
  [1, { size: 1, scalar: (v, o) => v.getInt8(o), array: (b) => new Int8Array(b.buffer) }],
  [2, { size: 2, scalar: (v, o) => v.getUint16(o, true), array: (b) => new Uint16Array(b.buffer) }],
  [3, { size: 2, scalar: (v, o) => v.getInt16(o, true), array: (b) => new Int16Array(b.buffer) }],
  [4, { size: 4, scalar: (v, o) => v.getUint32(o, true), array: (b) => new Uint32Array(b.buffer) }],
  [5, { size: 4, scalar: (v, o) => v.getInt32(o, true), array: (b) => new Int32Array(b.buffer) }],
  [6, { size: 4, scalar: (v, o) => intendedDecimal(v.getFloat32(o, true)), array: (b) => new Float32Array(b.buffer) }],
  [7, { size: 1, scalar: (v, o) => v.getUint8(o) !== 0, array: (b) => Array.from(b, (x) => x !== 0) }],
  [10, { size: 8, scalar: (v, o) => v.getBigUint64(o, true), array: (b) => new BigUint64Array(b.buffer) }],
  [11, { size: 8, scalar: (v, o) => v.getBigInt64(o, true), array: (b) => new BigInt64Array(b.buffer) }],
  [12, { size: 8, scalar: (v, o) => v.getFloat64(o, true), array: (b) => new Float64Array(b.buffer) }],
]);
const stringType = 8;
const arrayType = 9;

function readValue(reader: ByteReader, type: number, what: string): GgufValue {
  if (type === stringType) return readString(reader, what);
  if (type === arrayType) return readArray(reader, what);
  const fixed = fixedTypes.get(type) ?? reader.fail(`${what} has unknown value type ${type}`);
  reader.need(fixed.size, what);
  const value = fixed.scalar(reader.view, reader.offset);
  reader.offset += fixed.size;
  return value;
}

function readArray(reader: ByteReader, what: string): GgufArray {
  const type = reader.u32(`the element type of ${what}`);
  const count = reader.u64(`the length of ${what}`);
  const fixed = fixedTypes.get(type);
  if (fixed) return fixed.array(Uint8Array.prototype.slice.call(reader.take(count * fixed.size, what)));
  // Each string or nested array takes at least 8 bytes (its length): check the count before
  // allocating, so a corrupt count cannot ask for billions of elements.
  if (type === stringType || type === arrayType) reader.need(count * 8, what);
  if (type === stringType) return Array.from({ length: count }, (_, i) => readString(reader, `${what}[${i}]`));
  if (type === arrayType) return Array.from({ length: count }, (_, i) => readArray(reader, `${what}[${i}]`));
  return reader.fail(`${what} is an array of unknown value type ${type}`);
}

/**
 * f32 metadata such as an RMS epsilon of 1e-5 reads back as 9.999999747e-6. Keep the decimal the
 * writer meant (the shortest one that rounds to the same f32), so configs compare equal across formats.
 */
function intendedDecimal(value: number): number {
  for (let digits = 1; digits <= 9 && Number.isFinite(value); digits++) {
    const decimal = Number(value.toPrecision(digits));
    if (Math.fround(decimal) === value) return decimal;
  }
  return value;
}

function readTensorInfo(reader: ByteReader, index: number): GgufTensorInfo {
  const name = readString(reader, `the name of tensor ${index}`);
  const nDims = reader.u32(`the dimension count of tensor ${name}`);
  if (nDims > maxDims) reader.fail(`tensor ${name} has ${nDims} dimensions; GGUF allows at most ${maxDims}`);
  const dims = Array.from({ length: nDims }, (_, d) => reader.u64(`dimension ${d} of tensor ${name}`));
  const type = reader.u32(`the type of tensor ${name}`);
  const offset = reader.u64(`the offset of tensor ${name}`);
  return { name, dims, type, offset };
}

function readAlignment(metadata: Map<string, GgufValue>, reader: ByteReader): number {
  const value = metadata.get('general.alignment') ?? defaultAlignment;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || (value & (value - 1)) !== 0) {
    reader.fail(`general.alignment is ${String(value)}, expected a power of two`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Tensors

/** ggml_type numbers and names (ggml.h), for error messages about types we cannot decode. */
const ggmlTypeNames: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1',
  10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16',
  34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

/** ggml types we decode, with the dtype they map to. */
const decodableTypes = new Map<number, FloatDtype>([
  [0, 'f32'],
  [1, 'f16'],
  [30, 'bf16'],
]);

/** ggml block-quantized types kept as they are: block size in weights and bytes. */
const quantizedTypes = new Map<number, { dtype: QuantFormat; blockBytes: number }>([
  [8, { dtype: 'q8_0', blockBytes: 34 }],
  [2, { dtype: 'q4_0', blockBytes: 18 }],
]);

/**
 * Decodes one tensor to f32 (Q8_0 / Q4_0 ones also keep their blocks; K-quants are dequantized,
 * see gguf-quant.ts); the shape is row-major (ne reversed).
 */
export function ggufTensor(gguf: GgufFile, info: GgufTensorInfo): Tensor {
  const typeName = ggmlTypeNames[info.type] ?? 'unknown';
  const dtype = decodableTypes.get(info.type);
  const quantized = quantizedTypes.get(info.type);
  const kQuant = kQuantTypes.get(info.type);
  if (!dtype && !quantized && !kQuant) {
    throw new ModelFormatError(gguf.file, `tensor ${info.name} has type ${info.type} (${typeName}); only F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K are supported`);
  }
  const shape = [...info.dims].reverse();
  if (quantized && (shape.length !== 2 || shape[1] % quantBlock !== 0)) {
    throw new ModelFormatError(gguf.file, `tensor ${info.name} is ${typeName} with shape [${shape.join(', ')}]; its rows must be a multiple of ${quantBlock} weights`);
  }
  if (kQuant && (info.dims[0] ?? 0) % kQuantBlock !== 0) {
    throw new ModelFormatError(gguf.file, `tensor ${info.name} has type ${info.type} (${typeName}) with rows of ${info.dims[0]} weights; ${typeName} needs a multiple of ${kQuantBlock}`);
  }
  const elements = elementCount(info.dims);
  const size = quantized ? (elements / quantBlock) * quantized.blockBytes : kQuant ? (elements / kQuantBlock) * kQuant.blockBytes : elements * dtypeBytes[dtype!];
  if (info.offset + size > gguf.data.length) {
    throw new ModelFormatError(
      gguf.file,
      `tensor ${info.name} (${info.dims.join(' x ')} ${typeName}) needs bytes ${info.offset}..${info.offset + size} ` +
        `of the data section, which is only ${gguf.data.length} bytes`,
    );
  }
  const bytes = gguf.data.subarray(info.offset, info.offset + size);
  if (quantized) {
    const packed = packedFromGguf(bytes, info.type, shape[0], shape[1]);
    return { shape, sourceDtype: quantized.dtype, data: unpackMatrix(packed), packed };
  }
  if (kQuant) return { shape, sourceDtype: kQuant.name, data: dequantizeKQuant(bytes, info.type, elements) };
  return { shape, sourceDtype: dtype!, data: decodeTensorData(bytes, dtype!) };
}

// ---------------------------------------------------------------------------------------------
// Metadata helpers

function metaNumber(gguf: GgufFile, key: string): number | undefined {
  const value = gguf.metadata.get(key);
  if (value === undefined) return undefined;
  if (typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  if (typeof value !== 'number') {
    throw new ModelFormatError(gguf.file, `metadata ${key} is ${describeValue(value)}, expected a number`);
  }
  return value;
}

function requireNumber(gguf: GgufFile, key: string): number {
  return metaNumber(gguf, key) ?? missing(gguf, key);
}

function metaString(gguf: GgufFile, key: string): string | undefined {
  const value = gguf.metadata.get(key);
  if (value === undefined || typeof value === 'string') return value;
  throw new ModelFormatError(gguf.file, `metadata ${key} is ${describeValue(value)}, expected a string`);
}

function missing(gguf: GgufFile, key: string): never {
  throw new ModelFormatError(gguf.file, `metadata ${key} is missing`);
}

function describeValue(value: GgufValue): string {
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return `an array of ${value.length}`;
  return `${typeof value} ${String(value)}`;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer data

/** What the tokenizer module needs from a GGUF's embedded vocabulary. */
export interface GgufVocabulary {
  tokens: string[];
  /** SentencePiece merge scores; zeros when the file has none (BPE vocabularies). */
  scores: Float32Array;
  /** llama.cpp token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte). */
  tokenTypes?: Int32Array;
  /** BPE merges ("a b"), present for tokenizer.ggml.model "gpt2". */
  merges?: string[];
  bosId: number;
  eosId: number;
  /** tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), ... */
  model: string;
}

export function ggufVocabulary(gguf: GgufFile): GgufVocabulary {
  const model = metaString(gguf, 'tokenizer.ggml.model') ?? missing(gguf, 'tokenizer.ggml.model');
  const tokens = stringArray(gguf, 'tokenizer.ggml.tokens') ?? missing(gguf, 'tokenizer.ggml.tokens');
  const scores = numericArray(gguf, 'tokenizer.ggml.scores', tokens.length);
  const tokenTypes = numericArray(gguf, 'tokenizer.ggml.token_type', tokens.length);
  // SentencePiece Llama vocabularies put <s> at 1 and </s> at 2 when the file does not say.
  const defaultId = (id: number, key: string) => (model === 'llama' ? id : missing(gguf, key));
  return {
    tokens,
    scores: scores ? Float32Array.from(scores) : new Float32Array(tokens.length),
    tokenTypes: tokenTypes && Int32Array.from(tokenTypes),
    merges: stringArray(gguf, 'tokenizer.ggml.merges'),
    bosId: metaNumber(gguf, 'tokenizer.ggml.bos_token_id') ?? defaultId(1, 'tokenizer.ggml.bos_token_id'),
    eosId: metaNumber(gguf, 'tokenizer.ggml.eos_token_id') ?? defaultId(2, 'tokenizer.ggml.eos_token_id'),
    model,
  };
}

function stringArray(gguf: GgufFile, key: string): string[] | undefined {
  const value = gguf.metadata.get(key);
  if (value === undefined) return undefined;
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new ModelFormatError(gguf.file, `metadata ${key} is ${describeValue(value)}, expected an array of strings`);
}

/** A numeric array of exactly `length` elements (64-bit integer arrays are not expected here). */
function numericArray(gguf: GgufFile, key: string, length: number): ArrayLike<number> | undefined {
  const value = gguf.metadata.get(key);
  if (value === undefined) return undefined;
  const numeric = ArrayBuffer.isView(value) && !(value instanceof BigInt64Array || value instanceof BigUint64Array);
  if (!numeric) throw new ModelFormatError(gguf.file, `metadata ${key} is ${describeValue(value)}, expected an array of numbers`);
  if (value.length !== length) {
    throw new ModelFormatError(gguf.file, `metadata ${key} has ${value.length} entries but tokenizer.ggml.tokens has ${length}`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Llama model

/** GGUF's name of each per-layer tensor (blk.N.<name>); the writers use it too. */
export const ggufLayerNames: Record<LayerTensorName, string> = {
  attnNorm: 'attn_norm.weight',
  wq: 'attn_q.weight',
  wk: 'attn_k.weight',
  wv: 'attn_v.weight',
  wo: 'attn_output.weight',
  ffnNorm: 'ffn_norm.weight',
  w1: 'ffn_gate.weight',
  w2: 'ffn_down.weight',
  w3: 'ffn_up.weight',
  bq: 'attn_q.bias',
  bk: 'attn_k.bias',
  bv: 'attn_v.bias',
};

/** Normalizes a parsed Llama GGUF into the engine's ModelDescription. */
export function ggufModel(gguf: GgufFile): ModelDescription {
  const architecture = metaString(gguf, 'general.architecture') ?? missing(gguf, 'general.architecture');
  if (architecture !== 'llama') {
    throw new ModelFormatError(gguf.file, `architecture "${architecture}" is not supported (only llama)`);
  }
  if (gguf.tensors.has('rope_freqs.weight')) {
    // llama.cpp stores Llama 3's RoPE scaling as per-frequency divisors, not as config values.
    throw new ModelFormatError(gguf.file, 'tensor rope_freqs.weight (Llama 3 RoPE scaling) is not supported in GGUF files; load the Hugging Face safetensors instead');
  }
  const names = canonicalNames(gguf);
  const unexpected = [...gguf.tensors.keys()].filter((name) => !names.has(name));
  if (unexpected.length > 0) throw new ModelFormatError(gguf.file, `unexpected tensors: ${unexpected.join(', ')}`);

  const tensors = new Map<string, Tensor>();
  for (const [ggufName, canonical] of names) {
    const info = gguf.tensors.get(ggufName);
    if (info) tensors.set(canonical, ggufTensor(gguf, info));
    else if (ggufName !== 'output.weight') throw new ModelFormatError(gguf.file, `tensor ${ggufName} is missing`);
  }
  const embedding = tensors.get('tokenEmbedding')!;
  // No output.weight means the classifier is the embedding matrix.
  const tiedEmbeddings = !tensors.has('classifier');
  if (tiedEmbeddings) tensors.set('classifier', embedding);

  const config = ggufConfig(gguf, embedding.shape[0], tiedEmbeddings);
  return { config, tensors, source: `${gguf.file} (GGUF v${gguf.version})` };
}

/** GGUF tensor name → canonical name, for the layer count in the metadata. */
function canonicalNames(gguf: GgufFile): Map<string, string> {
  const names = new Map([
    ['token_embd.weight', 'tokenEmbedding'],
    ['output_norm.weight', 'finalNorm'],
    ['output.weight', 'classifier'],
  ]);
  const nLayers = requireNumber(gguf, 'llama.block_count');
  for (let l = 0; l < nLayers; l++) {
    for (const name of layerTensorNames) names.set(`blk.${l}.${ggufLayerNames[name]}`, layerTensor(l, name));
  }
  return names;
}

function ggufConfig(gguf: GgufFile, vocabSize: number, tiedEmbeddings: boolean): ModelConfig {
  const dim = requireNumber(gguf, 'llama.embedding_length');
  const nHeads = requireNumber(gguf, 'llama.attention.head_count');
  const headDim = metaNumber(gguf, 'llama.attention.key_length') ?? dim / nHeads;
  const ropeDims = metaNumber(gguf, 'llama.rope.dimension_count') ?? headDim;
  if (ropeDims !== headDim) {
    throw new ModelFormatError(
      gguf.file,
      `llama.rope.dimension_count ${ropeDims} differs from the head size ${headDim}; partial RoPE is not supported`,
    );
  }
  return {
    architecture: 'llama',
    dim,
    hiddenDim: requireNumber(gguf, 'llama.feed_forward_length'),
    nLayers: requireNumber(gguf, 'llama.block_count'),
    nHeads,
    nKvHeads: metaNumber(gguf, 'llama.attention.head_count_kv') ?? nHeads,
    headDim,
    vocabSize,
    maxSeqLen: requireNumber(gguf, 'llama.context_length'),
    ropeTheta: metaNumber(gguf, 'llama.rope.freq_base') ?? 10000, // llama.cpp's default
    rmsEps: requireNumber(gguf, 'llama.attention.layer_norm_rms_epsilon'),
    tiedEmbeddings,
    // Llama's SentencePiece ids when the file has no tokenizer metadata.
    bosTokenId: metaNumber(gguf, 'tokenizer.ggml.bos_token_id') ?? 1,
    eosTokenId: metaNumber(gguf, 'tokenizer.ggml.eos_token_id') ?? 2,
  };
}
