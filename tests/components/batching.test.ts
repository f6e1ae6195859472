// The Batching panel from a fixed sweep: the Pareto curve's points and labels, the table, the
// arithmetic intensity of each matrix from the matmul cost model, the roofline, and how many
// sequences a KV budget holds paged vs contiguous.
import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { laterChoicesAll, laterSettingDefaults } from '../helpers/settings.ts';
import { elementWith, visibleText } from '../helpers/ssr.ts';
import { stories260KConfig } from '../helpers/stories260k.ts';
import { batchRunFlops, decodeStepCost, matrixIntensity } from '../../src/app/arithmetic-intensity.ts';
import BatchingPanel from '../../src/app/panels/BatchingPanel.svelte';
import type { BatchSweep, BatchSweepPoint } from '../../src/app/trace.ts';
import type { BatchKvState, ModelInfo } from '../../src/engine/engine.ts';
import type { KvMemoryReport } from '../../src/engine/kv/kv-memory.ts';

// stories260K: 2 (K, V) × 4 bytes × 5 layers × 4 KV heads × 8 dims = 1,280 KV bytes per token.
const model: ModelInfo = {
  source: 'stories260K.bin (llama2.c)',
  config: stories260KConfig,
  tokenizer: 'tok512.bin (llama2.c)',
  chatTemplate: false,
  weightBytes: 1_133_888,
  weightFormat: 'f32',
  matvecVariant: 'naive',
  settings: { weightFormat: 'f32', matvecVariant: 'auto', sampler: 'gpu', ...laterSettingDefaults },
  choices: { weightFormat: { available: ['f32'], unavailable: [] }, matvecVariant: { available: ['auto', 'naive'], unavailable: [] }, sampler: { available: ['gpu', 'cpu'], unavailable: [] }, ...laterChoicesAll },
  bandwidth: { readGBps: 10, copyGBps: 8, bytes: 64e6, method: 'timestamp' },
  memory: { matrixBytes: 1e6, embeddingBytes: 131_072, vectorBytes: 2816, kvCacheBytes: 655_360, kvBytesPerToken: 1280, activationBytes: 37_760, contextLength: 512, bytesPerToken: 1.2e6 },
  load: { fileBytes: 1e6, readMs: 10, uploadBytes: 1e6, uploadMs: 30, compileMs: 800 },
};

function report(mode: 'paged' | 'contiguous', reservedBytes: number, liveBytes: number): KvMemoryReport {
  return { mode, reservedBytes, liveBytes, wasteBytes: reservedBytes - liveBytes, sequences: [] };
}

function kvPeak(sequences: number): BatchKvState {
  // Each sequence: 29 tokens in two 16-token pages.
  return {
    mode: 'paged',
    pageSize: 16,
    pageCount: 1024,
    pageBytes: 20_480,
    reservedBytes: sequences * 40_960,
    liveBytes: sequences * 37_120,
    cachedPages: 0,
    paged: report('paged', sequences * 40_960, sequences * 37_120),
    contiguous: report('contiguous', sequences * 655_360, sequences * 37_120),
  };
}

function point(batchSize: number, aggregate: number, perUser: number, ttft: number | null, tpot: number | null): BatchSweepPoint {
  return {
    batchSize,
    aggregateTokensPerSecond: aggregate,
    perUserTokensPerSecond: perUser,
    meanTtftMs: ttft,
    meanTpotMs: tpot,
    wallMs: 480 * (1 + batchSize / 10),
    steps: 25,
    rows: batchSize * 29,
    promptTokens: 5,
    generatedTokens: batchSize * 24,
    kvPeak: kvPeak(batchSize),
  };
}

// Given out of order: the panel sorts by batch size.
const sweep: BatchSweep = {
  prompt: 'Once',
  maxTokens: 24,
  settings: { ...model.settings, pageSize: 16 },
  points: [point(4, 150, 38.5, 31.25, 26), point(1, 50, 52, 20, 19.2), point(2, 90, 46, null, 21.7)],
};

function panel(overrides: Record<string, unknown> = {}): string {
  return render(BatchingPanel, { props: { sweep, model, options: { maxBatch: 8, maxTokens: 24 }, onrun: () => {}, oncancel: () => {}, running: false, busy: false, ...overrides } }).body;
}

/** The text of each cell of every body row of the table with `testId`. */
function rows(html: string, testId: string): string[][] {
  const table = elementWith(html, `data-testid="${testId}"`);
  const body = table.slice(table.indexOf('<tbody>'), table.indexOf('</tbody>'));
  return [...body.matchAll(/<tr\b[^>]*>([\s\S]*?)<\/tr>/g)].map((m) => [...m[1].matchAll(/<t[hd]\b[^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c) => visibleText(c[1])));
}

function circle(group: string): { cx: number; cy: number } {
  const m = /<circle cx="([\d.e-]+)" cy="([\d.e-]+)"/.exec(group);
  if (!m) throw new Error(`no circle in ${group}`);
  return { cx: Number(m[1]), cy: Number(m[2]) };
}

describe('arithmetic intensity', () => {
  it('is 2·B·rows·cols over the packed weights plus the batch’s vectors', () => {
    // wq is 64 × 64: f32 weights 16,384 bytes; B inputs and B outputs of 64 floats.
    expect(matrixIntensity('f32', model.config, 'wq', 1)).toBeCloseTo(8192 / (16_384 + 256 + 256), 12);
    expect(matrixIntensity('f32', model.config, 'wq', 4)).toBeCloseTo(32_768 / (16_384 + 1024 + 1024), 12);
    // q4_0 packs 32 weights into 18 bytes: 64 rows × 2 blocks × 18 bytes.
    expect(matrixIntensity('q4_0', model.config, 'wq', 1)).toBeCloseTo(8192 / (2304 + 512), 12);
    // The classifier is (vocab 512) × (dim 64); w2 reads the 172-wide hidden vector.
    expect(matrixIntensity('f32', model.config, 'classifier', 1)).toBeCloseTo(65_536 / (131_072 + 256 + 2048), 12);
    expect(matrixIntensity('f32', model.config, 'w2', 2)).toBeCloseTo((2 * 2 * 64 * 172) / (4 * 64 * 172 + 8 * 172 + 8 * 64), 12);
  });

  it('sums a decode step over every layer and the classifier, and a run’s FLOPs over rows and sampled tokens', () => {
    const step = decodeStepCost('f32', model.config, 1);
    // Per layer: wq 4096 + wk 2048 + wv 2048 + wo 4096 + w1 11,008 + w2 11,008 + w3 11,008 weights.
    expect(step.flops).toBe(2 * (5 * 45_312 + 512 * 64));
    expect(batchRunFlops(model.config, 29, 24)).toBe(29 * 5 * 2 * 45_312 + 24 * 2 * 512 * 64);
  });
});

describe('BatchingPanel', () => {
  it('plots one labelled point per batch size: more total throughput to the right, slower users lower down', () => {
    const chart = elementWith(panel(), 'data-testid="pareto-chart"');
    const groups = [...chart.matchAll(/<g class="pareto-point[^"]*" data-batch="(\d+)">([\s\S]*?)<\/g>/g)];
    expect(groups.map((g) => g[1])).toEqual(['1', '2', '4']);
    expect(groups.map((g) => visibleText(/<text[^>]*>([\s\S]*?)<\/text>/.exec(g[2])![1]))).toEqual(['B=1', 'B=2', 'B=4']);
    const [b1, b2, b4] = groups.map((g) => circle(g[2]));
    expect(b1.cx).toBeLessThan(b2.cx);
    expect(b2.cx).toBeLessThan(b4.cx);
    expect(b1.cy).toBeLessThan(b2.cy);
    expect(b2.cy).toBeLessThan(b4.cy);
    // Linear axes from 0: B=4's 150 tok/s sits three times as far right as B=1's 50.
    expect(b4.cx / b1.cx).toBeCloseTo(3, 9);
    expect(visibleText(chart)).toContain('aggregate tokens/s (all sequences)');
    expect(visibleText(chart)).toContain('per-user tokens/s');
  });

  it('tables every batch size’s figures, with a dash where a mean could not be taken', () => {
    expect(rows(panel(), 'batch-table')).toEqual([
      ['1', '50.0', '52.0', '20.0 ms', '19.2 ms', '41.0 kB', '25'],
      ['2', '90.0', '46.0', '—', '21.7 ms', '81.9 kB', '25'],
      ['4', '150', '38.5', '31.3 ms', '26.0 ms', '164 kB', '25'],
    ]);
    expect(visibleText(elementWith(panel(), 'data-testid="batch-setup"'))).toBe(
      '3 batch sizes, 5 prompt tokens and up to 24 new tokens per sequence; f32 weights, fused paged attention, 16-token pages, prefix cache off so every copy computes its own prompt.',
    );
  });

  it('tables the FLOP per byte of each matrix kind at each measured batch size', () => {
    const table = rows(panel(), 'intensity-table');
    expect(table.map((r) => r[0])).toEqual(['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3', 'classifier']);
    expect(table[0]).toEqual(['wq', '64 × 64', '0.485', '0.941', '1.78']);
    expect(table[5][1]).toBe('64 × 172');
    expect(table[7]).toEqual(['classifier', '512 × 64', '0.491', '0.966', '1.87']);
    const header = elementWith(panel(), 'data-testid="intensity-table"');
    expect([...header.matchAll(/<th scope="col" class="num[^"]*">(B=\d+)<\/th>/g)].map((m) => m[1])).toEqual(['B=1', 'B=2', 'B=4']);
  });

  it('draws the memory roof from the probe, each matrix on it, and the GFLOP/s each run achieved below it', () => {
    const chart = elementWith(panel(), 'data-testid="batch-roofline"');
    expect(visibleText(chart)).toContain('memory roof: 10.0 GB/s × FLOP/byte');
    expect(visibleText(chart)).toContain('compute roof: not measured, so not drawn');
    expect([...chart.matchAll(/<circle class="kind-mark[^"]*"/g)]).toHaveLength(8 * 3);
    const measured = [...chart.matchAll(/<g class="measured[^"]*" data-batch="(\d+)">([\s\S]*?)<\/g>/g)];
    expect(measured.map((m) => m[1])).toEqual(['1', '2', '4']);
    expect(measured.map((m) => visibleText(/<text[^>]*>([\s\S]*?)<\/text>/.exec(m[2])![1]))).toEqual(['B=1', 'B=2', 'B=4']);
    // B=1 achieved (29 rows × 453,120 + 24 × 65,536) FLOP in 528 ms.
    const b1 = (29 * 453_120 + 24 * 65_536) / 528 / 1e6;
    expect(measured[0][2]).toContain(`the run achieved ${b1.toPrecision(3)} GFLOP/s`);
    // Achieved points lie under the roof: lower on the chart (larger y) than the roof at their x.
    const roof = /<line class="roof[^"]*" x1="([\d.e-]+)" y1="([\d.e-]+)" x2="([\d.e-]+)" y2="([\d.e-]+)"/.exec(chart)!.slice(1).map(Number);
    for (const m of measured) {
      const { cx, cy } = circle(m[2]);
      const roofY = roof[1] + ((roof[3] - roof[1]) * (cx - roof[0])) / (roof[2] - roof[0]);
      expect(cy).toBeGreaterThan(roofY);
    }
  });

  it('states a sequence’s KV bytes and how many sequences a budget holds, paged vs contiguous', () => {
    const html = panel();
    // 5 prompt tokens + 24 new: 29 tokens × 1,280 bytes.
    expect(visibleText(elementWith(html, 'data-testid="kv-per-sequence"'))).toContain('a sequence of 29 tokens holds 37.1 kB');
    // Budget: 32 full contexts, 32 × 655,360 bytes ≈ 21.0 MB; paged: two 16-token pages (40,960 bytes) a sequence.
    expect(html).toMatch(/data-testid="kv-budget"[^>]*value="21"/);
    expect(rows(html, 'kv-fit')).toEqual([
      ['contiguous', '655 kB', '37.1 kB', '94.3%', '32'],
      ['paged', '41.0 kB', '37.1 kB', '9.4%', '512'],
    ]);
  });

  it('offers the sweep sizes, Cancel while it runs, and waits while the engine is busy', () => {
    const html = panel();
    expect([...elementWith(html, 'data-testid="batch-max"').matchAll(/<option value="(\d+)"/g)].map((m) => m[1])).toEqual(['1', '2', '4', '8', '16', '32']);
    expect(elementWith(html, 'data-testid="batch-max"')).toMatch(/<option value="8" selected/);
    expect(elementWith(html, 'data-testid="batch-sweep"')).not.toMatch(/disabled/);
    expect(elementWith(panel({ busy: true }), 'data-testid="batch-sweep"')).toMatch(/disabled/);
    const running = panel({ running: true, busy: true });
    expect(running).toContain('data-testid="batch-cancel"');
    expect(running).not.toContain('data-testid="batch-sweep"');
  });

  it('says what a sweep would show before there is one, and still answers the KV question', () => {
    const html = panel({ sweep: null });
    expect(visibleText(elementWith(html, 'data-testid="batch-empty"'))).toContain('No sweep yet.');
    expect(html).not.toContain('pareto-chart');
    // Without a sweep: a quarter of the 512-token context.
    expect(visibleText(elementWith(html, 'data-testid="kv-per-sequence"'))).toContain('a sequence of 128 tokens holds 164 kB');
    expect(rows(html, 'kv-fit')[1]).toEqual(['paged', '164 kB', '164 kB', '0.0%', '128']);
  });
});
