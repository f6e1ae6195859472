// The sort-based GPU sampler (sampler 'gpu-sort'): its bitonic sort orders the vocabulary as the
// sampler defines (larger logit first, lower id first on ties, NaN last); from fixed logits and a
// fixed draw it picks the CPU reference's token over many shapes, ties, -inf and NaN, the cuts'
// edge cases, penalties and masks; whole generations on stories260K equal the threshold-search
// sampler's; and the kept set a step reports matches a brute-force computation.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, GenerateRequest, TokenEvent } from '../src/engine/engine.ts';
import { createEngine } from '../src/engine/index.ts';
import type { KernelContext } from '../src/engine/gpu/kernel.ts';
import { packParams, stepLayout } from '../src/engine/gpu/params.ts';
import { shaderSources } from '../src/engine/gpu/shaders.ts';
import { preprocessWgsl } from '../src/engine/gpu/wgsl.ts';
import { filtersLayout } from '../src/engine/kernels/sample.ts';
import { createSortedSample, sampleSortParams, sortedLength } from '../src/engine/kernels/sample-sort.ts';
import { uniform } from '../src/engine/reference/rng.ts';
import { keptSet, noPenalties, penalize, sampleFiltered, tokenCounts, type SamplingFilters, type SamplingPenalties } from '../src/engine/reference/sample.ts';
import { keptCandidates, keptListLimit } from '../src/engine/runtime/generate.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';
import { download, run, seededRandom, testKernels, upload, uploadUniform } from './helpers/gpu.ts';

let kernels: Promise<KernelContext> | undefined;

interface SortedRun {
  token: number;
  /** The sorted list's first `vocab` ids and keys. */
  ids: number[];
  keys: number[];
  counts: Uint32Array;
}

/** One sampled step of the sorted sampler on `logits` (pipelines compiled once per file). */
async function gpuSorted(logits: Float32Array, temperature: number, seed: number, pos: number, filters: SamplingFilters, penalties: SamplingPenalties = noPenalties, seen: readonly number[] = [], allowed?: Uint32Array): Promise<SortedRun> {
  kernels ??= testKernels();
  const kc = await kernels;
  const vocab = logits.length;
  const size = sortedLength(vocab);
  const penalized = penalties !== noPenalties;
  const buffers = {
    keys: upload(kc.device, new Uint32Array(size).fill(0xdead)),
    ids: upload(kc.device, new Uint32Array(size).fill(0xdead)),
    allowed: upload(kc.device, allowed ?? new Uint32Array(Math.ceil(vocab / 32))),
    logits: upload(kc.device, logits),
    token: upload(kc.device, new Uint32Array([0xdead])),
    step: uploadUniform(kc.device, packParams(stepLayout, { pos, seed, temperature })),
    filters: uploadUniform(kc.device, packParams(filtersLayout, { ...filters, ...penalties, penalize: penalized ? 1 : 0, masked: allowed ? 1 : 0 })),
    counts: upload(kc.device, tokenCounts(seen, vocab)),
  };
  try {
    await run(kc.device, ...(await createSortedSample(kc, 'sampleSorted', buffers, vocab)));
    const [token, ids, keys, counts] = await Promise.all([buffers.token, buffers.ids, buffers.keys, buffers.counts].map((b) => download(kc.device, b)));
    return { token: new Uint32Array(token)[0], ids: [...new Uint32Array(ids)], keys: [...new Uint32Array(keys)], counts: new Uint32Array(counts).subarray(0, vocab) };
  } finally {
    for (const buffer of Object.values(buffers)) buffer.destroy();
  }
}

/** The sampler's order of token ids: larger logit first, lower id first on ties, NaN last. */
function expectedOrder(logits: Float32Array): number[] {
  const rank = (v: number) => (Number.isNaN(v) ? -Infinity : v);
  const ids = Array.from(logits, (_, i) => i);
  return ids.sort((a, b) => {
    const nanA = Number.isNaN(logits[a]);
    const nanB = Number.isNaN(logits[b]);
    if (nanA !== nanB) return nanA ? 1 : -1;
    return rank(logits[b]) - rank(logits[a]) || a - b;
  });
}

const off: SamplingFilters = { topK: 0, topP: 1, minP: 0 };

describe('bitonic sort of the vocabulary', () => {
  it.each([13, 100, 512, 1000, 1500])('vocab %i (padded to %#): ids in the sampler order, padding after every token', async (vocab) => {
    const logits = seededRandom(vocab)(vocab, 3);
    // Ties, infinities and NaN among ordinary logits.
    logits[vocab - 1] = logits[0];
    logits[Math.floor(vocab / 2)] = logits[0];
    logits[1] = Number.NaN;
    logits[2] = -Infinity;
    if (vocab > 50) logits[40] = Number.POSITIVE_INFINITY;
    const size = sortedLength(vocab);
    expect(size).toBe(Math.max(512, 2 ** Math.ceil(Math.log2(vocab))));
    const { ids, keys } = await gpuSorted(logits, 0, 0, 0, off);
    expect(ids.slice(0, vocab)).toEqual(expectedOrder(logits));
    // Padding: key 0, ids past the vocabulary in increasing order; NaN's key is 0 too, before it.
    expect(ids.slice(vocab)).toEqual(Array.from({ length: size - vocab }, (_, i) => vocab + i));
    expect(keys.slice(vocab - 1)).toEqual(new Array(size - vocab + 1).fill(0));
    expect(keys[0]).toBeGreaterThan(keys[1]);
  });
});

const shapes: Array<[vocab: number, temperature: number, filters: SamplingFilters]> = [
  [13, 1, { topK: 3, topP: 1, minP: 0 }],
  [13, 0.5, { topK: 0, topP: 0.6, minP: 0 }],
  [100, 1.3, { topK: 0, topP: 1, minP: 0 }],
  [100, 0.8, { topK: 1, topP: 1, minP: 0 }],
  [512, 0.8, { topK: 40, topP: 0.9, minP: 0 }],
  [512, 1.2, { topK: 0, topP: 0.5, minP: 0 }],
  [700, 0.9, { topK: 600, topP: 0.97, minP: 0.01 }],
  [1000, 1, { topK: 0, topP: 1, minP: 0.05 }],
  [1000, 0.7, { topK: 50, topP: 0.95, minP: 0.02 }],
  [1000, 2, { topK: 0, topP: 0.999, minP: 0 }],
  [1000, 0, { topK: 50, topP: 0.5, minP: 0 }],
];

describe('sorted sampler against the CPU reference', () => {
  it.each(shapes)('vocab %i, T %f, %o: the reference token for every draw', async (vocab, temperature, filters) => {
    const logits = seededRandom(vocab + 17)(vocab, 4);
    for (const [seed, pos] of [[1, 0], [7, 5], [42, 99], [1234, 3]]) {
      const expected = sampleFiltered(logits, temperature, filters, uniform(seed, pos + 1));
      expect((await gpuSorted(logits, temperature, seed, pos, filters)).token, `seed ${seed} pos ${pos}`).toBe(expected);
    }
  });

  it('top-k 1, a tiny top-p and temperature 0 are the argmax; top-p 1 keeps every token', async () => {
    const logits = seededRandom(3)(300, 3);
    const best = logits.indexOf(Math.max(...logits));
    for (const seed of [0, 1, 2]) {
      expect((await gpuSorted(logits, 2, seed, 0, { topK: 1, topP: 1, minP: 0 })).token).toBe(best);
      expect((await gpuSorted(logits, 1, seed, 0, { topK: 0, topP: 1e-6, minP: 0 })).token).toBe(best);
      expect((await gpuSorted(logits, 0, seed, 0, { topK: 50, topP: 0.5, minP: 0 })).token).toBe(best);
    }
    // With no cut a flat distribution reaches far-down tokens, as the reference's draw does.
    const flat = new Float32Array(300);
    const picks = await Promise.all([3, 4, 5, 6].map(async (seed) => (await gpuSorted(flat, 1, seed, 0, { topK: 0, topP: 1, minP: 0 })).token));
    expect(picks).toEqual([3, 4, 5, 6].map((seed) => sampleFiltered(flat, 1, off, uniform(seed, 1))));
    expect(new Set(picks).size).toBeGreaterThan(1);
  });

  it('top-k keeps the lower ids of a tie; top-p keeps every token tied at its edge', async () => {
    const logits = new Float32Array([1, 3, 3, 3, 0, 3]);
    const topK: SamplingFilters = { topK: 2, topP: 1, minP: 0 };
    const topP: SamplingFilters = { topK: 0, topP: 0.1, minP: 0 };
    const draws = Array.from({ length: 16 }, (_, seed) => seed);
    const byTopK = await Promise.all(draws.map(async (seed) => (await gpuSorted(logits, 1, seed, 2, topK)).token));
    expect(byTopK).toEqual(draws.map((seed) => sampleFiltered(logits, 1, topK, uniform(seed, 3))));
    expect([...new Set(byTopK)].sort()).toEqual([1, 2]);
    const byTopP = await Promise.all(draws.map(async (seed) => (await gpuSorted(logits, 1, seed, 2, topP)).token));
    expect(byTopP).toEqual(draws.map((seed) => sampleFiltered(logits, 1, topP, uniform(seed, 3))));
    expect([...new Set(byTopP)].sort()).toEqual([1, 2, 3, 5]);
  });

  it('never picks a NaN or -inf logit; no finite maximum falls back to the argmax', async () => {
    const logits = new Float32Array(300).fill(-Infinity);
    logits[5] = Number.NaN;
    logits[200] = 1;
    logits[201] = 0.5;
    for (const seed of [0, 1, 2, 3, 4, 5]) {
      const { token } = await gpuSorted(logits, 1, seed, 4, { topK: 10, topP: 0.99, minP: 0 });
      expect(token).toBe(sampleFiltered(logits, 1, { topK: 10, topP: 0.99, minP: 0 }, uniform(seed, 5)));
      expect([200, 201]).toContain(token);
    }
    const none = new Float32Array(64).fill(Number.NaN);
    none[9] = -Infinity;
    expect((await gpuSorted(none, 1, 3, 0, { topK: 5, topP: 0.9, minP: 0 })).token).toBe(9);
    expect((await gpuSorted(new Float32Array(64).fill(Number.NaN), 1, 3, 0, off)).token).toBe(0);
    const infinite = new Float32Array([0, Number.POSITIVE_INFINITY, 1, Number.POSITIVE_INFINITY]);
    expect((await gpuSorted(infinite, 1, 3, 0, off)).token).toBe(1);
  });

  it('finds the reference top-p edge where summing in sorted order would miss it', async () => {
    // One weight 1 (the last id) and 2000 weights near 2^-25, rising with the id: summed largest
    // first each rounds away against the 1, while the reference's chunks add them up first. The goal
    // lies above 1, so the sorted running sum never proposes the edge and the search over sorted
    // positions finds it.
    const vocab = 2001;
    const logits = Float32Array.from({ length: vocab }, (_, i) => (i === vocab - 1 ? 0 : -17.3 - (vocab - 1 - i) * 1e-4));
    const filters: SamplingFilters = { topK: 0, topP: 0.99995, minP: 0 };
    const f32 = Math.fround;
    let sumLargestFirst = 1;
    for (let i = vocab - 2; i >= 0; i--) sumLargestFirst = f32(sumLargestFirst + f32(Math.exp(logits[i])));
    expect(sumLargestFirst).toBe(1);
    const { tokens } = keptSet(logits, 1, filters);
    expect(tokens.length).toBeGreaterThan(100);
    expect(tokens.length).toBeLessThan(1000);
    // Small draws land among the first kept ids (the lowest kept weights, in id order), so the pick
    // moves with the edge: one position off, one token off.
    const seeds: number[] = [];
    for (let seed = 0; seeds.length < 3; seed++) if (uniform(seed, 1) < 4e-6) seeds.push(seed);
    for (const seed of seeds) {
      const expected = sampleFiltered(logits, 1, filters, uniform(seed, 1));
      expect(expected - tokens[0]).toBeLessThan(tokens.length / 2);
      expect((await gpuSorted(logits, 1, seed, 0, filters)).token, `seed ${seed}`).toBe(expected);
    }
  });

  it('applies the penalties and the constraint mask as the reference does, and counts its pick', async () => {
    const vocab = 256;
    const logits = seededRandom(5)(vocab, 2);
    const penalties: SamplingPenalties = { repetitionPenalty: 1.3, frequencyPenalty: 0.4, presencePenalty: 0.2 };
    const best = logits.indexOf(Math.max(...logits));
    const history = [3, 3, 17, 100, 255, best, best];
    const filters = { topK: 20, topP: 0.9, minP: 0 };
    for (const [temperature, seed] of [[0, 0], [0.9, 4], [1.1, 8]]) {
      const expected = sampleFiltered(penalize(logits, tokenCounts(history, vocab), penalties), temperature, filters, uniform(seed, 6));
      const { token, counts } = await gpuSorted(logits, temperature, seed, 5, filters, penalties, history);
      expect(token).toBe(expected);
      expect([...counts]).toEqual([...tokenCounts([...history, token], vocab)]);
    }
    const allowedIds = [3, 7, 100, 199];
    const mask = new Uint32Array(Math.ceil(vocab / 32));
    for (const id of allowedIds) mask[id >> 5] |= 1 << (id & 31);
    const masked = logits.map((v, i) => (allowedIds.includes(i) ? v : -Infinity));
    for (const seed of [1, 2, 3, 4]) {
      const { token } = await gpuSorted(logits, 1.5, seed, 2, { topK: 3, topP: 1, minP: 0 }, noPenalties, [], mask);
      expect(token).toBe(sampleFiltered(masked, 1.5, { topK: 3, topP: 1, minP: 0 }, uniform(seed, 3)));
      expect(allowedIds).toContain(token);
    }
  });
});

describe('sample-sort.wgsl', () => {
  /** A top-level declaration's text: from its first line to the first line that closes it. */
  function declaration(source: string, head: string): string {
    const start = source.indexOf(`\n${head}`);
    expect(start, head).toBeGreaterThanOrEqual(0);
    return source.slice(start, source.indexOf('\n}\n', start) + 3);
  }

  const singleSequenceFiltered = preprocessWgsl(shaderSources.sample, { ROWS: false, FILTERED: true }, 'sample');

  it('shares the logit, key and RNG code of sample.wgsl character for character', () => {
    for (const head of ['struct Step {', 'struct Filters {', 'fn logit(i: u32)', 'fn isNan(', 'fn orderKey(', 'fn pcg(', 'fn uniform01(']) {
      expect(declaration(shaderSources['sample-sort'], head), head).toBe(declaration(singleSequenceFiltered, head));
    }
  });

  it('declares the Params struct its TypeScript layout packs', () => {
    const body = /struct Params \{([^}]*)\}/.exec(shaderSources['sample-sort'])![1];
    const fields = body
      .split('\n')
      .map((line) => line.replace(/\/\/.*/, '').trim().replace(/,$/, ''))
      .filter(Boolean)
      .map((line) => line.split(':').map((s) => s.trim()));
    expect(fields).toEqual(sampleSortParams.map(([n, t]) => [n, t]));
  });
});

describe('the kept set a step reports', () => {
  /** Brute force in f64: sort by probability, then top-k, top-p (ties at the edge kept), min-p. */
  function bruteForce(logits: Float32Array, temperature: number, filters: SamplingFilters) {
    const max = Math.max(...logits);
    const weights = Array.from(logits, (l) => Math.exp((l - max) / temperature));
    const full = weights.reduce((a, b) => a + b, 0);
    let kept = weights.map((w, i) => ({ i, w })).sort((a, b) => b.w - a.w || a.i - b.i);
    if (filters.topK > 0) kept = kept.slice(0, filters.topK);
    const mass = kept.reduce((sum, k) => sum + k.w, 0);
    if (filters.topP < 1) {
      let running = 0;
      const edge = kept.find((k) => (running += k.w) >= filters.topP * mass)!.w;
      kept = kept.filter((k) => k.w >= edge);
    }
    kept = kept.filter((k) => k.w >= filters.minP);
    const total = kept.reduce((sum, k) => sum + k.w, 0);
    return { tokens: kept.map((k) => k.i), probabilities: kept.map((k) => k.w / total), keptMass: total / full };
  }

  it.each([
    [64, 1, { topK: 10, topP: 1, minP: 0 }],
    [300, 0.7, { topK: 0, topP: 0.8, minP: 0 }],
    [300, 1.5, { topK: 40, topP: 0.9, minP: 0.05 }],
  ] as const)('vocab %i, T %f, %o', (vocab, temperature, filters) => {
    const logits = seededRandom(vocab * 3)(vocab, 3);
    const kept = keptCandidates(logits, temperature, filters)!;
    const expected = bruteForce(logits, temperature, filters);
    expect(kept.tokens).toEqual(expected.tokens);
    kept.probabilities.forEach((p, j) => expect(p).toBeCloseTo(expected.probabilities[j], 6));
    let running = 0;
    kept.cumulative.forEach((c, j) => expect(c).toBeCloseTo((running += expected.probabilities[j]), 6));
    expect(kept.cumulative.at(-1)).toBeCloseTo(1, 6);
    expect(kept.keptMass).toBeCloseTo(expected.keptMass, 5);
    expect(kept.keptMass).toBeLessThan(1);
    // The cutoffs: the k-th largest logit, top-p's edge weight (relative to the top token), the floor.
    const byLogit = [...logits].sort((a, b) => b - a);
    expect(kept.topKLogit).toBe(filters.topK > 0 ? byLogit[filters.topK - 1] : null);
    if (filters.topP < 1) {
      const last = expected.tokens.at(-1)!;
      expect(kept.topPWeight).toBeCloseTo(Math.exp((logits[last] - byLogit[0]) / temperature), 6);
    } else {
      expect(kept.topPWeight).toBeNull();
    }
    expect(kept.minWeight).toBeCloseTo(Math.max(filters.minP, kept.topPWeight ?? 0), 7);
  });

  it('is absent when the largest logit is not finite (the argmax is taken, there is no distribution)', () => {
    expect(keptCandidates(new Float32Array([0, Number.POSITIVE_INFINITY, 1]), 1, { topK: 2, topP: 1, minP: 0 })).toBeNull();
    expect(keptCandidates(new Float32Array([Number.NaN, -Infinity]), 1, { topK: 1, topP: 1, minP: 0 })).toBeNull();
  });

  it(`lists at most ${keptListLimit} tokens, most likely first, and says so through the cumulative mass`, () => {
    const logits = seededRandom(9)(1000, 0.5);
    const kept = keptCandidates(logits, 1, { topK: 0, topP: 0.95, minP: 0 })!;
    const expected = bruteForce(logits, 1, { topK: 0, topP: 0.95, minP: 0 });
    expect(expected.tokens.length).toBeGreaterThan(keptListLimit);
    expect(kept.tokens).toEqual(expected.tokens.slice(0, keptListLimit));
    expect(kept.probabilities).toHaveLength(keptListLimit);
    expect(kept.cumulative.at(-1)).toBeLessThan(0.5);
    expect(kept.cumulative.at(-1)).toBeCloseTo(expected.probabilities.slice(0, keptListLimit).reduce((a, b) => a + b, 0), 6);
  });
});

describe('generation with sampler gpu-sort (stories260K)', () => {
  let engine: Engine;
  const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));

  beforeAll(async () => {
    engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', maxContext: 96 });
  });
  afterAll(() => engine?.dispose());

  async function both(request: GenerateRequest) {
    await engine.reconfigure({ sampler: 'gpu' });
    const gpu = await engine.generate(request);
    await engine.reconfigure({ sampler: 'gpu-sort' });
    const sorted = await engine.generate(request);
    return { gpu, sorted };
  }

  it('greedy, seeded with cuts and penalties, and seeded without cuts: the same tokens as sampler gpu', async () => {
    for (const request of [
      { prompt: 'Once upon a time', maxTokens: 20, temperature: 0, seed: 0 },
      { prompt: 'Once upon a time', maxTokens: 20, temperature: 0.9, seed: 11, topK: 20, topP: 0.9, minP: 0.02, repetitionPenalty: 1.2, presencePenalty: 0.1 },
      { prompt: 'The cat', maxTokens: 20, temperature: 1, seed: 5 },
    ]) {
      const { gpu, sorted } = await both(request);
      expect(sorted.tokens, JSON.stringify(request)).toEqual(gpu.tokens);
      expect(sorted.generatedTokens).toBeGreaterThan(5);
    }
  });

  it('an inspected step with cuts carries the kept set, consistent with its candidates', async () => {
    await engine.reconfigure({ sampler: 'gpu-sort' });
    const events: TokenEvent[] = [];
    const request = { prompt: 'Once upon a time', maxTokens: 6, temperature: 0.8, seed: 2, topK: 12, topP: 0.9, inspect: 20 };
    const result = await engine.generate(request, (e) => events.push(e));
    expect(events).toHaveLength(result.generatedTokens);
    for (const { distribution } of events) {
      const kept = distribution!.kept!;
      expect(kept.tokens.length).toBeGreaterThan(0);
      expect(kept.tokens.length).toBeLessThanOrEqual(12);
      expect(kept.tokens).toContain(distribution!.sampled);
      expect(kept.tokens[0]).toBe(distribution!.candidates[0].token);
      expect(kept.topKLogit).toBe(distribution!.candidates[11].logit);
      // Probabilities in the kept set keep the ratios of softmax(logits / T).
      const logit = (token: number) => distribution!.candidates.find((c) => c.token === token)!.logit;
      if (kept.tokens.length > 1) expect(kept.probabilities[1] / kept.probabilities[0]).toBeCloseTo(Math.exp((logit(kept.tokens[1]) - logit(kept.tokens[0])) / 0.8), 5);
      expect(kept.keptMass).toBeGreaterThan(0.5);
      expect(kept.keptMass).toBeLessThanOrEqual(1);
    }
    // Without a cut, or greedy, there is no kept set.
    const plain: TokenEvent[] = [];
    await engine.generate({ ...request, topK: undefined, topP: undefined, maxTokens: 2 }, (e) => plain.push(e));
    await engine.generate({ ...request, temperature: 0, maxTokens: 2 }, (e) => plain.push(e));
    expect(plain.every((e) => e.distribution && e.distribution.kept === undefined)).toBe(true);
    await engine.reconfigure({ sampler: 'gpu' });
  });
});
