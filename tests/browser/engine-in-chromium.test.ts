// The engine on Chromium's own WebGPU (not Node's Dawn): a Vite dev server serves the engine's
// TypeScript and the models, a blank page imports the engine, and greedy generation of
// stories260K must give exactly the CPU reference's tokens.
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { createServer, type Plugin, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdapterReport, GenerateResult, ModelInfo } from '../../src/engine/engine.ts';
import { loadModelDescription } from '../../src/engine/model/load.ts';
import { referenceGenerate } from '../../src/engine/reference/forward.ts';
import { directorySource } from '../../src/node/fs-source.ts';
import { modelsDir } from '../../vite.config.ts';
import { chromiumArgs, launchChromium, recordConsole } from '../helpers/chromium.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const maxTokens = 200;

/** A page that imports the engine modules and leaves them on `window.__engine`. */
function enginePage(): Plugin {
  const html = `<!doctype html>
<meta charset="utf-8"><title>engine test</title>
<script type="module">
  window.__engine = Promise.all([import('/src/engine/index.ts'), import('/src/engine/model/url-source.ts')])
    .then(([engine, source]) => ({ ...engine, ...source }));
</script>`;
  return {
    name: 'engine-test-page',
    configureServer(server) {
      server.middlewares.use('/__engine-test.html', (_req, res) => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(html);
      });
    },
  };
}

interface PageRun {
  userAgent: string;
  pageAdapter: { vendor: string; architecture: string };
  adapter: AdapterReport;
  model: ModelInfo;
  result: GenerateResult;
  ms: number;
}

describe('engine in headless Chromium (WebGPU)', () => {
  let server: ViteDevServer;
  let browser: Browser;
  let page: Page;
  let consoleLines: string[] = [];
  let baseUrl: string;

  beforeAll(async () => {
    server = await createServer({
      root: repoRoot,
      logLevel: 'warn',
      clearScreen: false,
      plugins: [enginePage()],
      server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
    });
    await server.listen();
    baseUrl = server.resolvedUrls?.local[0] ?? '';
    expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    browser = await launchChromium();
    page = await browser.newPage();
    consoleLines = recordConsole(page);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('serves the models directory at /models/ (GET, HEAD, 404, no escaping it)', async () => {
    const bin = await fetch(new URL('models/stories260K/stories260K.bin', baseUrl));
    expect(bin.status).toBe(200);
    expect((await bin.arrayBuffer()).byteLength).toBe(1_056_540);
    const head = await fetch(new URL('models/stories260K/tok512.bin', baseUrl), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('6227');
    expect((await fetch(new URL('models/stories260K/missing.bin', baseUrl))).status).toBe(404);
    expect((await fetch(new URL('models/stories260K', baseUrl))).status).toBe(404);
    // fetch() normalizes '..' away, so send the raw and the encoded forms over plain HTTP.
    for (const path of ['/models/../package.json', '/models/%2e%2e/package.json', '/models/stories260K/..%2f..%2fpackage.json']) {
      expect(await rawStatus(baseUrl, path), path).toBeGreaterThanOrEqual(400);
    }
  });

  it('greedy stories260K.bin from BOS for 200 tokens matches the CPU reference', async () => {
    const started = performance.now();
    const model = await loadModelDescription(directorySource(modelsDir()), 'stories260K/stories260K.bin');
    const expected = referenceGenerate(model, [model.config.bosTokenId], maxTokens, 0, 0, [model.config.eosTokenId, model.config.bosTokenId]);

    await page.goto(new URL('__engine-test.html', baseUrl).href);
    let run: PageRun;
    try {
      run = await page.evaluate(runInPage, { entry: 'stories260K/stories260K.bin', tokenizer: 'stories260K/tok512.bin', maxTokens });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- page console ---\n${consoleLines.join('\n')}`);
    }
    console.log(
      `engine in Chromium: ${run.result.generatedTokens} tokens, page run ${run.ms.toFixed(0)} ms, ` +
        `prefill ${run.result.prefillMs.toFixed(1)} ms, decode ${run.result.decodeTokensPerSecond.toFixed(1)} tok/s, ` +
        `adapter ${run.adapter.vendor}/${run.adapter.architecture}; test ${(performance.now() - started).toFixed(0)} ms`,
    );

    // The report is Chromium's adapter: the page's own navigator.gpu adapter, in a Chrome user agent.
    expect(run.userAgent).toMatch(/HeadlessChrome|Chrome\//);
    expect(run.adapter.vendor).toBe(run.pageAdapter.vendor);
    expect(run.adapter.architecture).toBe(run.pageAdapter.architecture);
    if (chromiumArgs().includes('--use-webgpu-adapter=swiftshader')) {
      expect(run.adapter.architecture).toBe('swiftshader');
      expect(run.adapter.isFallbackAdapter).toBe(true);
    }
    expect(run.model.config.dim).toBe(64);

    expect(run.result.tokens).toEqual(expected);
    expect(run.result.text).toContain('Once upon a time, there was a little girl named Lily.');
  });
});

/** Runs inside the page: no imports or outer names may be used here (it is serialized). */
async function runInPage({ entry, tokenizer, maxTokens }: { entry: string; tokenizer: string; maxTokens: number }): Promise<PageRun> {
  const started = performance.now();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const modules: any = await (window as any).__engine;
  const gpu = navigator.gpu;
  const pageAdapter = await gpu.requestAdapter();
  const files = modules.urlSource(new URL('/models/', location.href).href);
  const engine = await modules.createEngine({ gpu, files, entry, tokenizer: { files, path: tokenizer } });
  try {
    const result = await engine.generate({ prompt: '', maxTokens, temperature: 0, seed: 0 });
    return {
      userAgent: navigator.userAgent,
      pageAdapter: { vendor: pageAdapter?.info.vendor ?? '', architecture: pageAdapter?.info.architecture ?? '' },
      adapter: engine.adapter,
      model: engine.model,
      result,
      ms: performance.now() - started,
    };
  } finally {
    engine.dispose();
  }
}

/** Status code of a GET sent exactly as written (no URL normalization). */
async function rawStatus(base: string, path: string): Promise<number> {
  const { request } = await import('node:http');
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}
