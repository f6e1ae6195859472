// Llama variants of real Hub models, on generated weights: Qwen2's q/k/v biases, Llama 3's RoPE
// scaling and an untied classifier, each through the CPU reference and both GPU models; and the
// Hugging Face folders they come in (their config.json, sharded bf16 safetensors).
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/engine/errors.ts';
import { parseHfConfig } from '../src/engine/model/huggingface.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import { ropeInverseFrequencies } from '../src/engine/model/rope-scaling.ts';
import { type ModelConfig, type ModelDescription, layerTensor } from '../src/engine/model/types.ts';
import { concatBytes, huggingFaceShardedFolder, weightsOf } from '../src/engine/model/writers.ts';
import { ReferenceModel, referenceGenerate } from '../src/engine/reference/forward.ts';
import { rope } from '../src/engine/reference/ops.ts';
import { ropeTable } from '../src/engine/kernels/rope.ts';
import { BatchModel } from '../src/engine/runtime/batch-model.ts';
import { GpuModel } from '../src/engine/runtime/gpu-model.ts';
import { maxAbsDiff, nmse, testGpu } from './helpers/gpu.ts';
import { memorySource } from './helpers/memory-source.ts';
import { randomModel, tinyConfig, writeHuggingFace } from './helpers/model-files.ts';

// Real config.json files (trimmed of keys the engine does not read), as published on the Hub.
const qwen25Config = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const llama32Config = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

const parse = (json: object) => parseHfConfig(JSON.stringify(json), 'config.json');

describe('config.json of Qwen2 and Llama 3', () => {
  it('Qwen2.5-0.5B-Instruct: a Llama with attention biases', () => {
    expect(parse(qwen25Config)).toEqual({
      architecture: 'llama', dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, headDim: 64, vocabSize: 151936,
      maxSeqLen: 32768, ropeTheta: 1000000, rmsEps: 1e-6, tiedEmbeddings: true, bosTokenId: 151643, eosTokenId: 151645, attentionBias: true,
    });
  });

  it('Llama-3.2-1B-Instruct: llama3 RoPE scaling, first of its stop tokens', () => {
    const config = parse(llama32Config);
    expect(config.ropeScaling).toEqual({ kind: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(config).toMatchObject({ dim: 2048, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, vocabSize: 128256, ropeTheta: 500000, eosTokenId: 128001 });
    expect(config.attentionBias).toBeUndefined();
    // Older files name the type "type"; "default" is no scaling at all.
    expect(parse({ ...llama32Config, rope_scaling: { ...llama32Config.rope_scaling, rope_type: undefined, type: 'llama3' } }).ropeScaling?.kind).toBe('llama3');
    expect(parse({ ...llama32Config, rope_scaling: { rope_type: 'default' } }).ropeScaling).toBeUndefined();
  });

  it('refuses what it would otherwise compute wrong, naming the key', () => {
    const refused: [object, RegExp][] = [
      [{ ...qwen25Config, use_sliding_window: true }, /use_sliding_window is true/],
      [{ ...qwen25Config, hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
      [{ ...llama32Config, attention_bias: true }, /attention_bias is true/],
      [{ ...llama32Config, mlp_bias: true }, /mlp_bias is true/],
      [{ ...llama32Config, rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling \{"rope_type":"yarn","factor":4\} is not supported \(only rope_type "llama3"\)/],
      [{ ...llama32Config, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /needs positive numbers for low_freq_factor, high_freq_factor, original_max_position_embeddings/],
      [{ ...llama32Config, model_type: 'mistral', architectures: ['MistralForCausalLM'] }, /model_type "mistral" .* is not supported; only llama .* and qwen2/],
    ];
    for (const [json, message] of refused) {
      const error = (() => {
        try {
          return parse(json);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ModelFormatError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

describe('Llama 3 RoPE scaling on the CPU', () => {
  // headDim 8, theta 10^4: frequencies 1, 0.1, 0.01, 0.001 (wavelengths 2π / f: 6.3, 63, 628, 6283).
  // With an original context of 256, low 1 and high 8: stretch past 256, keep below 32, blend between.
  const scaling = { kind: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 8, originalMaxPositionEmbeddings: 256 } as const;

  it('keeps short wavelengths, stretches long ones by the factor and blends the band between', () => {
    const f = ropeInverseFrequencies(8, 10000, scaling);
    expect(f[0]).toBeCloseTo(1, 15);
    const smooth = (256 / ((2 * Math.PI) / 0.1) - 1) / (8 - 1); // 0.4392...
    expect(f[1]).toBeCloseTo((1 - smooth) * 0.025 + smooth * 0.1, 15);
    expect(f[1]).toBeCloseTo(0.05794, 5);
    expect(f[2]).toBeCloseTo(0.01 / 4, 15);
    expect(f[3]).toBeCloseTo(0.001 / 4, 15);
    expect(Array.from(ropeInverseFrequencies(8, 10000))).toEqual([1, 0.1, 0.01, 0.001].map((v, i) => 10000 ** ((-2 * i) / 8)));
  });

  it('the reference rope and the GPU table turn pairs by position times the scaled frequency', () => {
    const vec = Float32Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? 1 : 0)); // every pair (1, 0)
    rope(vec, 1, 8, 100, 10000, scaling);
    const f = ropeInverseFrequencies(8, 10000, scaling);
    for (let i = 0; i < 4; i++) {
      expect(vec[2 * i]).toBeCloseTo(Math.cos(100 * f[i]), 6);
      expect(vec[2 * i + 1]).toBeCloseTo(Math.sin(100 * f[i]), 6);
    }
    const table = ropeTable(128, 8, 10000, scaling); // (pos, pair, cos|sin)
    expect(table[(100 * 4 + 3) * 2]).toBeCloseTo(Math.cos(100 * 0.00025), 6);
    expect(table[(100 * 4 + 3) * 2 + 1]).toBeCloseTo(Math.sin(100 * 0.00025), 6);
    expect(table[(100 * 4 + 3) * 2 + 1]).not.toBeCloseTo(Math.sin(100 * 0.001), 3);
  });
});

// Small models of each variant: 2 layers, GQA 4/2 heads of 8, vocab 32.
const variantShapes: Partial<ModelConfig> = { dim: 32, hiddenDim: 48, nHeads: 4, nKvHeads: 2, headDim: 8, vocabSize: 32, maxSeqLen: 32 };
const variants: Record<string, ModelConfig> = {
  'Qwen2 q/k/v biases': tinyConfig({ ...variantShapes, attentionBias: true, tiedEmbeddings: true }),
  'Llama 3 RoPE scaling': tinyConfig({ ...variantShapes, ropeScaling: { kind: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 8, originalMaxPositionEmbeddings: 256 } }),
  'untied classifier': tinyConfig({ ...variantShapes, tiedEmbeddings: false }),
};

/** A copy of `model` with the named tensors replaced. */
function withTensors(model: ModelDescription, config: ModelConfig, data: Record<string, Float32Array>): ModelDescription {
  const tensors = new Map(model.tensors);
  for (const [name, values] of Object.entries(data)) tensors.set(name, { shape: [values.length], sourceDtype: 'f32', data: values });
  if (!config.attentionBias) for (const name of [...tensors.keys()]) if (/\.b[qkv]$/.test(name)) tensors.delete(name);
  return { ...model, config, tensors };
}

describe('Qwen2 attention biases on the CPU', () => {
  const config = variants['Qwen2 q/k/v biases'];
  const biased = randomModel(config, 3);
  const zeros = (name: 'bq' | 'bk' | 'bv', n: number) => Object.fromEntries([0, 1].map((l) => [layerTensor(l, name), new Float32Array(n)]));
  const qDim = config.nHeads * config.headDim;
  const kvDim = config.nKvHeads * config.headDim;
  const logitsAt = (model: ModelDescription, tokens: number[]) => {
    const reference = new ReferenceModel(model, 8);
    let logits = new Float32Array(0);
    tokens.forEach((token, pos) => (logits = Float32Array.from(reference.forward(token, pos))));
    return logits;
  };

  it('zero biases are the plain Llama; each bias changes the logits where it can', () => {
    const plain = withTensors(biased, { ...config, attentionBias: undefined }, {});
    const zeroed = withTensors(biased, config, { ...zeros('bq', qDim), ...zeros('bk', kvDim), ...zeros('bv', kvDim) });
    expect(logitsAt(zeroed, [1, 5, 9])).toEqual(logitsAt(plain, [1, 5, 9]));

    // At position 0 attention has one position to weigh, so q and k (and their biases) cannot matter; v's can.
    const onlyQk = withTensors(biased, config, { ...zeros('bv', kvDim) });
    expect(logitsAt(onlyQk, [1])).toEqual(logitsAt(plain, [1]));
    expect(maxAbsDiff(logitsAt(onlyQk, [1, 5]), logitsAt(plain, [1, 5]))).toBeGreaterThan(1e-3);
    const onlyV = withTensors(biased, config, { ...zeros('bq', qDim), ...zeros('bk', kvDim) });
    expect(maxAbsDiff(logitsAt(onlyV, [1]), logitsAt(plain, [1]))).toBeGreaterThan(1e-3);
  });
});

describe('Hugging Face folders of the variants', () => {
  it('round-trip bit-identical: biases and q/k rows un-permuted, rope_scaling and tying kept', async () => {
    for (const [name, config] of Object.entries(variants)) {
      const model = randomModel(config, 5);
      const folder = writeHuggingFace(model, 'bf16');
      const loaded = await loadModelDescription(memorySource(folder), '');
      expect(loaded.config, name).toEqual(config);
      for (const [tensor, expected] of model.tensors) expect(loaded.tensors.get(tensor)!.data, `${name}: ${tensor}`).toEqual(expected.data);
      expect(loaded.tensors.get('classifier') === loaded.tensors.get('tokenEmbedding'), name).toBe(config.tiedEmbeddings);
    }
  });

  it('loads a sharded bf16 checkpoint through its index, and names a missing or misplaced shard', async () => {
    const model = randomModel(variants['Qwen2 q/k/v biases'], 6);
    const folder = huggingFaceShardedFolder(weightsOf(model), 'bf16', 3);
    expect([...folder.shards.keys()]).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const files: Record<string, Uint8Array | string> = { 'config.json': folder['config.json'], 'model.safetensors.index.json': folder['model.safetensors.index.json'] };
    for (const [name, chunks] of folder.shards) files[name] = concatBytes(chunks);
    const sizes = [...folder.shards.keys()].map((name) => (files[name] as Uint8Array).length);
    expect(Math.max(...sizes) / Math.min(...sizes)).toBeLessThan(3);

    const loaded = await loadModelDescription(memorySource(files, 'hub://qwen/'), '');
    expect(loaded.config).toEqual(model.config);
    for (const [tensor, expected] of model.tensors) expect(loaded.tensors.get(tensor)!.data, tensor).toEqual(expected.data);
    expect(loaded.tensors.get('layers.1.bk')!.sourceDtype).toBe('bf16');

    const { 'model-00002-of-00003.safetensors': _dropped, ...missing } = files;
    await expect(loadModelDescription(memorySource(missing, 'hub://qwen/'), '')).rejects.toThrow(
      /^hub:\/\/qwen\/model-00002-of-00003\.safetensors: shard model-00002-of-00003\.safetensors, listed in model\.safetensors\.index\.json, is missing/,
    );
    const index = JSON.parse(folder['model.safetensors.index.json']) as { weight_map: Record<string, string> };
    const moved = { ...index, weight_map: { ...index.weight_map, 'model.norm.weight': 'model-00001-of-00003.safetensors' } };
    await expect(loadModelDescription(memorySource({ ...files, 'model.safetensors.index.json': JSON.stringify(moved) }, 'hub://qwen/'), '')).rejects.toThrow(
      /model-00001-of-00003\.safetensors: tensor model\.norm\.weight is not in this shard/,
    );
    const escaping = { weight_map: { ...index.weight_map, 'model.norm.weight': '../other/model.safetensors' } };
    await expect(loadModelDescription(memorySource({ ...files, 'model.safetensors.index.json': JSON.stringify(escaping) }, 'hub://qwen/'), '')).rejects.toThrow(
      /shard "\.\.\/other\/model\.safetensors", not a file name in this folder/,
    );
  });
});

/** Greedy tokens from the batched model: the prompt as one prefill step, then one row per step. */
async function batchGreedy(model: BatchModel, prompt: readonly number[], newTokens: number): Promise<number[]> {
  const blockTable = [0, 1, 2, 3]; // blockSize 8: 32 positions
  const sample = { seed: 0, temperature: 0 };
  const tokens = [...prompt];
  let [next] = await model.step(prompt.map((token, position) => ({ blockTable, token, position, sample: position === prompt.length - 1 ? sample : null })));
  tokens.push(next);
  while (tokens.length < prompt.length + newTokens) {
    [next] = await model.step([{ blockTable, token: next, position: tokens.length - 1, sample }]);
    tokens.push(next);
  }
  return tokens;
}

describe('the variants on the GPU agree with the CPU reference', () => {
  const prompt = [1, 7, 12, 3, 25];

  for (const [name, config] of Object.entries(variants)) {
    it(`${name}: single-sequence logits and greedy tokens, batched greedy tokens`, async () => {
      const model = randomModel(config, 11);
      const gpu = await testGpu();
      const expected = referenceGenerate(model, prompt, 10, 0, 0, [], 32);

      const single = await GpuModel.create(gpu, model, { maxContext: 32, matvecVariant: 'naive' });
      const reference = new ReferenceModel(model, 32);
      try {
        for (let pos = 0; pos < expected.length - 1; pos++) {
          single.submitStep(pos, expected[pos], { kind: 'argmax' });
          const token = await single.readToken();
          if (pos >= prompt.length - 1) expect(token, `position ${pos}`).toBe(expected[pos + 1]);
          const want = reference.forward(expected[pos], pos);
          const logits = await single.readLogits();
          expect(nmse(logits, want)).toBeLessThan(1e-10);
          expect(maxAbsDiff(logits, want)).toBeLessThan(1e-4);
        }
      } finally {
        single.destroy();
      }

      const batch = await BatchModel.create(gpu, model, { blockSize: 8, contextLength: 32, pageCount: 4, maxRows: 8, maxSequences: 1 });
      try {
        expect(await batchGreedy(batch, prompt, 10)).toEqual(expected);
      } finally {
        batch.destroy();
      }
    });
  }

  it('the scaling is not a no-op here: without it the reference picks other tokens', () => {
    const config = variants['Llama 3 RoPE scaling'];
    const model = randomModel(config, 11);
    const unscaled = { ...model, config: { ...config, ropeScaling: undefined } };
    const logits = (m: ModelDescription) => {
      const reference = new ReferenceModel(m, 32);
      let last = new Float32Array(0);
      for (let pos = 0; pos < 20; pos++) last = Float32Array.from(reference.forward((pos * 7) % 32, pos));
      return last;
    };
    expect(maxAbsDiff(logits(model), logits(unscaled))).toBeGreaterThan(1e-3);
  });
});
