// Hugging Face folders: config.json (LlamaForCausalLM or Qwen2ForCausalLM) and the weights, either
// one model.safetensors or shards listed by model.safetensors.index.json.
// Hugging Face's Llama rotates halves (x[i], x[i + head_dim/2]) where llama2.c and GGUF rotate
// adjacent pairs (x[2i], x[2i+1]); its converters permute the q_proj/k_proj rows so both give the
// same model. We undo that permutation (of the q/k biases too) so our single RoPE convention
// (adjacent pairs) holds.

import { ModelFormatError } from '../errors.ts';
import type { FileSource } from './files.ts';
import { parseSafetensors, safetensorsTensor } from './safetensors.ts';
import { type LayerTensorName, type ModelConfig, type ModelDescription, type RopeScaling, type Tensor, layerTensor, layerTensorNamesOf } from './types.ts';

/** The index of a sharded checkpoint; its weight_map names the shard file of every tensor. */
export const shardIndexName = 'model.safetensors.index.json';

/** Reads `${dir}/config.json` and the weights: `${dir}/model.safetensors`, or the shards its index lists ('' is the source's root). */
export async function loadHuggingFace(files: FileSource, dir: string): Promise<ModelDescription> {
  const configPath = joinPath(dir, 'config.json');
  const config = parseHfConfig(new TextDecoder().decode(await files.read(configPath)), files.describe(configPath));
  const indexPath = joinPath(dir, shardIndexName);
  const sharded = await files.exists(indexPath);
  const shards = sharded
    ? parseShardIndex(new TextDecoder().decode(await files.read(indexPath)), files.describe(indexPath))
    : new Map([['model.safetensors', null]]);
  const wanted = hfNames(config);
  const { decoded, present } = await readWeights(files, dir, shards, (name) => wanted.has(name));
  // Without lm_head.weight the classifier is the embedding, whatever tie_word_embeddings says.
  if (!present.has('lm_head.weight')) config.tiedEmbeddings = true;
  const where = files.describe(joinPath(dir, sharded ? shardIndexName : 'model.safetensors'));
  return { config, tensors: hfTensors(decoded, present, config, where), source: `${files.describe(dir)} (Hugging Face)` };
}

function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir.replace(/\/+$/, '')}/${name}`;
}

// ---------------------------------------------------------------------------------------------
// Weights: one file or shards

/** A tensor as read from its file, with the file's name for error messages. */
interface FileTensor {
  tensor: Tensor;
  file: string;
}

/**
 * Shard file → the tensor names the index assigns to it. A shard must lie in the index's folder: a
 * path that climbs out of it is refused.
 */
export function parseShardIndex(text: string, file: string): Map<string, Set<string> | null> {
  const problem = (what: string) => new ModelFormatError(file, what);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw problem(`is not valid JSON: ${(error as Error).message}`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw problem('has no weight_map object');
  const shards = new Map<string, Set<string>>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '' || shard.startsWith('/') || shard.split('/').includes('..')) {
      throw problem(`weight_map gives tensor ${tensor} the shard ${JSON.stringify(shard)}, not a file name in this folder`);
    }
    if (!shards.has(shard)) shards.set(shard, new Set());
    shards.get(shard)!.add(tensor);
  }
  if (shards.size === 0) throw problem('weight_map lists no tensors');
  return shards;
}

/**
 * Reads the shards one at a time, so only one file's bytes are held at once, and decodes the
 * tensors `wanted` accepts. Returns those, and every tensor name found with its file. A missing
 * shard, a tensor the index places in a shard that lacks it, or one found twice is a
 * ModelFormatError naming the file.
 */
async function readWeights(
  files: FileSource,
  dir: string,
  /** Shard file → its tensors by the index; null for the single model.safetensors (all of its tensors). */
  shards: Map<string, Set<string> | null>,
  wanted: (name: string) => boolean,
): Promise<{ decoded: Map<string, FileTensor>; present: Map<string, string> }> {
  const decoded = new Map<string, FileTensor>();
  const present = new Map<string, string>();
  for (const [shard, listed] of shards) {
    const path = joinPath(dir, shard);
    const file = files.describe(path);
    if (listed && !(await files.exists(path))) throw new ModelFormatError(file, `shard ${shard}, listed in ${shardIndexName}, is missing`);
    const st = parseSafetensors(await files.read(path), file);
    for (const name of listed ?? st.tensors.keys()) {
      if (!st.tensors.has(name)) throw new ModelFormatError(file, `tensor ${name} is not in this shard, though ${shardIndexName} places it here`);
      if (present.has(name)) throw new ModelFormatError(file, `tensor ${name} is also in ${present.get(name)}`);
      // Older checkpoints save RoPE's inv_freq buffer; the engine computes it from rope_theta.
      if (name.endsWith('.rotary_emb.inv_freq')) continue;
      present.set(name, file);
      if (wanted(name)) decoded.set(name, { tensor: safetensorsTensor(st, name), file });
    }
  }
  return { decoded, present };
}

// ---------------------------------------------------------------------------------------------
// config.json

/** The config.json families we load: Qwen2 is a Llama whose q/k/v projections have biases. */
const families = [
  { modelType: 'llama', architecture: 'LlamaForCausalLM', attentionBias: false },
  { modelType: 'qwen2', architecture: 'Qwen2ForCausalLM', attentionBias: true },
] as const;

/**
 * Parses a LlamaForCausalLM or Qwen2ForCausalLM config.json; missing optional keys take
 * transformers' defaults. Settings that would change the computation in ways the engine does not
 * implement (sliding-window attention, biases on other projections, other activations, other RoPE
 * scalings) are refused with an error naming the key rather than ignored.
 */
export function parseHfConfig(text: string, file: string): ModelConfig {
  const problem = (what: string) => new ModelFormatError(file, what);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw problem(`is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw problem('is not a JSON object');
  const raw = json as Record<string, unknown>;

  const architectures = Array.isArray(raw.architectures) ? raw.architectures : [];
  const family = families.find((f) => raw.model_type === f.modelType || architectures.includes(f.architecture));
  if (!family) {
    const found = `model_type ${JSON.stringify(raw.model_type)} (architectures ${JSON.stringify(raw.architectures)})`;
    throw problem(`${found} is not supported; only llama (LlamaForCausalLM) and qwen2 (Qwen2ForCausalLM)`);
  }
  if (raw.use_sliding_window === true) throw problem('use_sliding_window is true: sliding-window attention is not supported');
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'silu') throw problem(`hidden_act ${JSON.stringify(raw.hidden_act)} is not supported; only silu (SwiGLU)`);
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (raw[key] === true) throw problem(`${key} is true: biases on the ${key === 'mlp_bias' ? 'feed-forward' : 'attention output'} projections are not supported`);
  }
  const ropeScaling = parseRopeScaling(raw.rope_scaling, problem);

  const required = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size', 'rms_norm_eps'];
  const absent = required.filter((key) => raw[key] === undefined);
  if (absent.length > 0) throw problem(`missing required keys: ${absent.join(', ')}`);

  const number = (key: string, fallback?: number): number => {
    const value = raw[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw problem(`${key} is ${JSON.stringify(value)}, expected a number`);
    return value;
  };
  // eos_token_id may list several stop tokens; the engine stops on the first.
  const firstId = (key: string, fallback: number): number => {
    const value = raw[key] ?? fallback;
    return Array.isArray(value) && value.length > 0 ? (value[0] as number) : (value as number);
  };
  const dim = number('hidden_size');
  const nHeads = number('num_attention_heads');
  const config: ModelConfig = {
    architecture: 'llama',
    dim,
    hiddenDim: number('intermediate_size'),
    nLayers: number('num_hidden_layers'),
    nHeads,
    nKvHeads: number('num_key_value_heads', nHeads),
    headDim: number('head_dim', dim / nHeads),
    vocabSize: number('vocab_size'),
    maxSeqLen: number('max_position_embeddings', 2048),
    ropeTheta: number('rope_theta', 10000),
    rmsEps: number('rms_norm_eps'),
    tiedEmbeddings: raw.tie_word_embeddings === true,
    bosTokenId: firstId('bos_token_id', 1),
    eosTokenId: firstId('eos_token_id', 2),
  };
  if (family.attentionBias) config.attentionBias = true;
  if (ropeScaling) config.ropeScaling = ropeScaling;
  for (const key of ['bosTokenId', 'eosTokenId'] as const) {
    if (!Number.isInteger(config[key])) throw problem(`${key === 'bosTokenId' ? 'bos' : 'eos'}_token_id is not an integer`);
  }
  return config;
}

/**
 * rope_scaling: null, or rope_type (older files: type) "default", means none; "llama3" must carry
 * its four numbers; any other type is refused.
 */
function parseRopeScaling(value: unknown, problem: (what: string) => ModelFormatError): RopeScaling | undefined {
  if (value == null) return undefined;
  const text = JSON.stringify(value);
  if (typeof value !== 'object' || Array.isArray(value)) throw problem(`rope_scaling ${text} is not an object`);
  const raw = value as Record<string, unknown>;
  const type = raw.rope_type ?? raw.type;
  if (type === 'default') return undefined;
  if (type !== 'llama3') throw problem(`rope_scaling ${text} is not supported (only rope_type "llama3")`);
  const keys = ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'] as const;
  const bad = keys.filter((key) => typeof raw[key] !== 'number' || !Number.isFinite(raw[key]) || (raw[key] as number) <= 0);
  if (bad.length > 0) throw problem(`rope_scaling ${text} needs positive numbers for ${bad.join(', ')}`);
  const [factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings] = keys.map((key) => raw[key] as number);
  if (highFreqFactor <= lowFreqFactor) throw problem(`rope_scaling ${text}: high_freq_factor must exceed low_freq_factor`);
  return { kind: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings };
}

// ---------------------------------------------------------------------------------------------
// Tensors

/** Hugging Face's name of each per-layer tensor (model.layers.N.<name>); the writers use it too. */
export const hfLayerNames: Record<LayerTensorName, string> = {
  attnNorm: 'input_layernorm.weight',
  wq: 'self_attn.q_proj.weight',
  wk: 'self_attn.k_proj.weight',
  wv: 'self_attn.v_proj.weight',
  wo: 'self_attn.o_proj.weight',
  ffnNorm: 'post_attention_layernorm.weight',
  w1: 'mlp.gate_proj.weight',
  w2: 'mlp.down_proj.weight',
  w3: 'mlp.up_proj.weight',
  bq: 'self_attn.q_proj.bias',
  bk: 'self_attn.k_proj.bias',
  bv: 'self_attn.v_proj.bias',
};

/** Hugging Face name → canonical name of every tensor the config needs (lm_head only when untied). */
function hfNames(c: ModelConfig): Map<string, string> {
  const names = new Map([
    ['model.embed_tokens.weight', 'tokenEmbedding'],
    ['model.norm.weight', 'finalNorm'],
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    for (const name of layerTensorNamesOf(c)) names.set(`model.layers.${l}.${hfLayerNames[name]}`, layerTensor(l, name));
  }
  if (!c.tiedEmbeddings) names.set('lm_head.weight', 'classifier');
  return names;
}

/** Rows of each q/k tensor are in rotate-half order: (heads it splits into). */
function rotateHalfHeads(canonical: string, c: ModelConfig): number {
  const name = canonical.slice(canonical.lastIndexOf('.') + 1);
  if (name === 'wq' || name === 'bq') return c.nHeads;
  if (name === 'wk' || name === 'bk') return c.nKvHeads;
  return 0;
}

/**
 * The canonical tensors of `c` from what the files hold. `present` names every tensor in the files
 * (decoded or not) with its file; `where` names the weights (model.safetensors or the index) in the
 * error for a missing tensor. lm_head.weight saved alongside a tied embedding is not used.
 */
function hfTensors(decoded: Map<string, FileTensor>, present: Map<string, string>, c: ModelConfig, where: string): Map<string, Tensor> {
  const names = hfNames(c);
  const unexpected = [...present.keys()].filter((name) => !names.has(name) && name !== 'lm_head.weight');
  if (unexpected.length > 0) throw new ModelFormatError(present.get(unexpected[0])!, `unexpected tensors: ${unexpected.join(', ')}`);

  const tensors = new Map<string, Tensor>();
  for (const [hfName, canonical] of names) {
    const found = decoded.get(hfName);
    if (!found) throw new ModelFormatError(where, `tensor ${hfName} is missing`);
    const heads = rotateHalfHeads(canonical, c);
    tensors.set(canonical, heads ? unpermuteRows(found.tensor, heads, c.headDim, found.file) : found.tensor);
  }
  if (c.tiedEmbeddings) tensors.set('classifier', tensors.get('tokenEmbedding')!);
  return tensors;
}

/**
 * Undoes Hugging Face's rotate-half row permutation of a q_proj/k_proj matrix (nHeads * headDim,
 * cols) or bias (nHeads * headDim): within each head, HF row p * headDim/2 + i holds our row 2i + p.
 */
function unpermuteRows(tensor: Tensor, nHeads: number, headDim: number, file: string): Tensor {
  const [rows, cols = 1] = tensor.shape;
  if (tensor.shape.length > 2 || rows !== nHeads * headDim || headDim % 2 !== 0) {
    throw new ModelFormatError(
      file,
      `q/k projection of shape [${tensor.shape.join(', ')}] does not split into ${nHeads} heads of ${headDim} rows`,
    );
  }
  const half = headDim / 2;
  const data = new Float32Array(tensor.data.length); // (nHeads * headDim, cols)
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let p = 0; p < 2; p++) {
        const ours = h * headDim + 2 * i + p;
        const hf = h * headDim + p * half + i;
        data.set(tensor.data.subarray(hf * cols, (hf + 1) * cols), ours * cols);
      }
    }
  }
  return { ...tensor, data };
}
