// The load tester as a user runs it, against the serve command as a user runs it: a run past the
// server's queue reports the 429s by status next to the TTFT/TPOT percentiles and the aggregate
// rate, agreeing with the server's own counts; a wrong key fails every request with 401.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { percentile, type LoadReport } from '../src/cli/loadtest.ts';
import { metrics, repoRoot, startServeCli, storiesBin, type ServeProcess } from './helpers/server.ts';

const run = promisify(execFile);

function loadtest(...args: string[]) {
  return run(process.execPath, ['scripts/run-ts.mjs', 'src/cli/loadtest.ts', ...args], { cwd: repoRoot, timeout: 120_000 });
}

describe('npm run loadtest against npm run serve', () => {
  let serve: ServeProcess;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lab-loadtest-'));
    serve = await startServeCli(['--model', storiesBin, '--port', '0', '--max-batch', '2', '--max-queue', '1', '--api-key', 'k', '--max-context', '128']);
  });

  afterAll(async () => {
    serve?.process.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('reports TTFT and TPOT percentiles, tokens/s, and the 429s of a full queue by status', async () => {
    const out = join(dir, 'report.json');
    const { stdout } = await loadtest('--url', serve.url, '--concurrency', '6', '--requests', '12', '--prompt-tokens', '4', '--max-tokens', '4', '--api-key', 'k', '--json', out);
    const report = JSON.parse(await readFile(out, 'utf8')) as LoadReport;
    expect(report).toMatchObject({ url: `${serve.url}/v1`, model: 'stories260K', concurrency: 6, requests: 12, maxTokens: 4 });
    // Two run and one waits; the other clients are turned away until a slot frees.
    expect(report.errors['429']).toBeGreaterThan(0);
    expect(report.succeeded + report.errors['429']).toBe(12);
    expect(report.succeeded).toBeGreaterThanOrEqual(3);
    expect(report.outputTokens).toBeGreaterThan(report.succeeded);
    expect(report.outputTokens).toBeLessThanOrEqual(4 * report.succeeded);
    expect(report.meanPromptTokens).toBeGreaterThan(4); // BOS and sub-word pieces
    for (const p of [report.ttftMs!, report.tpotMs!, report.latencyMs!]) {
      expect(p.p50).toBeGreaterThan(0);
      expect(p.p90).toBeGreaterThanOrEqual(p.p50);
      expect(p.p99).toBeGreaterThanOrEqual(p.p90);
    }
    expect(report.latencyMs!.p50).toBeGreaterThan(report.ttftMs!.p50);
    expect(report.tokensPerSecond).toBeCloseTo(report.outputTokens / report.wallSeconds, 6);
    expect(stdout).toContain(`failed ${report.errors['429']} × 429`);
    expect(stdout).toMatch(/TTFT\s+[\d.]+\s+[\d.]+\s+[\d.]+/);

    // The server counted the same refusals.
    const counts = await metrics(serve.url);
    expect(counts.get('lab_requests_total{route="/v1/completions",status="429"}')).toBe(report.errors['429']);
    expect(counts.get('lab_requests_total{route="/v1/completions",status="200"}')).toBe(report.succeeded);
    expect(counts.get('lab_kv_pages_used')).toBe(0);
  });

  it('fails every request of a wrong key with 401 and exits 1', async () => {
    const out = join(dir, 'denied.json');
    const error = await loadtest('--url', `${serve.url}/v1/`, '--model', 'stories260K', '--concurrency', '2', '--requests', '3', '--api-key', 'wrong', '--json', out).catch((e: { code: number }) => e);
    expect(error).toMatchObject({ code: 1 });
    const report = JSON.parse(await readFile(out, 'utf8')) as LoadReport;
    expect(report).toMatchObject({ succeeded: 0, errors: { '401': 3 }, ttftMs: null, outputTokens: 0 });
  });

  it('serve shuts down on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => serve.process.once('exit', resolve));
    serve.process.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(serve.stderr()).toContain('SIGTERM: shutting down');
  });
});

describe('percentile', () => {
  it('interpolates between the closest ranks', () => {
    expect(percentile([10], 99)).toBe(10);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    const hundred = Array.from({ length: 101 }, (_, i) => i);
    expect(percentile(hundred, 90)).toBe(90);
    expect(percentile(hundred, 99)).toBe(99);
  });
});
