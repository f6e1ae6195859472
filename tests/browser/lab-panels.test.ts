// The lab page's panels in headless Chromium, on one page through one session: switches flipped on
// the running model (weight format, matvec variant, sampler, KV cache) with the engine's own report
// of what runs, the workbench and its WGSL editor, the step profile, distribution inspection, a
// batching sweep and a mixed batch's KV pages, exports, presenter mode, the address bar, and the
// replay of a recorded trace (model text shown as text).
// Screenshots of every panel go to test-artifacts/screenshots/.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelDescription } from '../../src/engine/model/load.ts';
import { referenceGenerate } from '../../src/engine/reference/forward.ts';
import type { LabTrace, RunRecord } from '../../src/app/trace.ts';
import { directorySource } from '../../src/node/fs-source.ts';
import { modelsDir } from '../../vite.config.ts';
import { buildAndPreview, type BuiltApp } from '../helpers/built-app.ts';
import { launchChromium, recordConsole } from '../helpers/chromium.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const screenshotsDir = join(repoRoot, 'test-artifacts', 'screenshots');
const traceFile = join(repoRoot, 'static', 'traces', 'stories260K.json');
/** New tokens per generation: enough to compare sequences, few enough for SwiftShader. */
const newTokens = 16;
const panelIds = ['generate', 'optimizations', 'model', 'tokens-per-second', 'prefill-decode', 'memory', 'sampling', 'workbench', 'batching', 'kv-cache', 'pipeline', 'economics'];
const pngSignature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const hostileText = '<img src=x onerror=alert(1)><b>bold</b>';

function expectPng(path: string): void {
  expect(statSync(path).size).toBeGreaterThan(pngSignature.length);
  expect(readFileSync(path).subarray(0, pngSignature.length)).toEqual(pngSignature);
}

describe('lab panels (vite build + preview, headless Chromium)', () => {
  let app: BuiltApp;
  let browser: Browser;
  let page: Page;
  let consoleLines: string[] = [];
  let baseUrl: string;
  /** Greedy tokens from BOS by the CPU reference: BOS, then `newTokens` generated. */
  let greedyReference: number[];

  beforeAll(async () => {
    const started = performance.now();
    const model = await loadModelDescription(directorySource(modelsDir()), 'stories260K/stories260K.bin');
    const { bosTokenId, eosTokenId } = model.config;
    greedyReference = referenceGenerate(model, [bosTokenId], newTokens, 0, 0, [eosTokenId, bosTokenId]);
    app = await buildAndPreview('lab-panels-build');
    baseUrl = app.baseUrl;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    consoleLines = recordConsole(page);
    mkdirSync(screenshotsDir, { recursive: true });
    console.log(`lab panels: build + preview + browser ready in ${(performance.now() - started).toFixed(0)} ms`);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  /** Waits until the page has nothing in flight (ready or done), and says what it showed when it fails instead. */
  async function waitIdle(on: Page = page, timeout = 120_000): Promise<void> {
    try {
      await on.waitForFunction(
        () => ['ready', 'done', 'error'].includes(document.querySelector('[data-testid="status"]')?.getAttribute('data-status') ?? ''),
        undefined,
        { timeout },
      );
    } catch (error) {
      throw new Error(`the page never became idle: ${(error as Error).message}\n--- page console ---\n${consoleLines.join('\n')}`);
    }
    const status = await on.getByTestId('status').getAttribute('data-status');
    if (status === 'error') {
      const banner = await on.getByTestId('error').textContent();
      throw new Error(`the page reports an error: ${banner}\n--- page console ---\n${consoleLines.join('\n')}`);
    }
  }

  const runRows = (on: Page = page) => on.locator('[data-testid="runs-table"] tbody tr');
  const switchMarks = () => page.locator('[data-testid="tokens-per-second-panel"] text.switch-label');

  /** Presses Generate and waits for the run to finish and join the runs table. */
  async function generate(): Promise<{ text: string; tokens: number[] }> {
    const runsBefore = await runRows().count();
    await page.getByTestId('generate').click();
    await waitIdle();
    await expect.poll(() => runRows().count()).toBe(runsBefore + 1);
    const output = page.getByTestId('output');
    const text = (await output.getAttribute('data-text')) ?? '';
    const tokens = ((await output.getAttribute('data-tokens')) ?? '').split(',').filter(Boolean).map(Number);
    return { text, tokens };
  }

  /**
   * Flips a switch in the Optimizations panel and waits until the engine has applied it: the page
   * adds the switch's mark ("weight format f32 → q4_0") to the tokens/sec chart only once the
   * engine has reconfigured.
   */
  async function flip(key: string, value: string, mark: string): Promise<void> {
    const marksBefore = await switchMarks().count();
    await page.locator(`[data-testid="switch-${key}"] label[data-value="${value}"]`).click();
    await expect.poll(() => switchMarks().count(), { timeout: 120_000 }).toBe(marksBefore + 1);
    expect(await switchMarks().last().textContent()).toBe(mark);
    await waitIdle();
  }

  async function setGeneration(settings: { prompt?: string; maxTokens?: number; temperature?: number; seed?: number }): Promise<void> {
    if (settings.prompt !== undefined) await page.getByTestId('prompt').fill(settings.prompt);
    if (settings.maxTokens !== undefined) await page.getByTestId('max-tokens').fill(String(settings.maxTokens));
    if (settings.temperature !== undefined) await page.getByTestId('temperature').fill(String(settings.temperature));
    if (settings.seed !== undefined) await page.getByTestId('seed').fill(String(settings.seed));
  }

  /** Waits until the page stops scrolling (a presenter step scrolls smoothly to its panel). */
  async function scrollSettled(): Promise<void> {
    let last = Number.NaN;
    for (let y = await page.evaluate(() => scrollY); y !== last; y = await page.evaluate(() => scrollY)) {
      last = y;
      await page.waitForTimeout(250);
    }
  }

  async function downloadOf(testId: string): Promise<string> {
    const [file] = await Promise.all([page.waitForEvent('download'), page.getByTestId(testId).click()]);
    const path = await file.path();
    return readFileSync(path, 'utf8');
  }

  it('generates the greedy story from BOS exactly as the CPU reference, and lists the run', async () => {
    await page.goto(baseUrl);
    await waitIdle();
    expect(await page.getByTestId('running-format').textContent()).toBe('f32');
    await setGeneration({ prompt: '', maxTokens: newTokens, temperature: 0 });
    const { text, tokens } = await generate();
    expect(tokens).toEqual(greedyReference);
    expect(text).toContain('Once upon a time');
    const row = runRows().first();
    expect(await row.locator('td').first().textContent()).toBe('#1');
    expect(await row.locator('td').nth(1).textContent()).toMatch(/^f32 · auto→\w+ · gpu sampler$/);
    expect(await row.locator('td').nth(6).textContent()).toBe(String(newTokens));
  });

  it('flips the weight format to q4_0 and back on the running model; the address bar follows', async () => {
    await flip('weightFormat', 'q4_0', 'weight format f32 → q4_0');
    expect(await page.getByTestId('running-format').textContent()).toBe('q4_0');
    expect(page.url()).toContain('weightFormat=q4_0');

    const q4 = await generate();
    expect(q4.text.length).toBeGreaterThan(0);
    expect(q4.tokens).toHaveLength(newTokens + 1);
    expect(await runRows().count()).toBe(2);
    expect(await runRows().nth(1).locator('td').nth(1).textContent()).toMatch(/^q4_0 · /);

    // A copied link reproduces the setup: a fresh page loads the model straight into q4_0.
    const copied = await browser.newPage();
    try {
      await copied.goto(page.url());
      await copied.waitForSelector('[data-testid="running-format"]', { timeout: 120_000 });
      await waitIdle(copied);
      expect(await copied.getByTestId('running-format').textContent()).toBe('q4_0');
      expect(await copied.getByTestId('max-tokens').inputValue()).toBe(String(newTokens));
    } finally {
      await copied.close();
    }

    await flip('weightFormat', 'f32', 'weight format q4_0 → f32');
    expect(await page.getByTestId('running-format').textContent()).toBe('f32');
    expect(page.url()).not.toContain('weightFormat=');
    const f32 = await generate();
    expect(f32.tokens).toEqual(greedyReference);
  });

  it('forces another matvec variant: the engine reports it, and greedy text stays the reference', async () => {
    const tuned = (await page.getByTestId('running-variant').textContent()) ?? '';
    const forced = tuned === 'splitK' ? 'naive' : 'splitK';
    await flip('matvecVariant', forced, `matvec variant auto → ${forced}`);
    expect(await page.getByTestId('running-variant').textContent()).toBe(forced);
    expect(page.url()).toContain(`matvecVariant=${forced}`);
    // Variants differ only in the order of the additions, which moves the logits by about 1e-6;
    // no greedy choice of these 16 tokens is that close to a tie, so the tokens stay exact.
    const { tokens } = await generate();
    expect(tokens).toEqual(greedyReference);

    await flip('matvecVariant', 'auto', `matvec variant ${forced} → auto`);
    expect(await page.getByTestId('running-variant').textContent()).toBe(tuned);
  });

  it('the CPU sampler draws the same tokens as the GPU sampler for the same seed', async () => {
    await setGeneration({ temperature: 0.8, seed: 7 });
    const gpu = await generate();
    // Sampling really happened: at T = 0.8 this seed leaves the greedy path.
    expect(gpu.tokens).not.toEqual(greedyReference);
    await flip('sampler', 'cpu', 'sampler gpu → cpu');
    expect(await runRows().last().locator('td').nth(1).textContent()).toMatch(/gpu sampler$/);
    const cpu = await generate();
    expect(await runRows().last().locator('td').nth(1).textContent()).toMatch(/cpu sampler$/);
    expect(cpu.tokens).toEqual(gpu.tokens);
    expect(cpu.text).toBe(gpu.text);

    await flip('sampler', 'gpu', 'sampler cpu → gpu');
    await setGeneration({ temperature: 0, seed: 42 });
  });

  it('flips the KV cache to paged: the engine reports it, and greedy tokens stay the reference', async () => {
    await flip('kvCache', 'paged', 'KV cache contiguous → paged');
    expect(await page.getByTestId('running-kv').textContent()).toBe('paged');
    expect(page.url()).toContain('kvCache=paged');
    // The batched model samples on the GPU and reads no logits back: the page says so.
    expect(await page.locator('[data-testid="switch-sampler"] label[data-value="cpu"]').getAttribute('class')).toContain('unavailable');
    expect(await page.getByTestId('inspect').isDisabled()).toBe(true);
    expect(await page.getByTestId('inspect-unavailable').textContent()).toContain('paged KV cache');
    // Chunked GEMM prefill and paged attention add in another order than the single-sequence
    // model; no greedy choice of these tokens is close enough to a tie for that to matter.
    const { tokens } = await generate();
    expect(tokens).toEqual(greedyReference);
    expect(await runRows().last().locator('td').nth(6).textContent()).toBe(String(newTokens));

    await flip('kvCache', 'contiguous', 'KV cache paged → contiguous');
    expect(await page.getByTestId('running-kv').textContent()).toBe('contiguous');
    expect(await page.getByTestId('inspect').isDisabled()).toBe(false);
  });

  it('turns speculative decoding on (q4_0 draft): the cache goes paged, greedy tokens stay the reference, the run reports acceptance', async () => {
    await flip('speculative', 'draft-q4', 'KV cache contiguous → paged, speculative off → draft-q4');
    expect(await page.getByTestId('running-kv').textContent()).toBe('paged');
    expect(page.url()).toContain('speculative=draft-q4');
    const { tokens } = await generate();
    expect(tokens).toEqual(greedyReference);
    const extras = (await page.getByTestId('run-extras').textContent()) ?? '';
    expect(extras).toMatch(/Draft acceptance\s*\d+(\.\d)?%/);
    expect(extras).toMatch(/proposed by draft-q4, 4 per pass/);

    await flip('kvCache', 'contiguous', 'KV cache paged → contiguous, speculative draft-q4 → off');
    expect(await page.getByTestId('running-kv').textContent()).toBe('contiguous');
  });

  it("the pipeline panel follows the last generation from tokenize to respond", async () => {
    await generate();
    const stages = (await page.getByTestId('pipeline-stages').textContent()) ?? '';
    for (const stage of ['tokenize', 'prefill', 'decode', 'respond']) expect(stages).toContain(stage);
    expect(await page.getByTestId('pipeline-figures').textContent()).toContain(String(newTokens));
    expect(await page.locator('[data-testid="pipeline-chart"] rect').count()).toBeGreaterThan(newTokens);
  });

  it('sweeps batch sizes 1 and 2: the Batching panel plots and tables a point per size', { timeout: 240_000 }, async () => {
    await page.getByTestId('batch-max').selectOption('2');
    await page.getByTestId('batch-tokens').fill('6');
    await page.getByTestId('batch-sweep').click();
    await page.waitForSelector('[data-testid="pareto-chart"]', { timeout: 180_000 });
    await waitIdle(page, 180_000);
    const points = page.locator('[data-testid="pareto-chart"] .pareto-point');
    expect(await points.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-batch')))).toEqual(['1', '2']);
    expect(await points.locator('text').allTextContents()).toEqual(['B=1', 'B=2']);
    const rows = page.locator('[data-testid="batch-table"] tbody tr');
    expect(await rows.count()).toBe(2);
    for (const batch of ['1', '2']) {
      const cells = page.locator(`[data-testid="batch-table"] tbody tr[data-batch="${batch}"] td`);
      expect(await cells.first().textContent()).toBe(batch);
      // Aggregate and per-user tokens/s were measured.
      expect(Number((await cells.nth(1).textContent())?.replaceAll(',', ''))).toBeGreaterThan(0);
      expect(Number((await cells.nth(2).textContent())?.replaceAll(',', ''))).toBeGreaterThan(0);
    }
    expect(await page.locator('[data-testid="batch-roofline"] .measured').count()).toBe(2);
  });

  it('runs a mixed batch: the KV-cache panel shows the pool page by page with its owners', { timeout: 240_000 }, async () => {
    await page.getByTestId('kv-run').click();
    await page.waitForSelector('[data-testid="page-grid"]', { timeout: 180_000 });
    await waitIdle(page, 180_000);
    expect(await page.getByTestId('kv-status').textContent()).toContain('Finished.');
    const cells = page.locator('[data-testid="page-grid"] g.page');
    const pageCount = Number(/Pool: (\d+) pages/.exec((await page.getByTestId('kv-summary').textContent()) ?? '')?.[1]);
    expect(pageCount).toBeGreaterThan(0);
    expect(await cells.count()).toBe(pageCount);
    const owners = await cells.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-owners') ?? '').filter((o) => o !== ''));
    expect(owners.length).toBeGreaterThan(0);
    for (const o of owners) expect(o).toMatch(/^request-\d( request-\d)*$/);
    expect(await page.locator('[data-testid="kv-waste"] tbody tr').count()).toBe(2);
  });

  it('workbench: times every variant, rejects a broken edit by line, accepts a valid one, resets', { timeout: 240_000 }, async () => {
    // stories260K's FFN down projection (64 outputs × 172 inputs): the default 288×288 takes over a
    // minute on SwiftShader, where the variants with barriers run a workgroup per row slowly.
    await page.getByTestId('workbench-rows').fill('64');
    await page.getByTestId('workbench-cols').fill('172');
    await page.getByTestId('workbench-run').click();
    await page.waitForSelector('[data-testid="workbench-results"]', { timeout: 120_000 });
    await waitIdle();
    expect(await page.getByTestId('workbench-summary').textContent()).toMatch(/^\s*q4_0 64×172:/);
    const offered = await page
      .locator('[data-testid="switch-matvecVariant"] label.segment:not(.unavailable)')
      .evaluateAll((labels) => labels.map((l) => l.getAttribute('data-value')).filter((v) => v !== 'auto'));
    expect(offered).toContain('naive');
    expect(offered).toContain('splitK');
    const timed = await page.locator('[data-testid="workbench-results"] tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-variant')));
    expect([...timed].sort()).toEqual([...offered].sort());
    for (const variant of offered) {
      // Columns after the variant: ms, GB/s, GFLOP/s, of probe, max abs error, notes (errors).
      const cells = page.locator(`[data-testid="workbench-results"] tbody tr[data-variant="${variant}"] td`);
      expect(Number((await cells.first().textContent())?.replaceAll(',', ''))).toBeGreaterThan(0);
      expect((await cells.nth(5).textContent())?.trim()).toBe('');
    }

    const editor = page.getByTestId('wgsl-editor');
    const shipped = await editor.inputValue();
    const lines = shipped.split('\n');
    // Past the #if blocks at the top: the error's line is the edited source's own line.
    const brokenLine = lines.findIndex((l) => l.startsWith('var<workgroup> partial')) + 1;
    expect(brokenLine).toBeGreaterThan(1);
    await editor.fill(lines.map((l, i) => (i === brokenLine - 1 ? 'let broken = ;' : l)).join('\n'));
    await page.getByTestId('wgsl-submit').click();
    await page.waitForSelector('[data-testid="wgsl-errors"]', { timeout: 120_000 });
    await waitIdle();
    expect(await page.getByTestId('wgsl-errors').textContent()).toContain(`matvec.wgsl:${brokenLine}:`);
    expect(await page.locator(`[data-testid="wgsl-errors"] button[data-line="${brokenLine}"]`).count()).toBe(1);
    // The model kept the shipped kernel.
    expect((await generate()).tokens).toEqual(greedyReference);

    await editor.fill(`// edited in the lab page test\n${shipped}`);
    await page.getByTestId('wgsl-submit').click();
    await page.waitForSelector('[data-testid="wgsl-accepted"]', { timeout: 180_000 });
    await waitIdle();
    expect(await page.locator('[data-testid="wgsl-checks"] tbody tr.failed').count()).toBe(0);
    expect(await page.locator('[data-testid="workbench"] .editor-state').textContent()).toContain('edited kernel in use');
    expect((await generate()).tokens).toEqual(greedyReference);

    await page.getByTestId('wgsl-reset').click();
    await expect.poll(() => page.locator('[data-testid="workbench"] .editor-state').textContent(), { timeout: 120_000 }).toContain('running shaders/matvec.wgsl');
    await waitIdle();
    expect(await editor.inputValue()).toBe(shipped);
  });

  it('profiles one decode step kernel by kernel', async () => {
    await page.getByTestId('profile-step').click();
    await page.waitForSelector('[data-testid="op-table"]', { timeout: 120_000 });
    await waitIdle();
    const matvec = page.locator('[data-testid="op-table"] tbody tr', { has: page.locator('td', { hasText: /^matvec$/ }) });
    expect(await matvec.count()).toBe(1);
    const cells = matvec.locator('td');
    expect(Number(await cells.nth(1).textContent())).toBeGreaterThan(0);
    expect(await cells.nth(2).textContent()).toMatch(/^[\d.,]+ ms$/);
    expect(parseFloat((await cells.nth(2).textContent()) ?? '')).toBeGreaterThan(0);
  });

  it('inspects the sampling distribution and marks the sampled token', async () => {
    await page.getByTestId('inspect').check();
    await setGeneration({ maxTokens: 6 });
    const { tokens } = await generate();
    const candidates = page.locator('[data-testid="candidates"] tbody tr');
    expect(await candidates.count()).toBeGreaterThan(1);
    const sampled = page.locator('[data-testid="candidates"] tbody tr.sampled');
    expect(await sampled.count()).toBe(1);
    // The panel shows the last step: the token it marks is the last one generated (greedy: rank 1).
    expect(Number(await sampled.getAttribute('data-token'))).toBe(tokens[tokens.length - 1]);
    expect(await sampled.locator('td').first().textContent()).toBe('1');
    expect(await sampled.textContent()).toContain('◀ sampled');
    await page.getByTestId('inspect').uncheck();
    await setGeneration({ maxTokens: newTokens });
  });

  it('exports the tokens/sec runs as JSON and CSV', async () => {
    const runs = await runRows().count();
    const json = JSON.parse(await downloadOf('export-json-tokens-per-second')) as { runs: RunRecord[]; marks: unknown[] };
    expect(json.runs).toHaveLength(runs);
    expect(json.runs[0].result?.tokens).toEqual(greedyReference);
    // Two flips each of the weight format, the matvec variant, the sampler, the KV cache and speculative decoding.
    expect(json.marks).toHaveLength(10);
    const csv = (await downloadOf('export-csv-tokens-per-second')).split('\r\n');
    expect(csv[0]).toBe('run,settings,promptTokens,generatedTokens,ttftMs,tpotMs,decodeTokensPerSecond');
    expect(csv.filter((line) => line !== '')).toHaveLength(runs + 1);
    expect(csv[1]).toMatch(/^1,f32 · auto→\w+ · gpu sampler,1,16,/);
  });

  it('saves a screenshot of every panel', async () => {
    for (const id of panelIds) {
      const path = join(screenshotsDir, `panel-${id}.png`);
      await page.getByTestId(`panel-${id}`).screenshot({ path, animations: 'disabled' });
      expectPng(path);
    }
  });

  it('presenter mode steps forward and back with the keyboard and exits with Escape', async () => {
    const presenter = page.getByTestId('presenter');
    await page.getByTestId('presenter-start').click();
    await expect.poll(() => presenter.getAttribute('data-step')).toBe('0');
    const runsBefore = await runRows().count();
    // Steps 1–3: set f32 (already running), generate, show the tokens/sec panel.
    for (const step of ['1', '2', '3']) {
      await page.keyboard.press('ArrowRight');
      await expect.poll(() => presenter.getAttribute('data-step')).toBe(step);
      await waitIdle();
    }
    expect(page.url()).toContain('presenter=1');
    await expect.poll(() => runRows().count()).toBe(runsBefore + 1);
    // The viewport as the audience sees it: the overlay is docked (position: fixed) under the panels
    // a step shows, and an element screenshot of a fixed element on a scrolled page misses it. The
    // step scrolled smoothly to its panel; a frame taken mid-scroll comes out blank.
    await scrollSettled();
    const path = join(screenshotsDir, 'presenter.png');
    await page.screenshot({ path, animations: 'disabled' });
    expectPng(path);

    await page.keyboard.press('ArrowLeft');
    await expect.poll(() => presenter.getAttribute('data-step')).toBe('2');
    // Going back onto the Generate step runs it again.
    await expect.poll(() => runRows().count(), { timeout: 120_000 }).toBe(runsBefore + 2);
    await waitIdle();
    await page.keyboard.press('Escape');
    await expect.poll(() => presenter.count()).toBe(0);
    expect(page.url()).not.toContain('presenter=');
  });

  it('replays a recorded trace into the panels without loading a model', async () => {
    const trace = JSON.parse(readFileSync(traceFile, 'utf8')) as LabTrace;
    const replay = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const modelRequests: string[] = [];
    replay.on('request', (request) => {
      if (new URL(request.url()).pathname.startsWith('/models/')) modelRequests.push(request.url());
    });
    try {
      await replay.goto(new URL('?trace=/traces/stories260K.json', baseUrl).href);
      await replay.waitForSelector('[data-testid="replaying"]', { timeout: 30_000 });
      await waitIdle(replay);
      expect(await runRows(replay).count()).toBe(trace.runs.length);
      expect(await replay.locator('[data-testid="tokens-per-second-panel"] text.switch-label').allTextContents()).toEqual(trace.marks.map((m) => m.label));
      expect(await replay.getByTestId('running-format').textContent()).toBe(trace.model.weightFormat);
      expect(await replay.getByTestId('running-variant').textContent()).toBe(trace.model.matvecVariant);
      const last = trace.runs[trace.runs.length - 1].result!;
      expect(await replay.getByTestId('output').getAttribute('data-tokens')).toBe(last.tokens.join(','));
      expect(await replay.getByTestId('generate').isDisabled()).toBe(true);
      // The batching sweep and the KV snapshot render from the trace alone.
      const batchSizes = trace.batching!.points.map((p) => String(p.batchSize));
      expect(await replay.locator('[data-testid="pareto-chart"] .pareto-point').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-batch')))).toEqual(batchSizes);
      expect(await replay.locator('[data-testid="page-grid"] g.page').count()).toBe(trace.kv!.step.pages.length);
      expect(await replay.getByTestId('kv-run').isDisabled()).toBe(true);
      expect(await replay.getByTestId('batch-sweep').isDisabled()).toBe(true);
      expect(modelRequests).toEqual([]);
    } finally {
      await replay.close();
    }
  });

  it('shows replayed model text as text, never as HTML', async () => {
    const trace = JSON.parse(readFileSync(traceFile, 'utf8')) as LabTrace;
    trace.runs[trace.runs.length - 1].result!.text = hostileText;
    const replay = await browser.newPage();
    const dialogs: string[] = [];
    replay.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    try {
      // A URL predicate: a glob would also match the page's own address, whose query ends in the same path.
      await replay.route((url) => url.pathname === '/traces/hostile.json', (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify(trace) }));
      await replay.goto(new URL('?trace=/traces/hostile.json', baseUrl).href);
      await replay.waitForSelector('[data-testid="replaying"]', { timeout: 30_000 });
      const output = replay.getByTestId('output');
      expect(await output.getAttribute('data-text')).toBe(hostileText);
      expect(await output.textContent()).toContain('<b>bold</b>');
      expect(await output.locator('b').count()).toBe(0);
      expect(await output.locator('img').count()).toBe(0);
      expect(await replay.locator('img[src="x"]').count()).toBe(0);
      expect(dialogs).toEqual([]);
    } finally {
      await replay.close();
    }
  });
});
