// The engine's lab-facing surface on stories260K: what it reports about itself at load (roofline
// probe, memory, load times, switch choices), switches flipped on the running model, the CPU
// sampler, distribution inspection, and WGSL edits that must pass their checks before they run.
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/engine/errors.ts';
import { shaderSources } from '../src/engine/gpu/shaders.ts';
import { createEngine, type Engine } from '../src/engine/index.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import { referenceGenerate } from '../src/engine/reference/forward.ts';
import type { StepDistribution } from '../src/engine/telemetry.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';

const modelsDir = fileURLToPath(new URL('../../shared/models/', import.meta.url));
const models = directorySource(modelsDir);
const entry = 'stories260K/stories260K.bin';
const context = 128;
const greedy = { prompt: '', maxTokens: 40, temperature: 0, seed: 0 };

describe('the engine as the lab sees it', () => {
  let engine: Engine;
  let reference: number[];

  beforeAll(async () => {
    engine = await createEngine({ gpu: nodeGpu(), files: models, entry, maxContext: context, matvecVariant: 'naive' });
    const description = await loadModelDescription(models, entry);
    const { bosTokenId, eosTokenId } = description.config;
    reference = referenceGenerate(description, [bosTokenId], 40, 0, 0, [eosTokenId, bosTokenId]);
  });

  afterAll(() => engine.dispose());

  it('reports the roofline probe, its memory and its load at start-up', async () => {
    const { bandwidth, memory, load, config } = engine.model;
    expect(bandwidth.readGBps).toBeGreaterThan(0);
    expect(Number.isFinite(bandwidth.copyGBps)).toBe(true);
    expect(bandwidth.method).toBe('timestamp');
    const kvDim = config.nKvHeads * config.headDim;
    expect(memory.contextLength).toBe(context);
    expect(memory.kvBytesPerToken).toBe(2 * 4 * config.nLayers * kvDim);
    expect(memory.kvCacheBytes).toBe(memory.kvBytesPerToken * context);
    expect(memory.matrixBytes + memory.embeddingBytes + memory.vectorBytes).toBe(engine.model.weightBytes);
    expect(memory.embeddingBytes).toBe(4 * config.vocabSize * config.dim);
    // Every matrix once (f32) plus the embedding row, caches and activations: more than the matrices.
    expect(memory.bytesPerToken).toBeGreaterThan(memory.matrixBytes);
    const fileBytes = (await stat(`${modelsDir}/${entry}`)).size + (await stat(`${modelsDir}/stories260K/tok512.bin`)).size;
    expect(load.fileBytes).toBe(fileBytes);
    expect(load.uploadBytes).toBe(engine.model.weightBytes);
    for (const ms of [load.readMs, load.uploadMs, load.compileMs]) expect(ms).toBeGreaterThan(0);
  });

  it('lists the switch values this adapter can run and says why the others cannot', () => {
    const { choices, settings } = engine.model;
    expect(settings).toEqual({ weightFormat: 'f32', matvecVariant: 'naive', sampler: 'gpu', kvCache: 'contiguous', pageSize: 16, prefixCache: true, attention: 'fused', speculative: 'off', draftTokens: 4 });
    expect(choices.weightFormat.available).toEqual(['f32', 'f16', 'q8_0', 'q4_0']); // SwiftShader: no shader-f16
    expect(choices.weightFormat.unavailable).toEqual([{ value: 'f16-native', reason: "needs the 'shader-f16' feature" }]);
    expect(choices.matvecVariant.available).toEqual(['auto', 'naive', 'splitK', 'subgroup', 'multiRow']);
    expect(choices.sampler.available).toEqual(['gpu', 'gpu-sort', 'cpu']);
    expect(choices.kvCache.available).toEqual(['contiguous', 'paged']);
    expect(choices.pageSize.available).toEqual([8, 16, 32]);
    expect(choices.attention.available).toEqual(['fused', 'splitK', 'unfused']);
    // No draft model was given at load, so only the built-in drafts are offered.
    expect(choices.speculative.available).toEqual(['off', 'draft-q4', 'ngram']);
    expect(choices.speculative.unavailable).toEqual([{ value: 'draft-model', reason: 'needs a draft model given at load' }]);
    expect(choices.draftTokens.available).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('greedy output equals the CPU reference', async () => {
    expect((await engine.generate(greedy)).tokens).toEqual(reference);
  });

  it('switches weight format and kernel on the running model, and refuses what the adapter lacks', async () => {
    const f32Bytes = engine.model.memory.matrixBytes;
    const q4 = await engine.reconfigure({ weightFormat: 'q4_0' });
    expect(q4.weightFormat).toBe('q4_0');
    expect(q4.settings.weightFormat).toBe('q4_0');
    // 18 bytes per 32 weights instead of 128 (rows of 172 pad to 192 columns).
    expect(q4.memory.matrixBytes / f32Bytes).toBeGreaterThan(0.14);
    expect(q4.memory.matrixBytes / f32Bytes).toBeLessThan(0.2);
    expect((await engine.generate(greedy)).generatedTokens).toBeGreaterThan(0);

    await expect(engine.reconfigure({ weightFormat: 'f16-native' })).rejects.toThrow(/f16-native cannot run on this adapter: it needs the 'shader-f16' feature/);
    await expect(engine.reconfigure({ matvecVariant: 'warp' })).rejects.toBeInstanceOf(RequestError);
    expect(engine.model.weightFormat).toBe('q4_0'); // a refused switch changes nothing

    const split = await engine.reconfigure({ weightFormat: 'f32', matvecVariant: 'splitK' });
    expect(split.matvecVariant).toBe('splitK');
    expect((await engine.generate(greedy)).tokens).toEqual(reference);
    const back = await engine.reconfigure({ matvecVariant: 'naive' });
    expect(back.matvecVariant).toBe('naive');
  });

  it('refuses to reconfigure while generating', async () => {
    const running = engine.generate({ ...greedy, maxTokens: 30 });
    await expect(engine.reconfigure({ weightFormat: 'f16' })).rejects.toThrow(/busy/);
    expect((await running).tokens).toEqual(reference.slice(0, 31));
  });

  it('the CPU sampler draws the same tokens as the GPU sampler from the same seed', async () => {
    const sampled = { prompt: 'Once upon a time', maxTokens: 30, temperature: 0.8, seed: 7 };
    const gpu = await engine.generate(sampled);
    await engine.reconfigure({ sampler: 'cpu' });
    try {
      expect((await engine.generate(sampled)).tokens).toEqual(gpu.tokens);
      expect((await engine.generate(greedy)).tokens).toEqual(reference);
    } finally {
      await engine.reconfigure({ sampler: 'gpu' });
    }
  });

  it('inspecting the distribution reports the top candidates of every step without changing the output', async () => {
    const distributions: StepDistribution[] = [];
    const result = await engine.generate({ ...greedy, maxTokens: 12, inspect: 5 }, (event) => distributions.push(event.distribution!));
    expect(result.tokens).toEqual(reference.slice(0, 13));
    expect(distributions).toHaveLength(12);
    distributions.forEach((d, i) => {
      expect(d.position).toBe(i + 1);
      expect(d.sampled).toBe(reference[i + 1]);
      expect(d.candidates).toHaveLength(5);
      expect(d.candidates[0].token).toBe(d.sampled); // greedy takes the highest logit
      for (let c = 1; c < 5; c++) expect(d.candidates[c].logit).toBeLessThanOrEqual(d.candidates[c - 1].logit);
      // log-sum-exp over the whole vocabulary bounds every logit and the top probability is at most 1.
      expect(d.logSumExp).toBeGreaterThanOrEqual(d.candidates[0].logit);
      expect(typeof d.candidates[0].piece).toBe('string');
    });
    await expect(engine.generate({ ...greedy, inspect: -1 })).rejects.toBeInstanceOf(RequestError);
  });

  it('profiles a decode step kernel by kernel', async () => {
    const profile = await engine.profileStep({ position: 16, repetitions: 2 });
    const { nLayers } = engine.model.config;
    expect(profile.position).toBe(16);
    expect(profile.kernels.filter((k) => k.op === 'matvec')).toHaveLength(7 * nLayers + 1);
    expect((await engine.generate(greedy)).tokens).toEqual(reference); // profiling leaves generation as it was
  });

  it('runs only WGSL edits that compile and match the reference; the model keeps its kernel otherwise', async () => {
    const shipped = shaderSources.matvec;
    const lines = shipped.split('\n');
    const broken = [...lines];
    broken[19] = 'let broken = ;';
    const rejected = await engine.editShader('matvec', broken.join('\n'));
    expect(rejected.accepted).toBe(false);
    expect(rejected.errors.join('\n')).toMatch(/matvec\.wgsl:20:/);
    expect(await engine.shaderSource('matvec')).toBe(shipped);
    expect((await engine.generate(greedy)).tokens).toEqual(reference);

    const edited = `// edited in the lab\n${shipped}`;
    const accepted = await engine.editShader('matvec', edited);
    expect(accepted.errors).toEqual([]);
    expect(accepted.accepted).toBe(true);
    expect(await engine.shaderSource('matvec')).toBe(edited);
    expect((await engine.generate(greedy)).tokens).toEqual(reference);
    const bench = await engine.runWorkbench({ op: 'matvec', format: 'f32', rows: 37, cols: 172, repetitions: 2 });
    expect(bench.results.filter((r) => r.ms !== null).every((r) => r.edited)).toBe(true);

    await engine.resetShader('matvec');
    expect(await engine.shaderSource('matvec')).toBe(shipped);
    expect((await engine.generate(greedy)).tokens).toEqual(reference);
    await expect(engine.editShader('nonsense', 'fn main() {}')).resolves.toMatchObject({ accepted: false });
  });
});
