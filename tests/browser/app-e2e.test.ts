// The lab page end to end: build it, serve the build with `vite preview`, open it in headless
// Chromium, generate the known story, and check that a model that fails to load is reported by
// name while the page keeps working.
import { mkdirSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelDescription } from '../../src/engine/model/load.ts';
import { referenceGenerate } from '../../src/engine/reference/forward.ts';
import { directorySource } from '../../src/node/fs-source.ts';
import { modelsDir } from '../../vite.config.ts';
import { buildAndPreview, type BuiltApp } from '../helpers/built-app.ts';
import { launchChromium, recordConsole } from '../helpers/chromium.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const resultsDir = join(repoRoot, 'test-results');
const story = 'Once upon a time, there was a little girl named Lily.';
// The known greedy story from BOS (a few seconds on SwiftShader).
const storyTokens = 200;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

describe('lab page (vite build + preview, headless Chromium)', () => {
  let app: BuiltApp;
  let browser: Browser;
  let page: Page;
  let consoleLines: string[] = [];
  let baseUrl: string;

  beforeAll(async () => {
    const started = performance.now();
    app = await buildAndPreview('lab-build');
    baseUrl = app.baseUrl;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    consoleLines = recordConsole(page);
    console.log(`app e2e: build + preview + browser ready in ${(performance.now() - started).toFixed(0)} ms`);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  /** Waits for the status element to reach `status`, and says what the page said when it does not. */
  async function waitForStatus(status: string, timeout = 90_000): Promise<void> {
    try {
      await page.waitForSelector(`[data-testid="status"][data-status="${status}"]`, { timeout });
    } catch (error) {
      const now = await page.locator('[data-testid="status"]').getAttribute('data-status').catch(() => '?');
      const banner = await page.locator('[data-testid="error"]').textContent({ timeout: 100 }).catch(() => '');
      throw new Error(
        `status never became "${status}" (it is "${now}"; error banner: ${banner || 'none'}): ${(error as Error).message}\n` +
          `--- page console ---\n${consoleLines.join('\n')}`,
      );
    }
  }

  async function generateAndWait(): Promise<{ text: string; tokens: number[] }> {
    await page.getByTestId('generate').click();
    await waitForStatus('done');
    const output = page.getByTestId('output');
    const text = (await output.getAttribute('data-text')) ?? '';
    const tokens = ((await output.getAttribute('data-tokens')) ?? '').split(',').filter(Boolean).map(Number);
    return { text, tokens };
  }

  it('builds without copying any model file into the output', () => {
    const files = filesUnder(app.outDir);
    expect(files.some((f) => f.endsWith('index.html'))).toBe(true);
    expect(files.filter((f) => ['.bin', '.gguf', '.safetensors'].includes(extname(f)))).toEqual([]);
  });

  it('loads stories260K, shows the adapter, and streams the greedy story', async () => {
    const started = performance.now();
    const model = await loadModelDescription(directorySource(modelsDir()), 'stories260K/stories260K.bin');
    const expected = referenceGenerate(model, [model.config.bosTokenId], storyTokens, 0, 0, [model.config.eosTokenId, model.config.bosTokenId]);

    await page.goto(baseUrl);
    await waitForStatus('ready');
    await expect.poll(() => page.getByTestId('adapter-vendor').textContent()).not.toBe('');
    expect(await page.getByTestId('model-info').textContent()).toContain('stories260K');

    await page.getByTestId('prompt').fill('');
    await page.getByTestId('max-tokens').fill(String(storyTokens));
    await page.getByTestId('temperature').fill('0');
    const loaded = performance.now();
    const { text, tokens } = await generateAndWait();
    const generated = performance.now();
    expect(text).toContain(story);
    expect(tokens).toEqual(expected);
    expect(await page.getByTestId('tokens-per-second').textContent()).toMatch(/tok\/s/);
    expect(await page.getByTestId('ttft').textContent()).toMatch(/ms/);

    mkdirSync(resultsDir, { recursive: true });
    await page.screenshot({ path: join(resultsDir, 'lab-story.png'), fullPage: true });
    console.log(
      `app e2e: load ${(loaded - started).toFixed(0)} ms, generate ${storyTokens} tokens ${(generated - loaded).toFixed(0)} ms (${await page.getByTestId('tokens-per-second').textContent()})`,
    );
  });

  it('names a model file that fails to load, and keeps working after picking a good model', async () => {
    await page.goto(new URL('?model=missing.bin', baseUrl).href);
    await waitForStatus('error');
    const banner = (await page.getByTestId('error').textContent()) ?? '';
    expect(banner).toContain('missing.bin');
    expect(banner).toMatch(/not found|404/i);
    expect(await page.getByTestId('generate').isDisabled()).toBe(true);
    mkdirSync(resultsDir, { recursive: true });
    await page.screenshot({ path: join(resultsDir, 'lab-load-error.png'), fullPage: true });

    await page.getByTestId('model').selectOption('stories260K/stories260K.bin');
    await waitForStatus('ready');
    expect(await page.getByTestId('error').count()).toBe(0);
    await page.getByTestId('max-tokens').fill('10');
    const { text, tokens } = await generateAndWait();
    expect(text).toContain('Once upon a time');
    expect(tokens.length).toBe(11);
  });

  it('says so when the browser has no WebGPU', async () => {
    const noGpu = await browser.newPage();
    try {
      await noGpu.addInitScript(() => {
        delete (Navigator.prototype as { gpu?: unknown }).gpu;
      });
      await noGpu.goto(baseUrl);
      await noGpu.waitForSelector('[data-testid="status"][data-status="error"]', { timeout: 30_000 });
      expect(await noGpu.getByTestId('error').textContent()).toMatch(/no WebGPU/);
      expect(await noGpu.getByTestId('generate').isDisabled()).toBe(true);
    } finally {
      await noGpu.close();
    }
  });

  it('stops a running generation', async () => {
    await page.getByTestId('max-tokens').fill('400');
    await page.getByTestId('generate').click();
    await page.waitForFunction(() => (document.querySelector('[data-testid="output"]')?.getAttribute('data-text') ?? '').length > 20);
    await page.getByTestId('stop').click();
    await waitForStatus('done');
    expect(await page.getByTestId('generate').isEnabled()).toBe(true);
    expect(await page.getByTestId('generated').textContent()).toMatch(/stopped|end of story/);
  });
});
