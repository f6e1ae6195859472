// Whole models from the Hub stand-in: what a typed-in reference means, the download plan (a
// generated sharded safetensors model at stories15M's widths, one layer), the catalog's figures,
// and the model cache the engine loads from (listing, FileSource, delete, dropped local files).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalog, catalogPlan, llama2cFileBytes, verdicts } from '../src/app/catalog.ts';
import { makeModel } from '../src/cli/make-model.ts';
import { ModelCache, cacheSource, storedSize } from '../src/engine/hub/cache-store.ts';
import { localModelLayout, storeLocalModel } from '../src/engine/hub/local-files.ts';
import { cacheLocation, downloadModel } from '../src/engine/hub/model-download.ts';
import { planDownload } from '../src/engine/hub/plan.ts';
import { parseModelReference, resolveUrl } from '../src/engine/hub/reference.ts';
import { loadModel } from '../src/engine/model/load.ts';
import { modelsDir } from '../vite.config.ts';
import { startHubServer, sharedRepos, type HubRepo, type HubServer } from './helpers/hub-server.ts';
import { MemoryCaches } from './helpers/memory-caches.ts';

describe('parseModelReference', () => {
  it('reads repo ids, files in repos, Hub URLs and other URLs', () => {
    expect(parseModelReference('HuggingFaceTB/SmolLM2-135M-Instruct')).toEqual({ kind: 'hub-folder', repo: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: 'main', folder: '' });
    expect(parseModelReference(' karpathy/tinyllamas/stories260K/stories260K.bin@v1 ')).toEqual({ kind: 'hub-file', repo: 'karpathy/tinyllamas', revision: 'v1', path: 'stories260K/stories260K.bin' });
    expect(parseModelReference('https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/blob/main/qwen2.5-0.5b-instruct-q8_0.gguf')).toEqual({
      kind: 'hub-file', repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF', revision: 'main', path: 'qwen2.5-0.5b-instruct-q8_0.gguf',
    });
    expect(parseModelReference('http://127.0.0.1:9/owner/name', 'http://127.0.0.1:9')).toEqual({ kind: 'hub-folder', repo: 'owner/name', revision: 'main', folder: '' });
    expect(parseModelReference('https://example.com/models/m.gguf')).toEqual({ kind: 'url', url: 'https://example.com/models/m.gguf' });
    expect(() => parseModelReference('just-a-name')).toThrow('"just-a-name" is not a Hub repo id');
    expect(resolveUrl('https://huggingface.co', 'a/b', 'main', 'sub dir/x.bin')).toBe('https://huggingface.co/a/b/resolve/main/sub%20dir/x.bin');
  });
});

describe('catalog', () => {
  it('has the llama2.c file size exactly (stories260K: the real file on disk)', () => {
    const stories = catalog.find((e) => e.title === 'stories260K')!;
    const real = readFileSync(join(modelsDir(), 'stories260K', 'stories260K.bin')).length;
    expect(llama2cFileBytes(stories.config)).toBe(real);
    expect(stories.files[0]).toEqual({ path: 'stories260K/stories260K.bin', size: real });
    // karpathy/tinyllamas's stories15M.bin is 60,816,028 bytes.
    expect(catalog.find((e) => e.title === 'stories15M')!.downloadBytes).toBe(60_816_028);
  });

  it('lists the models the issue names, each with a verdict per weight format', () => {
    expect(catalog.map((e) => e.repo)).toEqual([
      'karpathy/tinyllamas', 'karpathy/tinyllamas', 'karpathy/tinyllamas', 'karpathy/tinyllamas',
      'HuggingFaceTB/SmolLM2-135M-Instruct', 'HuggingFaceTB/SmolLM2-360M-Instruct', 'Qwen/Qwen2.5-0.5B-Instruct', 'unsloth/Llama-3.2-1B-Instruct',
    ]);
    const limits = { maxBufferSize: 1 << 30, maxStorageBufferBindingSize: 1 << 30 };
    const llama = catalog.find((e) => e.title === 'Llama-3.2-1B-Instruct')!;
    // Its f32 embedding alone is 1 GiB: with 2 GiB free only q4_0 fits (about 1.75 GiB).
    const tight = verdicts(llama.config, limits, 2 * 2 ** 30);
    expect(tight.map((v) => [v.format, v.fits])).toEqual([['f32', false], ['f16', false], ['q8_0', false], ['q4_0', true]]);
    expect(tight[0].message).toMatch(/^f32: does not fit: it needs about .* but about 2\.00 GiB of GPU memory is free/);
    expect(verdicts(llama.config, limits, 16 * 2 ** 30).every((v) => v.fits)).toBe(true);
  });
});

describe('whole models from the Hub stand-in', () => {
  let hub: HubServer;
  let generatedDir: string;

  beforeAll(async () => {
    generatedDir = mkdtempSync(join(tmpdir(), 'hub-generated-'));
    await makeModel({ like: 'stories15m', out: generatedDir, format: 'hf', dtype: 'bf16', layers: 1, shards: 2 });
    const generated: HubRepo = Object.fromEntries(readdirSync(generatedDir).map((name) => [name, { file: join(generatedDir, name) }]));
    hub = await startHubServer({ ...sharedRepos(), 'lab-test/stories15M-1layer': generated });
  });
  afterAll(async () => {
    await hub?.close();
    rmSync(generatedDir, { recursive: true, force: true });
  });

  it('plans a sharded folder from its index, downloads it, and the engine loads it from the cache', async () => {
    const plan = await planDownload(parseModelReference('lab-test/stories15M-1layer', hub.url), hub.url);
    expect(plan.id).toBe('hub:lab-test/stories15M-1layer');
    expect(plan.config).toMatchObject({ dim: 288, hiddenDim: 768, nLayers: 1, vocabSize: 32000 });
    const shards = plan.files.map((f) => f.path).filter((p) => p.endsWith('.safetensors'));
    expect(shards).toHaveLength(2);
    expect(plan.files.map((f) => f.path)).toEqual(['config.json', 'model.safetensors.index.json', ...shards]);

    const caches = new MemoryCaches();
    const cache = new ModelCache(caches);
    const seen = new Set<string>();
    const stored = await downloadModel(plan, cache, { onProgress: (path, p) => p.state === 'done' && seen.add(path) });
    expect([...seen]).toEqual(plan.files.map((f) => f.path));
    const onDisk = plan.files.reduce((sum, f) => sum + readFileSync(join(generatedDir, f.path)).length, 0);
    expect(storedSize(stored)).toBe(onDisk);
    expect((await cache.models()).map((m) => m.id)).toEqual([plan.id]);

    const { model } = await loadModel(cacheSource(caches, cacheLocation(stored)), stored.entry);
    expect(model.config).toMatchObject({ dim: 288, nLayers: 1, vocabSize: 32000 });
    expect(model.source).toContain('(cached)');

    await cache.deleteModel(plan.id);
    expect(await cache.models()).toEqual([]);
    expect(caches.urls('lab-model-files')).toEqual([]);
  });

  it('plans a llama2.c .bin with the tokenizer its header asks for (tok512.bin)', async () => {
    const plan = await planDownload(parseModelReference('karpathy/tinyllamas/stories260K/stories260K.bin', hub.url), hub.url);
    expect(plan).toMatchObject({ entry: 'stories260K.bin', tokenizer: 'tok512.bin', baseUrl: `${hub.url}/karpathy/tinyllamas/resolve/main/stories260K/` });
    expect(plan.id).toBe(catalog[0].id);
  });

  it('says what is missing: a repo without config.json, an unknown repo', async () => {
    await expect(planDownload(parseModelReference('karpathy/tinyllamas', hub.url), hub.url)).rejects.toThrow('config.json: not found (HTTP 404)');
    await expect(planDownload(parseModelReference('nobody/nothing', hub.url), hub.url)).rejects.toThrow('not found (HTTP 404)');
  });

  it('a catalog plan downloads the catalog files and a model is listed only once all are stored', async () => {
    const caches = new MemoryCaches();
    const cache = new ModelCache(caches);
    const plan = catalogPlan(catalog[0], hub.url);
    hub.faults.set('karpathy/tinyllamas/stories260K/tok512.bin', { truncateTo: 100 });
    await expect(downloadModel(plan, cache)).rejects.toThrow('the server has 100 bytes but 6227 were expected');
    expect(await cache.models()).toEqual([]);
    hub.faults.clear();
    const stored = await downloadModel(plan, cache);
    expect(stored.files.map((f) => [f.path, f.size])).toEqual([['stories260K/stories260K.bin', 1_056_540], ['stories260K/tok512.bin', 6227]]);
    expect((await cache.model(plan.id))?.tokenizer).toBe('stories260K/tok512.bin');
  });
});

describe('dropped local files', () => {
  const blob = (bytes: number) => new Blob([new Uint8Array(bytes)]);

  it('finds the model and its tokenizer among the files', () => {
    expect(localModelLayout([{ path: 'tok512.bin', blob: blob(10) }, { path: 'stories260K.bin', blob: blob(100) }])).toEqual({ entry: 'stories260K.bin', tokenizer: 'tok512.bin' });
    expect(localModelLayout([{ path: 'm/config.json', blob: blob(1) }, { path: 'm/model.safetensors', blob: blob(9) }])).toEqual({ entry: 'm' });
    expect(localModelLayout([{ path: 'x.gguf', blob: blob(9) }])).toEqual({ entry: 'x.gguf' });
    expect(() => localModelLayout([{ path: 'stories260K.bin', blob: blob(100) }])).toThrow('drop its tokenizer');
  });

  it('stores them so the engine loads them from the cache', async () => {
    const dir = join(modelsDir(), 'stories260K');
    const files = ['stories260K.bin', 'tok512.bin'].map((path) => ({ path, blob: new Blob([readFileSync(join(dir, path))]) }));
    const caches = new MemoryCaches();
    const stored = await storeLocalModel(new ModelCache(caches), 'my stories', files);
    expect(stored).toMatchObject({ id: 'local:my stories', entry: 'stories260K.bin', tokenizer: 'tok512.bin' });
    const { model } = await loadModel(cacheSource(caches, cacheLocation(stored)), stored.entry);
    expect(model.config.dim).toBe(64);
  });
});
