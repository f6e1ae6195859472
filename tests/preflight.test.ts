// The preflight at real model shapes against a small, made-up set of limits: the byte counts are
// worked out by hand here from the shapes, not from the code under test.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseHfConfig } from '../src/engine/model/huggingface.ts';
import { formatBytes, modelMemoryEstimate, preflight } from '../src/engine/model/preflight.ts';
import type { ModelConfig } from '../src/engine/model/types.ts';

const smollmPath = fileURLToPath(new URL('../../shared/models/smollm2-135m-tokenizer/config.json', import.meta.url));
const smollm2 = parseHfConfig(readFileSync(smollmPath, 'utf8'), smollmPath);

// meta-llama/Llama-3.2-1B-Instruct's shapes.
const llama32: ModelConfig = {
  architecture: 'llama', dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, vocabSize: 128256,
  maxSeqLen: 131072, ropeTheta: 500000, rmsEps: 1e-5, tiedEmbeddings: true, bosTokenId: 128000, eosTokenId: 128001,
  ropeScaling: { kind: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
};

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
// A small adapter: 256 MiB buffers, 128 MiB bindings.
const limits = { maxBufferSize: 256 * MiB, maxStorageBufferBindingSize: 128 * MiB };

describe('modelMemoryEstimate', () => {
  it('SmolLM2-135M: weights per format, KV cache at 2048 tokens', () => {
    // Per layer: q, o 576 x 576; k, v 192 x 576; gate, up 1536 x 576; down 576 x 1536.
    const perLayer = 2 * 576 * 576 + 2 * 192 * 576 + 3 * 1536 * 576; // 3,538,944 weights
    const projections = 30 * perLayer;
    const embedding = 49152 * 576;
    const vectors = 4 * (30 * 2 * 576 + 576);
    const f32 = modelMemoryEstimate(smollm2, 'f32', 2048);
    expect(f32.matrixBytes).toBe(4 * projections); // the tied classifier reads the embedding
    expect(f32.embeddingBytes).toBe(4 * embedding);
    expect(f32.vectorBytes).toBe(vectors);
    expect(f32.weightBytes).toBe(4 * projections + 4 * embedding + vectors); // 538 MB
    expect(f32.kvCacheBytes).toBe(2 * 30 * 2048 * 192 * 4); // 90 MiB
    expect(f32.largestTensor).toEqual({ name: 'tokenEmbedding', bytes: 4 * embedding });

    const q4 = modelMemoryEstimate(smollm2, 'q4_0', 2048);
    // 18 bytes per 32 weights; the tied classifier gets its own q4_0 copy.
    expect(q4.matrixBytes).toBe(((projections + embedding) * 18) / 32);
    expect(q4.embeddingBytes).toBe(4 * embedding);
    expect(modelMemoryEstimate(smollm2, 'q8_0', 2048).matrixBytes).toBe(((projections + embedding) * 34) / 32);
    expect(modelMemoryEstimate(smollm2, 'f16', 2048).matrixBytes).toBe(2 * (projections + embedding));
    expect(q4.totalBytes).toBe(q4.weightBytes + q4.kvCacheBytes + q4.activationBytes);
    expect(q4.activationBytes).toBeLessThan(2 * MiB);
  });

  it('Qwen2 biases count as vectors', () => {
    const plain = modelMemoryEstimate({ ...smollm2, attentionBias: undefined }, 'f16', 256);
    const biased = modelMemoryEstimate({ ...smollm2, attentionBias: true }, 'f16', 256);
    expect(biased.vectorBytes - plain.vectorBytes).toBe(4 * 30 * (576 + 2 * 192));
  });
});

describe('preflight', () => {
  it('SmolLM2-135M fits every format in 1 GiB on the small adapter', () => {
    const verdicts = preflight(smollm2, limits, 1 * GiB, 2048);
    expect(verdicts.map((v) => [v.format, v.fits])).toEqual([['f32', true], ['f16', true], ['q8_0', true], ['q4_0', true]]);
    expect(verdicts[3].message).toMatch(/^q4_0: fits, [\d.]+ MiB of weights \+ 90\.0 MiB of KV cache \(2048 tokens\) \+ [\d.]+ (KiB|MiB) of activations = [\d.]+ MiB of about 1\.00 GiB free$/);
  });

  it('Llama-3.2-1B: too big for 1 GiB in any format; in 3 GiB only the quantized formats fit', () => {
    expect(preflight(llama32, limits, 1 * GiB, 2048).every((v) => !v.fits)).toBe(true);
    const verdicts = preflight(llama32, limits, 3 * GiB, 2048);
    expect(verdicts.map((v) => [v.format, v.fits])).toEqual([['f32', false], ['f16', false], ['q8_0', true], ['q4_0', true]]);
    const f32 = verdicts[0];
    // Projections 16 x 60,817,408 weights + the 1,002 MiB f32 embedding (the tied classifier reads it).
    expect(f32.estimate.weightBytes).toBe(4 * 16 * 60817408 + 4 * 128256 * 2048 + 4 * (16 * 2 * 2048 + 2048));
    expect(f32.problems).toEqual([`it needs about ${formatBytes(f32.estimate.totalBytes)} but about 3.00 GiB of GPU memory is free`]);
    expect(f32.message).toMatch(/^f32: does not fit: it needs about 4\.7\d GiB but about 3\.00 GiB of GPU memory is free \(/);
    // The 1,002 MiB embedding is far over the 128 MiB binding, but it splits: it is not a problem.
    expect(f32.estimate.largestTensor).toEqual({ name: 'tokenEmbedding', bytes: 4 * 128256 * 2048 });
  });

  it('names a KV cache too large for one buffer and the context that would fit', () => {
    // 16 layers x 512 K values x 4 bytes = 32 KiB per token: 128 MiB holds 4096 tokens.
    const [q4] = preflight(llama32, limits, 64 * GiB, 8192, ['q4_0']);
    expect(q4.fits).toBe(false);
    expect(q4.problems).toEqual(['the key cache is one buffer of 256 MiB, more than the 128 MiB one buffer may hold; a context of at most 4096 tokens would fit']);
    expect(preflight(llama32, limits, 64 * GiB, 4096, ['q4_0'])[0].fits).toBe(true);
  });

  it('refuses a matrix whose single row is over the buffer limit', () => {
    const [f32] = preflight(llama32, { maxBufferSize: 16 * 1024, maxStorageBufferBindingSize: 1 * GiB }, 64 * GiB, 8, ['f32']);
    // down_proj rows are 8192 f32 weights: 32 KiB, over a 16 KiB buffer; so is the 501 KiB logits buffer.
    expect(f32.problems).toEqual([
      'one matrix row takes 32.0 KiB, more than the 16.0 KiB one buffer may hold, so its matrix cannot be split to fit',
      'the logits buffer is one buffer of 501 KiB, more than the 16.0 KiB one buffer may hold',
    ]);
  });
});
