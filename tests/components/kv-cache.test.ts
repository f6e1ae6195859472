// The KV-cache panel from a fixed step of a mixed batch: one grid cell per page with its owners,
// shared and prefix-cache pages marked, fill levels, the legend, the pool summary, and reserved
// vs holding-K/V bytes paged vs contiguous.
import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { elementWith, visibleText } from '../helpers/ssr.ts';
import { fullerStep, pagedStep } from '../../src/app/batch-runs.ts';
import KvCachePanel from '../../src/app/panels/KvCachePanel.svelte';
import type { KvSnapshot, PagedStep } from '../../src/app/trace.ts';
import type { BatchKvState } from '../../src/engine/engine.ts';
import type { PageSnapshot } from '../../src/engine/kv/page-pool.ts';

const tableau10First = '#4e79a7'; // request-0's colour: the first of d3's Tableau 10

function page(index: number, owners: string[], filledSlots: number, cached = false, refCount = owners.length + (cached ? 1 : 0)): PageSnapshot {
  return { page: index, owners, refCount, cached, filledSlots };
}

// request 0 holds pages 0–3 (55 tokens); request 3 shares its first two (from the prefix cache)
// and has page 5 (37 tokens); request 1 has page 4 (12 tokens); page 6 only the cache holds;
// request 2 has finished. 16-token pages of 16 × 1,280 = 20,480 bytes.
const pages: PageSnapshot[] = [
  page(0, ['request-0', 'request-3'], 16, true),
  page(1, ['request-0', 'request-3'], 16, true),
  page(2, ['request-0'], 16),
  page(3, ['request-0'], 7),
  page(4, ['request-1'], 12),
  page(5, ['request-3'], 5),
  page(6, [], 16, true),
  ...Array.from({ length: 17 }, (_, i) => page(7 + i, [], 0)),
];

const kv: BatchKvState = {
  mode: 'paged',
  pageSize: 16,
  pageCount: 24,
  pageBytes: 20_480,
  // Pages 0–5 held, each once; 55 + 12 + 37 = 104 tokens counted per sequence.
  reservedBytes: 122_880,
  liveBytes: 133_120,
  cachedPages: 1,
  paged: { mode: 'paged', reservedBytes: 163_840, liveBytes: 133_120, wasteBytes: 30_720, sequences: [] },
  contiguous: { mode: 'contiguous', reservedBytes: 3 * 655_360, liveBytes: 133_120, wasteBytes: 3 * 655_360 - 133_120, sequences: [] },
};

const step: PagedStep = { step: 9, rows: 3, running: 3, waiting: 1, kv, pages };

const snapshot: KvSnapshot = {
  requests: [
    { prompt: 'Once upon a time, there was a little girl named Lily. She loved', maxTokens: 16 },
    { prompt: 'Tom had a dog.', maxTokens: 4 },
    { prompt: 'The cat sat on the mat.', maxTokens: 6 },
    { prompt: 'Once upon a time, there was a little girl named Lily. Her mom said', maxTokens: 10 },
  ],
  maxBatch: 3,
  step,
  state: 'running',
  prefix: null,
};

function panel(overrides: Record<string, unknown> = {}): string {
  return render(KvCachePanel, { props: { snapshot, layout: 'paged', onlayout: () => {}, onrun: () => {}, oncancel: () => {}, running: false, busy: false, ...overrides } }).body;
}

interface Cell {
  page: number;
  state: string;
  owners: string;
  filled: number;
  markup: string;
}

function cells(html: string): Cell[] {
  const grid = elementWith(html, 'data-testid="page-grid"');
  return [...grid.matchAll(/<g class="page [^"]*" data-page="(\d+)" data-state="(\w+)" data-owners="([^"]*)" data-filled="(\d+)">([\s\S]*?)<\/g>/g)].map((m) => ({
    page: Number(m[1]),
    state: m[2],
    owners: m[3],
    filled: Number(m[4]),
    markup: m[5],
  }));
}

describe('KvCachePanel', () => {
  it('draws one cell per page of the pool, with its owners and state', () => {
    const grid = cells(panel());
    expect(grid.map((c) => c.page)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(grid.slice(0, 8).map((c) => [c.state, c.owners, c.filled])).toEqual([
      ['shared', 'request-0 request-3', 16],
      ['shared', 'request-0 request-3', 16],
      ['owned', 'request-0', 16],
      ['owned', 'request-0', 7],
      ['owned', 'request-1', 12],
      ['owned', 'request-3', 5],
      ['cached', '', 16],
      ['free', '', 0],
    ]);
    expect(grid.filter((c) => c.state === 'free')).toHaveLength(17);
  });

  it('colours a page by its first owner, hatches shared pages, outlines prefix-cache pages and fills to the slots used', () => {
    const grid = cells(panel());
    expect(grid[2].markup).toContain(`fill="${tableau10First}"`);
    expect(grid.filter((c) => c.markup.includes('url(#kv-shared-hatch)')).map((c) => c.page)).toEqual([0, 1]);
    expect(grid.filter((c) => /class="cache-outline/.test(c.markup)).map((c) => c.page)).toEqual([0, 1, 6]);
    // Page 3 holds 7 of 16 slots: the solid part is 7/16 of the 14 px cell, at its bottom.
    const filled = /<rect class="filled[^"]*" x="(\d+)" y="([\d.]+)" width="14" height="([\d.]+)"/.exec(grid[3].markup)!;
    expect(Number(filled[3])).toBeCloseTo((14 * 7) / 16, 9);
    expect(Number(filled[2]) + Number(filled[3])).toBeCloseTo(14, 9);
    expect(grid[6].markup).toContain('<title>page 6: only the prefix cache · 16/16 token slots</title>');
    expect(grid[0].markup).toContain('<title>page 0: request 0, request 3 · 16/16 token slots · also kept by the prefix cache</title>');
  });

  it('keys each request to its colour and the pages it holds', () => {
    const legend = elementWith(panel(), 'data-testid="kv-legend"');
    const requests = [...legend.matchAll(/<li data-request="(\d)"[^>]*>([\s\S]*?)<\/li>/g)];
    expect(requests.map((r) => visibleText(r[2]))).toEqual([
      'request 0 · 4 pages · up to 16 tokens · “Once upon a time, there was a littl…”',
      'request 1 · 1 page · up to 4 tokens · “Tom had a dog.”',
      'request 2 · 0 pages · up to 6 tokens · “The cat sat on the mat.”',
      'request 3 · 3 pages · up to 10 tokens · “Once upon a time, there was a littl…”',
    ]);
    expect(requests[0][2]).toContain(`background: ${tableau10First}`);
    expect(visibleText(legend)).toContain('hatched: shared by several sequences');
    expect(visibleText(legend)).toContain('outlined: kept by the prefix cache');
  });

  it('sums up the pool and the waste', () => {
    // Per sequence: request 0 has 4 pages, request 1 one, request 3 three (8 × 20,480 bytes).
    expect(visibleText(elementWith(panel(), 'data-testid="kv-summary"'))).toBe(
      'Pool: 24 pages of 16 tokens (20.5 kB each); 7 in use, 17 free, 2 shared, 3 kept by the prefix cache (1 by it alone). The running sequences hold 6 distinct pages (123 kB); counted per sequence, as if nothing were shared, they reserve 164 kB in paged mode, 133 kB of it holding K/V: 18.8% waste.',
    );
  });

  it('counts the waste of the layout the batch ran in', () => {
    const contiguous = { ...snapshot, step: { ...step, kv: { ...kv, mode: 'contiguous' as const } } };
    expect(visibleText(elementWith(panel({ snapshot: contiguous }), 'data-testid="kv-summary"'))).toContain('they reserve 1.97 MB in contiguous mode, 133 kB of it holding K/V: 93.2% waste.');
  });

  it('compares reserved and holding-K/V bytes for paged and contiguous layouts', () => {
    const table = elementWith(panel(), 'data-testid="kv-waste"');
    const rows = [...table.matchAll(/<tr data-mode="(\w+)">([\s\S]*?)<\/tr>/g)].map((m) => [...m[2].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => visibleText(c[1])));
    expect(rows).toEqual([
      ['paged', '164 kB', '133 kB', '18.8%'],
      ['contiguous', '1.97 MB', '133 kB', '93.2%'],
    ]);
    const bars = elementWith(panel(), 'data-testid="kv-bars"');
    const width = (mode: string, kind: string) => Number(new RegExp(`data-mode="${mode}"[\\s\\S]*?<rect class="${kind}[^"]*" x="0" y="2" width="([\\d.]+)"`).exec(bars)![1]);
    // One linear scale: contiguous reserves twelve times what paged does.
    expect(width('contiguous', 'reserved-bar') / width('paged', 'reserved-bar')).toBeCloseTo(12, 9);
    expect(width('paged', 'live-bar')).toBeCloseTo(width('contiguous', 'live-bar'), 9);
  });

  it('says whether the batch is live or over, with the prefix cache’s hits once over', () => {
    expect(visibleText(elementWith(panel(), 'data-testid="kv-status"'))).toBe('4 requests, at most 3 at a time. Step 9, live: 3 running, 1 waiting, 3 rows in this step.');
    const finished = panel({ snapshot: { ...snapshot, state: 'finished', prefix: { hitTokens: 64, computedTokens: 150 } } });
    expect(visibleText(elementWith(finished, 'data-testid="kv-status"'))).toBe(
      '4 requests, at most 3 at a time. Finished. Shown: step 9, where the sequences reserved the most (3 running, 1 waiting). The prefix cache served 64 of 214 prompt tokens.',
    );
    const cancelled = panel({ snapshot: { ...snapshot, state: 'cancelled', prefix: { hitTokens: 0, computedTokens: 20 } } });
    expect(visibleText(elementWith(cancelled, 'data-testid="kv-status"'))).toContain('Cancelled. Shown: step 9');
  });

  it('offers the run, Cancel while it runs, and an empty state before the first batch', () => {
    expect(elementWith(panel(), 'data-testid="kv-run"')).not.toMatch(/disabled/);
    expect(elementWith(panel({ busy: true }), 'data-testid="kv-run"')).toMatch(/disabled/);
    expect(panel({ running: true, busy: true })).toContain('data-testid="kv-cancel"');
    expect(elementWith(panel({ layout: 'contiguous' }), 'data-testid="kv-layout"')).toMatch(/<option value="contiguous" selected/);
    const empty = panel({ snapshot: null });
    expect(visibleText(elementWith(empty, 'data-testid="kv-empty"'))).toContain('No batch yet.');
    expect(empty).not.toContain('page-grid');
  });
});

describe('which step the panel keeps', () => {
  it('takes only steps that carry pages, and of two the one that reserved more (the earlier on a tie)', () => {
    const { pages: _pages, ...withoutPages } = step;
    expect(pagedStep(withoutPages)).toBeNull();
    expect(pagedStep(step)).toEqual(step);
    const fuller = { ...step, step: 10, kv: { ...kv, reservedBytes: kv.reservedBytes + 1 } };
    expect(fullerStep(null, step)).toBe(step);
    expect(fullerStep(step, fuller)).toBe(fuller);
    expect(fullerStep(fuller, step)).toBe(fuller);
    expect(fullerStep(step, { ...step, step: 11 }).step).toBe(9);
  });
});
