// A GPU that goes away mid-generation (headless Chromium; the test kills the browser's GPU process,
// as a driver crash or reset would): the page says what happened, keeps the text generated so far,
// and "Restart the engine" brings the model back so generation works again.
import { execFileSync } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAndPreview, type BuiltApp } from '../helpers/built-app.ts';
import { launchChromium, recordConsole } from '../helpers/chromium.ts';

/** A switch Chromium ignores, to tell this test's browser from any other running on the machine. */
const marker = `--lab-gpu-loss-test=${process.pid}`;

/** Process ids of the GPU processes of the browser launched with `marker` (children of its main process). */
function gpuProcesses(): number[] {
  const processes = execFileSync('ps', ['-eo', 'pid=,ppid=,args='])
    .toString()
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map(([, pid, ppid, args]) => ({ pid: Number(pid), ppid: Number(ppid), args }));
  const roots = new Set(processes.filter((p) => p.args.includes(marker) && !p.args.includes('--type=')).map((p) => p.pid));
  return processes.filter((p) => roots.has(p.ppid) && p.args.includes('--type=gpu-process')).map((p) => p.pid);
}

describe('losing the GPU during a generation (vite build + preview, headless Chromium)', () => {
  let app: BuiltApp;
  let browser: Browser;
  let page: Page;
  let consoleLines: string[] = [];

  beforeAll(async () => {
    app = await buildAndPreview('gpu-loss-build');
    browser = await launchChromium([marker]);
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    consoleLines = recordConsole(page);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  const status = () => page.getByTestId('status').getAttribute('data-status');
  const outputText = async () => (await page.getByTestId('output').getAttribute('data-text')) ?? '';

  it('reports the lost device, keeps the partial text, and restarts the engine', async () => {
    await page.goto(app.baseUrl);
    await expect.poll(status, { timeout: 120_000 }).toBe('ready');
    await page.getByTestId('prompt').fill('');
    await page.getByTestId('max-tokens').fill('400');
    await page.getByTestId('generate').click();
    // Let some text stream, then take the GPU away.
    await expect.poll(async () => (await outputText()).length, { timeout: 60_000 }).toBeGreaterThan(40);
    const gpu = gpuProcesses();
    expect(gpu.length).toBeGreaterThan(0);
    for (const pid of gpu) process.kill(pid, 'SIGKILL');

    const banner = page.getByTestId('gpu-failure');
    await banner.waitFor({ timeout: 60_000 }).catch((error: Error) => {
      throw new Error(`${error.message}\n--- page console ---\n${consoleLines.join('\n')}`);
    });
    expect(await banner.textContent()).toMatch(/The GPU device was lost while generating .*The text generated so far is kept\./);
    const kept = await outputText();
    expect(kept.length).toBeGreaterThan(40);
    expect(kept.startsWith('Once upon a time')).toBe(true);

    await page.getByTestId('restart-engine').click();
    await expect.poll(status, { timeout: 120_000 }).toBe('ready');
    expect(await banner.count()).toBe(0);
    // The kept text stays on the page until the next generation replaces it.
    expect(await outputText()).toBe(kept);
    await page.getByTestId('max-tokens').fill('12');
    await page.getByTestId('generate').click();
    await expect.poll(status, { timeout: 60_000 }).toBe('done');
    expect(kept.startsWith(await outputText())).toBe(true);
  });
});
