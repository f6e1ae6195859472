import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { laterSettingDefaults } from '../helpers/settings.ts';
import { rollingMean } from '../../src/app/charts/stats.ts';
import TokensPerSecondPanel from '../../src/app/panels/TokensPerSecondPanel.svelte';
import type { AbComparison, RunRecord } from '../../src/app/trace.ts';

function run(id: number, stepMs: number[], overrides: { label?: string; ttftMs?: number | null; text?: string; promptTokens?: number } = {}): RunRecord {
  const decodeMs = stepMs.slice(1).reduce((a, b) => a + b, 0);
  const generatedTokens = stepMs.length;
  return {
    id,
    label: overrides.label ?? `f32 · naive · gpu sampler`,
    settings: { weightFormat: 'f32', matvecVariant: 'naive', sampler: 'gpu', ...laterSettingDefaults },
    bytesPerToken: 1_000_000,
    prompt: 'Once upon a time',
    stepMs,
    ttftMs: overrides.ttftMs === undefined ? stepMs[0] + 3 : overrides.ttftMs,
    result: {
      tokens: [],
      text: overrides.text ?? 'there was a cat',
      promptTokens: overrides.promptTokens ?? 5,
      generatedTokens,
      prefillMs: stepMs[0],
      decodeMs,
      decodeTokensPerSecond: generatedTokens > 1 ? ((generatedTokens - 1) * 1000) / decodeMs : 0,
      stopReason: 'length',
    },
  };
}

const baseProps = { runs: [] as RunRecord[], marks: [], live: [] as number[], ab: null, canRecordAb: false };

/** Points of each `<path class="series…" d="…">`, in drawing order. */
function seriesPaths(body: string): Array<Array<[number, number]>> {
  return [...body.matchAll(/<path class="series[^"]*" d="([^"]*)"/g)].map((m) =>
    m[1]
      .split(/[ML]/)
      .filter((p) => p !== '')
      .map((p) => p.split(',').map(Number) as [number, number]),
  );
}

describe('rollingMean', () => {
  it('averages the trailing window, over fewer values at the start', () => {
    expect(rollingMean([2, 4, 6, 8], 2)).toEqual([2, 3, 5, 7]);
    expect(rollingMean([10, 20, 30], 8)).toEqual([10, 15, 20]);
    expect(rollingMean([], 8)).toEqual([]);
  });
});

describe('TokensPerSecondPanel', () => {
  // Run 0: decode steps of 20, 20, 25 ms → 50, 50, 40 tok/s → rolling means 50, 50, 46.67.
  // Run 1: decode steps of 10, 10 ms → 100, 100 tok/s. The first steps (100 and 80 ms) include prefill.
  const runs = [run(0, [100, 20, 20, 25]), run(1, [80, 10, 10], { label: 'q4_0 · naive · gpu sampler', ttftMs: null })];

  it('charts 1000/step ms per decode step, rolling-averaged within each run, first steps left out', () => {
    const { body } = render(TokensPerSecondPanel, { props: { ...baseProps, runs } });
    // Chart geometry at the server-side default width 640: plot 544 px wide (640 − 76 − 20), 160 px tall.
    const [rate0, rate1, ms0, ms1] = seriesPaths(body);
    const innerHeight = 160;
    const x = (i: number) => ((i + 0.5) / 5) * 544; // 5 decode steps across both runs
    const yRate = (v: number) => innerHeight - (v / 100) * innerHeight; // nice domain [0, 100]
    expect(rate0.map(([px]) => px)).toEqual([x(0), x(1), x(2)].map((v) => expect.closeTo(v, 2)));
    expect(rate0.map(([, py]) => py)).toEqual([50, 50, 140 / 3].map((v) => expect.closeTo(yRate(v), 2)));
    expect(rate1.map(([px, py]) => [px, py])).toEqual([
      [expect.closeTo(x(3), 2), expect.closeTo(yRate(100), 2)],
      [expect.closeTo(x(4), 2), expect.closeTo(yRate(100), 2)],
    ]);
    // Time per token: 170 − 12 − 56 = 102 px tall, nice domain [0, 26] ms (d3 rounds 25 up to a step of 2).
    const yMs = (v: number) => 102 - (v / 26) * 102;
    expect(ms0.map(([, py]) => py)).toEqual([20, 20, 25].map((v) => expect.closeTo(yMs(v), 2)));
    expect(ms1.map(([, py]) => py)).toEqual([10, 10].map((v) => expect.closeTo(yMs(v), 2)));
    expect(body).toContain('aria-label="Decode tokens per second at each step (8-step rolling mean) across 2 runs"');
    expect(body).toContain('tokens/s (8-step mean)');
    expect(body).toContain('ms per token');
    expect(body).toContain('decode step (all runs, in order)');
    // The step axis counts steps: whole-number ticks only.
    const stepTicks = (html: string) => {
      const axis = html.slice(html.indexOf('axis-bottom'), html.indexOf('decode step (all runs'));
      return [...axis.matchAll(/dominant-baseline="hanging">([^<]*)</g)].map((m) => m[1]);
    };
    expect(stepTicks(body)).toEqual(['0', '1', '2', '3', '4', '5']);
    const short = render(TokensPerSecondPanel, { props: { ...baseProps, runs: [run(0, [50, 10, 10])] } }).body;
    expect(stepTicks(short)).toEqual(['0', '1', '2']);
  });

  it('lists each run with the engine tok/s, TTFT, mean TPOT and token counts', () => {
    const { body } = render(TokensPerSecondPanel, { props: { ...baseProps, runs } });
    const rows = [...body.matchAll(/<tr>(.*?)<\/tr>/gs)].map((m) => [...m[1].matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1]));
    const [first, second] = rows.filter((r) => r.length > 0);
    // Run 0: 3 × 1000 / 65 = 46.15 tok/s; TPOT (20 + 20 + 25) / 3 = 21.67 ms; TTFT 103 ms.
    expect(first).toEqual(['#0', 'f32 · naive · gpu sampler', '46.2', '103 ms', '21.7 ms', '5', '4']);
    expect(second).toEqual(['#1', 'q4_0 · naive · gpu sampler', '100', '—', '10.0 ms', '5', '3']);
  });

  it('draws a labelled mark where a switch flipped and names the runs', () => {
    const marks = [{ beforeRun: 1, label: 'weight format f32 → q4_0' }];
    const { body } = render(TokensPerSecondPanel, { props: { ...baseProps, runs, marks } });
    expect(body).toContain('weight format f32 → q4_0');
    // The mark sits at the first decode step of run 1: 3 of 5 steps into the 544 px plot.
    const marksAt = [...body.matchAll(/<line class="switch[^"]*" x1="([^"]*)"/g)].map((m) => Number(m[1]));
    expect(marksAt).toEqual([expect.closeTo((3 / 5) * 544, 2), expect.closeTo((3 / 5) * 544, 2)]);
    expect(body).toContain('>#0</text>');
    expect(body).toContain('translate(76,30)'); // one row of switch labels above the plot: 12 + 18 px
    expect(body).toContain('>#1</text>');
  });

  it('stacks switch labels in rows so that none overlaps another', () => {
    // Run 1 starts at 326 px: its label reads rightwards to about 510 px. A mark after the last run
    // sits at the right edge (544 px), so its label reads leftwards and would cross the first one.
    const marks = [
      { beforeRun: 1, label: 'weight format f32 → q4_0' },
      { beforeRun: 2, label: 'sampler gpu → cpu' },
    ];
    const { body } = render(TokensPerSecondPanel, { props: { ...baseProps, runs, marks } });
    const labels = [...body.matchAll(/<text class="switch-label[^"]*" x="([^"]*)" y="([^"]*)" text-anchor="([^"]*)">([^<]*)</g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), anchor: m[3], text: m[4] }));
    expect(labels).toEqual([
      { x: expect.closeTo(326.4 + 4, 2), y: -6, anchor: 'start', text: 'weight format f32 → q4_0' },
      { x: 540, y: -24, anchor: 'end', text: 'sampler gpu → cpu' },
    ]);
    expect(body).toContain('translate(76,48)'); // two label rows: 12 + 2 × 18 px
  });

  it('adds the generation in progress after the finished runs', () => {
    const { body } = render(TokensPerSecondPanel, { props: { ...baseProps, runs: runs.slice(0, 1), live: [90, 40, 40] } });
    expect(body).toMatch(/<path class="series[^"]*\blive"/);
    expect(body).toContain('The dashed series is the generation in progress.');
    expect(seriesPaths(body)).toHaveLength(4);
  });

  it('explains the empty state instead of drawing NaN', () => {
    const { body } = render(TokensPerSecondPanel, { props: baseProps });
    expect(body).toContain('No decode steps yet');
    expect(body).not.toContain('<svg');
    expect(body).not.toContain('NaN');
    expect(body).not.toContain('data-testid="runs-table"');
    expect(body).toContain('No comparison recorded yet');
    // A run of a single token has no decode step: no chart, and no decode rate in the table.
    const single = render(TokensPerSecondPanel, { props: { ...baseProps, runs: [run(0, [70])] } }).body;
    expect(single).toContain('No decode steps yet');
    expect(single).not.toContain('NaN');
    expect(single).toMatch(/<td class="num[" ]/);
    expect(single).toMatch(/#0<\/td><td[^>]*>f32 · naive · gpu sampler<\/td><td[^>]*>—<\/td>/);
  });

  it('enables Record A/B only when allowed and a handler is given', () => {
    const button = (props: object) => render(TokensPerSecondPanel, { props: { ...baseProps, ...props } }).body.match(/<button[^>]*data-testid="record-ab"[^>]*>/)![0];
    expect(button({ canRecordAb: false, onrecordab: () => {} })).toContain('disabled');
    expect(button({ canRecordAb: true })).toContain('disabled');
    expect(button({ canRecordAb: true, onrecordab: () => {} })).not.toContain('disabled');
  });

  it('compares A and B side by side with the ratio of their decode rates', () => {
    // A: 4 steps of 20 ms → 50 tok/s; B: 4 steps of 14 ms → 71.43 tok/s; B/A = 1.43.
    const ab: AbComparison = {
      prompt: 'Tell me <i>why</i>',
      a: run(3, [60, 20, 20, 20, 20], { text: 'A said <b>x</b>' }),
      b: run(4, [60, 14, 14, 14, 14], { text: 'B said & left' }),
    };
    const { body } = render(TokensPerSecondPanel, { props: { ...baseProps, ab, abLabels: { a: 'f32 weights', b: 'q4_0 weights' } } });
    expect(body).toContain('B is 1.43× faster than A');
    expect(body).toContain('B/A = 1.43×');
    expect(body).toContain('f32 weights');
    expect(body).toContain('q4_0 weights');
    expect(body).toContain('50.0 tok/s');
    expect(body).toContain('71.4 tok/s');
    expect(body).toContain('20.0 ms');
    expect(body).toContain('14.0 ms');
    expect(body).toContain('A said &lt;b>x&lt;/b>');
    expect(body).toContain('B said &amp; left');
    expect(body).toContain('Tell me &lt;i>why&lt;/i>');
    expect(body).not.toContain('<b>');
    expect(body).not.toContain('<i>');

    const swapped = render(TokensPerSecondPanel, { props: { ...baseProps, ab: { ...ab, a: ab.b, b: ab.a } } }).body;
    expect(swapped).toContain('B is 1.43× slower than A');
    // A side with a single token has no decode rate, hence no ratio.
    const single = render(TokensPerSecondPanel, { props: { ...baseProps, ab: { ...ab, b: run(5, [60]) } } }).body;
    expect(single).toContain('No ratio: a run produced fewer than two tokens.');
    expect(single).toMatch(/Decode speed<\/dt> <dd>—<\/dd>/);
    expect(single).not.toContain('NaN');
    // Without abLabels each side is named by its run's label.
    expect(swapped).toContain('f32 · naive · gpu sampler');
  });
});
