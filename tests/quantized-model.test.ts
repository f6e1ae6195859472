// stories260K with quantized weights: how far q8_0 and q4_0 move the model from f32. Greedy runs are
// compared token by token, and the next-token distributions along the f32 greedy path (teacher
// forcing) by their KL divergence, the quality number the lab shows beside the speed number.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../src/engine/index.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription } from '../src/engine/model/types.ts';
import { GpuModel } from '../src/engine/runtime/gpu-model.ts';
import { packMatrix, quantLayout, unpackMatrix, type PackedMatrix, type QuantFormat, type WeightFormat } from '../src/engine/quant/formats.ts';
import { ggufTensor, type GgufFile } from '../src/engine/model/gguf.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';
import { testGpu } from './helpers/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));
const length = 200;

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logSum = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - logSum);
}

/** KL(p || q) in nats from log-probabilities. */
function kl(logP: Float64Array, logQ: Float64Array): number {
  let total = 0;
  for (let i = 0; i < logP.length; i++) total += Math.exp(logP[i]) * (logP[i] - logQ[i]);
  return total;
}

/** Next-token log-probabilities at every position of `tokens` (teacher forcing). */
async function distributions(description: ModelDescription, format: WeightFormat, tokens: number[]): Promise<Float64Array[]> {
  const model = await GpuModel.create(await testGpu(), description, { weightFormat: format, maxContext: tokens.length + 1 });
  try {
    const result: Float64Array[] = [];
    for (let pos = 0; pos < tokens.length; pos++) {
      model.submitStep(pos, tokens[pos], { kind: 'argmax' }, 0);
      await model.readToken(0);
      result.push(logSoftmax(await model.readLogits()));
    }
    return result;
  } finally {
    model.destroy();
  }
}

async function greedy(format: WeightFormat): Promise<number[]> {
  const engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', weightFormat: format });
  try {
    return (await engine.generate({ prompt: '', maxTokens: length, temperature: 0, seed: 0 })).tokens;
  } finally {
    engine.dispose();
  }
}

function firstDifference(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

describe('stories260K quantized', () => {
  let description: ModelDescription;
  let f32Tokens: number[];
  let f32Distributions: Float64Array[];
  const report: string[] = [];

  beforeAll(async () => {
    description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    f32Tokens = await greedy('f32');
    f32Distributions = await distributions(description, 'f32', f32Tokens.slice(0, length));
  });

  afterAll(() => console.log(`stories260K quality vs f32 (greedy ${length} tokens from BOS):\n${report.join('\n')}`));

  it.each([
    // format, generated tokens that must match f32 before the first difference, mean KL bound (nats)
    ['f16', length, 1e-4],
    ['q8_0', 50, 5e-3],
    ['q4_0', 10, 0.15],
  ] as const)('%s: greedy agrees with f32 for >= %i tokens; mean KL < %f', async (format, mustAgree, klBound) => {
    const tokens = await greedy(format);
    const agreed = firstDifference(tokens, f32Tokens) - 1; // generated tokens before the first difference (BOS excluded)
    const same = tokens.slice(1).filter((t, i) => t === f32Tokens[i + 1]).length;
    const quantized = await distributions(description, format, f32Tokens.slice(0, length));
    const kls = f32Distributions.map((p, i) => kl(p, quantized[i]));
    const meanKl = kls.reduce((a, b) => a + b, 0) / kls.length;
    report.push(`  ${format}: first ${agreed} generated tokens identical, ${same}/${length} positions equal, mean KL ${meanKl.toExponential(2)} nats, max KL ${Math.max(...kls).toExponential(2)}`);
    expect(agreed).toBeGreaterThanOrEqual(mustAgree);
    expect(meanKl).toBeLessThan(klBound);
  });
});

describe('quantized source weights (GGUF Q8_0/Q4_0)', () => {
  it('a GGUF Q8_0 tensor keeps its blocks and dequantizes them for the reference', () => {
    const values = Float32Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i) * 0.1);
    const packed = packMatrix(values, 4, 64, 'q8_0');
    const blocks = ggufBlocks(packed);
    const gguf: GgufFile = { file: 'test.gguf', version: 3, metadata: new Map(), tensors: new Map(), data: blocks };
    const tensor = ggufTensor(gguf, { name: 'blk.0.attn_q.weight', dims: [64, 4], type: 8, offset: 0 });
    expect(tensor.sourceDtype).toBe('q8_0');
    expect(tensor.shape).toEqual([4, 64]);
    expect(Array.from(tensor.packed!.data)).toEqual(Array.from(packed.data));
    expect(Array.from(tensor.data)).toEqual(Array.from(unpackMatrix(packed)));
  });

  it.each(['q8_0', 'q4_0'] as const)('%s blocks from the file run as they are, without re-quantizing', async (format) => {
    const description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    // As the GGUF loader would give them, except that `data` is scaled: re-quantizing it would
    // change the blocks (and the tokens); using the file's blocks must not.
    const fromFile: ModelDescription = { ...description, tensors: new Map(description.tensors) };
    for (const [name, tensor] of description.tensors) {
      const [rows, cols] = tensor.shape;
      if (!/\.(wq|wk|wv|wo|w1|w3)$/.test(name)) continue;
      const packed = packMatrix(tensor.data, rows, cols, format);
      fromFile.tensors.set(name, { shape: tensor.shape, sourceDtype: format, packed, data: unpackMatrix(packed).map((v) => v * 2) });
    }
    const run = async (model: ModelDescription) => {
      const gpuModel = await GpuModel.create(await testGpu(), model, { weightFormat: format, maxContext: 64 });
      const tokens = [1];
      try {
        for (let pos = 0; pos < 40; pos++) {
          gpuModel.submitStep(pos, tokens[pos], { kind: 'argmax' }, 0);
          tokens.push(await gpuModel.readToken(0));
        }
      } finally {
        gpuModel.destroy();
      }
      return tokens;
    };
    expect(await run(fromFile)).toEqual(await run(description));
  });
});

/** GGUF's on-disk Q8_0/Q4_0 blocks (f16 scale, then the quants) of a packed matrix. */
function ggufBlocks(m: PackedMatrix): Uint8Array {
  const { blocksPerRow, wordsPerBlock, scalesOffset } = quantLayout(m.format as QuantFormat, m.rows, m.paddedCols);
  const quantBytes = 4 * wordsPerBlock;
  const bytes = new Uint8Array(m.data.buffer);
  const blocks = m.rows * blocksPerRow;
  const out = new Uint8Array(blocks * (2 + quantBytes));
  for (let g = 0; g < blocks; g++) {
    out.set(bytes.subarray(4 * scalesOffset + 2 * g, 4 * scalesOffset + 2 * g + 2), g * (2 + quantBytes));
    out.set(bytes.subarray(g * quantBytes, (g + 1) * quantBytes), g * (2 + quantBytes) + 2);
  }
  return out;
}
