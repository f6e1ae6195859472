// Batched and paged generation through the engine's public API on stories260K: generateBatch gives
// every prompt the tokens the single-sequence path gives it, under both KV placements and every
// attention kernel; the paged setting makes generate() take the batched path with the same tokens;
// KV state is reported per step; bad requests get clear errors.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchStepEvent, Engine } from '../src/engine/engine.ts';
import { RequestError } from '../src/engine/errors.ts';
import { createEngine } from '../src/engine/index.ts';
import { kvBytesPerToken } from '../src/engine/kv/page-pool.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));
const prompts = ['Once upon a time', 'The cat sat on the mat and', 'Lily and Tom went to the park. They saw a big dog.'];

describe('Engine.generateBatch and the paged KV setting (stories260K)', () => {
  let engine: Engine;
  /** Tokens of each prompt from the single-sequence (contiguous) path. */
  const alone = new Map<string, number[]>();
  const single = async (prompt: string, maxTokens = 12, temperature = 0, seed = 0) => (await engine.generate({ prompt, maxTokens, temperature, seed })).tokens;

  beforeAll(async () => {
    engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', maxContext: 256 });
    for (const prompt of prompts) alone.set(prompt, await single(prompt));
  });

  afterAll(() => engine?.dispose());

  it('gives each prompt of a batch its own tokens, streamed per sequence, with KV state every step', async () => {
    const streamed = prompts.map(() => [] as number[]);
    const steps: BatchStepEvent[] = [];
    const result = await engine.generateBatch(
      { requests: prompts.map((prompt) => ({ prompt, maxTokens: 12, temperature: 0, seed: 0 })), pageSize: 8 },
      { token: (e) => streamed[e.sequence].push(e.token), step: (e) => steps.push(e) },
    );
    result.sequences.forEach((s, i) => {
      expect(s.tokens, prompts[i]).toEqual(alone.get(prompts[i]));
      expect(s.tokens.slice(s.promptTokens)).toEqual(streamed[i]);
      expect(s.text.length).toBeGreaterThan(0);
      expect(s.ttftMs).toBeGreaterThan(0);
      expect(s.tpotMs).toBeGreaterThan(0);
    });
    expect(result.maxBatch).toBe(3);
    expect(result.aggregateTokensPerSecond).toBeGreaterThan(0);
    expect(result.steps).toBe(steps.length);
    expect(steps.at(-1)!.pages).toHaveLength(result.kvPeak.pageCount);

    // Paged: a sequence holds a page per 8 tokens written, never the whole context.
    const perToken = kvBytesPerToken(engine.model.config);
    for (const step of steps) {
      const lengths = step.kv.paged.sequences.map((s) => s.length);
      expect(step.kv.liveBytes).toBe(lengths.reduce((a, b) => a + b, 0) * perToken);
      const pagesForOneMoreToken = lengths.reduce((n, length) => n + Math.ceil((length + 1) / 8), 0);
      expect(step.kv.reservedBytes).toBeLessThanOrEqual(pagesForOneMoreToken * step.kv.pageBytes);
    }
    expect(result.kvPeak.mode).toBe('paged');
    expect(result.kvPeak.reservedBytes).toBeGreaterThanOrEqual(result.kvPeak.liveBytes);
    expect(result.kvPeak.contiguous.reservedBytes).toBe(3 * 256 * perToken);
  });

  it('places each sequence in one whole-context run of pages with contiguous KV, with the same tokens', async () => {
    let runs: number[][] = [];
    const result = await engine.generateBatch(
      { requests: prompts.map((prompt) => ({ prompt, maxTokens: 12, temperature: 0, seed: 0 })), kv: 'contiguous', pageSize: 16 },
      {
        step: (e) => {
          if (!e.pages || e.running === 0) return;
          const byOwner = new Map<string, number[]>();
          for (const page of e.pages) for (const owner of page.owners) byOwner.set(owner, [...(byOwner.get(owner) ?? []), page.page]);
          runs = [...byOwner.values()];
          // The grid shows what is written, not the reservation: a run's first page holds K/V, its last none yet.
          for (const pages of runs) {
            expect(e.pages[pages[0]].filledSlots).toBeGreaterThan(0);
            expect(e.pages[pages.at(-1)!].filledSlots).toBe(0);
          }
        },
      },
    );
    result.sequences.forEach((s, i) => expect(s.tokens).toEqual(alone.get(prompts[i])));
    expect(runs.length).toBeGreaterThan(0);
    for (const pages of runs) {
      expect(pages).toHaveLength(256 / 16);
      expect(pages).toEqual(pages.map((_, i) => pages[0] + i));
    }
    expect(result.kvPeak.mode).toBe('contiguous');
    expect(result.kvPeak.reservedBytes).toBe(3 * 256 * kvBytesPerToken(engine.model.config));
    expect(result.prefix.hitTokens).toBe(0);
  });

  it('runs split-K and unfused attention to the same greedy tokens as the fused kernel', async () => {
    for (const attention of ['splitK', 'unfused'] as const) {
      const result = await engine.generateBatch({ requests: prompts.map((prompt) => ({ prompt, maxTokens: 8, temperature: 0, seed: 0 })), attention });
      expect(result.attention).toBe(attention);
      result.sequences.forEach((s, i) => expect(s.tokens, `${attention}: ${prompts[i]}`).toEqual(alone.get(prompts[i])!.slice(0, s.tokens.length)));
    }
  });

  it('runs more requests than maxBatch: the rest wait, then run, all with their own seeds', async () => {
    const requests = [0, 1, 2, 3, 4].map((seed) => ({ prompt: 'Once upon a time', maxTokens: 8, temperature: 0.9, seed }));
    const waiting: number[] = [];
    const result = await engine.generateBatch({ requests, maxBatch: 2 }, { step: (e) => waiting.push(e.waiting) });
    expect(Math.max(...waiting)).toBeGreaterThan(0);
    for (const [i, s] of result.sequences.entries()) expect(s.tokens).toEqual(await single('Once upon a time', 8, 0.9, i));
  });

  it('with kvCache paged, generate() takes the batched path: same tokens and streamed positions, greedy and seeded', async () => {
    const model = await engine.reconfigure({ kvCache: 'paged', pageSize: 16 });
    expect(model.settings).toMatchObject({ kvCache: 'paged', pageSize: 16 });
    try {
      const positions: number[] = [];
      const result = await engine.generate({ prompt: prompts[2], maxTokens: 12, temperature: 0, seed: 0 }, (e) => positions.push(e.position));
      expect(result.tokens).toEqual(alone.get(prompts[2]));
      expect(positions).toEqual(result.tokens.slice(result.promptTokens).map((_, i) => result.promptTokens + i));
      expect(result.prefillMs).toBeGreaterThan(0);
      expect(result.decodeTokensPerSecond).toBeGreaterThan(0);
      const sampled = await engine.generate({ prompt: 'Once upon a time', maxTokens: 10, temperature: 0.8, seed: 3 });
      await engine.reconfigure({ kvCache: 'contiguous' });
      expect((await engine.generate({ prompt: 'Once upon a time', maxTokens: 10, temperature: 0.8, seed: 3 })).tokens).toEqual(sampled.tokens);
    } finally {
      await engine.reconfigure({ kvCache: 'contiguous' });
    }
  });

  it('refuses what the batched path cannot do, and bad batch requests, with clear errors', async () => {
    await expect(engine.reconfigure({ kvCache: 'paged', sampler: 'cpu' })).rejects.toThrow(/switch the sampler to gpu/);
    expect(engine.model.settings.kvCache).toBe('contiguous');
    await engine.reconfigure({ kvCache: 'paged' });
    try {
      await expect(engine.generate({ prompt: 'Hi', maxTokens: 4, temperature: 0, seed: 0, inspect: 5 })).rejects.toThrow(/inspect needs the contiguous KV cache/);
      await expect(engine.generate({ prompt: 'word '.repeat(300), maxTokens: 4, temperature: 0, seed: 0 })).rejects.toThrow(/the context holds 256/);
    } finally {
      await engine.reconfigure({ kvCache: 'contiguous' });
    }
    const one = { prompt: 'Hi', maxTokens: 4, temperature: 0, seed: 0 };
    await expect(engine.generateBatch({ requests: [] })).rejects.toThrow(/at least one request/);
    await expect(engine.generateBatch({ requests: [one], maxBatch: 0 })).rejects.toThrow(/maxBatch must be a whole number from 1 to 32/);
    await expect(engine.generateBatch({ requests: [{ ...one, inspect: 3 }] })).rejects.toBeInstanceOf(RequestError);
    await expect(engine.generateBatch({ requests: [one], pageSize: 12 })).rejects.toThrow(/pageSize must be one of 8, 16, 32/);
    // The engine still serves after the refusals.
    expect((await engine.generateBatch({ requests: [one] })).sequences[0].generatedTokens).toBeGreaterThan(0);
  });

  it('cancels a batch: running sequences stop, queued ones report cancelled, pages come back', async () => {
    const controller = new AbortController();
    let tokens = 0;
    const requests = [0, 1, 2].map((seed) => ({ prompt: 'Once upon a time', maxTokens: 100, temperature: 0.9, seed }));
    const result = await engine.generateBatch({ requests, maxBatch: 2, prefixCache: false }, { token: () => ++tokens === 6 && controller.abort() }, controller.signal);
    expect(result.sequences.map((s) => s.stopReason)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(result.sequences[2].generatedTokens).toBe(0);
    // The next batch's last step (its one sequence done) finds no page owned by any sequence.
    let lastPages: BatchStepEvent['pages'];
    const after = await engine.generateBatch({ requests: [{ prompt: 'The dog', maxTokens: 2, temperature: 0, seed: 0 }] }, { step: (e) => (lastPages = e.pages ?? lastPages) });
    expect(after.sequences[0].generatedTokens).toBe(2);
    expect(lastPages!.filter((page) => page.owners.length > 0)).toEqual([]);
  });
});
