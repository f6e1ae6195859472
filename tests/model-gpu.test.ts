// The whole model on the GPU against the CPU reference: stories260K from every file format.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../src/engine/index.ts';
import { DeviceLostError, ModelFormatError, RequestError } from '../src/engine/errors.ts';
import { requestGpu } from '../src/engine/gpu/device.ts';
import { generate } from '../src/engine/runtime/generate.ts';
import { parseLlama2cTokenizer } from '../src/engine/tokenizer/llama2c.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription } from '../src/engine/model/types.ts';
import { ReferenceModel, referenceGenerate } from '../src/engine/reference/forward.ts';
import { GpuModel } from '../src/engine/runtime/gpu-model.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';
import { maxAbsDiff, nmse, testGpu } from './helpers/gpu.ts';

const modelsDir = fileURLToPath(new URL('../../shared/models/', import.meta.url));
const models = directorySource(modelsDir);
const tok512 = { files: models, path: 'stories260K/tok512.bin' };
const story = 'Once upon a time, there was a little girl named Lily.';

describe('stories260K on the GPU', () => {
  let description: ModelDescription;
  let engine: Engine;
  let referenceTokens: number[];

  beforeAll(async () => {
    description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin' });
    const { bosTokenId, eosTokenId } = description.config;
    referenceTokens = referenceGenerate(description, [bosTokenId], 200, 0, 0, [eosTokenId, bosTokenId]);
  });

  it('logits of the first positions agree with the CPU reference (NMSE < 1e-9, max |Δ| < 1e-3)', async () => {
    const gpuModel = await GpuModel.create(await testGpu(), description, { maxContext: 64 });
    const reference = new ReferenceModel(description, 64);
    try {
      for (let pos = 0; pos < 12; pos++) {
        const token = referenceTokens[pos];
        gpuModel.submitStep(pos, token, { kind: 'argmax' }, 0);
        expect(await gpuModel.readToken(0)).toBe(referenceTokens[pos + 1]);
        const logits = await gpuModel.readLogits();
        const expected = reference.forward(token, pos);
        expect(nmse(logits, expected)).toBeLessThan(1e-9);
        expect(maxAbsDiff(logits, expected)).toBeLessThan(1e-3);
      }
    } finally {
      gpuModel.destroy();
    }
  });

  it('greedy 200 tokens from BOS equal the CPU reference and tell the known story', async () => {
    const streamed: string[] = [];
    const result = await engine.generate({ prompt: '', maxTokens: 200, temperature: 0, seed: 0 }, (event) => streamed.push(event.text));
    expect(result.tokens).toEqual(referenceTokens);
    expect(result.tokens).toHaveLength(201);
    expect(result.text.startsWith(story)).toBe(true);
    expect(streamed.join('')).toBe(result.text);
    expect(result).toMatchObject({ promptTokens: 1, generatedTokens: 200, stopReason: 'length' });
    expect(result.decodeTokensPerSecond).toBeGreaterThan(0);
  });

  it('samples with temperature exactly like the reference for the same seed', async () => {
    const { bosTokenId, eosTokenId } = description.config;
    for (const seed of [1, 2, 3]) {
      const result = await engine.generate({ prompt: 'Tom had a dog', maxTokens: 40, temperature: 1.0, seed });
      const prompt = result.tokens.slice(0, result.promptTokens);
      expect(result.tokens).toEqual(referenceGenerate(description, prompt, 40, 1.0, seed, [eosTokenId, bosTokenId]));
    }
  });

  it('continues a prompt: BOS, the prompt tokens, then the reference continuation', async () => {
    const result = await engine.generate({ prompt: 'Once upon a time', maxTokens: 30, temperature: 0, seed: 0 });
    expect(result.tokens.slice(0, result.promptTokens)).toEqual([1, 403, 407, 261, 378]);
    expect(result.tokens).toEqual(referenceTokens.slice(0, result.promptTokens + 30));
  });

  it('refuses a prompt past the context with a clear error and keeps working', async () => {
    const long = 'the dog ran and '.repeat(200);
    await expect(engine.generate({ prompt: long, maxTokens: 5, temperature: 0, seed: 0 })).rejects.toThrow(RequestError);
    await expect(engine.generate({ prompt: long, maxTokens: 5, temperature: 0, seed: 0 })).rejects.toThrow(/the context holds 512/);
    const result = await engine.generate({ prompt: '', maxTokens: 12, temperature: 0, seed: 0 });
    expect(result.tokens).toEqual(referenceTokens.slice(0, 13));
  });

  it('stops at the end of the context', async () => {
    const small = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', maxContext: 16 });
    try {
      const result = await small.generate({ prompt: '', maxTokens: 100, temperature: 0, seed: 0 });
      expect(result.tokens).toEqual(referenceTokens.slice(0, 16));
      expect(result.stopReason).toBe('context');
    } finally {
      small.dispose();
    }
  });

  it('stops early when cancelled and returns what it generated', async () => {
    const controller = new AbortController();
    const result = await engine.generate({ prompt: '', maxTokens: 200, temperature: 0, seed: 0 }, (event) => {
      if (event.position === 10) controller.abort();
    }, controller.signal);
    expect(result.stopReason).toBe('cancelled');
    expect(result.tokens).toEqual(referenceTokens.slice(0, 11));
  });
});

describe('device loss', () => {
  it('surfaces as DeviceLostError, and a new engine works afterwards', async () => {
    const description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    const gpu = await requestGpu(nodeGpu());
    const model = await GpuModel.create(gpu, description, { maxContext: 32 });
    const tokenizer = parseLlama2cTokenizer(await models.read('stories260K/tok512.bin'), 'tok512.bin', 512);
    gpu.device.destroy();
    await expect(generate(model, tokenizer, { prompt: '', maxTokens: 5, temperature: 0, seed: 0 })).rejects.toThrow(DeviceLostError);
    const engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin' });
    expect((await engine.generate({ prompt: '', maxTokens: 3, temperature: 0, seed: 0 })).tokens).toEqual([1, 403, 407, 261]);
    engine.dispose();
  });
});

describe('every model format gives the same tokens on the GPU', () => {
  it('.bin, .gguf and the Hugging Face folder generate identical sequences, equal to the reference', async () => {
    const sequences = new Map<string, number[]>();
    let promptTokens = 0;
    for (const [entry, tokenizer] of [
      ['stories260K/stories260K.bin', undefined],
      ['stories260K/stories260K.gguf', undefined],
      ['stories260K-hf', tok512],
    ] as const) {
      const engine = await createEngine({ gpu: nodeGpu(), files: models, entry, tokenizer });
      try {
        const result = await engine.generate({ prompt: 'Lily went', maxTokens: 60, temperature: 0, seed: 0 });
        sequences.set(entry, result.tokens);
        promptTokens = result.promptTokens;
      } finally {
        engine.dispose();
      }
    }
    const [bin, gguf, hf] = sequences.values();
    const description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    expect(bin).toEqual(referenceGenerate(description, bin.slice(0, promptTokens), 60, 0, 0, [2, 1]));
    expect(gguf).toEqual(bin);
    expect(hf).toEqual(bin);
  });

  it('a Hugging Face folder without a tokenizer gives an error naming the folder', async () => {
    const error = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K-hf' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as Error).message).toContain(join(modelsDir, 'stories260K-hf', 'tokenizer.json'));
    expect((error as Error).message).toMatch(/no tokenizer found/);
  });
});
