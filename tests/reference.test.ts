import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/engine/errors.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription } from '../src/engine/model/types.ts';
import { ReferenceModel, referenceGenerate } from '../src/engine/reference/forward.ts';
import { addInPlace, argmax, attention, kvHeadOf, matvec, rmsnorm, rope, softmax, swiglu } from '../src/engine/reference/ops.ts';
import { pcg, uniform } from '../src/engine/reference/rng.ts';
import { sampleToken } from '../src/engine/reference/sample.ts';
import { parseLlama2cTokenizer } from '../src/engine/tokenizer/llama2c.ts';
import { directorySource } from '../src/node/fs-source.ts';

const stories = directorySource(fileURLToPath(new URL('../../shared/models/stories260K/', import.meta.url)));

const f32 = (values: number[]) => Float32Array.from(values);
const bos = 1;
const eos = 2;

// The first 20 tokens llama2.c run.c gives greedily from BOS (checked with an independent numpy port).
const greedyFromBos = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337];

describe('reference ops', () => {
  it('matvec multiplies a row-major (rows, cols) matrix by a vector', () => {
    const out = new Float32Array(2);
    matvec(out, f32([1, 2, 3, 4, 5, 6]), f32([1, 0, -1]), 2, 3);
    expect([...out]).toEqual([-2, -2]);
  });

  it('rmsnorm scales by the root mean square, then by the weight', () => {
    const out = new Float32Array(2);
    rmsnorm(out, f32([3, 4]), f32([1, 2]), 0); // rms = sqrt((9 + 16) / 2)
    expect(out[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
    expect(out[1]).toBeCloseTo((2 * 4) / Math.sqrt(12.5), 6);
  });

  it('rope turns adjacent pairs, the first pair fastest', () => {
    // headDim 4: pair 0 turns by pos * 1, pair 1 by pos * 10000^(-2/4) = pos * 0.01; two heads turn alike.
    const vec = f32([1, 0, 0, 1, 1, 0, 0, 1]);
    rope(vec, 2, 4, 1, 10000);
    const head = [Math.cos(1), Math.sin(1), -Math.sin(0.01), Math.cos(0.01)];
    [...vec].forEach((value, i) => expect(value).toBeCloseTo(head[i % 4], 6));

    const atZero = f32([0.5, -2, 3, 4]);
    rope(atZero, 1, 4, 0, 10000);
    expect([...atZero]).toEqual([0.5, -2, 3, 4]);
  });

  it('maps query heads to KV heads in consecutive groups (GQA)', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((h) => kvHeadOf(h, 8, 4))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect([0, 1, 2].map((h) => kvHeadOf(h, 3, 1))).toEqual([0, 0, 0]);
    expect([0, 1, 2].map((h) => kvHeadOf(h, 3, 3))).toEqual([0, 1, 2]);
  });

  it('attention reads each query head from its KV head', () => {
    // 4 query heads, 2 KV heads, headDim 2, one cached position: every weight is 1, so each
    // head's output is its KV head's value row.
    const shape = { nHeads: 4, nKvHeads: 2, headDim: 2 };
    const out = new Float32Array(8);
    attention(out, new Float32Array(1), f32([1, 2, 3, 4, 5, 6, 7, 8]), f32([1, 1, 1, 1]), f32([10, 11, 20, 21]), 0, shape);
    expect([...out]).toEqual([10, 11, 10, 11, 20, 21, 20, 21]);
  });

  it('attention softmaxes scaled scores over positions 0..pos', () => {
    // One head, headDim 2: scores q.k / sqrt(2) are 0 and 2 / sqrt(2) at positions 0 and 1.
    const shape = { nHeads: 1, nKvHeads: 1, headDim: 2 };
    const out = new Float32Array(2);
    const keys = f32([0, 0, 2, 0, 99, 99]); // position 2 is not yet valid and must be ignored
    const values = f32([1, 0, 0, 1, 99, 99]);
    attention(out, new Float32Array(3), f32([1, 0]), keys, values, 1, shape);
    const w1 = 1 / (1 + Math.exp(-Math.SQRT2));
    expect(out[0]).toBeCloseTo(1 - w1, 6);
    expect(out[1]).toBeCloseTo(w1, 6);
  });

  it('swiglu is silu(gate) * up', () => {
    const out = new Float32Array(3);
    swiglu(out, f32([0, 1, -1]), f32([2, 2, 2]));
    const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
    [0, 2 * sigmoid(1), -2 * sigmoid(-1)].forEach((value, i) => expect(out[i]).toBeCloseTo(value, 6));
  });

  it('softmax and addInPlace', () => {
    const x = f32([1, 2, 3]);
    softmax(x);
    [0.09003057, 0.24472847, 0.66524096].forEach((value, i) => expect(x[i]).toBeCloseTo(value, 6));
    const sum = f32([1, 2]);
    addInPlace(sum, f32([10, 20]));
    expect([...sum]).toEqual([11, 22]);
  });

  it('argmax takes the lowest index on ties, skips NaN (not -Infinity) and gives 0 when everything is NaN', () => {
    expect(argmax(f32([1, 3, 3]))).toBe(1);
    expect(argmax(f32([NaN, 2, NaN, 5]))).toBe(3);
    expect(argmax(f32([NaN, -1]))).toBe(1);
    expect(argmax(f32([-Infinity, -Infinity]))).toBe(0);
    expect(argmax(f32([NaN, NaN]))).toBe(0);
    expect(argmax(f32([NaN, NaN, -Infinity]))).toBe(2);
  });
});

describe('sampler RNG', () => {
  // An independent BigInt implementation of the same hash.
  const m32 = (x: bigint) => x & 0xffffffffn;
  const pcgBig = (v: bigint): bigint => {
    const state = m32(v * 747796405n + 2891336453n);
    const word = m32(((state >> ((state >> 28n) + 4n)) ^ state) * 277803737n);
    return (word >> 22n) ^ word;
  };

  it('pcg matches a BigInt implementation and known values', () => {
    expect([0, 1, 42, 0xffffffff].map(pcg)).toEqual([129708002, 2831084092, 1223963391, 3861530882]);
    for (const v of [0, 1, 2, 7, 1000, 0x7fffffff, 0x80000000, 0xdeadbeef, 0xffffffff]) {
      expect(pcg(v)).toBe(Number(pcgBig(BigInt(v))));
    }
  });

  it('uniform takes the top 24 bits of pcg(seed ^ pcg(counter))', () => {
    expect(uniform(0, 0)).toBe(0.19039934873580933);
    expect(uniform(42, 1)).toBe(0.514345109462738);
    expect(uniform(42, 2)).toBe(0.9734258055686951);
    expect(uniform(0xffffffff, 7)).toBe(0.43773871660232544);
    for (const [seed, counter] of [[12345, 511], [7, 0], [0xabcdef01, 4096]]) {
      const expected = Number(pcgBig(BigInt(seed) ^ pcgBig(BigInt(counter))) >> 8n) / 16777216;
      expect(uniform(seed, counter)).toBe(expected);
    }
  });
});

describe('sampleToken', () => {
  it('is argmax at temperature 0', () => {
    expect(sampleToken(f32([0, 5, 5, 1]), 0, 0.99)).toBe(1);
  });

  it('picks the first token whose running sum passes u * total', () => {
    // p = [1/3, 1], total 4/3: u = 0.2 -> target 0.267 (inside token 0), u = 0.3 -> target 0.4.
    const logits = f32([0, Math.log(3)]);
    expect(sampleToken(logits, 1, 0.2)).toBe(0);
    expect(sampleToken(logits, 1, 0.3)).toBe(1);
  });

  it('divides by the temperature', () => {
    // T = 0.5: p = [e^-2, 1] = [0.135, 1], total 1.135.
    const logits = f32([0, 1]);
    expect(sampleToken(logits, 0.5, 0.1)).toBe(0); // target 0.114
    expect(sampleToken(logits, 0.5, 0.2)).toBe(1); // target 0.227
  });

  it('takes the first possible token at u = 0 and never a NaN or -inf one', () => {
    expect(sampleToken(f32([-Infinity, 1, 2]), 1, 0)).toBe(1);
    expect(sampleToken(f32([NaN, 0]), 1, 0)).toBe(1);
  });

  it('falls back to the last possible token when rounding leaves the target unreached', () => {
    // p = [1, 1, 1, 0]: target fround((1 - 2^-24) * 3) rounds up to 3, which the running sum never passes.
    const u = 1 - 2 ** -24;
    expect(sampleToken(f32([0, 0, 0, -Infinity]), 1, u)).toBe(2);
  });

  it('falls back to argmax when the maximum is not finite', () => {
    expect(sampleToken(f32([-Infinity, -Infinity]), 1, 0.5)).toBe(0);
    expect(sampleToken(f32([0, Infinity, Infinity]), 1, 0.5)).toBe(1);
  });
});

describe('reference forward pass on stories260K', () => {
  let model: ModelDescription;
  beforeAll(async () => {
    model = await loadModelDescription(stories, 'stories260K.bin');
  });

  it('greedy from BOS tells the known story', async () => {
    const tokenizer = parseLlama2cTokenizer(await stories.read('tok512.bin'), stories.describe('tok512.bin'), model.config.vocabSize);
    const tokens = referenceGenerate(model, [bos], 200, 0, 0, [eos]);
    expect(tokens.slice(1, 21)).toEqual(greedyFromBos);
    expect(tokenizer.decode(tokens)).toMatch(
      /^Once upon a time, there was a little girl named Lily\. She loved to play outside in the park\./,
    );
  });

  it('stops after maxNewTokens, at the end of the context, and after EOS (keeping it)', () => {
    expect(referenceGenerate(model, [bos], 5, 0, 0, [eos])).toEqual([bos, ...greedyFromBos.slice(0, 5)]);
    expect(referenceGenerate(model, [bos], 100, 0, 0, [eos], 8)).toEqual([bos, ...greedyFromBos.slice(0, 7)]);
    // Call the 5th greedy token "EOS": generation ends right after it.
    const stop = greedyFromBos[4];
    expect(referenceGenerate(model, [bos], 100, 0, 0, [stop])).toEqual([bos, ...greedyFromBos.slice(0, 5)]);
  });

  it('continues a prompt exactly as it continued its own greedy output', () => {
    const prompt = [bos, ...greedyFromBos.slice(0, 10)];
    expect(referenceGenerate(model, prompt, 10, 0, 0, [eos])).toEqual([bos, ...greedyFromBos]);
  });

  it('draws the token at position p with uniform(seed, p)', () => {
    // stories260K is so sure of its opening that T = 1 first leaves the greedy path at token 20.
    const seed = 1234;
    const tokens = referenceGenerate(model, [bos], 24, 1, seed, [eos]);
    expect(tokens).toHaveLength(25);
    expect(tokens.slice(1)).not.toEqual(referenceGenerate(model, [bos], 24, 0, seed, [eos]).slice(1));
    const reference = new ReferenceModel(model);
    for (let pos = 0; pos < 24; pos++) {
      const logits = reference.forward(tokens[pos], pos);
      expect(sampleToken(logits, 1, uniform(seed, pos + 1))).toBe(tokens[pos + 1]);
    }
    expect(referenceGenerate(model, [bos], 24, 1, seed, [eos])).toEqual(tokens);
    expect(referenceGenerate(model, [bos], 24, 1, seed + 1, [eos])).not.toEqual(tokens);
  });

  it('gives the same greedy tokens from the GGUF and Hugging Face copies of the model', async () => {
    const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));
    for (const entry of ['stories260K/stories260K.gguf', 'stories260K-hf']) {
      const copy = await loadModelDescription(models, entry);
      expect(referenceGenerate(copy, [bos], 20, 0, 0, [eos]).slice(1)).toEqual(greedyFromBos);
    }
  });

  it('refuses an empty prompt or one past the context', () => {
    expect(() => referenceGenerate(model, [], 1, 0, 0, [eos])).toThrow(RequestError);
    expect(() => referenceGenerate(model, [bos, 5, 6], 1, 0, 0, [eos], 2)).toThrow(RequestError);
  });
});
