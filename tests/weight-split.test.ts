// Weights larger than one buffer: with a forced tiny buffer limit every matrix and the embedding is
// split by rows across buffers, and stories260K must give the same logits and tokens as unsplit,
// on the single-sequence model and the batched one, in f32 and from a file's own q8_0 blocks.
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/engine/errors.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription, Tensor } from '../src/engine/model/types.ts';
import { packMatrix } from '../src/engine/quant/formats.ts';
import { referenceGenerate } from '../src/engine/reference/forward.ts';
import { BatchModel } from '../src/engine/runtime/batch-model.ts';
import { GpuModel } from '../src/engine/runtime/gpu-model.ts';
import { rowsPerPart } from '../src/engine/runtime/weights.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { maxAbsDiff, testGpu } from './helpers/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));
// 5000 bytes: 19 rows of 64 f32 (a part boundary inside every head and block), 4 rows of 172.
const tinyLimit = 5000;

/** Greedy logits and tokens of `steps` positions from BOS on the single-sequence model. */
async function singleRun(model: GpuModel, steps: number): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  const tokens = [1];
  const logits: Float32Array[] = [];
  for (let pos = 0; pos < steps; pos++) {
    model.submitStep(pos, tokens[pos], { kind: 'argmax' });
    tokens.push(await model.readToken());
    logits.push(await model.readLogits());
  }
  return { tokens, logits };
}

/** Greedy tokens from the batched model: the prompt in one prefill step, then one row per step. */
async function batchGreedy(model: BatchModel, prompt: readonly number[], newTokens: number): Promise<number[]> {
  const blockTable = [0, 1, 2, 3]; // blockSize 16: 64 positions
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

/** The model with every matrix carrying its q8_0 blocks, as a Q8_0 GGUF's tensors do. */
function withQ8Blocks(model: ModelDescription): ModelDescription {
  const tensors = new Map<string, Tensor>();
  for (const [name, tensor] of model.tensors) {
    const packed = tensor.shape.length === 2 ? packMatrix(tensor.data, tensor.shape[0], tensor.shape[1], 'q8_0') : undefined;
    tensors.set(name, packed ? { ...tensor, sourceDtype: 'q8_0', packed } : tensor);
  }
  // Keep the tied classifier the embedding's own tensor object.
  tensors.set('classifier', tensors.get('tokenEmbedding')!);
  return { ...model, tensors };
}

describe('weights split across buffers (stories260K, 5000-byte limit)', () => {
  let description: ModelDescription;

  beforeAll(async () => {
    description = await loadModelDescription(models, 'stories260K/stories260K.bin');
  });

  it('splits every tensor into parts under the limit, rows in order', async () => {
    const model = await GpuModel.create(await testGpu(), description, { maxContext: 32, matvecVariant: 'naive', maxBindingBytes: tinyLimit });
    try {
      const embedding = model.weights.parts('tokenEmbedding');
      expect(embedding.map((p) => p.shape.rows)).toEqual([...Array(26).fill(19), 18]); // 512 rows
      expect(model.weights.parts('classifier')).toBe(embedding); // tied, f32: the same buffers
      const w1 = model.weights.parts('layers.0.w1'); // (172, 64): 19 rows a part
      expect(w1.map((p) => p.firstRow)).toEqual([0, 19, 38, 57, 76, 95, 114, 133, 152, 171]);
      const w2 = model.weights.parts('layers.0.w2'); // (64, 172): 7 rows of 688 bytes a part
      expect(w2.map((p) => p.shape.rows)).toEqual([7, 7, 7, 7, 7, 7, 7, 7, 7, 1]);
      for (const name of ['tokenEmbedding', 'layers.3.wq', 'layers.3.w2']) {
        for (const part of model.weights.parts(name)) expect(part.buffer.size).toBeLessThanOrEqual(tinyLimit);
      }
      expect(model.weights.shape('layers.0.w2')).toMatchObject({ rows: 64, cols: 172 });
      expect(() => model.weights.get('layers.0.w2')).toThrow(/is a matrix/);
    } finally {
      model.destroy();
    }
  });

  it('single sequence: the same greedy tokens and logits within 1e-5, in f32 and from q8_0 blocks', async () => {
    const gpu = await testGpu();
    for (const [format, model] of [['f32', description], ['q8_0', withQ8Blocks(description)]] as const) {
      const runs = [];
      for (const maxBindingBytes of [undefined, tinyLimit]) {
        const gpuModel = await GpuModel.create(gpu, model, { maxContext: 32, matvecVariant: 'naive', weightFormat: format, maxBindingBytes });
        try {
          runs.push(await singleRun(gpuModel, 8));
        } finally {
          gpuModel.destroy();
        }
      }
      const [whole, split] = runs;
      expect(split.tokens, format).toEqual(whole.tokens);
      split.logits.forEach((logits, pos) => expect(maxAbsDiff(logits, whole.logits[pos]), `${format} position ${pos}`).toBeLessThan(1e-5));
    }
  });

  it('batched: the same greedy tokens as unsplit and as the reference, through several-row steps', async () => {
    const gpu = await testGpu();
    const prompt = [1, 403, 407, 261, 378, 281]; // BOS, "Once upon a time" and one more token
    const results = [];
    for (const maxBindingBytes of [undefined, tinyLimit]) {
      const batch = await BatchModel.create(gpu, description, { blockSize: 16, contextLength: 64, pageCount: 4, maxRows: 8, maxSequences: 1, maxBindingBytes });
      try {
        results.push(await batchGreedy(batch, prompt, 12));
      } finally {
        batch.destroy();
      }
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[1]).toEqual(referenceGenerate(description, prompt, 12, 0, 0, [], 64));
  });

  it('a row larger than the limit cannot be split and says so', () => {
    expect(rowsPerPart('f32', 100, 64, 5000, 'w')).toBe(19);
    expect(rowsPerPart('q4_0', 100, 64, 5000, 'w')).toBe(100);
    expect(() => rowsPerPart('f32', 100, 2048, 4096, 'layers.0.w2')).toThrow(RequestError);
    expect(() => rowsPerPart('f32', 100, 2048, 4096, 'layers.0.w2')).toThrow(/layers\.0\.w2: one row of 8192 bytes \(2048 f32 weights\) is larger than the 4096-byte buffer limit/);
  });
});
