// Speculative decoding: the sampling rule keeps the target's distribution (chi-square on the CPU),
// greedy output equals plain greedy decoding for every draft kind on stories260K, a draft that is the
// target itself is always accepted, and after rollbacks the KV pages hold exactly what a run that
// never saw the rejected tokens holds.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateRequest } from '../src/engine/engine.ts';
import { RequestError } from '../src/engine/errors.ts';
import { createEngine } from '../src/engine/index.ts';
import { SequenceKv } from '../src/engine/kv/page-pool.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription } from '../src/engine/model/types.ts';
import { referenceGenerate } from '../src/engine/reference/forward.ts';
import { uniform } from '../src/engine/reference/rng.ts';
import { keptSet, noFilters } from '../src/engine/reference/sample.ts';
import { drawFrom, samplingDistribution, verifyDraft, type Distribution } from '../src/engine/reference/speculative.ts';
import { BatchModel } from '../src/engine/runtime/batch-model.ts';
import { ModelDraft, NgramDraft, ngramLookup, type Draft } from '../src/engine/runtime/drafts.ts';
import { GpuModel } from '../src/engine/runtime/gpu-model.ts';
import { generateSpeculative } from '../src/engine/runtime/speculative.ts';
import { parseLlama2cTokenizer } from '../src/engine/tokenizer/llama2c.ts';
import type { Tokenizer } from '../src/engine/tokenizer/types.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';
import { testGpu } from './helpers/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));

/** A distribution over `n` tokens from seeded weights (some near zero). */
function randomDistribution(n: number, seed: number): Distribution {
  const w = Float64Array.from({ length: n }, (_, i) => uniform(seed, i) ** 2);
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / total);
}

/** Pearson's chi-square of observed counts against expected probabilities (cells with p = 0 must be empty). */
function chiSquare(counts: number[], p: Distribution, n: number): number {
  let x2 = 0;
  p.forEach((pi, i) => {
    if (pi === 0) {
      expect(counts[i], `token ${i} has probability 0`).toBe(0);
      return;
    }
    x2 += (counts[i] - n * pi) ** 2 / (n * pi);
  });
  return x2;
}

// Critical value of chi-square with 5 degrees of freedom at significance 0.001.
const chiSquare5At001 = 20.515;

describe('the speculative sampling rule (CPU)', () => {
  const vocab = 6;
  const trials = 20000;

  for (const draftKind of ['sampled draft', 'point-mass draft'] as const) {
    it(`emits tokens distributed as the target's, not the draft's (${draftKind}; chi-square, alpha 0.001)`, () => {
      const p = [randomDistribution(vocab, 1), randomDistribution(vocab, 2), randomDistribution(vocab, 3)];
      const q = [randomDistribution(vocab, 11), randomDistribution(vocab, 12)];
      const first = new Array<number>(vocab).fill(0);
      const second = new Array<number>(vocab).fill(0);
      let secondCount = 0;
      for (let t = 0; t < trials; t++) {
        // The draft's tokens: drawn from q, or a fixed guess (prompt lookup) with q a point mass.
        const draft = draftKind === 'sampled draft' ? [drawFrom(q[0], uniform(7, 2 * t)), drawFrom(q[1], uniform(7, 2 * t + 1))] : [2, 4];
        const distributions = draftKind === 'sampled draft' ? q : [null, null];
        const { accepted, next } = verifyDraft(draft, distributions, p, (i) => uniform(8, 3 * t + i), (i) => uniform(9, 3 * t + i));
        const emitted = [...draft.slice(0, accepted), next];
        first[emitted[0]]++;
        if (emitted.length > 1) {
          second[emitted[1]]++;
          secondCount++;
        }
      }
      expect(chiSquare(first, p[0], trials)).toBeLessThan(chiSquare5At001);
      // Given the first guess was kept, the second token follows p_2 (p does not depend on the prefix here).
      expect(secondCount).toBeGreaterThan(1000);
      expect(chiSquare(second, p[1], secondCount)).toBeLessThan(chiSquare5At001);
      // And the draft's own distribution would fail the same test.
      if (draftKind === 'sampled draft') expect(chiSquare(first, q[0], trials)).toBeGreaterThan(chiSquare5At001);
    });
  }

  it('with point-mass targets (greedy) keeps guesses while they equal the argmax, then emits the argmax', () => {
    const onehot = (token: number) => Float64Array.from({ length: vocab }, (_, i) => (i === token ? 1 : 0));
    const target = [onehot(3), onehot(1), onehot(5), onehot(0)];
    const draws = (i: number) => uniform(1, i);
    expect(verifyDraft([3, 1, 5], [null, null, null], target, draws, draws)).toEqual({ accepted: 3, next: 0 });
    expect(verifyDraft([3, 2, 5], [null, null, null], target, draws, draws)).toEqual({ accepted: 1, next: 1 });
    expect(verifyDraft([4, 1, 5], [onehot(4), onehot(1), onehot(5)], target, draws, draws)).toEqual({ accepted: 0, next: 3 });
    expect(verifyDraft([], [], [onehot(2)], draws, draws)).toEqual({ accepted: 0, next: 2 });
  });

  it("samplingDistribution is the sampler's kept set renormalized, and a point mass at temperature 0", () => {
    const logits = Float32Array.from([1, 3, -Infinity, 2.5, NaN, 0.5]);
    const p = samplingDistribution(logits, 0.7, { topK: 3, topP: 1, minP: 0 });
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect([...p].map((x, i) => (x > 0 ? i : -1)).filter((i) => i >= 0)).toEqual([0, 1, 3]);
    const kept = keptSet(logits, 0.7, { topK: 3, topP: 1, minP: 0 });
    expect(p[1] / p[3]).toBeCloseTo(kept.weights[1] / kept.weights[2], 6);
    expect([...samplingDistribution(logits, 0, noFilters)]).toEqual([0, 1, 0, 0, 0, 0]);
  });

  it('prompt lookup proposes what followed the latest earlier occurrence of the longest suffix', () => {
    expect(ngramLookup([1, 5, 6, 7, 8, 2, 5, 6], 3, 3)).toEqual([7, 8, 2]);
    // The latest of two earlier occurrences, and only what exists after it.
    expect(ngramLookup([5, 6, 1, 5, 6, 9, 5, 6], 4, 2)).toEqual([9, 5, 6]);
    // Falls back to shorter suffixes, then to nothing.
    expect(ngramLookup([4, 9, 3, 4], 2, 3)).toEqual([9, 3]);
    expect(ngramLookup([1, 2, 3], 2, 3)).toEqual([]);
  });
});

describe('speculative decoding on stories260K', () => {
  let description: ModelDescription;
  let tokenizer: Tokenizer;
  let target: BatchModel;
  let q4: GpuModel;
  let self: GpuModel;
  const context = () => ({ tokenizer, chatTemplate: null });
  const blockSize = 8;
  // A prompt that repeats itself, so prompt lookup has something to find.
  const prompt = 'Lily saw a big cat. The cat was happy. Lily saw a big cat. The cat';

  const greedyReference = (text: string, maxTokens: number) => referenceGenerate(description, tokenizer.encode(text, { bos: true }), maxTokens, 0, 0, [tokenizer.eosId, tokenizer.bosId]);
  const speculate = (draft: Draft, request: Partial<GenerateRequest>, draftTokens = 4, inspectKv?: (kv: SequenceKv, tokens: readonly number[]) => Promise<void>) =>
    generateSpeculative(target, draft, context(), { prompt, maxTokens: 30, temperature: 0, seed: 0, ...request }, { draftTokens, inspectKv });

  beforeAll(async () => {
    const gpu = await testGpu();
    description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    tokenizer = parseLlama2cTokenizer(await models.read('stories260K/tok512.bin'), 'tok512.bin', 512);
    target = await BatchModel.create(gpu, description, { blockSize, contextLength: 128, pageCount: 64, maxRows: 40, maxSequences: 4 });
    q4 = await GpuModel.create(gpu, description, { maxContext: 128, weightFormat: 'q4_0', matvecVariant: 'naive' });
    self = await GpuModel.create(gpu, description, { maxContext: 128, matvecVariant: 'naive' });
  });

  afterAll(() => {
    target?.destroy();
    q4?.destroy();
    self?.destroy();
  });

  it('greedy output equals plain greedy decoding for every draft kind and draft length', async () => {
    const expected = greedyReference(prompt, 30);
    for (const [draft, k] of [[new NgramDraft(), 4], [new ModelDraft('draft-q4', q4), 3], [new ModelDraft('self', self), 8], [new ModelDraft('draft-q4', q4), 1]] as const) {
      const result = await speculate(draft, {}, k);
      expect(result.tokens, `${draft.name}, k = ${k}`).toEqual(expected);
      const s = result.speculative!;
      expect(s.draft).toBe(draft.name);
      expect(s.accepted, draft.name).toBeGreaterThan(0);
      expect(s.accepted).toBeLessThanOrEqual(s.proposed);
      expect(s.proposed).toBeLessThanOrEqual(k * s.targetPasses);
      expect(s.tokensPerTargetPass).toBeCloseTo(result.generatedTokens / s.targetPasses, 10);
      // Fewer target passes than tokens: the point of it.
      expect(s.targetPasses).toBeLessThan(result.generatedTokens);
    }
  });

  it('accepts every guess when the draft is the target itself, greedy and sampled', async () => {
    for (const request of [{ temperature: 0 }, { temperature: 0.8, topP: 0.9, seed: 3 }, { temperature: 1, seed: 4 }]) {
      const result = await speculate(new ModelDraft('self', self), request, 4);
      const s = result.speculative!;
      expect(s.proposed, JSON.stringify(request)).toBeGreaterThan(20);
      expect(s.acceptanceRate, JSON.stringify(request)).toBe(1);
    }
  });

  it('samples reproducibly from a seed, and differently from another seed', async () => {
    const run = async (seed: number) => (await speculate(new ModelDraft('draft-q4', q4), { temperature: 0.9, seed, maxTokens: 24 })).tokens;
    const a = await run(11);
    expect(await run(11)).toEqual(a);
    expect(await run(12)).not.toEqual(a);
  });

  it('rolls rejected tokens back: the pages hold what a run that never saw them holds, and none leak', async () => {
    const usedBefore = target.pool.usedPages;
    let checked = false;
    const result = await speculate(new NgramDraft(), { maxTokens: 40 }, 6, async (kv, tokens) => {
      const length = kv.length;
      expect(length).toBeGreaterThan(40);
      // Every page past the new end was released: exactly the pages the kept tokens need.
      expect(kv.blockTable).toHaveLength(Math.ceil(length / blockSize));
      const speculated = await target.readKv(kv.blockTable, length);
      // The same tokens prefilled straight through, with no rejected token ever written.
      const fresh = new SequenceKv(target.pool, 'fresh');
      try {
        for (let at = 0; at < length; at += 16) {
          const chunk = tokens.slice(at, at + 16);
          fresh.append(chunk.length);
          await target.step(chunk.map((token, i) => ({ blockTable: fresh.blockTable, token, position: at + i, sample: null })), fresh.prepareWrite().copies);
        }
        const straight = await target.readKv(fresh.blockTable, length);
        let worst = 0;
        for (let i = 0; i < straight.length; i++) worst = Math.max(worst, Math.abs(speculated[i] - straight[i]));
        // Both wrote the same positions through the same kernels; only row grouping differs.
        expect(worst).toBeLessThan(1e-4);
        checked = true;
      } finally {
        fresh.free();
      }
    });
    const s = result.speculative!;
    // The run did reject guesses (otherwise nothing was rolled back).
    expect(s.accepted).toBeLessThan(s.proposed);
    expect(checked).toBe(true);
    expect(target.pool.usedPages).toBe(usedBefore);
  });

  it('refuses what it cannot verify in one pass, with reasons', async () => {
    const draft = new NgramDraft();
    await expect(speculate(draft, { inspect: 5 })).rejects.toThrow(/inspect.*speculative/);
    await expect(speculate(draft, { constraint: 'json' })).rejects.toThrow(/constrained decoding/);
    await expect(speculate(draft, { repetitionPenalty: 1.2 })).rejects.toThrow(/penalties/);
    await expect(speculate(draft, {}, 9)).rejects.toThrow(RequestError);
    await expect(speculate(draft, {}, 0)).rejects.toThrow(/draftTokens/);
  });
});

describe('the speculative switch on the engine', () => {
  it('runs on the paged cache, keeps greedy tokens, and comes off with the contiguous cache', async () => {
    const engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', maxContext: 128, speculative: 'ngram', draftTokens: 3 });
    try {
      expect(engine.model.settings).toMatchObject({ speculative: 'ngram', draftTokens: 3, kvCache: 'paged' });
      expect(engine.model.choices.speculative.unavailable.map((u) => u.value)).toEqual(['draft-model']);
      const request = { prompt: 'Tom had a red ball. Tom had a red', maxTokens: 20, temperature: 0, seed: 0 };
      const speculative = await engine.generate(request);
      expect(speculative.speculative?.draft).toBe('ngram');
      expect((await engine.reconfigure({ kvCache: 'contiguous' })).settings.speculative).toBe('off');
      const plain = await engine.generate(request);
      expect(plain.speculative).toBeUndefined();
      expect(speculative.tokens).toEqual(plain.tokens);
      expect((await engine.reconfigure({ speculative: 'draft-q4' })).settings.kvCache).toBe('paged');
      const q4 = await engine.generate(request);
      expect(q4.tokens).toEqual(plain.tokens);
      expect(q4.speculative?.acceptanceRate).toBeGreaterThan(0.5);
      await expect(engine.reconfigure({ speculative: 'draft-model' })).rejects.toThrow(/needs a draft model/);
      await expect(engine.reconfigure({ speculative: 'ngram', kvCache: 'contiguous' })).rejects.toThrow(/paged/);
    } finally {
      engine.dispose();
    }
  });
});
