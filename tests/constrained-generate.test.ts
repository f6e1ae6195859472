// Constrained decoding through the engine on stories260K: the GPU sampler masks what the
// constraint forbids, so every seeded JSON generation parses and every regex generation matches;
// the CPU sampler makes the same choices; mask time is reported; what cannot run is refused.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/engine/engine.ts';
import { RequestError } from '../src/engine/errors.ts';
import { createEngine } from '../src/engine/index.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));

describe('constrained generation (stories260K, GPU mask)', () => {
  let engine: Engine;

  beforeAll(async () => {
    engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', maxContext: 256 });
  });
  afterAll(() => engine?.dispose());

  it('JSON mode: every seeded generation that completes parses, and most complete', async () => {
    let completed = 0;
    for (let seed = 0; seed < 10; seed++) {
      const result = await engine.generate({ prompt: 'Once upon a time', maxTokens: 80, temperature: 1, seed, constraint: 'json' });
      expect(result.constraint).toMatchObject({ spec: 'json' });
      expect(result.constraint!.maskCalls).toBe(result.generatedTokens);
      if (!result.constraint!.complete) continue;
      completed++;
      expect(result.stopReason, result.text).toBe('eos');
      expect(() => JSON.parse(result.text), result.text).not.toThrow();
    }
    expect(completed).toBeGreaterThanOrEqual(8);
  });

  it('a regex constraint is always matched, top-k and top-p on top of it', async () => {
    for (let seed = 0; seed < 8; seed++) {
      const result = await engine.generate({ prompt: 'Call me at', maxTokens: 30, temperature: 1.2, seed, topK: 20, topP: 0.95, constraint: 'regex:[0-9]{3}-[0-9]{4}' });
      expect(result.constraint!.complete).toBe(true);
      expect(result.text.trim()).toMatch(/^[0-9]{3}-[0-9]{4}$/);
    }
  });

  it('the CPU sampler applies the same mask and picks the same tokens', async () => {
    const request = { prompt: 'Once upon a time', maxTokens: 40, temperature: 0.9, seed: 5, constraint: 'json' };
    const gpu = await engine.generate(request);
    await engine.reconfigure({ sampler: 'cpu' });
    try {
      expect((await engine.generate(request)).tokens).toEqual(gpu.tokens);
    } finally {
      await engine.reconfigure({ sampler: 'gpu' });
    }
  });

  it('refuses a bad pattern with its position, and constraints in a batch; the engine keeps working', async () => {
    const base = { prompt: 'Hi', maxTokens: 4, temperature: 1, seed: 0 };
    await expect(engine.generate({ ...base, constraint: 'regex:[0-9' })).rejects.toThrow(/position/);
    await expect(engine.generate({ ...base, constraint: 'yaml' })).rejects.toBeInstanceOf(RequestError);
    await expect(engine.generateBatch({ requests: [{ ...base, constraint: 'json' }] })).rejects.toThrow(/contiguous KV cache/);
    expect((await engine.generate(base)).generatedTokens).toBeGreaterThan(0);
  });
});
