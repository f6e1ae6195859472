// Models from the Hub in the built lab page (headless Chromium), against the local Hub stand-in:
// a catalog model is downloaded through a dropped connection (resumed with a Range request),
// cached, and generates; a truncated file is rejected and not cached; a model too big for the
// GPU memory the page assumes is refused before its weights are fetched; and after a reload with
// the Hub gone the model loads from the cache and generates the same text.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAndPreview, type BuiltApp } from '../helpers/built-app.ts';
import { launchChromium, recordConsole } from '../helpers/chromium.ts';
import { sharedRepos, startHubServer, type HubServer } from '../helpers/hub-server.ts';

const storiesId = 'hub:karpathy/tinyllamas/stories260K/stories260K.bin';
const storiesFile = 'karpathy/tinyllamas/stories260K/stories260K.bin';
/** Qwen2.5-0.5B-Instruct's config.json (only the config: the preflight refuses before any weight is fetched). */
const qwenConfig = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
  num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rope_theta: 1000000,
  rms_norm_eps: 1e-6, tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151645, hidden_act: 'silu', use_sliding_window: false,
};

describe('models from the Hub (vite build + preview, headless Chromium, local Hub stand-in)', () => {
  let hub: HubServer;
  let app: BuiltApp;
  let browser: Browser;
  let page: Page;
  let consoleLines: string[] = [];
  let story = '';

  beforeAll(async () => {
    hub = await startHubServer({
      ...sharedRepos(),
      'Qwen/Qwen2.5-0.5B-Instruct': { 'config.json': new TextEncoder().encode(JSON.stringify(qwenConfig)) },
    });
    app = await buildAndPreview('hub-build');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    consoleLines = recordConsole(page);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await hub?.close();
  });

  async function waitForStatus(status: string, timeout = 90_000): Promise<void> {
    try {
      await page.waitForSelector(`[data-testid="status"][data-status="${status}"]`, { timeout });
    } catch (error) {
      const banner = await page.locator('[data-testid="error"]').textContent({ timeout: 100 }).catch(() => '');
      const message = await page.locator('[data-testid="hub-message"]').textContent({ timeout: 100 }).catch(() => '');
      throw new Error(`status never became "${status}" (error: ${banner || 'none'}; hub: ${message || 'none'}): ${(error as Error).message}\n--- page console ---\n${consoleLines.join('\n')}`);
    }
  }

  async function generate(): Promise<string> {
    await page.getByTestId('prompt').fill('');
    await page.getByTestId('max-tokens').fill('24');
    await page.getByTestId('generate').click();
    await waitForStatus('done');
    return (await page.getByTestId('output').getAttribute('data-text')) ?? '';
  }

  const cached = (url: string) => page.evaluate(async (u) => (await (await caches.open('lab-model-files')).match(u)) !== undefined, url);

  it('downloads a catalog model through a dropped connection, caches it and generates', async () => {
    // Ask for the stored model: the cache is empty, so the page says so instead of loading anything.
    await page.goto(`${app.baseUrl}?hub=${encodeURIComponent(hub.url)}&model=${encodeURIComponent(storiesId)}`);
    await waitForStatus('error');
    expect(await page.getByTestId('error').textContent()).toContain('is not in this browser\'s model cache');
    await page.waitForSelector(`[data-testid="catalog-row"][data-id="${storiesId}"] [data-testid="verdict"]`);

    hub.faults.set(storiesFile, { dropAfterBytes: 400_000, times: 1 });
    await page.locator(`[data-testid="catalog-row"][data-id="${storiesId}"] [data-testid="catalog-download"]`).click();
    await waitForStatus('ready');

    const resumed = hub.requests.filter((r) => r.path.startsWith('/cdn/') && r.range !== null);
    expect(resumed.map((r) => r.status)).toEqual([206]);
    expect(Number(/^bytes=(\d+)-$/.exec(resumed[0].range!)?.[1])).toBeGreaterThan(0);
    expect(await page.getByTestId('model-info').textContent()).toContain('stories260K.bin (cached) (llama2.c)');
    expect(await page.locator(`[data-testid="cached-model"][data-id="${storiesId}"]`).textContent()).toContain('1.01 MiB');
    expect(await page.getByTestId('hub-quota').textContent()).toMatch(/used of/);
    expect(await cached(`${hub.url}/${storiesFile.replace('tinyllamas/', 'tinyllamas/resolve/main/')}`)).toBe(true);

    story = await generate();
    expect(story).toMatch(/^Once upon a time/);
  });

  it('rejects a truncated file and keeps nothing of it as complete', async () => {
    hub.faults.set('lab-test/stories260K-hf/model.safetensors', { truncateTo: 400_000 });
    await page.getByTestId('hub-reference').fill('lab-test/stories260K-hf');
    await page.getByTestId('hub-fetch').click();
    await expect.poll(() => page.getByTestId('hub-message').textContent().catch(() => ''), { timeout: 30_000 }).toMatch(/model\.safetensors: corrupt: its SHA-256 is/);
    expect(await cached(`${hub.url}/lab-test/stories260K-hf/resolve/main/model.safetensors`)).toBe(false);
    expect(await page.locator('[data-testid="cached-model"][data-id="hub:lab-test/stories260K-hf"]').count()).toBe(0);
    // The loaded model is untouched.
    expect(await page.getByTestId('model-info').textContent()).toContain('stories260K.bin');
  });

  it('refuses a model that does not fit before downloading its weights', async () => {
    await page.getByTestId('hub-settings').click();
    await page.getByTestId('gpu-memory').fill('0.5');
    await page.getByTestId('gpu-memory').dispatchEvent('change');
    const qwenRow = page.locator('[data-testid="catalog-row"][data-id="hub:Qwen/Qwen2.5-0.5B-Instruct"]');
    await expect.poll(() => qwenRow.getAttribute('data-fits')).toBe('false');
    expect(await qwenRow.locator('[data-testid="verdict"][data-format="q4_0"]').textContent()).toMatch(/q4_0 \d+ MiB — it needs about \d+ MiB but about 512 MiB of GPU memory is free/);

    await page.getByTestId('hub-reference').fill('Qwen/Qwen2.5-0.5B-Instruct');
    await page.getByTestId('hub-fetch').click();
    await expect.poll(() => page.getByTestId('hub-message').textContent().catch(() => '')).toMatch(
      /^Not downloaded: Qwen\/Qwen2\.5-0\.5B-Instruct does not fit on this adapter in any weight format\. f32: does not fit: it needs about/,
    );
    // It read config.json and looked for a shard index, and never asked for the weights.
    const asked = hub.requests.filter((r) => r.path.includes('/Qwen2.5-0.5B-Instruct/')).map((r) => `${r.method} ${r.path.split('/resolve/main/')[1]}`);
    expect(asked).toContain('GET config.json');
    expect(asked.filter((a) => a.endsWith(' model.safetensors'))).toEqual([]);
    await page.getByTestId('gpu-memory').fill('4');
    await page.getByTestId('gpu-memory').dispatchEvent('change');
  });

  it('starts from the cache with the Hub gone and generates the same text', async () => {
    await hub.close();
    await page.reload();
    await waitForStatus('ready');
    expect(decodeURIComponent(page.url())).toContain(`model=${storiesId}`);
    expect(await page.getByTestId('model-info').textContent()).toContain('(cached)');
    expect(await generate()).toBe(story);

    await page.locator(`[data-testid="cached-model"][data-id="${storiesId}"] [data-testid="cached-delete"]`).click();
    await page.waitForSelector('[data-testid="cached-empty"]');
    expect(await cached(`${hub.url}/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin`)).toBe(false);
  });
});
