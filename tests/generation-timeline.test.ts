// Every generation in the engine reports its timeline (what the lab's pipeline panel draws): the
// stages follow each other without gaps from tokenize to respond, one entry per generated token with
// the step that made it, and the prompt split into cached and computed tokens — on the contiguous
// path, the paged path (where a repeated prompt comes from the prefix cache) and the speculative one.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, GenerateResult } from '../src/engine/engine.ts';
import { createEngine } from '../src/engine/index.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));
const prompt = 'Lily saw a big cat. The cat was happy. Lily saw a big cat. The cat';

function checkTimeline(result: GenerateResult) {
  const t = result.timeline!;
  expect(t).toMatchObject({ source: 'engine', endpoint: 'generate', finished: true, promptTokens: result.promptTokens });
  expect(t.stages.map((s) => s.name)).toEqual(['tokenize', 'prefill', 'decode', 'respond']);
  t.stages.forEach((stage, i) => {
    expect(stage.endMs).toBeGreaterThanOrEqual(stage.startMs);
    if (i > 0) expect(stage.startMs).toBe(t.stages[i - 1].endMs);
  });
  expect(t.stages[0].startMs).toBe(0);
  // The tokens, in order, with their arrival inside the decode stage (the first opens it).
  expect(t.tokens.map((e) => e.token)).toEqual(result.tokens.slice(result.promptTokens));
  const decode = t.stages[2];
  expect(t.tokens[0].atMs).toBe(decode.startMs);
  expect(t.tokens.at(-1)!.atMs).toBe(decode.endMs);
  expect(t.tokens.map((e) => e.text).join('')).toBe(result.text);
  for (const e of t.tokens) {
    expect(e.stepMs).toBeGreaterThanOrEqual(0);
    expect(e.detokenizeMs).toBeGreaterThanOrEqual(0);
    expect(e.writeMs).toBeGreaterThanOrEqual(0);
  }
  expect(t.cachedPromptTokens! + t.computedPromptTokens!).toBe(result.promptTokens);
  return t;
}

describe('generation timelines (stories260K)', () => {
  let engine: Engine;
  const request = { prompt, maxTokens: 12, temperature: 0, seed: 0 };

  beforeAll(async () => {
    engine = await createEngine({ gpu: nodeGpu(), files: models, entry: 'stories260K/stories260K.bin', maxContext: 128 });
  });

  afterAll(() => engine?.dispose());

  it('contiguous: one step per token, the whole prompt computed, and outcome length', async () => {
    const result = await engine.generate(request);
    const t = checkTimeline(result);
    expect(t.outcome).toBe('length');
    expect(t.tokens.map((e) => e.step)).toEqual([...Array(12).keys()]);
    expect(t.tokens.every((e) => e.batchRows === 1)).toBe(true);
    expect(t.cachedPromptTokens).toBe(0);
  });

  it('paged: the second run of a prompt takes its full pages from the prefix cache', async () => {
    await engine.reconfigure({ kvCache: 'paged', pageSize: 8 });
    checkTimeline(await engine.generate(request));
    const again = checkTimeline(await engine.generate(request));
    expect(again.cachedPromptTokens).toBeGreaterThanOrEqual(8);
  });

  it('speculative: tokens of one pass share its step and its rows (the guesses plus one)', async () => {
    await engine.reconfigure({ speculative: 'draft-q4', draftTokens: 3 });
    const result = await engine.generate(request);
    const t = checkTimeline(result);
    const passes = new Set(t.tokens.map((e) => e.step));
    expect(passes.size).toBe(result.speculative!.targetPasses);
    expect(passes.size).toBeLessThan(t.tokens.length);
    for (const e of t.tokens) {
      expect(e.batchRows).toBeGreaterThanOrEqual(1);
      expect(e.batchRows).toBeLessThanOrEqual(4);
    }
  });
});
