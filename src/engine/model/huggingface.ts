// Hugging Face Llama folder: config.json (LlamaForCausalLM) + model.safetensors.
// Hugging Face's Llama rotates halves (x[i], x[i + head_dim/2]) where llama2.c and GGUF rotate
// adjacent pairs (x[2i], x[2i+1]); its converters permute the q_proj/k_proj rows so both give the
// same model. We undo that permutation so our single RoPE convention (adjacent pairs) holds.

import { ModelFormatError } from '../errors.ts';
import type { FileSource } from './files.ts';
import { type SafetensorsFile, parseSafetensors, safetensorsTensor } from './safetensors.ts';
import { type LayerTensorName, type ModelConfig, type ModelDescription, type Tensor, layerTensor, layerTensorNames } from './types.ts';

/** Reads `${dir}/config.json` and `${dir}/model.safetensors` ('' is the source's root). */
export async function loadHuggingFace(files: FileSource, dir: string): Promise<ModelDescription> {
  const configPath = joinPath(dir, 'config.json');
  const config = parseHfConfig(new TextDecoder().decode(await files.read(configPath)), files.describe(configPath));
  const weightsPath = joinPath(dir, 'model.safetensors');
  const weights = parseSafetensors(await files.read(weightsPath), files.describe(weightsPath));
  // Without lm_head.weight the classifier is the embedding, whatever tie_word_embeddings says.
  if (!weights.tensors.has('lm_head.weight')) config.tiedEmbeddings = true;
  return { config, tensors: hfTensors(weights, config), source: `${files.describe(dir)} (Hugging Face)` };
}

function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir.replace(/\/+$/, '')}/${name}`;
}

// ---------------------------------------------------------------------------------------------
// config.json

/** Parses a LlamaForCausalLM config.json; missing optional keys take transformers' LlamaConfig defaults. */
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
  if (raw.model_type !== 'llama' && !architectures.includes('LlamaForCausalLM')) {
    const found = `model_type ${JSON.stringify(raw.model_type)} (architectures ${JSON.stringify(raw.architectures)})`;
    throw problem(`${found} is not supported; only llama (LlamaForCausalLM)`);
  }
  if (raw.rope_scaling != null) throw problem(`rope_scaling ${JSON.stringify(raw.rope_scaling)} is not supported`);

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
  for (const key of ['bosTokenId', 'eosTokenId'] as const) {
    if (!Number.isInteger(config[key])) throw problem(`${key === 'bosTokenId' ? 'bos' : 'eos'}_token_id is not an integer`);
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Tensors

/** Hugging Face Llama's name of each per-layer tensor (model.layers.N.<name>.weight); the writers use it too. */
export const hfLayerNames: Record<LayerTensorName, string> = {
  attnNorm: 'input_layernorm',
  wq: 'self_attn.q_proj',
  wk: 'self_attn.k_proj',
  wv: 'self_attn.v_proj',
  wo: 'self_attn.o_proj',
  ffnNorm: 'post_attention_layernorm',
  w1: 'mlp.gate_proj',
  w2: 'mlp.down_proj',
  w3: 'mlp.up_proj',
};

function hfTensors(st: SafetensorsFile, c: ModelConfig): Map<string, Tensor> {
  const names = new Map([
    ['model.embed_tokens.weight', 'tokenEmbedding'],
    ['model.norm.weight', 'finalNorm'],
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    for (const name of layerTensorNames) names.set(`model.layers.${l}.${hfLayerNames[name]}.weight`, layerTensor(l, name));
  }
  // lm_head.weight may be saved even when tied; then it is the embedding and is not read.
  if (!c.tiedEmbeddings) names.set('lm_head.weight', 'classifier');

  // Older checkpoints save RoPE's inv_freq buffer; the engine computes it from rope_theta.
  const ignored = (name: string) => name.endsWith('.rotary_emb.inv_freq') || name === 'lm_head.weight';
  const unexpected = [...st.tensors.keys()].filter((name) => !names.has(name) && !ignored(name));
  if (unexpected.length > 0) throw new ModelFormatError(st.file, `unexpected tensors: ${unexpected.join(', ')}`);

  const tensors = new Map<string, Tensor>();
  for (const [hfName, canonical] of names) {
    const tensor = safetensorsTensor(st, hfName);
    if (canonical.endsWith('.wq')) tensors.set(canonical, unpermuteRows(tensor, c.nHeads, c.headDim, st.file));
    else if (canonical.endsWith('.wk')) tensors.set(canonical, unpermuteRows(tensor, c.nKvHeads, c.headDim, st.file));
    else tensors.set(canonical, tensor);
  }
  if (c.tiedEmbeddings) tensors.set('classifier', tensors.get('tokenEmbedding')!);
  return tensors;
}

/**
 * Undoes Hugging Face's rotate-half row permutation of a q_proj/k_proj matrix (nHeads * headDim, cols):
 * within each head, HF row p * headDim/2 + i holds our row 2i + p.
 */
function unpermuteRows(tensor: Tensor, nHeads: number, headDim: number, file: string): Tensor {
  const [rows, cols] = tensor.shape;
  if (tensor.shape.length !== 2 || rows !== nHeads * headDim || headDim % 2 !== 0) {
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
