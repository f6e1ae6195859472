// The per-kernel profile of a decode step on stories260K: one timing per dispatch in step order,
// named and costed like the dispatch, by both timing methods; the query-set chunking of
// timeEachDispatch; and a profile leaves greedy generation exactly as it was.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/engine/errors.ts';
import type { GpuContext } from '../src/engine/gpu/device.ts';
import type { Dispatch } from '../src/engine/gpu/kernel.ts';
import { timeEachDispatch } from '../src/engine/gpu/timing.ts';
import { attentionCost } from '../src/engine/kernels/attention.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription } from '../src/engine/model/types.ts';
import { generate } from '../src/engine/runtime/generate.ts';
import { GpuModel } from '../src/engine/runtime/gpu-model.ts';
import { layerOf, opOf, profileStep } from '../src/engine/runtime/profile.ts';
import type { StepProfile } from '../src/engine/telemetry.ts';
import { parseLlama2cTokenizer } from '../src/engine/tokenizer/llama2c.ts';
import type { Tokenizer } from '../src/engine/tokenizer/types.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { testGpu } from './helpers/gpu.ts';

const models = directorySource(fileURLToPath(new URL('../../shared/models/', import.meta.url)));
const contextLength = 64;
// Forced, so the models skip the tuning run; profiles do not depend on the variant.
const matvecVariant = 'naive';

function withoutTimestamps(gpu: GpuContext): GpuContext {
  return { ...gpu, adapter: { ...gpu.adapter, features: { ...gpu.adapter.features, timestampQuery: false } } };
}

function stepDispatches(model: GpuModel): Dispatch[] {
  return [...model.bodyDispatches, ...model.headDispatches, model.samplerDispatch({ kind: 'argmax' })];
}

describe('profileStep on stories260K', () => {
  let description: ModelDescription;
  let tokenizer: Tokenizer;
  let model: GpuModel;

  beforeAll(async () => {
    description = await loadModelDescription(models, 'stories260K/stories260K.bin');
    tokenizer = parseLlama2cTokenizer(await models.read('stories260K/tok512.bin'), 'tok512.bin', description.config.vocabSize);
    model = await GpuModel.create(await testGpu(), description, { maxContext: contextLength, matvecVariant });
  });

  afterAll(() => model.destroy());

  /** Everything a profile of `model` must satisfy whatever the method. */
  function expectWellFormed(profile: StepProfile, position: number): void {
    const dispatches = stepDispatches(model);
    const { nLayers, nHeads, nKvHeads, headDim } = description.config;
    expect(dispatches).toHaveLength(1 + 14 * nLayers + 2 + 1);
    expect(profile.kernels.map((k) => k.label)).toEqual(dispatches.map((d) => d.label));
    expect(profile.position).toBe(position);
    expect(profile.note).toMatch(/sum is more than the step/);

    const byLabel = new Map(profile.kernels.map((k) => [k.label, k]));
    expect(byLabel.get('embedding')).toMatchObject({ op: 'embedding', layer: null });
    expect(byLabel.get('layers.0.attnNorm')).toMatchObject({ op: 'rmsnorm', layer: 0 });
    expect(byLabel.get('layers.0.wq')).toMatchObject({ op: 'matvec', layer: 0 });
    expect(byLabel.get('layers.1.rope')).toMatchObject({ op: 'rope', layer: 1 });
    expect(byLabel.get(`layers.${nLayers - 1}.attention`)).toMatchObject({ op: 'attention', layer: nLayers - 1 });
    expect(byLabel.get('layers.2.attnResidual')).toMatchObject({ op: 'add', layer: 2 });
    expect(byLabel.get('layers.3.swiglu')).toMatchObject({ op: 'swiglu', layer: 3 });
    expect(byLabel.get('layers.3.ffnResidual')).toMatchObject({ op: 'add', layer: 3 });
    expect(byLabel.get('finalNorm')).toMatchObject({ op: 'rmsnorm', layer: null });
    expect(byLabel.get('classifier')).toMatchObject({ op: 'matvec', layer: null });
    expect(byLabel.get('argmax')).toMatchObject({ op: 'sample', layer: null });

    // Every cost comes from the dispatch, except attention's, taken at this step's context.
    const attention = attentionCost({ nHeads, nKvHeads, headDim, maxSeq: contextLength, cacheOffset: 0 }, position + 1);
    profile.kernels.forEach((kernel, i) => {
      const cost = dispatches[i].family === 'attention' ? attention : dispatches[i].cost;
      expect({ bytesRead: kernel.bytesRead, bytesWritten: kernel.bytesWritten, flops: kernel.flops }).toEqual(cost);
      expect(Number.isFinite(kernel.ms) && kernel.ms >= 0, `${kernel.label}: ${kernel.ms} ms`).toBe(true);
    });
    expect(profile.totalMs).toBeGreaterThan(0);
    expect(profile.totalMs).toBeCloseTo(profile.kernels.reduce((sum, k) => sum + k.ms, 0), 9);
  }

  /**
   * Timestamps on this adapter: nodeGpu() turns off Dawn's timestamp quantization (2^16 ns steps by
   * default, as in Chrome), so every kernel, even a residual add, takes a measurable time.
   */
  function expectTimestamped(profile: StepProfile, repetitions: number): void {
    expect(profile).toMatchObject({ method: 'timestamp', repetitions });
    expect(profile.note).toMatch(/own timestamped compute pass/);
    expect(profile.resolutionMs).toBeLessThan(0.001);
    for (const kernel of profile.kernels) expect(kernel.ms, kernel.label).toBeGreaterThan(0);
    for (const attention of profile.kernels.filter((k) => k.op === 'attention')) expect(attention.ms).toBeGreaterThan(0);
  }

  it('times every dispatch of the step with timestamps by default, at a quarter of the context', async () => {
    expect(model.gpu.adapter.features.timestampQuery).toBe(true); // SwiftShader exposes the feature
    const profile = await profileStep(model, { repetitions: 3, warmup: 1 });
    expectTimestamped(profile, 3);
    expectWellFormed(profile, contextLength / 4);
  });

  it('times every dispatch alone on the wall clock when forced', async () => {
    const profile = await profileStep(model, { position: 40, repetitions: 2, warmup: 1, method: 'wall' });
    expect(profile).toMatchObject({ method: 'wall', repetitions: 2 });
    expect(profile.note).toMatch(/submitted alone/);
    // The wall clock always advances across a submit and its completion.
    for (const kernel of profile.kernels) expect(kernel.ms, kernel.label).toBeGreaterThan(0);
    // performance.now() steps by well under a millisecond (5 µs to 0.1 ms in browsers, less in Node).
    expect(profile.resolutionMs).toBeGreaterThan(0);
    expect(profile.resolutionMs).toBeLessThanOrEqual(0.1);
    expectWellFormed(profile, 40);
  });

  it('chunks the timed passes when they need more queries than one query set holds', async () => {
    const dispatches = stepDispatches(model);
    const repetitions = Math.ceil(2049 / dispatches.length); // just past 2048 timed passes
    expect(dispatches.length * repetitions).toBeGreaterThan(2048);
    model.writeStepInputs(3, description.config.bosTokenId, null);
    const { method, timings } = await timeEachDispatch(model.gpu, dispatches, { repetitions, warmup: 0 });
    expect(method).toBe('timestamp');
    expect(timings).toHaveLength(dispatches.length);
    // Every pass of the second chunk is credited to its own dispatch: each gets every repetition.
    for (const timing of timings) expect(timing.samples).toBe(repetitions);
    timings.forEach((timing, i) => {
      if (dispatches[i].family === 'attention') expect(timing.meanMs).toBeGreaterThan(0);
    });
  });

  it('attention moves more bytes the further into the context the step is', async () => {
    const early = await profileStep(model, { position: 1, repetitions: 1, warmup: 0 });
    const late = await profileStep(model, { position: contextLength - 1, repetitions: 1, warmup: 0 });
    const attentionBytes = (p: StepProfile) => p.kernels.find((k) => k.op === 'attention')!.bytesRead;
    const kvBytesPerPosition = 2 * 4 * description.config.nKvHeads * description.config.headDim;
    expect(attentionBytes(late) - attentionBytes(early)).toBe((contextLength - 2) * kvBytesPerPosition);
  });

  it('refuses a position outside the context and timestamps on a device without them', async () => {
    await expect(profileStep(model, { position: contextLength })).rejects.toThrow(RequestError);
    await expect(profileStep(model, { position: -1 })).rejects.toThrow(RequestError);
    await expect(profileStep(model, { repetitions: 0 })).rejects.toThrow(RangeError);

    const plain = await GpuModel.create(withoutTimestamps(await testGpu()), description, { maxContext: 16, matvecVariant });
    try {
      await expect(profileStep(plain, { method: 'timestamp' })).rejects.toThrow(/timestamp-query/);
      const profile = await profileStep(plain, { repetitions: 1, warmup: 0 });
      expect(profile.method).toBe('wall');
      expect(profile.position).toBe(4);
    } finally {
      plain.destroy();
    }
  });

  it('leaves greedy generation as it was', async () => {
    const request = { prompt: 'Once upon a time', maxTokens: 24, temperature: 0, seed: 0 };
    const before = await generate(model, tokenizer, request);
    await profileStep(model, { position: 10, repetitions: 1, warmup: 0 });
    await profileStep(model, { position: 20, repetitions: 1, warmup: 0, method: 'wall' });
    const after = await generate(model, tokenizer, request);
    expect(after.tokens).toEqual(before.tokens);
    expect(after.generatedTokens).toBe(24);
  });
});

describe('opOf and layerOf', () => {
  it('name elementwise ops by entry point and parse only a leading layers.N.', () => {
    expect(opOf({ family: 'elementwise', entryPoint: 'swiglu' })).toBe('swiglu');
    expect(opOf({ family: 'elementwise', entryPoint: 'add' })).toBe('add');
    expect(opOf({ family: 'matvec', entryPoint: 'main' })).toBe('matvec');
    expect(layerOf('layers.12.w2')).toBe(12);
    expect(layerOf('classifier')).toBeNull();
    expect(layerOf('xlayers.1.wq')).toBeNull();
  });
});
