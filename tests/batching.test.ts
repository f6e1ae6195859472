// Continuous batching over the paged KV cache on stories260K: a batch of different prompts gives
// each prompt the tokens it gets alone, the prefix cache computes only the new part of a repeated
// prompt, requests that do not fit wait for pages, and cancelling frees them.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, RequestError } from '../src/engine/errors.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription } from '../src/engine/model/types.ts';
import { referenceGenerate } from '../src/engine/reference/forward.ts';
import { BatchModel } from '../src/engine/runtime/batch-model.ts';
import { Scheduler, type BatchRequest } from '../src/engine/runtime/scheduler.ts';
import { parseLlama2cTokenizer } from '../src/engine/tokenizer/llama2c.ts';
import type { Tokenizer } from '../src/engine/tokenizer/types.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { testGpu } from './helpers/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));
const prompts = ['', 'Once upon a time', 'The cat sat on the mat and', 'Lily and Tom went to the park. They saw a big dog.'];
const longPrompt = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends and her dog.';

describe('continuous batching (stories260K, paged KV)', () => {
  let description: ModelDescription;
  let tokenizer: Tokenizer;
  let model: BatchModel;
  let stopIds: number[];

  const request = (text: string, maxTokens = 16, temperature = 0, seed = 0): BatchRequest => ({ prompt: tokenizer.encode(text, { bos: true }), maxTokens, temperature, seed, stopIds });
  const alone = (r: BatchRequest) => referenceGenerate(description, r.prompt, r.maxTokens, r.temperature, r.seed, r.stopIds);

  beforeAll(async () => {
    description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    tokenizer = parseLlama2cTokenizer(await models.read('stories260K/tok512.bin'), 'tok512.bin', 512);
    stopIds = [tokenizer.eosId, tokenizer.bosId];
    model = await BatchModel.create(await testGpu(), description, { blockSize: 16, contextLength: 128, pageCount: 48, maxRows: 64, maxSequences: 8 });
  });

  afterAll(() => model.destroy());

  it('runs different prompts in one batch, each giving the tokens it gets alone (greedy)', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 4, prefillChunk: 8, prefixCache: false });
    const requests = prompts.map((p) => request(p));
    const results = await Promise.all(requests.map((r) => scheduler.submit(r)));
    results.forEach((result, i) => {
      expect(result.tokens, `prompt ${JSON.stringify(prompts[i])}`).toEqual(alone(requests[i]));
      expect(result.ttftMs).toBeGreaterThan(0);
    });
    // Four sequences shared steps: fewer steps than running them one after another.
    const rowsAlone = results.reduce((n, r) => n + r.promptTokens + r.generatedTokens - 1, 0);
    expect(scheduler.stats.rows).toBe(rowsAlone);
    expect(scheduler.stats.steps).toBeLessThan(rowsAlone / 2);
    expect(model.pool.freePages).toBe(model.pool.pageCount);
  });

  it('samples each sequence with its own seed and temperature, as the single-sequence sampler would', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 3, prefixCache: false });
    const requests = [request('Once upon a time', 12, 0.8, 7), request('Once upon a time', 12, 0.8, 8), request('The dog', 12, 0, 0)];
    const results = await Promise.all(requests.map((r) => scheduler.submit(r)));
    results.forEach((result, i) => expect(result.tokens).toEqual(alone(requests[i])));
    expect(results[0].tokens).not.toEqual(results[1].tokens);
  });

  it('serves a repeated prefix from the cache and computes only the rest, with the same tokens', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 2 });
    const first = request(longPrompt, 4);
    await scheduler.submit(first);
    const second = request(`${longPrompt} One day`, 12);
    const result = await scheduler.submit(second);
    const blocks = Math.floor((first.prompt.length - 1) / 16);
    expect(result.cachedTokens).toBe(blocks * 16);
    expect(result.cachedTokens).toBeGreaterThanOrEqual(16);
    expect(result.tokens).toEqual(alone(second));
    expect(scheduler.stats.prefixHitTokens).toBe(result.cachedTokens);
    expect(scheduler.stats.computedPromptTokens).toBe(first.prompt.length + second.prompt.length - result.cachedTokens);
  });

  it('makes requests wait for pages when the pool is full, then runs them all', async () => {
    const small = await BatchModel.create(await testGpu(), description, { blockSize: 16, contextLength: 128, pageCount: 3, maxRows: 32, maxSequences: 4 });
    try {
      const scheduler = new Scheduler(small, { maxBatch: 4, prefixCache: false });
      // Each needs 2 pages (prompt + 16 tokens < 32): only one runs at a time in 3 pages.
      const requests = ['Once upon a time', 'The cat', 'A little bird'].map((p) => request(p, 12));
      const pending = requests.map((r) => scheduler.submit(r));
      expect(scheduler.waitingCount + scheduler.runningCount).toBe(3);
      const results = await Promise.all(pending);
      results.forEach((result, i) => expect(result.tokens).toEqual(alone(requests[i])));
      await expect(scheduler.submit(request(longPrompt, 100))).rejects.toThrow(/needs \d+ KV pages but the pool has 3/);
    } finally {
      small.destroy();
    }
  });

  it('cancelling a running sequence ends it and frees its pages; a queued one is rejected', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 1, prefixCache: false });
    const freeBefore = model.pool.freePages; // an earlier test's prefix cache may still hold pages
    const running = new AbortController();
    const queued = new AbortController();
    let seen = 0;
    const first = scheduler.submit(request('Once upon a time', 100), () => {
      if (++seen === 3) running.abort();
    }, running.signal);
    const second = scheduler.submit(request('The cat', 100), undefined, queued.signal).catch((error: unknown) => error);
    queued.abort();
    expect((await first).stopReason).toBe('cancelled');
    expect((await first).generatedTokens).toBe(3);
    expect(await second).toBeInstanceOf(CancelledError);
    expect(model.pool.freePages).toBe(freeBefore);
  });

  it('refuses prompts past the context and bad settings', async () => {
    const scheduler = new Scheduler(model, { prefixCache: false });
    await expect(scheduler.submit({ prompt: new Array(128).fill(5), maxTokens: 1, temperature: 0, seed: 0, stopIds })).rejects.toBeInstanceOf(RequestError);
    expect(() => new Scheduler(model, { maxBatch: 99 })).toThrow(/maxBatch/);
  });
});
