// Sampling with cuts and penalties: the GPU's filtered sampler (single sequence, and per row in a
// batch) picks the CPU reference's token from the same draw; the kept sets follow the definitions
// (ties, -inf, NaN, top-k 1, top-p 1); seeded draws follow the renormalized nucleus (chi-square);
// the penalties count the tokens the sampler picks; and whole generations agree GPU = CPU.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/engine/engine.ts';
import { createEngine } from '../src/engine/index.ts';
import { packParams, stepLayout } from '../src/engine/gpu/params.ts';
import { createRowsSampler, packRowInfo, rowInfoWords } from '../src/engine/kernels/rows.ts';
import { createFilteredSample, filtersLayout } from '../src/engine/kernels/sample.ts';
import { uniform } from '../src/engine/reference/rng.ts';
import { keptSet, noFilters, noPenalties, penalize, sampleFiltered, tokenCounts, type SamplingFilters, type SamplingPenalties } from '../src/engine/reference/sample.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';
import { download, run, seededRandom, testKernels, upload, uploadUniform } from './helpers/gpu.ts';

/** The single-sequence filtered sampler on the GPU: the token it picks and the counts it leaves. */
async function gpuFiltered(logits: Float32Array, temperature: number, seed: number, pos: number, filters: SamplingFilters, penalties: SamplingPenalties = noPenalties, seen: readonly number[] = [], allowed?: Uint32Array) {
  const kc = await testKernels();
  const penalize = penalties !== noPenalties;
  const buffers = {
    allowed: upload(kc.device, allowed ?? new Uint32Array(Math.ceil(logits.length / 32))),
    logits: upload(kc.device, logits),
    token: upload(kc.device, new Uint32Array([0xdead])),
    step: uploadUniform(kc.device, packParams(stepLayout, { pos, seed, temperature })),
    filters: uploadUniform(kc.device, packParams(filtersLayout, { ...filters, ...penalties, penalize: penalize ? 1 : 0, masked: allowed ? 1 : 0 })),
    counts: upload(kc.device, tokenCounts(seen, logits.length)),
  };
  await run(kc.device, await createFilteredSample(kc, 'sampleFiltered', buffers, logits.length));
  return { token: new Uint32Array(await download(kc.device, buffers.token))[0], counts: new Uint32Array(await download(kc.device, buffers.counts)).subarray(0, logits.length) };
}

/** `seeds.length` rows of the same logits through the batched sampler, row r drawing with seeds[r]. */
async function gpuRows(logits: Float32Array, temperature: number, pos: number, filters: SamplingFilters, seeds: readonly number[]): Promise<Uint32Array> {
  const kc = await testKernels();
  const rows = seeds.length;
  const all = new Float32Array(rows * logits.length);
  for (let r = 0; r < rows; r++) all.set(logits, r * logits.length);
  const info = packRowInfo(seeds.map((seed) => ({ token: 0, position: pos, page: 0, slot: 0, seed, temperature, filters })));
  expect(info.length).toBe(rows * rowInfoWords);
  const buffers = { logits: upload(kc.device, all), tokens: upload(kc.device, new Uint32Array(rows).fill(0xdead)), rowInfo: upload(kc.device, info) };
  await run(kc.device, await createRowsSampler(kc, 'rowsSampler', buffers, { vocab: logits.length, rows }));
  return new Uint32Array(await download(kc.device, buffers.tokens)).subarray(0, rows);
}

const cases: Array<[vocab: number, temperature: number, filters: SamplingFilters]> = [
  [13, 1, { topK: 3, topP: 1, minP: 0 }],
  [512, 0.8, { topK: 40, topP: 0.9, minP: 0 }],
  [512, 1.2, { topK: 0, topP: 0.5, minP: 0 }],
  [1000, 1, { topK: 0, topP: 1, minP: 0.05 }],
  [1000, 0.7, { topK: 50, topP: 0.95, minP: 0.02 }],
  [32000, 1, { topK: 0, topP: 0.9, minP: 0 }],
];

describe('filtered sampler: GPU against the CPU reference', () => {
  it.each(cases)('vocab %i, T %f, %o: the same token for every seed', async (vocab, temperature, filters) => {
    const logits = seededRandom(vocab)(vocab, 4);
    for (const [seed, pos] of [[1, 0], [7, 5], [42, 99]]) {
      const expected = sampleFiltered(logits, temperature, filters, uniform(seed, pos + 1));
      expect((await gpuFiltered(logits, temperature, seed, pos, filters)).token, `seed ${seed}`).toBe(expected);
    }
    // The batched sampler applies the same cuts per row.
    const seeds = [1, 7, 42, 1000, 5];
    const rows = await gpuRows(logits, temperature, 9, filters, seeds);
    expect([...rows]).toEqual(seeds.map((seed) => sampleFiltered(logits, temperature, filters, uniform(seed, 10))));
  });

  it('top-k 1 is the argmax at any temperature; top-p, min-p and temperature 0 too', async () => {
    const logits = seededRandom(3)(700, 3);
    const best = logits.indexOf(Math.max(...logits));
    for (const seed of [0, 1, 2]) {
      expect((await gpuFiltered(logits, 2, seed, 0, { topK: 1, topP: 1, minP: 0 })).token).toBe(best);
      expect((await gpuFiltered(logits, 1, seed, 0, { topK: 0, topP: 1e-6, minP: 0 })).token).toBe(best);
      expect((await gpuFiltered(logits, 0, seed, 0, { topK: 50, topP: 0.5, minP: 0 })).token).toBe(best);
    }
    // top-p 1 with no other cut keeps every token with a weight.
    expect(keptSet(logits, 1, noFilters).tokens).toHaveLength(700);
  });

  it('breaks top-k ties toward the lower id, and keeps every token tied at the top-p edge', async () => {
    const logits = new Float32Array([1, 3, 3, 3, 0, 3]);
    expect(keptSet(logits, 1, { topK: 2, topP: 1, minP: 0 }).tokens).toEqual([1, 2]);
    expect(keptSet(logits, 1, { topK: 0, topP: 0.1, minP: 0 }).tokens).toEqual([1, 2, 3, 5]);
    const picked = await gpuRows(logits, 1, 3, { topK: 2, topP: 1, minP: 0 }, Array.from({ length: 24 }, (_, seed) => seed));
    expect([...new Set(picked)].sort()).toEqual([1, 2]);
  });

  it('never keeps a NaN or -inf logit; all of them non-finite falls back to argmax', async () => {
    const logits = new Float32Array(300).fill(-Infinity);
    logits[5] = Number.NaN;
    logits[200] = 1;
    logits[201] = 0.5;
    expect(keptSet(logits, 1, { topK: 10, topP: 0.99, minP: 0 }).tokens).toEqual([200, 201]);
    const picked = await gpuRows(logits, 1, 4, { topK: 10, topP: 0.99, minP: 0 }, Array.from({ length: 8 }, (_, seed) => seed));
    expect([...new Set(picked)].every((token) => token === 200 || token === 201)).toBe(true);
    const none = new Float32Array(64).fill(Number.NaN);
    none[9] = -Infinity;
    expect(sampleFiltered(none, 1, { topK: 5, topP: 0.9, minP: 0 }, 0.5)).toBe(9);
    expect((await gpuFiltered(none, 1, 3, 0, { topK: 5, topP: 0.9, minP: 0 })).token).toBe(9);
  });

  it('draws follow the renormalized nucleus (chi-square, significance 0.001)', async () => {
    const vocab = 48;
    const logits = seededRandom(11)(vocab, 2);
    const temperature = 0.8;
    const filters = { topK: 12, topP: 0.8, minP: 0 };
    const { tokens, weights, total } = keptSet(logits, temperature, filters);
    expect(tokens.length).toBeGreaterThan(3);
    expect(tokens.length).toBeLessThanOrEqual(12);
    const draws = 4000;
    const picked = await gpuRows(logits, temperature, 0, filters, Array.from({ length: draws }, (_, i) => i));
    const observed = new Map<number, number>();
    for (const token of picked) observed.set(token, (observed.get(token) ?? 0) + 1);
    expect([...observed.keys()].every((token) => tokens.includes(token))).toBe(true);
    let chi2 = 0;
    tokens.forEach((token, j) => {
      const expected = (draws * weights[j]) / total;
      chi2 += ((observed.get(token) ?? 0) - expected) ** 2 / expected;
    });
    // Wilson-Hilferty upper 0.1% point of chi-square with df = kept - 1 (z = 3.09).
    const df = tokens.length - 1;
    const critical = df * (1 - 2 / (9 * df) + 3.09 * Math.sqrt(2 / (9 * df))) ** 3;
    expect(chi2).toBeLessThan(critical);
  });
});

describe('constraint masks', () => {
  it('only allowed tokens are ever picked, as the reference picks them from the masked logits', async () => {
    const vocab = 300;
    const logits = seededRandom(21)(vocab, 3);
    const allowedIds = [3, 7, 100, 299];
    const mask = new Uint32Array(Math.ceil(vocab / 32));
    for (const id of allowedIds) mask[id >> 5] |= 1 << (id & 31);
    const masked = logits.map((v, i) => (allowedIds.includes(i) ? v : -Infinity));
    const best = allowedIds.reduce((a, b) => (logits[b] > logits[a] ? b : a));
    expect((await gpuFiltered(logits, 0, 0, 0, noFilters, noPenalties, [], mask)).token).toBe(best);
    for (const seed of [1, 2, 3, 4]) {
      const { token } = await gpuFiltered(logits, 1.5, seed, 2, { topK: 3, topP: 1, minP: 0 }, noPenalties, [], mask);
      expect(token).toBe(sampleFiltered(masked, 1.5, { topK: 3, topP: 1, minP: 0 }, uniform(seed, 3)));
      expect(allowedIds).toContain(token);
    }
  });
});

describe('penalties', () => {
  const penalties: SamplingPenalties = { repetitionPenalty: 1.3, frequencyPenalty: 0.4, presencePenalty: 0.2 };

  it('penalize divides positive and multiplies negative logits of seen tokens, then subtracts per occurrence', () => {
    const out = penalize(new Float32Array([2, -2, 2, 1]), new Uint32Array([1, 1, 0, 3]), penalties);
    expect(out[0]).toBeCloseTo(2 / 1.3 - 0.4 - 0.2, 6);
    expect(out[1]).toBeCloseTo(-2 * 1.3 - 0.4 - 0.2, 6);
    expect(out[2]).toBe(2);
    expect(out[3]).toBeCloseTo(1 / 1.3 - 1.2 - 0.2, 6);
  });

  it('the GPU applies them to the counts it holds and counts the token it picks', async () => {
    const logits = seededRandom(5)(256, 2);
    const seen = [3, 3, 17, 100, 255, 255, 255];
    const best = logits.indexOf(Math.max(...logits));
    const history = [...seen, best, best];
    for (const [temperature, seed] of [[0, 0], [0.9, 4], [1.1, 8]]) {
      const expected = sampleFiltered(penalize(logits, tokenCounts(history, 256), penalties), temperature, { topK: 20, topP: 0.9, minP: 0 }, uniform(seed, 6));
      const { token, counts } = await gpuFiltered(logits, temperature, seed, 5, { topK: 20, topP: 0.9, minP: 0 }, penalties, history);
      expect(token).toBe(expected);
      expect([...counts]).toEqual([...tokenCounts([...history, token], 256)]);
    }
  });
});

describe('generation with cuts and penalties (stories260K)', () => {
  let engine: Engine;
  const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));

  beforeAll(async () => {
    engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', maxContext: 128 });
  });
  afterAll(() => engine?.dispose());

  it('the GPU sampler and the CPU sampler give the same tokens; the paged path too (cuts only)', async () => {
    const request = { prompt: 'Once upon a time', maxTokens: 24, temperature: 0.9, seed: 11, topK: 20, topP: 0.9, minP: 0.02, repetitionPenalty: 1.2, presencePenalty: 0.1 };
    const gpu = await engine.generate(request);
    await engine.reconfigure({ sampler: 'cpu' });
    const cpu = await engine.generate(request);
    await engine.reconfigure({ sampler: 'gpu' });
    expect(cpu.tokens).toEqual(gpu.tokens);
    // The penalty changes the text: the same request without it differs.
    const plain = await engine.generate({ ...request, repetitionPenalty: undefined, presencePenalty: undefined });
    expect(plain.tokens).not.toEqual(gpu.tokens);

    const cuts = { prompt: 'Once upon a time', maxTokens: 24, temperature: 1, seed: 3, topK: 10, topP: 0.8 };
    const contiguous = await engine.generate(cuts);
    const batch = await engine.generateBatch({ requests: [cuts, { ...cuts, seed: 4 }] });
    expect(batch.sequences[0].tokens).toEqual(contiguous.tokens);
    expect(batch.sequences[1].tokens).toEqual((await engine.generate({ ...cuts, seed: 4 })).tokens);
  });

  it('refuses bad cuts, and penalties in a batch, with clear errors', async () => {
    const base = { prompt: 'Hi', maxTokens: 2, temperature: 1, seed: 0 };
    await expect(engine.generate({ ...base, topP: 0 })).rejects.toThrow(/topP must be in \(0, 1\]/);
    await expect(engine.generate({ ...base, topK: 2.5 })).rejects.toThrow(/topK must be a whole number >= 0/);
    await expect(engine.generate({ ...base, minP: 1.5 })).rejects.toThrow(/minP must be in \[0, 1\]/);
    await expect(engine.generate({ ...base, repetitionPenalty: 0 })).rejects.toThrow(/repetitionPenalty must be a number > 0/);
    await expect(engine.generateBatch({ requests: [{ ...base, frequencyPenalty: 0.5 }] })).rejects.toThrow(/penalties need per-sequence token counts/);
  });
});
